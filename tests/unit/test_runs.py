"""`ktest run` plumbing without a VM: plans, records, summary, junit."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

from orchestrator.plugin.record import ConsoleSpan, Record, ReportRef, read_records
from orchestrator.runs import execute
from orchestrator.runs import plan as plan_mod
from orchestrator.scenario.drivers import Pair


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "plan.yaml"
    p.write_text(text)
    return str(p)


def test_shipped_plans_load() -> None:
    plan = plan_mod.load_plan("default")
    labels = [p.label for p in plan.pairs]
    assert "e1000e/ktest_nic" in labels and "virtio-net-viommu/virtio_net" in labels
    assert "igb/igb" in labels and "igb-vf/igbvf" in labels
    assert plan.suites == ("tests/nic",)
    for name in plan_mod.shipped_plans():
        assert plan_mod.load_plan(name).pairs


@pytest.mark.parametrize("text,needle", [
    ("pairs: [", ":1: malformed YAML"),
    ("- a\n- b\n", ":1: top level: expected a mapping, got a list"),
    ("suites: [tests/nic]\n", "pairs: expected a non-empty list"),
    ("pairs:\n  - {profile: e1000e}\n", ":2: pairs[0].driver: missing"),
    ("pairs:\n  - {profile: nope, driver: e1000e}\n", "nope.yaml: no such profile"),
    ("pairs:\n  - {profile: virtio-net, driver: ktest_nic}\n",
     ":2: pairs[0]: driver ktest_nic cannot run on profile virtio-net"),
    ("pairs:\n  - {profile: e1000e, driver: igbvf}\n", "drives igb, not the e1000e NIC"),
    ("pairs:\n  - {profile: igb, driver: igbvf}\n", "SR-IOV VFs and NIC nic0 of igb has none"),
    ("pairs:\n  - {profile: e1000e, driver: e1000e}\n  - {profile: e1000e, driver: e1000e}\n",
     ":3: pairs[1]: duplicate pair"),
    ("suites: [tests/nope]\npairs:\n  - {profile: e1000e, driver: e1000e}\n",
     ":1: suites: tests/nope does not exist"),
    ("colour: red\npairs:\n  - {profile: e1000e, driver: e1000e}\n", ":1: colour: unknown key"),
    ("pcap: 3\npairs:\n  - {profile: e1000e, driver: e1000e}\n", ":1: pcap: expected true"),
])
def test_bad_plans_name_file_line_and_key(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(plan_mod.PlanError) as e:
        plan_mod.load_plan(path)
    assert str(e.value).startswith(path) and needle in str(e.value), str(e.value)


def test_missing_plan_lists_shipped() -> None:
    with pytest.raises(plan_mod.PlanError, match="shipped plans: .*default"):
        plan_mod.load_plan("no-such-plan")


def rec(test: str, pair: str, outcome: str, message: str = "") -> Record:
    return Record(test=test, pair=pair, outcome=outcome, message=message, duration=1.0)


def test_records_round_trip_and_a_truncated_line(tmp_path: Path) -> None:
    r = Record(test="t::x", pair="e1000e/ktest_nic", outcome="failed", phase="teardown",
               reports=[ReportRef("WARNING in ktnic_down", "WARNING", "ktest_nic")],
               console=[ConsoleSpan("/run/m1", 10, 20)], step="cycle 2 of 5")
    old = {"test": "t::y", "pair": None, "outcome": "passed", "duration": 1.0,
           "message": "", "reports": ["WARNING in f"], "allowed_reports": []}
    (tmp_path / "results.jsonl").write_text(r.to_json() + "\n" + json.dumps(old) + "\n"
                                            + '{"test": "cut by a ki')
    got = read_records(tmp_path)
    assert got[0] == r and got[1].reports[0].title == "WARNING in f" and len(got) == 2


def test_results_summary(tmp_path: Path) -> None:
    a, b = Pair("e1000e", "ktest_nic"), Pair("virtio-net", "virtio_net")
    lines = [
        rec(f"tests/nic/test_x.py::test_ping[{a.label}]", a.label, "passed"),
        rec(f"tests/nic/test_x.py::test_rx[{a.label}-v4-60]", a.label, "failed",
            "WARNING in ktnic_poll"),
        rec(f"tests/nic/test_x.py::test_ping[{b.label}]", b.label, "passed"),
        rec(f"tests/nic/test_x.py::test_rss[{b.label}]", b.label, "skipped", "no rss"),
    ]
    (tmp_path / "results.jsonl").write_text("".join(x.to_json() + "\n" for x in lines))
    records = read_records(tmp_path)
    assert execute.test_name(records[1]) == "test_rx[v4-60]"
    res = execute.RunResult(tmp_path, [execute.PairRun(a, 1), execute.PairRun(b, 0)], records)
    table = execute.summary_table(res)
    row = next(ln for ln in table.splitlines() if ln.startswith("test_rx[v4-60]"))
    assert "FAIL" in row and row.rstrip().endswith("-")
    assert "SKIP" in next(ln for ln in table.splitlines() if ln.startswith("test_rss"))
    assert "WARNING in ktnic_poll" in table
    assert res.failed


def test_merge_junit(tmp_path: Path) -> None:
    a, b = Pair("e1000e", "e1000e"), Pair("virtio-net", "virtio_net")
    for p in (a, b):
        (tmp_path / f"junit-{p.slug}.xml").write_text(
            '<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="1">'
            '<testcase name="t"/></testsuite></testsuites>')
    out = execute.merge_junit(tmp_path, [a, b, Pair("e1000e-viommu", "e1000e")])
    text = out.read_text()
    assert text.count("<testsuite ") == 2 and 'name="virtio-net/virtio_net"' in text


def test_dry_run_prints_pytest_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator import cli

    assert cli.main(["run", "--dry-run", "--out", "/tmp/x", "-k", "ping"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(plan_mod.load_plan().pairs)
    assert all("--ktest-pair" in ln and "-k ping" in ln and "--ktest-pcap" in ln for ln in out)
    assert all("--ktest-kernel 6.12" in ln for ln in out)


def test_adhoc_pairs(capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator import cli

    assert cli.main(["run", "--dry-run", "-m", "virtio-net", "--no-pcap"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and "virtio-net:virtio_net" in out[0] and "--ktest-pcap" not in out[0]
    assert "--ktest-driver-params" not in out[0]
    assert cli.main(["run", "--dry-run", "-m", "e1000e", "-d", "ktest_nic",
                     "--driver-params", "bugs=tx_unmap_missing debug=1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert shlex.split(out[0])[-2:] == ["--ktest-driver-params", "bugs=tx_unmap_missing debug=1"]


def test_how_guests_start_reaches_the_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator import cli

    assert cli.main(["run", "--dry-run", "-m", "e1000e", "-d", "ktest_nic"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert "--ktest-no-snapshots" not in line and "--ktest-fresh-guest" not in line
    assert cli.main(["run", "--dry-run", "-m", "e1000e", "-d", "ktest_nic", "--cold",
                     "--fresh-guest", "per-test"]) == 0
    argv = shlex.split(capsys.readouterr().out.splitlines()[0])
    assert "--ktest-no-snapshots" in argv
    assert argv[argv.index("--ktest-fresh-guest") + 1] == "per-test"


def test_adhoc_plan_keeps_its_text() -> None:
    base = plan_mod.load_plan()
    plan = plan_mod.adhoc_plan(["e1000e", "e1000e-viommu", "virtio-net"], ["e1000e"], base)
    assert plan.name == "command-line" and plan.path is None
    data = yaml.safe_load(plan.text)
    assert data["pairs"] == [{"profile": "e1000e", "driver": "e1000e"},
                             {"profile": "e1000e-viommu", "driver": "e1000e"}]
    assert data["suites"] == list(base.suites)


@pytest.mark.parametrize("argv,needle", [
    (["-m", "nic-less"], "profile nic-less has no NIC under test"),
    (["-m", "e1000e", "-d", "virtio_net"], "none of the drivers virtio_net can run"),
])
def test_adhoc_errors_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                   argv: list[str], needle: str) -> None:
    from orchestrator import cli

    (tmp_path / "nic-less.yaml").write_text("name: nic-less\n")
    argv = [str(tmp_path / "nic-less.yaml") if a == "nic-less" else a for a in argv]
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--dry-run", *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_bad_plan_is_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from orchestrator import cli

    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--plan", write(tmp_path, "pairs: 3\n")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ktest: error:") and ":1: pairs:" in err[0]


def test_a_plan_with_a_drivers_source(tmp_path: Path) -> None:
    from orchestrator.runs.plan import PlanError, load_plan, with_driver

    src = tmp_path / "slot" / "ktest_nic"
    src.mkdir(parents=True)
    (src / "Kbuild").write_text("obj-m := ktest_nic.o\n")
    plan = with_driver(load_plan("default"), str(src))
    assert [(p.profile, p.driver) for p in plan.pairs] == [
        ("e1000e", str(src)), ("e1000e-viommu", str(src))]  # its pairs only
    assert [p.label for p in plan.pairs] == ["e1000e/ktest_nic", "e1000e-viommu/ktest_nic"]
    assert f"driver: {src}}}" in plan.text and plan.suites == load_plan("default").suites
    other = tmp_path / "mydrv"
    other.mkdir()
    with pytest.raises(PlanError, match=r"plan default has no pair with driver mydrv \("):
        with_driver(load_plan("default"), str(other))


def test_a_job_at_another_tree(tmp_path: Path) -> None:
    from orchestrator.runs import prepare
    from orchestrator.runs.choices import Choices
    from orchestrator.runs.plan import DEFAULT_SUITES, Plan, adhoc_plan

    linux = tmp_path / "linux"
    linux.mkdir()
    (linux / "Makefile").write_text("")
    (linux / "Kconfig").write_text("")
    drv = tmp_path / "x" / "ktest_nic"
    drv.mkdir(parents=True)
    (drv / "Makefile").write_text("")
    assert prepare.tree_kind(linux) == prepare.KERNEL
    assert prepare.tree_kind(drv) == prepare.DRIVER
    with pytest.raises(ValueError, match="neither a kernel tree"):
        prepare.tree_kind(tmp_path)
    base = Plan("t", None, "", DEFAULT_SUITES, ())
    job = prepare.Job(adhoc_plan(["e1000e"], ["ktest_nic"], base), Choices.make(kernel="6.12"),
                      k="ping", driver_params="debug=1", env={"KTEST_CYCLES": "2"})
    at = job.at(prepare.KERNEL, linux)
    assert at.choices.kernel_src == str(linux) and at.plan == job.plan
    opts = at.options(reruns=1, manifest={"x": 1})
    assert opts.extra == ("--ktest-kernel-src", str(linux), "--ktest-driver-params", "debug=1")
    assert opts.k == "ping" and opts.reruns == 1 and opts.env == {"KTEST_CYCLES": "2"}
    assert opts.manifest["x"] == 1 and opts.manifest["driver_params"] == "debug=1"
    moved = job.at(prepare.DRIVER, drv)
    assert moved.driver_specs == [str(drv)] and moved.choices == job.choices
