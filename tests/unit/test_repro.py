"""`ktest repro` without a guest: what a record or a console log says to run
again, what counts as the same failure, the loop with a stand-in runner that
writes records, and the command end to end (the build stubbed; the tries
either a stand-in runner or real pytest processes of a fake suite)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakerun import FakeRun, sample_run
from standins import command

from orchestrator.plugin.record import Attempt, Record, ReportRef, append_record, read_manifest
from orchestrator.runs import execute, prepare, repro, select
from orchestrator.runs.choices import Choices
from orchestrator.runs.execute import PairRun, RunOptions, RunResult
from orchestrator.runs.plan import Plan
from orchestrator.runs.rundir import load_run
from orchestrator.scenario.drivers import Pair

E = "e1000e/ktest_nic"
KASAN = "KASAN: slab-use-after-free Read in ktnic_poll"
GOLDEN = Path(__file__).resolve().parents[1] / "report_golden" / "6.12" / "kasan_uaf.log"
UAF = "KASAN: slab-use-after-free Read in ktest_bug_uaf_read"


@pytest.fixture(autouse=True)
def no_guest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may boot a guest or build: a QEMU that is not there, a
    cache of its own."""
    monkeypatch.setenv("KTEST_QEMU", str(tmp_path / "no-qemu"))
    monkeypatch.setenv("KTEST_CACHE", str(tmp_path / "cache"))


def sweep_run(path: Path) -> FakeRun:
    run = FakeRun(path, env={"KTEST_CYCLES": "3"}, driver_params="debug=1")
    run.test(f"tests/nic/test_faults.py::test_allocation_failure_sweep[{E}-probe]", E,
             "failed", message="probe with fail-nth 7 (replay: KTEST_SWEEP=probe:7): "
             "AssertionError: fail-nth 7 in probe: DMA-API errors grew")
    run.records[-1].step = "probe with fail-nth 7 (replay: KTEST_SWEEP=probe:7)"
    run.write()
    return run


def test_a_rerun_has_the_runs_choices_params_knobs_and_fault(tmp_path: Path) -> None:
    run = load_run(sweep_run(tmp_path / "run").path)
    again = repro.rerun(run, run.records[0])
    assert again.env == (("KTEST_CYCLES", "3"), ("KTEST_SWEEP", "probe:7"))
    assert again.driver_params == "debug=1" and again.suites == ("tests/nic",)
    assert again.argv()[:4] == ["KTEST_CYCLES=3", "KTEST_SWEEP=probe:7", "ktest", "run"]
    assert again.argv()[-6:] == ["--driver-params", "debug=1", "--kernel", "6.12",
                                 "--accel", "tcg"]
    replay = again.with_env({"KTEST_CYCLES": "20"}).replay(manifest={"repro": "x"})
    assert [p.label for p in replay.plan.pairs] == [E] and replay.plan.suites == ("tests/nic",)
    opts = replay.options
    assert opts.env == {"KTEST_CYCLES": "20", "KTEST_SWEEP": "probe:7"}
    assert opts.extra == ("--ktest-kernel", "6.12", "--ktest-accel", "tcg",
                          "--ktest-driver-params", "debug=1")
    assert opts.tests == {E: [run.records[0].test]} and replay.tests == {run.records[0].test}
    assert opts.manifest["repro"] == "x" and opts.manifest["driver_params"] == "debug=1"


def test_replay_hints() -> None:
    assert repro.replay_hints("open with fail-nth 3 (replay: KTEST_SWEEP=open:3)",
                              "x (replay: KTEST_A=1, KTEST_B=two) y", "", "no hint") == {
        "KTEST_SWEEP": "open:3", "KTEST_A": "1", "KTEST_B": "two"}


def test_the_signature_of_a_record(tmp_path: Path) -> None:
    run = load_run(sample_run(tmp_path / "run").write())
    by = {r.test.split("::")[1].split("[")[0] + r.pair: r for r in run.records}
    assert repro.signature_of(by[f"test_rx_integrity{E}"]) == repro.Signature("title", KASAN)
    assert repro.signature_of(by[f"test_jumbo_9000{E}"]) == repro.Signature(
        "message", "DutError: ethN has no carrier after Ns")
    flaky = by[f"test_admin_down_up_under_traffic{E}"]
    assert repro.signature_of(flaky) == repro.Signature(
        "message", "cycle NUM of NUM: Rx stalled")
    assert repro.message_class("fail at 0xffff888004a1b2c0 in eth1 after 15s\nmore") == \
        "fail at ADDR in ethN after Ns"
    with pytest.raises(repro.ReproError, match=r"PASS in its run: nothing to reproduce"):
        repro.signature_of(by[f"test_ping_v4_v6{E}"])


