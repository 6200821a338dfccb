"""Re-run the golden report cases in real guests (see orchestrator/runs/golden.py):
the parser must find in a fresh log the report recorded in the golden header
of the guest kernel's series (same title, kind and severity). One guest per
case, a minute or so each."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.report import parse
from orchestrator.runs import golden

ROOT = Path(__file__).resolve().parents[2]


# CI re-runs a focused subset (one memory, one DMA and one netdev case, about
# a minute together); KTEST_GOLDEN_ALL=1 re-runs every case (about 5 min).
FOCUSED = ("kasan_uaf", "dma_api", "netdev_watchdog")
CASES = [c for c in golden.CASES
         if os.environ.get("KTEST_GOLDEN_ALL") == "1" or c.name in FOCUSED]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_case_in_guest(case, artifacts, machine_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    series = golden.series_of(artifacts.kernel.release)
    header, _ = golden.split_golden((golden.golden_dir(series) / f"{case.name}.log").read_bytes())

    def make(profile):  # type: ignore[no-untyped-def]
        # restored from a snapshot when cached: the case's module loads after
        return machine_factory(profile, run_dir=tmp_path / f"run-{case.name}", snapshots=True)

    log = golden.run_case(case, artifacts, make=make)
    report = golden.pick_report(parse(log), case.pick, case.pick_text)
    assert report is not None, f"no {case.pick} report in the guest's console log"
    got = golden.expected_of(report)
    assert {k: got[k] for k in ("title", "kind", "severity")} == {
        k: header[k] for k in ("title", "kind", "severity")
    }
