"""Accuracy of orchestrator.report on the syzkaller-derived report corpus.

Skipped when the shared corpus (``../shared`` next to the repository) is absent.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "report-corpus" / "syzkaller-linux-dev.jsonl"

pytestmark = pytest.mark.skipif(
    not CORPUS.exists(), reason=f"report corpus not available ({CORPUS} is absent)"
)


def _bench():
    spec = importlib.util.spec_from_file_location(
        "report_corpus", REPO / "bench" / "report_corpus.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("report_corpus", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results():
    bench = _bench()
    return bench.evaluate(bench.load(CORPUS), reps=1)


def test_title_accuracy(results) -> None:
    # (through `ktest parse --json`: the first entry of each log's bugs list)
    assert results.title_acc >= 0.99, results.misses


def test_no_event_among_the_bugs(results) -> None:
    assert results.events_in_bugs == 0


def test_no_report_accuracy(results) -> None:
    assert results.none_acc >= 0.95, results.misses


def test_corrupted_agreement(results) -> None:
    assert results.corrupted_acc >= 0.90, results.misses