def _rec(outcome: str, message: str = "", titles: tuple[str, ...] = ()) -> Record:
    return Record(test="t::x", pair=E, outcome=outcome, message=message,
                  reports=[ReportRef(t, "KASAN") for t in titles])


def test_what_counts_as_the_same_failure() -> None:
    title = repro.Signature("title", KASAN)
    assert title.matches(_rec("failed", KASAN, (KASAN,)))
    assert not title.matches(_rec("failed", "WARNING in x", ("WARNING in x",)))
    assert not title.matches(_rec("passed", "", ()))
    msg = repro.Signature("message", repro.message_class("AssertionError: flow 3: lost 17"))
    assert msg.matches(_rec("failed", "AssertionError: flow 4: lost 2\nmore"))
    assert msg.matches(_rec("error", "AssertionError: flow 4: lost 2"))
    assert not msg.matches(_rec("failed", "AssertionError: flow 4: duplicated 2"))
    # a kernel report decided it: another failure, whatever the message says
    assert not msg.matches(_rec("failed", "AssertionError: flow 4: lost 2", (KASAN,)))
    rx = repro.match("use-after-free")
    assert rx.matches(_rec("failed", KASAN, (KASAN,))) and not rx.matches(_rec("failed", "x"))
    with pytest.raises(repro.ReproError, match=r"--match '\(': not a regular expression"):
        repro.match("(")


def test_which_record_a_user_means(tmp_path: Path) -> None:
    run = load_run(sample_run(tmp_path / "run").write())
    kasan = repro.find_record(run, "test_rx_integrity[v4-60]")
    assert kasan.pair == E and kasan.outcome == "failed"
    assert repro.find_record(run, kasan.test) is kasan
    assert repro.find_record(run, "tests/nic/test_integrity.py::test_rx_integrity[v4-60]") \
        is kasan  # the one that failed, of the two pairs that ran it
    with pytest.raises(repro.ReproError, match=r"test_ping_v4_v6: 2 results in .* \(e1000e/"
                                               r"ktest_nic, virtio-net/virtio_net\)"):
        repro.find_record(run, "test_ping_v4_v6")
    with pytest.raises(repro.ReproError, match="test_nope: no such test in"):
        repro.find_record(run, "test_nope")
    with pytest.raises(repro.ReproError, match=r": 4 failures; name one"):
        repro.find_record(run, None)
    single = load_run(sweep_run(tmp_path / "one").path)
    assert repro.find_record(single, None) is single.records[0]


def console(marker: str | None) -> bytes:
    lines = [ln for ln in GOLDEN.read_text().splitlines(keepends=True)
             if not ln.startswith("#")]
    at = next(i for i, ln in enumerate(lines) if "=====" in ln)
    if marker:
        lines.insert(at, f"10:34:55.300000 [   14.200000][  T100] ktest: test begin {marker}\n")
        lines.insert(1, "10:34:51.900000 [   10.800000][  T100] ktest: test begin "
                        "tests/nic/test_mtu.py::test_earlier[e1000e/ktest_nic]\n")
    return "".join(lines).encode()


def test_a_console_log_names_the_report_and_the_test() -> None:
    test = f"tests/nic/test_integrity.py::test_rx_integrity[{E}-v4-60]"
    clue = repro.read_console(console(test + " (fresh guest)"))
    assert clue == repro.Clue(UAF, test)
    assert repro.read_console(console(None)) == repro.Clue(UAF, None)
    assert repro.read_console(b"nothing here\n") == repro.Clue(None, None)
    assert repro.label_in(test) == E
    assert repro.label_in("t.py::x[e1000e-viommu/virtio_net]") == "e1000e-viommu/virtio_net"
    assert repro.label_in("t.py::x[v4-60]") is None


