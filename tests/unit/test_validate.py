"""`ktest validate` without a guest: the classification of two runs' records,
and the command end to end on two directories and on two refs of a real
temporary git history, with stand-ins for the build and for the guest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from standins import DMA, FAIL, PASS, WARN, TreeRunner, build_unless, command, stand_in
from test_bisect import BUGGY, CLEAN, history

from orchestrator.plugin.record import KnownMatch, Record, ReportRef
from orchestrator.runs import validate

E = "e1000e/ktest_nic"


@pytest.fixture(autouse=True)
def no_guest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KTEST_QEMU", str(tmp_path / "no-qemu"))
    monkeypatch.setenv("KTEST_CACHE", str(tmp_path / "cache"))


def rec(name: str, outcome: str, message: str = "", titles: tuple[str, ...] = (),
        known: bool = False) -> Record:
    return Record(f"tests/nic/t.py::{name}[{E}]", E, outcome, message=message,
                  reports=[ReportRef(t, "KASAN") for t in titles],
                  known=KnownMatch("a known issue", "") if known else None)


def test_classify_two_runs() -> None:
    base = [rec("fixed", "failed", "lost 3"), rec("broken", "passed"),
            rec("still", "failed", "WARNING in x", ("WARNING in x",)),
            rec("worse", "failed", "WARNING in x", ("WARNING in x",)),
            rec("gone", "passed"), rec("skipped_now", "passed"), rec("same", "passed"),
            rec("known", "passed"), rec("flaky", "passed"), rec("skips", "skipped")]
    patch = [rec("fixed", "passed"), rec("broken", "error", "no carrier"),
             rec("still", "failed", "WARNING in x", ("WARNING in x",)),
             rec("worse", "failed", DMA, ("WARNING in x", DMA)),
             rec("skipped_now", "skipped"), rec("same", "passed"),
             rec("known", "failed", "recovery failed", known=True), rec("flaky", "flaky"),
             rec("skips", "skipped"), rec("added", "failed", "lost 1")]
    v = validate.classify(base, patch)
    names = {g: [r.test.split("::")[1] for r in rows] for g, rows in v.groups.items()}
    assert names == {"introduced": ["broken", "worse", "added"], "fixed": ["fixed"],
                     "still_failing": ["still"], "not_run": ["skipped_now", "gone"],
                     "known": ["known"], "flaky": ["flaky"], "unchanged": ["same", "skips"]}
    assert v.introduced and v.counts()["unchanged"] == 2
    rows = {r.test.split("::")[1]: r for rows in v.groups.values() for r in rows}
    assert (rows["broken"].before, rows["broken"].after) == ("PASS", "ERROR")
    assert rows["broken"].message == "no carrier" and rows["broken"].pair == E
    assert rows["worse"].message == "WARNING in x"  # the patch's failure, by its first report
    assert rows["fixed"].message == "lost 3"  # the base's failure
    assert (rows["gone"].before, rows["gone"].after) == ("PASS", "-")
    assert (rows["added"].before, rows["added"].after) == ("-", "FAIL")
    assert not validate.classify(base, base).introduced
    assert validate.classify(patch, base).groups["fixed"][0].test.endswith("broken")


# ---- the command ---------------------------------------------------------------------

def ktest(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return command(capsys, "validate", *args)


def verdicts(tree: Path) -> Any:
    """Two tests: the first fails with the bug injected, the second warns
    with a marker in the source."""
    text = "".join(p.read_text() for p in sorted(tree.glob("*.c")))
    return [FAIL if BUGGY in text else PASS, WARN if "warn" in text else PASS]


@pytest.fixture
def standins(monkeypatch: pytest.MonkeyPatch) -> TreeRunner:
    return stand_in(monkeypatch, TreeRunner(verdicts, tests=("tests/nic/t.py::test_cycles",
                                                             "tests/nic/t.py::test_open")),
                    build_unless("#error"))


def driver(path: Path, text: str) -> Path:
    path.mkdir(parents=True)
    (path / "Kbuild").write_text("obj-m := ktest_nic.o\n")
    (path / "ktnic_bugs.c").write_text(text)
    return path


def kernel(path: Path, text: str) -> Path:
    path.mkdir(parents=True)
    (path / "Makefile").write_text("VERSION = 6\n")
    (path / "Kconfig").write_text("mainmenu \"Linux\"\n")
    (path / "net.c").write_text(text)
    return path


def test_a_patch_that_injects_a_bug(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    standins: TreeRunner) -> None:
    base = driver(tmp_path / "clean" / "ktest_nic", CLEAN + "/* warn */")
    patch = driver(tmp_path / "patched" / "ktest_nic", BUGGY)
    out = tmp_path / "out"
    code, stdout, stderr = ktest(capsys, "--base", str(base), "--patch", str(patch),
                                 "-m", "e1000e-viommu", "-k", "cycles or open", "--out", str(out))
    assert code == 1, stdout + stderr
    assert "ktest validate: plan command-line on e1000e-viommu/ktest_nic, -k 'cycles or open'" \
        in stdout
    assert f"  base  driver {base}\n" in stdout
    assert "introduced by the patch: 1\n" \
           f"   PASS -> FAIL  e1000e-viommu/ktest_nic  tests/nic/t.py::test_cycles: {DMA}" \
           in stdout
    assert "fixed by the patch: 1\n" \
           "   FAIL -> PASS  e1000e-viommu/ktest_nic  tests/nic/t.py::test_open: WARNING in " \
           "ktnic_open" in stdout
    assert "unchanged: 0 test(s)" in stdout
    (b_plan, b_out, b_opts), (p_plan, p_out, p_opts) = standins.calls
    assert [p.driver for p in b_plan.pairs] == [str(base)] and b_out == out / "base"
    assert [p.driver for p in p_plan.pairs] == [str(patch)] and p_out == out / "patch"
    assert b_opts.k == p_opts.k == "cycles or open" and b_opts.extra == p_opts.extra
    assert p_opts.manifest["validate"] == {"side": "patch", "given": str(patch),
                                           "path": str(patch), "commit": None}
    summary = json.loads((out / validate.SUMMARY).read_text())
    assert summary["counts"]["introduced"] == 1 and summary["base"]["path"] == str(base)
    # the other way round, the patch fixes both
    code, stdout, _ = ktest(capsys, "--base", str(patch), "--patch", str(base),
                            "-m", "e1000e-viommu", "--out", str(tmp_path / "out2"))
    assert code == 1 and "introduced by the patch: 1" in stdout  # its warning
    code, stdout, _ = ktest(capsys, "--base", str(patch), "--patch", str(base / ".." / ".." /
                                                                          "clean" / "ktest_nic"),
                            "--out", str(tmp_path / "out3"))
    assert code == 1


def test_a_patch_that_fixes_a_bug(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  standins: TreeRunner) -> None:
    base = driver(tmp_path / "a" / "ktest_nic", BUGGY)
    patch = driver(tmp_path / "b" / "ktest_nic", CLEAN)
    code, stdout, _ = ktest(capsys, "--base", str(base), "--patch", str(patch),
                            "--out", str(tmp_path / "out"))
    assert code == 0, stdout
    assert "fixed by the patch: 1" in stdout and "introduced" not in stdout
    assert "unchanged: 1 test(s)" in stdout
    assert [p.label for p in standins.calls[0][0].pairs] == [E]  # the default profile


def test_refs_of_a_driver_tree_in_ktests_own_checkouts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], standins: TreeRunner) -> None:
    repo, shas = history(tmp_path, bug_at=4)
    before = repo.state()
    code, stdout, stderr = ktest(capsys, "--driver-tree", str(repo.path / "ktest_nic"),
                                 "--base", "main~4", "--patch", shas[4],
                                 "--out", str(tmp_path / "out"))
    assert code == 1, stdout + stderr
    assert f"  base  driver main~4 = {shas[3][:12]} (change 3)" in stdout
    assert f"  patch driver {shas[4]} = {shas[4][:12]} (change 4 (injects a bug))" in stdout
    assert "introduced by the patch: 1" in stdout
    trees = [Path(p.pairs[0].driver) for p, _, _ in standins.calls]
    assert trees[0] != trees[1] and all(t.name == "ktest_nic" for t in trees)
    assert all(str(t).startswith(str(tmp_path / "cache" / "trees")) for t in trees)
    assert repo.state() == before
    summary = json.loads((tmp_path / "out" / validate.SUMMARY).read_text())
    assert summary["patch"]["commit"] == shas[4] and summary["patch"]["given"] == shas[4]
    # again: each slot holds its commit already and serves it as it is
    code, _, _ = ktest(capsys, "--driver-tree", str(repo.path / "ktest_nic"),
                       "--base", shas[4], "--patch", shas[3], "--out", str(tmp_path / "o2"))
    assert code == 0
    assert [Path(p.pairs[0].driver) for p, _, _ in standins.calls[2:]] == trees[::-1]


def test_two_kernel_trees(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          standins: TreeRunner) -> None:
    base = kernel(tmp_path / "linux", "int x;\n")
    patch = kernel(tmp_path / "linux-fix", "int x; /* warn */\n")
    code, stdout, _ = ktest(capsys, "--base", str(base), "--patch", str(patch), "-d",
                            "ktest_nic", "--variant", "fast", "--out", str(tmp_path / "out"))
    assert code == 1 and "introduced by the patch: 1" in stdout
    (b_plan, _, b_opts), (_, _, p_opts) = standins.calls
    assert [p.driver for p in b_plan.pairs] == ["ktest_nic"]
    assert b_opts.extra[:4] == ("--ktest-kernel-src", str(base), "--ktest-kernel-variant",
                               "fast")
    assert p_opts.extra[:2] == ("--ktest-kernel-src", str(patch))


def test_builds_that_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          standins: TreeRunner) -> None:
    good = driver(tmp_path / "a" / "ktest_nic", CLEAN)
    broken = driver(tmp_path / "b" / "ktest_nic", CLEAN + "#error no\n")
    code, stdout, _ = ktest(capsys, "--base", str(good), "--patch", str(broken),
                            "--out", str(tmp_path / "o1"))
    assert code == 1 and not standins.calls
    assert "introduced by the patch: it does not build: module build failed (make exit 2): " \
           "ktnic_bugs.c\n  ktnic_bugs.c:1: error: #error" in stdout
    code, _, stderr = ktest(capsys, "--base", str(broken), "--patch", str(good),
                            "--out", str(tmp_path / "o2"))
    assert code == 2 and not standins.calls
    assert stderr.splitlines()[-1] == "ktest: error: the base does not build: module build " \
                                      "failed (make exit 2): ktnic_bugs.c"


def test_a_patch_whose_run_has_no_results(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          standins: TreeRunner) -> None:
    standins.verdict = lambda tree: [None, None] if "broken" in str(tree) else [PASS, PASS]
    base = driver(tmp_path / "base" / "ktest_nic", CLEAN)
    patch = driver(tmp_path / "broken" / "ktest_nic", CLEAN)
    code, stdout, _ = ktest(capsys, "--base", str(base), "--patch", str(patch),
                            "--out", str(tmp_path / "o"))
    assert code == 1
    assert "not run with the patch: 2" in stdout
    assert "introduced by the patch: its run has no results (pytest exited 3" in stdout


@pytest.mark.parametrize("args,message", [
    (["--base", "{tmp}/nope", "--patch", "{tmp}/b/ktest_nic"],
     "--base {tmp}/nope: no such directory (refs of a git tree need --tree DIR"),
    (["--base", "{tmp}/a/ktest_nic", "--patch", "{tmp}/linux"],
     "one is a kernel tree, the other a module source"),
    (["--base", "{tmp}/a/ktest_nic", "--patch", "{tmp}/a/ktest_nic"],
     "--base and --patch are the same directory"),
    (["--base", "{tmp}/a/ktest_nic", "--patch", "{tmp}/c/mydrv"],
     "a module source's folder is named after the module, and these are not the same "
     "(ktest_nic, mydrv)"),
    (["--base", "{tmp}/empty", "--patch", "{tmp}/a/ktest_nic"],
     "--base {tmp}/empty: neither a kernel tree"),
    (["--base", "{tmp}/a/ktest_nic", "--patch", "{tmp}/b/ktest_nic", "-d", "e1000e"],
     "--driver: the driver under test is"),
    (["--base", "{tmp}/linux", "--patch", "{tmp}/linux2", "--kernel", "6.1"],
     "--kernel 6.1: the kernel is built from the kernel tree"),
    (["--base", "{tmp}/a/ktest_nic", "--patch", "{tmp}/b/ktest_nic", "--plan", "ci"],
     "no such plan"),
    (["--base", "{tmp}/a/ktest_nic", "--patch", "{tmp}/b/ktest_nic", "-m", "nope"],
     "nope.yaml: no such profile"),
    (["--driver-tree", "{repo}/ktest_nic", "--base", "main", "--patch", "HEAD"],
     "--base main and --patch HEAD are the same commit"),
    (["--driver-tree", "{repo}/ktest_nic", "--base", "main", "--patch", "nope"],
     "--patch nope: not a commit of {repo}"),
    (["--tree", "{repo}/ktest_nic", "--base", "main~1", "--patch", "main"],
     "{repo}/ktest_nic is a driver tree, not a kernel tree"),
])
def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               standins: TreeRunner, args: list[str], message: str) -> None:
    repo, _ = history(tmp_path / "git", commits=3)
    driver(tmp_path / "a" / "ktest_nic", CLEAN)
    driver(tmp_path / "b" / "ktest_nic", CLEAN)
    driver(tmp_path / "c" / "mydrv", CLEAN)
    kernel(tmp_path / "linux", "")
    kernel(tmp_path / "linux2", "")
    (tmp_path / "empty").mkdir()
    fill = {"tmp": str(tmp_path), "repo": str(repo.path.resolve())}
    code, stdout, stderr = ktest(capsys, *[a.format(**fill) for a in args],
                                 "--out", str(tmp_path / "o"))
    assert code == 2 and not standins.calls
    assert stderr.count("\n") == 1 and stderr.startswith("ktest: error: "), stderr
    assert message.format(**fill) in stderr, stderr
