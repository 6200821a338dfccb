"""Golden tests: real console logs of ktest guests (tests/report_golden/*.log).

Each log starts with `# key: value` header lines saying which report the parser
must find there (title, kind, severity, frame; `pick` chooses the report) and how
the log was produced. `scripts/regen-report-golden` regenerates the logs by
re-running the guests; `--update-expected` rewrites only the expected fields
after a deliberate parser change.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.report import parse
from orchestrator.runs import golden

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "report_golden"
LOGS = sorted(GOLDEN.glob("*.log"))

# The kinds of bugs the golden set must cover (one log at least each).
REQUIRED = {
    "dma_api",
    "dmar_fault",
    "netdev_watchdog",
    "ref_tracker",
    "kmemleak",
    "lockdep",
    "sleep_atomic",
    "kasan_uaf",
    "aer",
}


def test_every_case_has_a_log() -> None:
    assert {p.stem for p in LOGS} >= REQUIRED
    assert {c.name for c in golden.CASES} == {p.stem for p in LOGS}


@pytest.mark.parametrize("path", LOGS, ids=[p.stem for p in LOGS])
def test_golden_log(path: Path) -> None:
    header, log = golden.split_golden(path.read_bytes())
    for key in ("title", "kind", "severity", "pick", "profile", "kernel"):
        assert header.get(key), f"{path.name}: header lacks {key!r}"
    assert not log.startswith(b"#")
    reports = parse(log)
    report = golden.pick_report(reports, header["pick"], header.get("pick-text"))
    assert report is not None, f"{path.name}: no report for pick={header['pick']}"
    got = golden.expected_of(report)
    want = {k: header[k] for k in ("title", "kind", "severity", "frame") if k in header}
    assert {k: got[k] for k in want} == want, (
        f"{path.name}: parser output changed; if intended, run "
        f"scripts/regen-report-golden --update-expected {path.stem}"
    )
    # The report lies inside the excerpt and carries its text.
    assert 0 <= report.start < report.end <= len(log)
    assert report.text