def test_the_pair_of_a_console_log() -> None:
    c = Choices.make(kernel="6.1")
    clue = repro.Clue(UAF, f"tests/nic/t.py::test_x[{E}-v4]")
    again = repro.rerun_of_console(clue, c, env={"KTEST_CYCLES": "2"})
    assert (again.profile, again.driver, again.test) == ("e1000e", "ktest_nic", clue.test)
    assert again.choices == c and again.env == (("KTEST_CYCLES", "2"),)
    other = repro.rerun_of_console(clue, c, machine="e1000e-viommu", driver="e1000e")
    assert (other.pair_spec, other.test) == ("e1000e-viommu:e1000e", "tests/nic/t.py::test_x[v4]")
    with pytest.raises(repro.ReproError, match="no ktest test marker before the report: give"):
        repro.rerun_of_console(repro.Clue(UAF, None), c)
    with pytest.raises(repro.ReproError, match="names driver mydrv, which ktest does not ship: "
                                               "give --driver"):
        repro.rerun_of_console(repro.Clue(UAF, "t.py::x[e1000e/mydrv]"), c)
    assert repro.rerun_of_console(repro.Clue(UAF, "t.py::x[e1000e/mydrv]"), c,
                                  driver="/src/mydrv").driver == "/src/mydrv"
    with pytest.raises(repro.ReproError, match="cannot tell its machine profile: give --machine"):
        repro.rerun_of_console(repro.Clue(UAF, "t.py::x[lab-box/e1000e]"), c)
    with pytest.raises(repro.ReproError, match="cannot tell its machine profile"):
        repro.rerun_of_console(repro.Clue(UAF, "t.py::x"), c, driver="e1000e")


class Runner:
    """Stands in for run_plan: each call writes the next record (or none)
    to its run directory, as the plugin would."""

    def __init__(self, outcomes: list[tuple[str, str, tuple[str, ...]] | None],
                 test: str = "t::x", interrupt_at: int | None = None) -> None:
        self.outcomes = list(outcomes)
        self.test = test
        self.calls: list[tuple[Path, RunOptions]] = []
        self.interrupt_at = interrupt_at

    def __call__(self, plan: Plan, out: Path, options: RunOptions) -> RunResult:
        self.calls.append((out, options))
        spec = self.outcomes.pop(0)
        out.mkdir(parents=True)
        result = RunResult(out, pairs=[PairRun(plan.pairs[0], status=1)])
        if spec is not None:
            outcome, message, titles = spec
            rec = Record(test=self.test, pair=plan.pairs[0].label, outcome=outcome,
                         message=message, reports=[ReportRef(t, "KASAN") for t in titles])
            append_record(out / "results.jsonl", rec)
            result.records = [rec]
        else:
            result.pairs[0].note = "pytest exited 4; see pytest-x.log: ERROR: usage"
        if len(self.calls) == self.interrupt_at:
            result.interrupted = 130
        return result


def _replay() -> repro.Replay:
    plan = Plan("p", None, "", ("tests/nic",), (Pair("e1000e", "ktest_nic"),))
    return repro.Replay(plan, RunOptions(manifest={"repro": 1}), frozenset(["t::x"]))


PASSED = ("passed", "", ())
HIT = ("failed", KASAN, (KASAN,))
OTHER = ("failed", "WARNING in x", ("WARNING in x",))


def test_the_loop_stops_at_the_first_hit(tmp_path: Path) -> None:
    runner = Runner([PASSED, OTHER, HIT, PASSED])
    seen: list[repro.Try] = []
    res = repro.reproduce(_replay(), repro.Signature("title", KASAN), tmp_path / "r",
                          repro.Budget(tries=4), run=runner, on_try=seen.append,
                          about={"test": "t::x"})
    assert [t.verdict for t in seen] == ["pass", "other", "hit"] and len(runner.calls) == 3
    assert seen[1].what == "FAIL: WARNING in x" and seen[2].what == f"FAIL: {KASAN}"
    assert res.first_hit is seen[2] and res.rate == pytest.approx(1 / 3)
    assert [out.name for out, _ in runner.calls] == ["try-1", "try-2", "try-3"]
    assert [o.manifest for _, o in runner.calls] == [{"repro": 1, "repro_try": n}
                                                     for n in (1, 2, 3)]
    summary = json.loads((tmp_path / "r" / repro.SUMMARY).read_text())
    assert summary["test"] == "t::x" and summary["hits"] == 1 and summary["tries"] == 3
    assert summary["first_hit"]["try"] == 3 and summary["each"][0]["verdict"] == "pass"
    assert (tmp_path / "r" / "try-2" / "results.jsonl").exists()  # every try stays


