"""A user's git tree as a build input (orchestrator.builds.gittree), on real
temporary repositories: identity, refs, dirty trees, ktest's slots; and a
module's cache key following the state of a user's kernel tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from gitrepo import GitRepo

from orchestrator.builds import gittree, module
from orchestrator.builds.gittree import GitError, Slot
from orchestrator.builds.kernel import Kernel


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KTEST_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_tree_identity_follows_git_state(tmp_path: Path) -> None:
    assert gittree.tree_id(tmp_path) is None  # not a git tree: make decides
    repo = GitRepo(tmp_path / "t")
    repo.commit("one", {"a.c": "int a;\n"})
    clean = gittree.tree_id(repo.path)
    assert clean and clean == gittree.tree_id(repo.path)
    (repo.path / "a.c").write_text("int a = 1;\n")
    dirty = gittree.tree_id(repo.path)
    assert dirty != clean
    (repo.path / "a.c").write_text("int a = 2;\n")
    assert gittree.tree_id(repo.path) != dirty


def test_repo_refs_and_dirty_state(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "src")
    one = repo.commit("one", {"Makefile": "all:\n", "drivers/mydrv/a.c": "int a;\n"})
    repo.commit("two", {"drivers/mydrv/a.c": "int a = 2;\n"})
    r = gittree.repo_of(repo.path / "drivers" / "mydrv")
    assert (r.top, r.prefix) == (repo.path.resolve(), "drivers/mydrv")
    assert r.resolve("HEAD~1") == one and r.subject(one) == "one"
    with pytest.raises(GitError, match=r"^nope: not a commit of .*src$"):
        r.resolve("nope")
    r.require_clean()
    (repo.path / "Makefile").write_text("changed:\n")  # outside the driver: not its business
    r.require_clean()
    with pytest.raises(GitError, match="has uncommitted changes"):
        gittree.repo_of(repo.path).require_clean()
    (repo.path / "drivers/mydrv/a.c").write_text("int a = 3;\n")
    with pytest.raises(GitError) as e:
        r.require_clean()
    assert str(e.value) == (f"{r.path} has uncommitted changes (1 file: "
                            "M drivers/mydrv/a.c): commit or stash them first")
    with pytest.raises(GitError, match="not in a git work tree"):
        gittree.repo_of(tmp_path)
    with pytest.raises(GitError, match="no such directory"):
        gittree.repo_of(tmp_path / "nope")


def test_a_slot_checks_out_commits_without_touching_the_user_tree(tmp_path: Path,
                                                                  cache: Path) -> None:
    repo = GitRepo(tmp_path / "linux")
    one = repo.commit("one", {"Makefile": "v1\n", "kept.c": "same\n"})
    two = repo.commit("two", {"Makefile": "v2\n"})
    (repo.path / "kept.c").write_text("the user's edit\n")  # a dirty user tree stays so
    before = repo.state()
    slot = Slot(gittree.repo_of(repo.path), "a")
    assert slot.top.name == "linux" and str(slot.top).startswith(str(cache / "trees"))
    assert slot.head() is None
    path = slot.checkout(one)
    assert (path / "Makefile").read_text() == "v1\n" and slot.head() == one
    stamp = (path / "kept.c").stat().st_mtime_ns
    os.utime(path / "kept.c", ns=(stamp - 10**9, stamp - 10**9))
    slot.checkout(two)
    assert (path / "Makefile").read_text() == "v2\n" and slot.head() == two
    # an unchanged file keeps its time: make rebuilds only what changed
    assert (path / "kept.c").stat().st_mtime_ns == stamp - 10**9
    assert (path / "kept.c").read_text() == "same\n"
    (path / "Makefile").write_text("scribbled\n")
    assert slot.head() is None  # a dirty slot holds no commit
    slot.checkout(two)
    assert (path / "Makefile").read_text() == "v2\n"
    assert repo.state() == before
    assert repo.git("worktree", "list").count("\n") == 0  # nothing added to the user's repo


def test_a_broken_slot_is_made_again(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "linux")
    one = repo.commit("one", {"Makefile": "v1\n"})
    slot = Slot(gittree.repo_of(repo.path), "a")
    slot.checkout(one)
    (slot.top / ".git" / "HEAD").write_text("garbage\n")
    assert slot.checkout(one) == slot.path and slot.head() == one


def test_slots_are_assigned_by_the_commit_they_hold() -> None:
    assert gittree.assign(["A", "B"], {"a": None, "b": None}) == {"A": "a", "B": "b"}
    assert gittree.assign(["A", "B"], {"a": "B", "b": "A"}) == {"A": "b", "B": "a"}
    # the slot holding B is kept for B; A goes to the other one
    assert gittree.assign(["A", "B"], {"a": "B", "b": "X"}) == {"A": "b", "B": "a"}
    assert gittree.assign(["A", "A"], {"a": None, "b": "A"}) == {"A": "b"}
    assert gittree.assign(["C"], {"a": "B", "b": "C"}) == {"C": "b"}
    with pytest.raises(ValueError):
        gittree.assign(["A", "B", "C"], {"a": None, "b": None})


def _kernel(source: str, tree_id: str | None, key: str = "k1") -> Kernel:
    return Kernel(Path("/nowhere"), key, "6.12.0",
                  {"source": source, "tree_id": tree_id, "built_at": "2026-12-02T06:00"})


def test_a_module_is_rebuilt_when_the_users_kernel_tree_changed(tmp_path: Path) -> None:
    src = tmp_path / "mydrv"
    src.mkdir()
    (src / "Kbuild").write_text("obj-m := mydrv.o\n")
    (src / "mydrv.c").write_text("int x;\n")
    # a user's tree keeps one key (its path) through every commit: the
    # module must follow the tree's state, not the key
    at_one = module.module_key(src, _kernel("tree:/src/linux", "git:one:1"))
    at_two = module.module_key(src, _kernel("tree:/src/linux", "git:two:2"))
    assert at_one != at_two
    assert at_one == module.module_key(src, _kernel("tree:/src/linux", "git:one:1"))
    # Debian's sources are keyed by content already: the key alone decides
    debian = module.module_key(src, _kernel("debian:linux-source-6.12=1", None))
    assert debian == module.module_key(src, _kernel("debian:linux-source-6.12=1", "x"))
    assert debian != module.module_key(src, _kernel("debian:linux-source-6.12=1", None, "k2"))


def test_claim_holds_a_slot_per_commit_and_passes_over_busy_ones(tmp_path: Path) -> None:
    from orchestrator.builds import cache as cache_mod

    repo = GitRepo(tmp_path / "linux")
    one = repo.commit("one", {"Makefile": "v1\n"})
    two = repo.commit("two", {"Makefile": "v2\n"})
    r = gittree.repo_of(repo.path)
    with gittree.claim(r, [one, two]) as slots:
        assert [s.name for s in slots.values()] == ["a", "b"]
        assert (slots[one].path / "Makefile").read_text() == "v1\n"
        assert (slots[two].path / "Makefile").read_text() == "v2\n"
        with gittree.claim(r, [two]) as more:  # a and b are held: c
            assert more[two].name == "c" and more[two].head() == two
    with gittree.claim(r, [two, one]) as slots:  # each slot that holds a commit serves it
        assert (slots[one].name, slots[two].name) == ("a", "b")
    with gittree.claim(r, [two]) as slots:
        assert slots[two].name == "b"
    with cache_mod.locked(Slot(r, "b").root.with_suffix(".lock")):
        with gittree.claim(r, [two]) as slots:  # b is busy: a moves to the commit
            assert slots[two].name in ("a", "c") and slots[two].head() == two
    locks = [cache_mod.locked(Slot(r, n).root.with_suffix(".lock")) for n in gittree.SLOTS]
    for lock in locks:
        lock.__enter__()
    try:
        with pytest.raises(GitError, match="8 of ktest's 8 checkouts of .* are in use"):
            with gittree.claim(r, [one]):
                pass
    finally:
        for lock in locks:
            lock.__exit__(None, None, None)
