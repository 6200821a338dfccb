"""run_plan without a guest: a suite whose tests ask for `ktest_pair` but
get the Pair itself (the module overrides the plugin's fixture), run in
real pytest processes, two pairs at once, with reruns, known issues, a
selection of test ids, progress events, junit, run.json and report.html."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from orchestrator.plugin.record import Record, read_manifest
from orchestrator.runs import execute, known, select
from orchestrator.runs.execute import PairRun, RunOptions, Watcher
from orchestrator.runs.plan import Plan
from orchestrator.scenario.drivers import Pair

SUITE = '''
import os
import time
from pathlib import Path

import pytest

TRIES = Path(os.environ["KTEST_FAKE_TRIES"])


@pytest.fixture(scope="session")
def ktest_pair(request):
    return request.param


def test_ok(ktest_pair):
    time.sleep(0.5)


def test_refused_on_virtio(ktest_pair):
    assert "virtio" not in ktest_pair.label, "virtio says no"


def test_flaky(ktest_pair):
    f = TRIES / ktest_pair.slug
    n = int(f.read_text()) + 1 if f.exists() else 1
    f.write_text(str(n))
    assert n >= 2, "first try fails"


@pytest.mark.parametrize("size", [60, 1514])
def test_sizes(ktest_pair, size):
    pass
'''

A, B = Pair("e1000e", "ktest_nic"), Pair("virtio-net", "virtio_net")


class Events(Watcher):
    def __init__(self) -> None:
        self.log: list[tuple[str, str, float]] = []
        self.records: list[tuple[str | None, Record]] = []
        self.ticks = 0

    def pair_started(self, pr: PairRun) -> None:
        self.log.append(("start", pr.pair.label, time.monotonic()))

    def record(self, pr: PairRun | None, rec: Record) -> None:
        self.records.append((pr.pair.label if pr else None, rec))

    def pair_ended(self, pr: PairRun) -> None:
        self.log.append(("end", pr.pair.label, time.monotonic()))

    def tick(self, pairs: object) -> None:
        self.ticks += 1


@pytest.fixture
def plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Plan:
    suite = tmp_path / "suite" / "test_fake.py"
    suite.parent.mkdir()
    suite.write_text(SUITE)
    (tmp_path / "tries").mkdir()
    monkeypatch.setenv("KTEST_FAKE_TRIES", str(tmp_path / "tries"))
    return Plan("fake", None, "two pairs, no guests", (str(suite.parent),), (A, B), pcap=False,
                text="suites: [suite]\n")


def test_two_pairs_at_once(plan: Plan, tmp_path: Path) -> None:
    out = tmp_path / "out"
    sel = select.collect(plan)
    assert {k: len(v) for k, v in sel.items()} == {A.label: 5, B.label: 5}
    refused = known.KnownIssue(reason="virtio refuses on purpose",
                               title="virtio says no", source="test")
    events = Events()
    opts = RunOptions(jobs=2, reruns=1, totals={k: len(v) for k, v in sel.items()},
                      issues=[*known.load(), refused], manifest={"shard": None})
    result = execute.run_plan(plan, out, options=opts, watcher=events)
    starts = [t for what, _, t in events.log if what == "start"]
    ends = [t for what, _, t in events.log if what == "end"]
    assert len(starts) == 2 and max(starts) < min(ends)  # both pairs ran at once
    # every record once, to its own pair, as it landed
    assert sorted(r.test for _, r in events.records) == sorted(
        t for ids in sel.values() for t in ids)
    assert all(label == r.pair for label, r in events.records)
    assert [(p.pair.label, p.total, p.done, p.failures, p.status) for p in result.pairs] == [
        (A.label, 5, 5, 0, 0), (B.label, 5, 5, 0, 1)]
    by = {(r.pair, r.test.split("::")[1].split("[")[0]): r for r in result.records}
    assert by[(A.label, "test_flaky")].outcome == "flaky"
    assert [a.outcome for a in by[(B.label, "test_flaky")].attempts] == ["failed", "passed"]
    refusal = by[(B.label, "test_refused_on_virtio")]
    assert refusal.outcome == "failed" and refusal.known is not None
    assert len(refusal.attempts) == 2  # rerun, failed both times, then explained
    assert not result.failed  # a flake and a known failure do not fail the run
    table = execute.summary_table(result)
    assert "FLAKY" in table and "KNOWN" in table and "[known: virtio refuses" in table
    # what the run directory holds
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 10 and all(json.loads(ln) for ln in lines)
    assert (out / "junit.xml").read_text().count("<testsuite ") == 2
    m = read_manifest(out)
    assert m["jobs"] == 2 and m["reruns"] == 1 and m["plan"]["specs"] == {
        A.label: "e1000e:ktest_nic", B.label: "virtio-net:virtio_net"}
    assert m["ended"] and m["seconds"] > 0
    snapshot = json.loads((out / known.SNAPSHOT).read_text())
    assert snapshot[-1]["reason"] == "virtio refuses on purpose"
    assert result.report == out / "report.html" and result.report.exists()
    assert not result.notes


def test_a_selection_runs_only_its_tests(plan: Plan, tmp_path: Path) -> None:
    out = tmp_path / "out"
    sel = select.collect(plan)
    one = next(t for t in sel[B.label] if "test_sizes" in t)
    opts = RunOptions(tests={A.label: [], B.label: [one]})
    result = execute.run_plan(plan, out, options=opts, watcher=Events())
    assert [p.pair for p in result.pairs] == [B]  # no pytest, no guest for the other pair
    assert [r.test for r in result.records] == [one] and not result.failed
    assert result.selected == 1
    listed = out / f"tests-{B.slug}.txt"
    assert listed.read_text() == one + "\n"
    assert f"--ktest-tests {listed}" in (out / f"pytest-{B.slug}.argv").read_text()


def test_an_empty_shard_is_not_a_failure(plan: Plan, tmp_path: Path) -> None:
    result = execute.run_plan(plan, tmp_path / "out", options=RunOptions(
        tests={A.label: [], B.label: []}))
    assert result.pairs == [] and result.records == [] and not result.failed
    assert (tmp_path / "out" / "report.html").exists()


def test_default_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execute.os, "cpu_count", lambda: 16)
    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 16 * 2**30 // 4096}
    monkeypatch.setattr(execute.os, "sysconf", lambda name: pages[name])
    assert execute.default_jobs(8) == 5  # 16 GiB // 3
    assert execute.default_jobs(2) == 2
    monkeypatch.setattr(execute.os, "cpu_count", lambda: 2)
    assert execute.default_jobs(8) == 1
    monkeypatch.setattr(execute.os, "cpu_count", lambda: 1)
    assert execute.default_jobs(8) == 1  # never 0


def test_record_tail_waits_for_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    tail = execute.RecordTail(path)
    assert tail.new() == []
    one = Record(test="t::a", pair="p/d").to_json()
    path.write_text(one + "\n" + one[:10])
    assert [r.test for r in tail.new()] == ["t::a"]
    with open(path, "a") as fh:
        fh.write(one[10:] + "\n")
    assert [r.test for r in tail.new()] == ["t::a"] and tail.new() == []


def test_a_pair_whose_pytest_broke_fails_the_run(tmp_path: Path) -> None:
    pr = PairRun(A, status=1)
    assert execute.RunResult(tmp_path, [pr], [Record(test="t", pair=A.label)]).failed
    pr.done = 1  # exit 1 with records: the records decide
    assert not execute.RunResult(tmp_path, [pr], [Record(test="t", pair=A.label)]).failed
    broken = PairRun(B, status=4, done=3)  # a usage error is never fine
    assert execute.RunResult(tmp_path, [pr, broken], [Record(test="t", pair=A.label)]).failed


def test_the_suites_knobs_reach_the_pairs_and_run_json(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    suite = tmp_path / "suite" / "test_env.py"
    suite.parent.mkdir()
    suite.write_text(
        "import os\n\nimport pytest\n\n\n@pytest.fixture(scope='session')\n"
        "def ktest_pair(request):\n    return request.param\n\n\n"
        "def test_knobs(ktest_pair):\n"
        "    assert os.environ['KTEST_CYCLES'] == '7', os.environ.get('KTEST_CYCLES')\n"
        "    assert os.environ['KTEST_SWEEP'] == 'probe:3'\n")
    monkeypatch.setenv("KTEST_SWEEP", "probe:3")  # ours reach the pairs too
    monkeypatch.setenv("KTEST_CACHE", str(tmp_path / "cache"))
    plan = Plan("env", None, "", (str(suite.parent),), (A,), pcap=False, text="")
    out = tmp_path / "out"
    result = execute.run_plan(plan, out, options=RunOptions(env={"KTEST_CYCLES": "7"}))
    assert [r.outcome for r in result.records] == ["passed"], result.records
    env = read_manifest(out)["env"]
    assert env["KTEST_CYCLES"] == "7" and env["KTEST_SWEEP"] == "probe:3"
    assert "KTEST_CACHE" not in env  # where this host keeps its cache is no knob