def test_keep_going_measures_a_hit_rate(tmp_path: Path) -> None:
    runner = Runner([PASSED, HIT, None, HIT])
    res = repro.reproduce(_replay(), repro.Signature("title", KASAN), tmp_path / "r",
                          repro.Budget(tries=4, keep_going=True), run=runner)
    assert [t.verdict for t in res.tries] == ["pass", "hit", "none", "hit"]
    assert res.rate == 0.5 and res.first_hit is res.tries[1]
    assert res.tries[2].what == "no result (pytest exited 4; see pytest-x.log: ERROR: usage)"


def test_no_try_starts_after_the_time_budget(tmp_path: Path) -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 100.0  # every look at the clock: 100 s later
        return now[0]

    runner = Runner([PASSED] * 10)
    res = repro.reproduce(_replay(), repro.Signature("title", KASAN), tmp_path / "r",
                          repro.Budget(tries=10, seconds=500), run=runner, clock=clock)
    # the first starts at once, the second 300 s in, the third would 600 s in
    assert len(res.tries) == 2 and not res.hits
    assert res.tries[0].seconds == 100 and res.tries[1].elapsed == 500


def test_an_interruption_ends_the_loop(tmp_path: Path) -> None:
    runner = Runner([PASSED, PASSED, PASSED], interrupt_at=2)
    res = repro.reproduce(_replay(), repro.Signature("title", KASAN), tmp_path / "r",
                          repro.Budget(tries=3), run=runner)
    assert res.interrupted == 130 and len(res.tries) == 2
    assert res.tries[-1].verdict == "none" and res.tries[-1].what == "interrupted"


def test_a_try_that_passes_only_skips_is_no_pass(tmp_path: Path) -> None:
    sig = repro.Signature("title", KASAN)
    skipped = RunResult(tmp_path, records=[Record("t::x", E, "skipped", message="no jumbo")])
    assert repro.judge(sig, skipped) == ("other", "SKIP: no jumbo")
    mixed = RunResult(tmp_path, records=[Record("t::x", E, "skipped"),
                                         Record("t::y", E, "passed")])
    assert repro.judge(sig, mixed) == ("pass", "PASS")
    assert repro.judge(sig, mixed, {"t::x"})[0] == "other"  # only the tests that count


def test_what_a_replay_was_built_with_against_the_run() -> None:
    m = {"kernel": {"key": "k1", "release": "6.12.1", "tree_id": "git:a:1"},
         "image": {"key": "i1"}, "modules": {"ktest_nic": "/c/module/m1/ktest_nic.ko"}}
    recorded = prepare.Built.of_manifest(m)
    same = prepare.Built("k1", "6.12.1", "git:a:1", "i1",
                         {"ktest_nic": "/c/module/m1/ktest_nic.ko"})
    assert prepare.differences(recorded, same) == []
    assert prepare.differences(prepare.Built.of_manifest({}), same) == []
    other = prepare.Built("k2", "6.12.2", "git:b:2", "i2",
                          {"ktest_nic": "/c/module/m2/ktest_nic.ko", "e1000e": "x"})
    assert prepare.differences(recorded, other) == [
        "kernel 6.12.2 (k2), the run had 6.12.1 (k1)", "image i2, the run had i1",
        "module ktest_nic m2, the run had m1"]
    moved = prepare.Built("k1", "6.12.1", "git:b:2", "i1", same.modules)
    assert prepare.differences(recorded, moved) == [
        "kernel tree at git:b:2, the run's was at git:a:1"]


