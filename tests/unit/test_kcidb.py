"""`ktest export --kcidb`: a fake run as KCIDB data, validated against the
published schema (kcidb-io)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fakerun import sample_run
from kcidb_io import schema

from orchestrator import cli
from orchestrator.runs import kcidb
from orchestrator.runs.rundir import load_run


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Any]:
    run = sample_run(tmp_path / "run")
    run.write()
    return kcidb.export(load_run(run.path))


def test_valid_against_the_published_schema(data: dict[str, Any]) -> None:
    assert schema.V5_3.is_compatible_exactly(data)
    schema.LATEST.validate(data)
    for bad in ({"status": "FLAKY"}, {"origin": "Not An Origin"}, {"path": "a..b"}):
        broken = copy.deepcopy(data)
        broken["tests"][0].update(bad)
        with pytest.raises(jsonschema.ValidationError):
            schema.LATEST.validate(broken)


def test_what_the_data_says(data: dict[str, Any]) -> None:
    (checkout,) = data["checkouts"]
    (build,) = data["builds"]
    assert checkout["origin"] == build["origin"] == "ktest"
    assert build["checkout_id"] == checkout["id"] and build["config_name"] == "ktest-debug"
    assert checkout["tree_name"] == "Debian linux-source-6.12"
    tests = data["tests"]
    assert all(t["build_id"] == build["id"] and t["id"].startswith("ktest:") for t in tests)
    assert len({t["id"] for t in tests}) == len(tests)
    by = {(t["path"], t["misc"]["pair"], t["misc"].get("try")): t for t in tests}
    kasan = by[("ktest.nic.test_integrity.test_rx_integrity.v4-60", "e1000e/ktest_nic", None)]
    assert kasan["status"] == "FAIL"
    assert kasan["log_excerpt"].startswith("KASAN: slab-use-after-free Read in ktnic_poll")
    skip = by[("ktest.nic.test_mtu.test_jumbo_9000", "virtio-net/virtio_net", None)]
    assert skip["status"] == "SKIP"
    assert by[("ktest.nic.test_mtu.test_jumbo_9000", "e1000e/ktest_nic", None)]["status"] == \
        "ERROR"
    # a flaky test is one KCIDB test per try: its failure is not hidden
    flaky = [t for t in tests if t["path"].endswith("test_admin_down_up_under_traffic")]
    assert [(t["misc"]["try"], t["status"]) for t in flaky] == [(1, "FAIL"), (2, "PASS")]
    # the known AER failure: still a FAIL, linked to its issue by an incident
    aer = by[("ktest.nic.test_faults.test_aer_uncorrectable", "virtio-net/virtio_net", None)]
    assert aer["status"] == "FAIL"
    (issue,) = data["issues"]
    (incident,) = data["incidents"]
    assert incident["test_id"] == aer["id"] and incident["issue_id"] == issue["id"]
    assert issue["report_url"].startswith("https://") and incident["present"] is True


def test_test_paths() -> None:
    assert kcidb.test_path("tests/nic/test_integrity.py::test_rx_integrity[v4-60]") == \
        "ktest.nic.test_integrity.test_rx_integrity.v4-60"
    assert kcidb.test_path("t.py::Class::test_x[a b/c]") == "ktest.t.Class.test_x.a_b_c"


def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = sample_run(tmp_path / "run")
    run.write()
    assert cli.main(["export", "--kcidb", str(run.path), "--origin", "my_lab"]) == 0
    data = json.loads(capsys.readouterr().out)
    schema.LATEST.validate(data)
    assert {t["origin"] for t in data["tests"]} == {"my_lab"}
    out = tmp_path / "kcidb.json"
    assert cli.main(["export", "--kcidb", str(run.path), "-o", str(out)]) == 0
    assert json.loads(out.read_text())["version"] == {"major": 5, "minor": 3}
    with pytest.raises(SystemExit) as e:
        cli.main(["export", "--kcidb", str(tmp_path / "nope")])
    assert e.value.code == 2


def test_bad_origin_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = sample_run(tmp_path / "run")
    run.write()
    with pytest.raises(SystemExit) as e:
        cli.main(["export", "--kcidb", str(run.path), "--origin", "My Lab"])
    assert e.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
