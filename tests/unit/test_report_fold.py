"""``parse`` folds the reports of a repeated title without building their other
fields (see ``parser.analyze``): its reports must be exactly those of
``all_reports`` (every report, each built whole) once folded.

Golden logs always; corpus entries too when the shared corpus is present.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.report.parser import _drop_redundant, all_reports, parse_log
from orchestrator.runs import golden

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = golden.golden_logs()
CORPUS = ROOT.parent / "shared" / "report-corpus" / "syzkaller-linux-dev.jsonl"


def _golden_logs() -> list[bytes]:
    return [golden.split_golden(p.read_bytes())[1] for p in GOLDEN]


def _assert_folds_like_all_reports(data: bytes) -> None:
    want = [r.to_dict() for r in _drop_redundant(all_reports(data))]
    got = [r.to_dict() for r in parse_log(data)]
    assert got == want


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_log(path: Path) -> None:
    _assert_folds_like_all_reports(golden.split_golden(path.read_bytes())[1])


def test_golden_logs_repeated() -> None:
    # Every report but those of the first copy repeats a title.
    logs = _golden_logs()
    _assert_folds_like_all_reports(b"".join(logs * 3))


@pytest.mark.skipif(not CORPUS.exists(), reason=f"report corpus not available ({CORPUS})")
def test_corpus_repeated() -> None:
    entries = []
    with CORPUS.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                obj = json.loads(line)
                if obj.get("title"):
                    text = obj["text"].encode("utf-8", "surrogateescape")
                    entries.append(text if text.endswith(b"\n") else text + b"\n")
    # All the entries twice, back to back: reports of the second copy repeat titles
    # (and some entries share titles), windows cross entries, with and without
    # caller ids.
    _assert_folds_like_all_reports(b"".join(entries * 2))