def test_prepare_builds_the_kernel_image_and_each_driver(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    class Art:
        def __init__(self, key: str, **kw: Any) -> None:
            self.key = key
            self.__dict__.update(kw)

    arts = Art("a", kernel=Art("k1", release="6.12.1", info={"tree_id": "git:x:1"}),
               image=Art("i1"))
    asked: list[Any] = []
    monkeypatch.setattr(prepare.session, "artifacts",
                        lambda req, progress=None: asked.append(req) or arts)

    def resolve(spec: str, a: Any, progress: Any = None, coverage: bool = False) -> Any:
        ko = tmp_path / "module" / f"m-{spec}" / f"{spec}.ko" if spec != "e1000e" else None
        return Art(spec, name=spec, ko=ko, coverage=coverage)

    monkeypatch.setattr(prepare.drivers, "resolve_driver", resolve)
    built = prepare.build(Choices.make(kernel_src=str(tmp_path / "linux"), variant="fast"),
                          ["ktest_nic", "e1000e", "ktest_nic"])
    assert asked[0].src == tmp_path / "linux" and asked[0].variant == "fast"
    assert built == prepare.Built("k1", "6.12.1", "git:x:1", "i1", {
        "ktest_nic": str(tmp_path / "module" / "m-ktest_nic" / "ktest_nic.ko")})


# ---- the command ---------------------------------------------------------------------

def ktest(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return command(capsys, "repro", *args)


@pytest.fixture
def no_build(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Choices, list[str]]]:
    asked: list[tuple[Choices, list[str]]] = []

    def build(choices: Choices, specs: list[str], *a: Any, **kw: Any) -> prepare.Built:
        asked.append((choices, list(specs)))
        return prepare.Built("k-0123456789ab", "6.12.117-ktest", None, "i-abcdef")

    monkeypatch.setattr(prepare, "build", build)
    return asked


FLAKY_SUITE = '''
import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ktest_pair(request):
    return request.param


def test_stalls_now_and_then(ktest_pair):
    counter = Path(os.environ["KTEST_FAKE_TRIES"]) / "n"
    n = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    assert os.environ["KTEST_CYCLES"] == "9"
    assert n % 2, f"Rx stalled after {n * 10} frames"
'''


def test_ktest_repro_of_a_run_directory_in_real_pytest_processes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        no_build: list[Any]) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_fake.py").write_text(FLAKY_SUITE)
    (tmp_path / "tries").mkdir()
    monkeypatch.setenv("KTEST_FAKE_TRIES", str(tmp_path / "tries"))
    plan = Plan("fake", None, "", (str(suite),), (Pair("e1000e", "ktest_nic"),), pcap=False)
    (test,) = select.collect(plan)[E]
    run = FakeRun(tmp_path / "run")
    run.test(test, E, "failed", message="AssertionError: Rx stalled after 170 frames")
    run.write()
    m = read_manifest(run.path)
    m["plan"]["suites"] = [str(suite)]
    (run.path / "run.json").write_text(json.dumps(m))
    out = tmp_path / "repro"
    code, stdout, _ = ktest(capsys, str(run.path), "test_stalls_now_and_then", "--tries", "3",
                            "--cycles", "9", "--out", str(out))
    assert code == 0, stdout
    assert "looking for failure 'AssertionError: Rx stalled after NUM frames'" in stdout
    assert "try 1/3: PASS" in stdout
    assert "try 2/3: HIT  FAIL: AssertionError: Rx stalled after 20 frames" in stdout
    assert "reproduced: 1 hit in 2 tries (50%); first hit on try 2, " in stdout
    assert no_build[0][0].accel == "tcg" and no_build[0][1] == ["ktest_nic"]
    assert json.loads((out / "try-2" / "results.jsonl").read_text())["outcome"] == "failed"
    tried = read_manifest(out / "try-2")
    assert tried["env"]["KTEST_CYCLES"] == "9" and tried["repro_try"] == 2
    assert tried["repro"] == {"run": str(run.path), "test": test}
    assert json.loads((out / "repro.json").read_text())["first_hit"]["try"] == 2
    assert not (out / "try-3").exists()


def fake_run_plan(monkeypatch: pytest.MonkeyPatch, runner: Runner) -> Runner:
    monkeypatch.setattr(execute, "run_plan",
                        lambda plan, out, options, watcher=None: runner(plan, out, options))
    return runner


def test_ktest_repro_of_a_console_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str],
                                      no_build: list[Any]) -> None:
    test = f"tests/nic/test_integrity.py::test_rx_integrity[{E}-v4-60]"
    log = tmp_path / "console.log"
    log.write_bytes(console(test))
    runner = fake_run_plan(monkeypatch, Runner([PASSED, PASSED], test))
    code, stdout, _ = ktest(capsys, str(log), "--tries", "2", "--kernel", "6.1",
                            "--traffic", "2.5", "--out", str(tmp_path / "r"))
    assert code == 1, stdout
    assert f"ktest repro: {test} on e1000e:ktest_nic, looking for kernel report '{UAF}'" \
        in stdout
    assert "not reproduced: 0 hits in 2 tries (0%" in stdout
    assert no_build[0][0].kernel == "6.1"
    assert runner.calls[0][1].extra == ("--ktest-kernel", "6.1")
    assert runner.calls[0][1].tests == {E: [test]}
    assert runner.calls[0][1].env == {"KTEST_TRAFFIC": "2.5"}


