"""Re-run the golden report cases in real guests (see scripts/regen-report-golden):
the parser must find in a fresh log the report recorded in the golden header
(same title, kind and severity). One guest per case, a minute or so each."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

from orchestrator.report import parse

ROOT = Path(__file__).resolve().parents[2]


def _regen() -> ModuleType:
    name = "regen_report_golden"
    if name in sys.modules:
        return sys.modules[name]
    loader = importlib.machinery.SourceFileLoader(
        name, str(ROOT / "scripts" / "regen-report-golden")
    )
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    loader.exec_module(mod)
    return mod


# CI re-runs a focused subset (one memory, one DMA and one netdev case, about
# a minute together); KTEST_GOLDEN_ALL=1 re-runs every case (about 5 min).
FOCUSED = ("kasan_uaf", "dma_api", "netdev_watchdog")
CASES = [c for c in _regen().CASES
         if os.environ.get("KTEST_GOLDEN_ALL") == "1" or c.name in FOCUSED]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_case_in_guest(case, artifacts, machine_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    regen = _regen()
    header, _ = regen.split_golden((regen.GOLDEN_DIR / f"{case.name}.log").read_bytes())

    def make(profile):  # type: ignore[no-untyped-def]
        return machine_factory(profile, run_dir=tmp_path / f"run-{case.name}")

    log = regen.run_case(case, artifacts, make=make)
    report = regen.pick_report(parse(log), case.pick, case.pick_text)
    assert report is not None, f"no {case.pick} report in the guest's console log"
    got = regen.expected_of(report)
    assert {k: got[k] for k in ("title", "kind", "severity")} == {
        k: header[k] for k in ("title", "kind", "severity")
    }
