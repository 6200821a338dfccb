"""`ktest bisect` without a guest: the oracle's mapping of tries to git's
words, the step loop driving git bisect in ktest's own checkout of a real
temporary history of ktest_nic (one commit of which injects a bug), and the
command end to end with stand-ins for the build and for the guest."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from gitrepo import GitRepo
from standins import DMA, FAIL, PASS, WARN, TreeRunner, build_unless, command, stand_in

from orchestrator.builds import gittree
from orchestrator.builds.gittree import Slot
from orchestrator.runs import bisect, prepare, repro
from orchestrator.runs.bisect import BAD, GOOD, SKIP, Judged
from orchestrator.runs.choices import Choices
from orchestrator.runs.plan import DEFAULT_SUITES, Plan, adhoc_plan
from orchestrator.runs.repro import ReproResult, Try

KTEST_NIC = Path(__file__).resolve().parents[2] / "drivers" / "ktest_nic"
CLEAN = "static char *bugs;"
BUGGY = 'static char *bugs = "tx_unmap_missing";'


@pytest.fixture(autouse=True)
def no_guest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KTEST_QEMU", str(tmp_path / "no-qemu"))
    monkeypatch.setenv("KTEST_CACHE", str(tmp_path / "cache"))


def history(tmp_path: Path, bug_at: int = 4, broken: tuple[int, ...] = (),
            commits: int = 8) -> tuple[GitRepo, list[str]]:
    """ktest_nic in a git repository: commit 0 as shipped, then one small
    change a commit; commit `bug_at` on injects a bug (its default bugs=),
    the commits in `broken` do not build (an #error)."""
    repo = GitRepo(tmp_path / "src")
    files = {f"ktest_nic/{p.name}": p.read_text() for p in sorted(KTEST_NIC.iterdir())
             if p.is_file()}
    bugs, txrx = files["ktest_nic/ktnic_bugs.c"], files["ktest_nic/ktnic_txrx.c"]
    assert CLEAN in bugs
    shas = [repo.commit("ktest_nic as shipped", files)]
    for n in range(1, commits):
        change = {"ktest_nic/ktnic_txrx.c": txrx + "".join(f"/* change {i} */\n"
                                                           for i in range(1, n + 1)),
                  "ktest_nic/ktnic_bugs.c": (bugs.replace(CLEAN, BUGGY) if n >= bug_at
                                             else bugs) + ("#error broken\n" if n in broken
                                                           else "")}
        shas.append(repo.commit(f"change {n}" + (" (injects a bug)" if n == bug_at else ""),
                                change))
    return repo, shas


def by_file(tree: Path, out: Path) -> Judged:
    """An oracle that reads the tree instead of running it."""
    out.mkdir(parents=True)
    text = (tree / "ktnic_bugs.c").read_text()
    if "#error" in text:
        return Judged(SKIP, "build failed: ktnic_bugs.c:1: error: broken")
    return Judged(BAD, f"FAIL: {DMA}") if BUGGY in text else Judged(GOOD, "PASS")


def _tries(*verdicts: str) -> ReproResult:
    res = ReproResult(repro.ANY)
    res.tries = [Try(n, Path(f"try-{n}"), v, {"hit": "FAIL: x", "pass": "PASS"}.get(v, v),
                     1.0, float(n)) for n, v in enumerate(verdicts, 1)]
    return res


def test_the_oracle_maps_the_tries_to_gits_words() -> None:
    assert bisect.verdict_of(_tries("hit")) == (BAD, "FAIL: x")
    assert bisect.verdict_of(_tries("pass", "pass", "hit")) == (BAD, "FAIL: x")
    assert bisect.verdict_of(_tries("pass", "pass")) == (GOOD, "PASS")
    assert bisect.verdict_of(_tries("pass", "other")) == (SKIP, "other")
    assert bisect.verdict_of(_tries("none")) == (SKIP, "none")
    assert bisect.verdict_of(_tries()) == (SKIP, "not run")
    # what `git bisect run` takes from a script
    assert bisect.EXIT_CODES == {GOOD: 0, BAD: 1, SKIP: 125}


def test_bisect_finds_the_commit_that_injects_the_bug(tmp_path: Path) -> None:
    repo, shas = history(tmp_path)
    before = repo.state()
    r = gittree.repo_of(repo.path / "ktest_nic")
    slot = Slot(r, "a")
    seen: list[bisect.Step] = []
    res = bisect.bisect(slot, shas[0], shas[7], by_file, tmp_path / "out", on_step=seen.append)
    assert res.first_bad == shas[4] and not res.candidates and not res.error
    assert [s.role for s in seen[:2]] == ["bad", "good"]
    assert (seen[0].commit, seen[0].verdict) == (shas[7], BAD)
    assert (seen[1].commit, seen[1].verdict) == (shas[0], GOOD)
    steps = seen[2:]
    assert 2 <= len(steps) <= 3 and [s.n for s in steps] == list(range(1, len(steps) + 1))
    for s in steps:  # each commit judged by what it holds
        assert s.verdict == (BAD if shas.index(s.commit) >= 4 else GOOD)
    assert steps[-1].subject.startswith("change ")
    summary = json.loads((tmp_path / "out" / bisect.SUMMARY).read_text())
    assert summary["first_bad"] == shas[4] and len(summary["steps"]) == len(seen)
    assert summary["steps"][0]["dir"].endswith(f"bad-{shas[7][:12]}")
    assert repo.state() == before  # the user's HEAD, branch and work tree
    assert not (slot.top / ".git" / "BISECT_LOG").exists()  # the slot's bisection ended


def test_adjacent_ends_need_no_step(tmp_path: Path) -> None:
    repo, shas = history(tmp_path)
    slot = Slot(gittree.repo_of(repo.path / "ktest_nic"), "a")
    res = bisect.bisect(slot, shas[3], shas[4], by_file, tmp_path / "out")
    assert res.first_bad == shas[4] and [s.role for s in res.steps] == ["bad", "good"]


def test_skipped_commits_leave_candidates(tmp_path: Path) -> None:
    # 3 and 4 do not build, 4 brings the bug: the first bad is 3, 4 or 5
    repo, shas = history(tmp_path, bug_at=4, broken=(3, 4))
    slot = Slot(gittree.repo_of(repo.path / "ktest_nic"), "a")
    res = bisect.bisect(slot, shas[0], shas[7], by_file, tmp_path / "out")
    assert res.first_bad is None
    assert set(res.candidates) == {shas[3], shas[4], shas[5]}
    assert SKIP in [s.verdict for s in res.steps]
    # but a skipped commit that is not the answer does not matter
    repo2, shas2 = history(tmp_path / "two", bug_at=4, broken=(2,))
    slot2 = Slot(gittree.repo_of(repo2.path / "ktest_nic"), "a")
    assert bisect.bisect(slot2, shas2[0], shas2[7], by_file,
                         tmp_path / "out2").first_bad == shas2[4]


@pytest.mark.parametrize("good,bad,message", [
    (5, 7, "the good end {good} (change 5) fails too: FAIL: DMA-API"),
    (0, 3, "the bad end {bad} (change 3) does not fail: PASS"),
    (0, 2, "the bad end {bad} (change 2) cannot be judged: build failed"),
])
def test_ends_that_are_not_what_they_should_be(tmp_path: Path, good: int, bad: int,
                                                message: str) -> None:
    repo, shas = history(tmp_path, bug_at=4, broken=(2,))
    slot = Slot(gittree.repo_of(repo.path / "ktest_nic"), "a")
    with pytest.raises(bisect.BisectError) as e:
        bisect.bisect(slot, shas[good], shas[bad], by_file, tmp_path / "out")
    assert str(e.value).startswith(message.format(good=shas[good][:12], bad=shas[bad][:12]))
    summary = json.loads((tmp_path / "out" / bisect.SUMMARY).read_text())
    assert summary["error"] == str(e.value) and summary["first_bad"] is None


def test_an_interruption_ends_the_bisection(tmp_path: Path) -> None:
    repo, shas = history(tmp_path)
    slot = Slot(gittree.repo_of(repo.path / "ktest_nic"), "a")
    calls: list[Path] = []

    def judge(tree: Path, out: Path) -> Judged:
        calls.append(out)
        j = by_file(tree, out)
        return j if len(calls) < 3 else Judged(SKIP, "interrupted", 130)

    res = bisect.bisect(slot, shas[0], shas[7], judge, tmp_path / "out")
    assert res.interrupted == 130 and len(res.steps) == 3 and res.first_bad is None
    assert not (slot.top / ".git" / "BISECT_LOG").exists()


def _job(tree: Path, pairs: tuple[str, ...] = ("e1000e",)) -> prepare.Job:
    base = Plan("t", None, "", DEFAULT_SUITES, ())
    return prepare.Job(adhoc_plan(list(pairs), [str(tree)], base),
                       Choices.make(kernel="6.12", accel="tcg"), k="load_unload",
                       env={"KTEST_CYCLES": "3"})


def _tree(path: Path, bugs: str) -> Path:
    path.mkdir(parents=True)
    (path / "Kbuild").write_text("obj-m := ktest_nic.o\n")
    (path / "ktnic_bugs.c").write_text(bugs)
    return path


def test_the_oracle_builds_runs_and_judges_a_tree(tmp_path: Path) -> None:
    def verdict(tree: Path) -> Any:
        text = (tree / "ktnic_bugs.c").read_text()
        return FAIL if BUGGY in text else WARN if "warn" in text else PASS

    runner = TreeRunner(verdict)
    build = build_unless("#error")
    built: list[prepare.Job] = []

    def build_job(job: prepare.Job) -> object:
        built.append(job)
        return build(job.choices, job.driver_specs)

    job = _job(_tree(tmp_path / "user" / "ktest_nic", CLEAN))
    oracle = bisect.Oracle(job, prepare.DRIVER, None, tries=2, run=runner, build=build_job,
                           manifest={"good": "g"})
    buggy = _tree(tmp_path / "1" / "ktest_nic", BUGGY)
    j = oracle(buggy, tmp_path / "o1")
    assert j == Judged(BAD, f"FAIL: {DMA}") and len(runner.calls) == 1  # stops at the hit
    assert oracle.signature == repro.Signature("title", DMA)  # the bad end's failure
    plan, out, opts = runner.calls[0]
    assert [p.driver for p in plan.pairs] == [str(buggy)] and out == tmp_path / "o1" / "try-1"
    assert [p.driver for p in built[0].plan.pairs] == [str(buggy)]
    assert opts.k == "load_unload" and opts.env == {"KTEST_CYCLES": "3"}
    assert opts.extra == ("--ktest-kernel", "6.12", "--ktest-accel", "tcg")
    assert opts.manifest["bisect"] == {"good": "g"} and opts.manifest["repro_try"] == 1
    assert json.loads((tmp_path / "o1" / repro.SUMMARY).read_text())["hits"] == 1

    assert oracle(_tree(tmp_path / "2" / "ktest_nic", CLEAN), tmp_path / "o2") == \
        Judged(GOOD, "PASS")
    assert len(runner.calls) == 3  # good only when every try passed
    assert oracle(_tree(tmp_path / "3" / "ktest_nic", CLEAN + "/* warn */"),
                  tmp_path / "o3").verdict == SKIP  # another failure
    assert oracle(_tree(tmp_path / "4" / "ktest_nic", BUGGY + "#error x\n"),
                  tmp_path / "o4") == Judged(
        SKIP, "build failed: module build failed (make exit 2): ktnic_bugs.c")
    assert len(runner.calls) == 5  # nothing ran for the tree that did not build


def test_a_boot_that_failed_is_no_failure_to_look_for(tmp_path: Path) -> None:
    boot = ("error", "e1000e/ktest_nic: boot failed: qemu not found", ())
    crash = ("error", "BUG: unable to handle page fault in ktnic_probe",
             ("BUG: unable to handle page fault in ktnic_probe",))
    runner = TreeRunner(lambda tree: boot if "boot" in tree.parent.name else crash)
    tree = _tree(tmp_path / "u" / "ktest_nic", CLEAN)
    oracle = bisect.Oracle(_job(tree), prepare.DRIVER, None, run=runner, build=lambda job: None)
    j = oracle(_tree(tmp_path / "boot" / "ktest_nic", CLEAN), tmp_path / "o1")
    assert j.verdict == SKIP and j.what.startswith("ERROR: e1000e/ktest_nic: boot failed")
    assert oracle.signature is None
    # an ERROR a kernel report decided is a failure of the driver
    assert oracle(tree, tmp_path / "o2").verdict == BAD
    assert oracle.signature == repro.Signature("title", crash[1])


def test_a_flaky_failure_is_found_within_the_tries(tmp_path: Path) -> None:
    n = [0]

    def every_other(tree: Path) -> Any:
        n[0] += 1
        return FAIL if n[0] % 2 == 0 else PASS

    runner = TreeRunner(every_other)
    oracle = bisect.Oracle(_job(_tree(tmp_path / "u" / "ktest_nic", CLEAN)), prepare.DRIVER,
                           repro.Signature("title", DMA), tries=3, run=runner,
                           build=lambda job: None)
    assert oracle(tmp_path / "u" / "ktest_nic", tmp_path / "o").verdict == BAD
    assert len(runner.calls) == 2


# ---- the command ---------------------------------------------------------------------

def ktest(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return command(capsys, "bisect", *args)


@pytest.fixture
def standins(monkeypatch: pytest.MonkeyPatch) -> TreeRunner:
    return stand_in(monkeypatch, TreeRunner(
        lambda tree: FAIL if BUGGY in (tree / "ktnic_bugs.c").read_text() else PASS),
        build_unless("#error"))


def test_ktest_bisect_names_the_commit(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       standins: TreeRunner) -> None:
    repo, shas = history(tmp_path, broken=(2,))
    before = repo.state()
    out = tmp_path / "out"
    code, stdout, stderr = ktest(capsys, "--driver-tree", str(repo.path / "ktest_nic"),
                                 "--good", shas[0], "--bad", "main", "-k", "load_unload",
                                 "-m", "e1000e-viommu", "--cycles", "2", "--out", str(out))
    assert code == 0, stdout + stderr
    assert f"first bad commit: {shas[4]} (change 4 (injects a bug))" in stdout
    assert "e1000e-viommu/ktest_nic, driver tree" in stdout
    assert f"good {shas[0][:12]} (ktest_nic as shipped), bad {shas[7][:12]} (change 7): " \
           "7 commit(s), about 3 step(s) after the ends" in stdout
    assert f"bad end   {shas[7][:12]}  bad      0s  change 7: FAIL: {DMA[:40]}" in stdout
    assert f"looking for kernel report '{DMA}'" in stdout
    assert f"good end  {shas[0][:12]}  good     0s  ktest_nic as shipped: PASS" in stdout
    assert "step 1 " in stdout
    # every tree judged was one of ktest's checkouts, never the user's
    trees = {Path(p.pairs[0].driver) for p, _, _ in standins.calls}
    assert all(str(t).startswith(str(tmp_path / "cache" / "trees")) for t in trees)
    assert all(o.env == {"KTEST_CYCLES": "2"} for _, _, o in standins.calls)
    assert repo.state() == before
    summary = json.loads((out / bisect.SUMMARY).read_text())
    assert summary["first_bad"] == shas[4]
    assert summary["signature"] == {"kind": "title", "text": DMA}


def test_ktest_bisect_with_only_skipped_commits_left(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], standins: TreeRunner) -> None:
    repo, shas = history(tmp_path, broken=(3, 4))
    code, stdout, _ = ktest(capsys, "--driver-tree", str(repo.path / "ktest_nic"),
                            "--good", shas[0], "--bad", shas[7], "-k", "x",
                            "--match", "pending DMA", "--out", str(tmp_path / "o"))
    assert code == 1, stdout
    assert "not found: only skipped commits are left; the first bad commit is one of:" \
        in stdout
    assert f"  {shas[4]} (change 4 (injects a bug))" in stdout
    assert re.search(r"step \d +\w{12}  skip +0s  change [34].*: build failed: module build "
                     r"failed", stdout)


@pytest.mark.parametrize("args,message", [
    (["--good", "nope", "--bad", "main", "-k", "x"], "--good nope: not a commit of {src}"),
    (["--good", "main", "--bad", "main", "-k", "x"], "--good main and --bad main are the "
                                                     "same commit"),
    (["--good", "main~7", "--bad", "main"], "-k EXPR or --test ID: the test whose verdict"),
    (["--good", "main~7", "--bad", "main", "-k", "x", "--tries", "0"],
     "--tries 0: expected at least 1"),
    (["--good", "main~7", "--bad", "main", "-k", "x", "--match", "("],
     "--match '(': not a regular expression"),
    (["--good", "main~7", "--bad", "main", "-k", "x", "-d", "e1000e"],
     "--driver: the driver under test is {src}/ktest_nic"),
    (["--good", "main~7", "--bad", "main", "--test", "t.py::x[igb/igb]"],
     "t.py::x[igb/igb]: names none of the pairs e1000e/ktest_nic"),
    (["--good", "main~7", "--bad", "main~4", "-k", "x"],
     "the bad end {bad} (change 3) does not fail: PASS"),
])
def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               standins: TreeRunner, args: list[str], message: str) -> None:
    repo, shas = history(tmp_path)
    code, stdout, stderr = ktest(capsys, "--driver-tree", str(repo.path / "ktest_nic"), *args,
                                 "--out", str(tmp_path / "o"))
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith("ktest: error: "), stderr
    assert message.format(src=repo.path.resolve(), bad=shas[3][:12]) in stderr, stderr


def test_ktest_bisect_needs_a_history(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      standins: TreeRunner) -> None:
    code, _, stderr = ktest(capsys, "--good", "a", "--bad", "b", "-k", "x")
    assert code == 2 and "--tree DIR (a kernel tree) or --driver-tree DIR" in stderr
    code, _, stderr = ktest(capsys, "--tree", str(tmp_path), "--good", "a", "--bad", "b",
                            "-k", "x")
    assert code == 2 and f"{tmp_path}: not in a git work tree" in stderr
    repo, _ = history(tmp_path)
    code, _, stderr = ktest(capsys, "--tree", str(repo.path / "ktest_nic"), "--good", "main~1",
                            "--bad", "main", "-k", "x")
    assert code == 2 and "is a driver tree, not a kernel tree: --driver-tree takes it" in stderr
