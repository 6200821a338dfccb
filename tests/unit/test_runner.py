"""`ktest run` plumbing without a VM: plans, results, summary, junit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator import runner


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "plan.yaml"
    p.write_text(text)
    return str(p)


def test_shipped_plans_load() -> None:
    plan = runner.load_plan("default")
    labels = [p.label for p in plan.pairs]
    assert "e1000e/ktest_nic" in labels and "virtio-net-viommu/virtio_net" in labels
    assert plan.suites == ("tests/nic",)
    assert runner.load_plan("quick").pairs


@pytest.mark.parametrize("text,needle", [
    ("pairs: [", "not valid YAML"),
    ("- a\n- b\n", "mapping at the top level"),
    ("suites: [tests/nic]\n", "pairs: expected a non-empty list"),
    ("pairs:\n  - {profile: e1000e}\n", "pairs[0]: expected a mapping with exactly"),
    ("pairs:\n  - {profile: nope, driver: e1000e}\n", "pairs[0]: profile nope"),
    ("pairs:\n  - {profile: virtio-net, driver: ktest_nic}\n", "cannot drive"),
    ("pairs:\n  - {profile: e1000e, driver: e1000e}\n  - {profile: e1000e, driver: e1000e}\n",
     "duplicate pair"),
    ("suites: [tests/nope]\npairs:\n  - {profile: e1000e, driver: e1000e}\n", "does not exist"),
    ("colour: red\npairs:\n  - {profile: e1000e, driver: e1000e}\n", "unknown key"),
    ("pcap: 3\npairs:\n  - {profile: e1000e, driver: e1000e}\n", "pcap: expected"),
])
def test_bad_plans_name_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(runner.PlanError) as e:
        runner.load_plan(path)
    assert str(e.value).startswith(path) and needle in str(e.value)


def test_missing_plan_lists_shipped() -> None:
    with pytest.raises(runner.PlanError, match="shipped plans: .*default"):
        runner.load_plan("no-such-plan")


def rec(test: str, pair: str, outcome: str, message: str = "") -> dict:
    return {"test": test, "pair": pair, "outcome": outcome, "message": message,
            "duration": 1.0, "reports": [], "allowed_reports": []}


def test_results_summary_and_truncated_line(tmp_path: Path) -> None:
    a, b = runner.PlanPair("e1000e", "ktest_nic"), runner.PlanPair("virtio-net", "virtio_net")
    lines = [
        rec(f"tests/nic/test_x.py::test_ping[{a.label}]", a.label, "passed"),
        rec(f"tests/nic/test_x.py::test_rx[{a.label}-v4-60]", a.label, "failed",
            "WARNING in ktnic_poll"),
        rec(f"tests/nic/test_x.py::test_ping[{b.label}]", b.label, "passed"),
        rec(f"tests/nic/test_x.py::test_rss[{b.label}]", b.label, "skipped", "no rss"),
    ]
    text = "".join(json.dumps(x) + "\n" for x in lines) + '{"test": "cut by a ki'
    (tmp_path / "results.jsonl").write_text(text)
    records = runner.read_results(tmp_path)
    assert len(records) == 4
    assert runner.test_name(records[1]) == "test_rx[v4-60]"
    res = runner.RunResult(tmp_path, [runner.PairRun(a, 1), runner.PairRun(b, 0)], records)
    table = runner.summary_table(res)
    row = next(ln for ln in table.splitlines() if ln.startswith("test_rx[v4-60]"))
    assert "FAIL" in row and row.rstrip().endswith("-")
    assert "SKIP" in next(ln for ln in table.splitlines() if ln.startswith("test_rss"))
    assert "WARNING in ktnic_poll" in table
    assert res.failed


def test_merge_junit(tmp_path: Path) -> None:
    a, b = runner.PlanPair("e1000e", "e1000e"), runner.PlanPair("virtio-net", "virtio_net")
    for p in (a, b):
        (tmp_path / f"junit-{p.slug}.xml").write_text(
            '<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="1">'
            '<testcase name="t"/></testsuite></testsuites>')
    out = runner.merge_junit(tmp_path, [a, b, runner.PlanPair("e1000e-viommu", "e1000e")])
    text = out.read_text()
    assert text.count("<testsuite ") == 2 and 'name="virtio-net/virtio_net"' in text


def test_dry_run_prints_pytest_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator import cli

    assert cli.main(["run", "--dry-run", "--out", "/tmp/x", "-k", "ping"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(runner.load_plan().pairs)
    assert all("--ktest-pair" in ln and "-k ping" in ln and "--ktest-pcap" in ln for ln in out)


def test_adhoc_pairs(capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator import cli

    assert cli.main(["run", "--dry-run", "-m", "virtio-net", "--no-pcap"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and "virtio-net:virtio_net" in out[0] and "--ktest-pcap" not in out[0]


def test_adhoc_plan_outlives_its_temporary_file() -> None:
    # ktest run -m/-d once failed: run_plan re-read the deleted temp file
    import argparse

    import yaml

    from orchestrator import cli

    args = argparse.Namespace(plan="default", machine=["e1000e", "e1000e-viommu"],
                              driver=["e1000e"])
    plan = cli._adhoc_plan(args)
    assert plan.name == "command-line" and not plan.path.exists()
    data = yaml.safe_load(plan.text)
    assert data["pairs"] == [{"profile": "e1000e", "driver": "e1000e"},
                             {"profile": "e1000e-viommu", "driver": "e1000e"}]
    assert data["suites"] == list(runner.load_plan().suites)


def test_bad_plan_is_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from orchestrator import cli

    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--plan", write(tmp_path, "pairs: 3\n")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ktest: error:")
