"""Golden tests: real console logs of ktest guests, one set per guest kernel
series (tests/report_golden/<series>/*.log).

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
LOGS = golden.golden_logs()

# The golden set of the default kernel (6.12) covers every report kind its
# guests can produce; 6.1's covers the first nine (the 6.1 wording of the
# memory, locking, DMA and netdev reports).
REQUIRED = {
    "6.1": {"dma_api", "dmar_fault", "netdev_watchdog", "ref_tracker", "kmemleak", "lockdep",
            "sleep_atomic", "kasan_uaf", "aer"},
    "6.12": {c.name for c in golden.CASES},
}


def test_the_default_kernel_covers_every_kind() -> None:
    from orchestrator.report.model import Kind

    # kinds no guest of ours produces: not configured (KMSAN, KCSAN), no NMI
    # watchdog under TCG (HARD_LOCKUP), catch-alls (INFO, REBOOT, HARNESS, OTHER)
    absent = {"KMSAN", "KCSAN", "HARD_LOCKUP", "INFO", "REBOOT", "HARNESS", "OTHER"}
    kinds = {golden.split_golden(p.read_bytes())[0]["kind"]
             for p in golden.golden_dir("6.12").glob("*.log")}
    assert kinds == {k.name for k in Kind} - absent


@pytest.mark.parametrize("series", golden.SERIES)
def test_every_case_has_a_log(series: str) -> None:
    logs = {p.stem for p in golden.golden_dir(series).glob("*.log")}
    assert REQUIRED[series] <= logs <= {c.name for c in golden.CASES}
    for p in golden.golden_dir(series).glob("*.log"):
        header, _ = golden.split_golden(p.read_bytes())
        assert golden.series_of(header["kernel"]) == series, p


def test_series_of() -> None:
    assert golden.series_of("6.12.57-ktest") == "6.12"
    assert golden.series_of("6.1.158") == "6.1"
    with pytest.raises(ValueError):
        golden.series_of("ktest")


@pytest.mark.parametrize("path", LOGS, ids=[f"{p.parent.name}/{p.stem}" for p in LOGS])
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