def test_ktest_repro_of_a_console_log_in_its_run_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        no_build: list[Any]) -> None:
    run = sweep_run(tmp_path / "run")
    test = run.records[0].test
    guest = run.path / "e1000e_ktest_nic-m1"
    (guest / "console.log").write_bytes(console(test))
    runner = fake_run_plan(monkeypatch, Runner([("failed", UAF, (UAF,))], test))
    code, stdout, _ = ktest(capsys, str(guest / "console.log"), "--out", str(tmp_path / "r"))
    assert code == 0, stdout
    assert "with KTEST_CYCLES=3 KTEST_SWEEP=probe:7" in stdout
    assert "reproduced: 1 hit in 1 try (100%); first hit on try 1" in stdout
    opts = runner.calls[0][1]
    assert opts.env["KTEST_SWEEP"] == "probe:7" and "--ktest-driver-params" in opts.extra
    assert "note: not the run's own input: kernel" not in stdout  # the same keys


def test_ktest_repro_notes_where_it_is_not_the_run(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    run = sweep_run(tmp_path / "run")
    monkeypatch.setattr(prepare, "build", lambda *a, **kw: prepare.Built(
        "k-other", "6.12.118-ktest", None, "i-abcdef"))
    fake_run_plan(monkeypatch, Runner([PASSED], run.records[0].test))
    code, stdout, _ = ktest(capsys, str(run.path), "--tries", "1", "--out",
                            str(tmp_path / "r"))
    assert code == 1
    assert "note: not the run's own input: kernel 6.12.118-ktest (k-other), the run had " \
           "6.12.117-ktest (k-0123456789ab)" in stdout


@pytest.mark.parametrize("args,message", [
    (["{run}", "test_nope"], "test_nope: no such test in {run}"),
    (["{run}", "--tries", "0"], "--tries 0: expected at least 1"),
    (["{run}", "--time", "0"], "--time 0.0: expected a number of seconds above 0"),
    (["{run}", "--env", "FOO=1"], "--env 'FOO=1': expected KTEST_NAME=VALUE"),
    (["{run}", "--cycles", "0"], "--cycles 0: expected at least 1"),
    (["{run}", "--traffic", "0"], "--traffic 0: expected a factor above 0"),
    (["{run}", "--match", "("], "--match '(': not a regular expression"),
    (["{tmp}/nope"], "{tmp}/nope: no such run directory or console log"),
    (["{tmp}/empty.log"], "{tmp}/empty.log: no kernel report in this console log"),
    (["{tmp}/nomark.log"], "no ktest test marker before the report: give the test id, "
                           "--machine and --driver"),
    (["{tmp}/nomark.log", "t.py::x", "-d", "e1000e"], "cannot tell its machine profile"),
])
def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch, no_build: list[Any],
                               args: list[str], message: str) -> None:
    fake_run_plan(monkeypatch, Runner([]))  # should the input pass: no guest either
    run = sweep_run(tmp_path / "run")
    (tmp_path / "empty.log").write_text("nothing\n")
    (tmp_path / "nomark.log").write_bytes(console(None))
    fill = {"run": str(run.path), "tmp": str(tmp_path)}
    code, stdout, stderr = ktest(capsys, *[a.format(**fill) for a in args])
    assert code == 2 and stdout == "" and not no_build
    assert stderr.count("\n") == 1 and stderr.startswith("ktest: error: ")
    assert message.format(**fill) in stderr, stderr


def test_a_flaky_record_is_reproduced_by_its_failed_try(tmp_path: Path) -> None:
    r = Record("t::x", E, "flaky", message="failed 1 of 2 tries, then passed: lost 3",
               attempts=[Attempt("failed", message="AssertionError: lost 3"),
                         Attempt("passed")])
    sig = repro.signature_of(r)
    assert sig == repro.Signature("message", "AssertionError: lost NUM")
    assert sig.matches(_rec("failed", "AssertionError: lost 9"))
