"""The zoo's data and its judging, without a VM."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.plugin.record import Record, ReportRef
from orchestrator.runs import zoo

ROOT = Path(__file__).resolve().parents[2]


def test_every_zoo_bug_is_an_injection_of_ktest_nic() -> None:
    source = (ROOT / "drivers" / "ktest_nic" / "ktnic_bugs.c").read_text()
    names = set(re.findall(r'\]\s*=\s*"([a-z_]+)"', source))
    z = zoo.load_zoo()
    assert {b.name for b in z.bugs} == names
    assert len(z.bugs) >= 15 and z.unobservable
    # the module parameter's description sends users to the driver's README
    readme = (ROOT / "drivers" / "ktest_nic" / "README.md").read_text()
    section = readme.split("## Bug injections", 1)[1]
    assert set(re.findall(r"`([a-z_]+)`", section)) - {"bugs"} == names


def test_judge() -> None:
    bug = zoo.Bug("x", "c", "t::t", kind="KASAN", title="in ktnic_clean_tx")
    hit = Record(test="t", outcome="failed", message="KASAN: use-after-free Read in ktnic_clean_tx",
                 reports=[ReportRef("KASAN: use-after-free Read in ktnic_clean_tx", "KASAN")])
    assert zoo.judge(bug, [hit]) == (True, "FAIL, KASAN: KASAN: use-after-free Read in "
                                           "ktnic_clean_tx")
    other = Record(test="t", outcome="failed", message="WARNING in foo",
                   reports=[ReportRef("WARNING in foo", "WARNING")])
    ok, got = zoo.judge(bug, [other])
    assert not ok and "WARNING in foo" in got
    ok, got = zoo.judge(bug, [Record(test="t")])
    assert not ok and "unnoticed" in got
    assert zoo.judge(bug, []) == (False, "no result (the scenario did not run)")
    behaviour = zoo.Bug("y", "c", "t::t", message="corrupted")
    assert zoo.judge(behaviour, [Record(test="t", outcome="failed",
                                        message="flow 1: {'corrupted': 3}")])[0]
    # a kind and a message: either signature
    both = zoo.Bug("z", "c", "t::t", kind="KASAN", title="in ktnic_clean_tx", message="stalled")
    assert zoo.judge(both, [hit])[0]
    assert zoo.judge(both, [Record(test="t", outcome="failed", message="Tx stalled")])[0]
    assert not zoo.judge(both, [other])[0]


ZOO_SUITE = '''
import os

import pytest


@pytest.fixture(scope="session")
def ktest_pair(request):
    return request.param


def test_exposes(ktest_pair):
    assert False, "Rx stalled at " + os.environ.get("KTEST_SWEEP", "no sweep")
'''


def test_a_bugs_folder_is_a_run_directory_repro_can_replay(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    from orchestrator.runs import repro
    from orchestrator.runs.rundir import load_run

    monkeypatch.setenv("KTEST_CACHE", str(tmp_path / "cache"))
    suite = tmp_path / "test_zoo_fake.py"
    suite.write_text(ZOO_SUITE)
    # the bug's suite knobs reach its scenario and its run.json (a repro replays them)
    bug = zoo.Bug("rx_stall", "a stall", f"{suite}::test_exposes",
                  message="Rx stalled at probe:3-5", env=(("KTEST_SWEEP", "probe:3-5"),))
    choices = {"kernel": "6.1", "accel": "tcg"}
    res = zoo.run_bug(bug, "e1000e-viommu", tmp_path / "zoo", [],
                      manifest={"choices": choices})
    assert res.caught, res.got
    run = load_run(tmp_path / "zoo" / "rx_stall")
    assert run.manifest["zoo_bug"] == "rx_stall" and run.manifest["choices"] == choices
    again = repro.rerun(run, repro.find_record(run, None))
    assert again.pair_spec == "e1000e-viommu:ktest_nic"
    assert again.driver_params == "bugs=rx_stall"
    assert again.choices.kernel == "6.1" and again.choices.accel == "tcg"
    assert dict(again.env)["KTEST_SWEEP"] == "probe:3-5"


def test_a_bugs_knobs_are_suite_knobs(tmp_path: Path) -> None:
    good = zoo.load_zoo()
    assert dict(next(b for b in good.bugs if b.name == "probe_error_leak").env)
    bad = tmp_path / "zoo.yaml"
    bad.write_text(zoo.zoo_path().read_text().replace("KTEST_SWEEP:", "SWEEP:", 1))
    with pytest.raises(zoo.ConfigError, match="KTEST_"):
        zoo.load_zoo(bad)
