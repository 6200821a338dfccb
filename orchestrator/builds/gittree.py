"""A user's git tree as a build input: its identity, its refs, whether it is
dirty, and ktest's own checkouts of it.

A tree's identity is its HEAD commit plus a hash of its uncommitted changes
(:func:`tree_id`); builds of a user's tree are cached by it. To build other
commits of a user's repository (`ktest bisect`, `ktest validate`) ktest never
touches the user's checkout: it keeps checkouts of its own, *slots*, under
``<cache>/trees/<repo>/<slot>/`` (shared clones, which borrow the user's
objects and leave nothing in the user's repository). A slot keeps its path
from one use to the next, so a kernel built there builds incrementally when
the slot moves to another commit, and a slot that already holds the commit
wanted is used as it is (:func:`assign`). :func:`claim` holds slots for a
command's commits while it builds and runs them; a slot another ktest
process holds is passed over.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from orchestrator.builds import cache


class GitError(Exception):
    """A git command failed, or a path or ref is not what it should be
    (one line says why)."""


def run_git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """git -C cwd ARGS, output captured; GitError with git's first error line
    when it fails and `check`."""
    try:
        out = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True,
                             check=False, stdin=subprocess.DEVNULL,
                             env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    except OSError as e:
        raise GitError(f"git not found: {e.strerror or e}") from None
    if check and out.returncode != 0:
        lines = [ln for ln in (out.stderr + out.stdout).splitlines() if ln.strip()]
        errs = [ln for ln in lines if ln.startswith(("fatal:", "error:"))] or lines
        raise GitError(f"git {args[0]} in {cwd} failed: "
                       f"{errs[0].strip() if errs else f'exit {out.returncode}'}")
    return out


def git(cwd: Path, *args: str) -> str:
    """git -C cwd ARGS: its output, stripped (GitError if it fails)."""
    return run_git(cwd, *args).stdout.strip()


def tree_id(src: Path) -> str | None:
    """Identity of a git tree (HEAD plus uncommitted changes), else None."""
    def out(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["git", "-C", str(src), *args], capture_output=True, check=False)

    head = out("rev-parse", "HEAD")
    if head.returncode != 0:
        return None
    status = out("status", "--porcelain", "--untracked-files=no")
    diff = out("diff", "HEAD")
    h = cache.Hasher("tree").add("head", head.stdout).add("status", status.stdout)
    return f"git:{head.stdout.decode().strip()}:{h.add('diff', diff.stdout).hexdigest()}"


@dataclass(frozen=True)
class Repo:
    """A directory in a user's git work tree: the tree's top and the
    directory's path below it ("" for the top)."""

    top: Path
    prefix: str = ""

    @property
    def path(self) -> Path:
        return self.top / self.prefix if self.prefix else self.top

    def resolve(self, ref: str) -> str:
        """The full commit id of `ref` (GitError if it names no commit)."""
        out = run_git(self.top, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}",
                      check=False)
        if out.returncode != 0 or not out.stdout.strip():
            raise GitError(f"{ref}: not a commit of {self.top}")
        return out.stdout.strip()

    def subject(self, sha: str) -> str:
        return git(self.top, "log", "-1", "--format=%s", sha)

    def changes(self) -> list[str]:
        """Uncommitted changes to tracked files below the directory
        (`git status --porcelain` lines)."""
        args = ["status", "--porcelain", "--untracked-files=no"]
        text = git(self.top, *args, "--", self.prefix or ".")
        return [ln for ln in text.splitlines() if ln.strip()]

    def require_clean(self) -> None:
        changed = self.changes()
        if changed:
            files = "1 file" if len(changed) == 1 else f"{len(changed)} files, first"
            raise GitError(f"{self.path} has uncommitted changes ({files}: "
                           f"{changed[0].strip()}): commit or stash them first")

    @property
    def key(self) -> str:
        """Names the repository among ktest's slots: its folder name and a
        hash of where its objects are."""
        common = Path(git(self.top, "rev-parse", "--path-format=absolute",
                          "--git-common-dir"))
        digest = hashlib.sha256(str(common.resolve()).encode()).hexdigest()[:12]
        return f"{self.top.name}-{digest}"


def repo_of(path: Path) -> Repo:
    """The git work tree `path` is in (GitError if none)."""
    path = path.expanduser()
    if not path.is_dir():
        raise GitError(f"{path}: no such directory")
    out = run_git(path, "rev-parse", "--show-toplevel", "--show-prefix", check=False)
    lines = out.stdout.splitlines()
    if out.returncode != 0 or not lines:
        raise GitError(f"{path}: not in a git work tree")
    return Repo(Path(lines[0]).resolve(), (lines[1] if len(lines) > 1 else "").strip("/"))


@dataclass(frozen=True)
class Slot:
    """One of ktest's checkouts of a user's repository."""

    repo: Repo
    name: str

    @property
    def root(self) -> Path:
        """The slot's folder (its lock lives beside the checkout)."""
        return cache.cache_root() / "trees" / self.repo.key / self.name

    @property
    def top(self) -> Path:
        """The checkout, named like the user's tree (a driver's module name
        and its pair's label come from its folder name)."""
        return self.root / self.repo.top.name

    @property
    def path(self) -> Path:
        """The user's directory (kernel tree, driver source) in the checkout."""
        return self.top / self.repo.prefix if self.repo.prefix else self.top

    def lock(self) -> AbstractContextManager[None]:
        return cache.locked(self.root.with_suffix(".lock"))

    def head(self) -> str | None:
        """The commit the checkout holds, when it is clean; else None."""
        if not (self.top / ".git").exists():
            return None
        head = run_git(self.top, "rev-parse", "--verify", "--quiet", "HEAD", check=False)
        if head.returncode != 0:
            return None
        status = run_git(self.top, "status", "--porcelain", "--untracked-files=no",
                         check=False)
        if status.returncode != 0 or status.stdout.strip():
            return None
        return head.stdout.strip()

    def ensure(self) -> None:
        """The checkout exists and is a usable clone (made again if not)."""
        if (self.top / ".git").exists() and run_git(self.top, "rev-parse", "--git-dir",
                                                    check=False).returncode == 0:
            return
        shutil.rmtree(self.top, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
        run_git(self.root, "clone", "--quiet", "--shared", "--no-checkout",
                str(self.repo.top), str(self.top))

    def checkout(self, sha: str) -> Path:
        """Move the checkout to `sha` (only changed files are written, so an
        incremental build sees what changed); the user's directory in it."""
        self.ensure()
        self.end_bisect()
        if self.head() != sha:
            run_git(self.top, "-c", "advice.detachedHead=false", "checkout", "--quiet",
                    "--force", "--detach", sha)
            run_git(self.top, "clean", "--quiet", "-ffd")
        return self.path

    def end_bisect(self) -> None:
        """`git bisect reset` if a bisection was left behind in the slot."""
        if run_git(self.top, "bisect", "log", check=False).returncode == 0:
            run_git(self.top, "bisect", "reset", check=False)


def assign(wanted: Sequence[str], held: Mapping[str, str | None]) -> dict[str, str]:
    """Which slot serves each wanted commit: a slot that holds it already,
    else a slot that holds none of the wanted commits (in the order of
    `held`). Every commit gets a slot; `held` must have enough."""
    out: dict[str, str] = {}
    for sha in wanted:
        for slot, has in held.items():
            if has == sha and slot not in out.values():
                out[sha] = slot
                break
    for sha in wanted:
        if sha in out:
            continue
        free = [s for s, has in held.items() if s not in out.values() and has not in wanted]
        free += [s for s in held if s not in out.values() and s not in free]
        if not free:
            raise ValueError(f"not enough slots for {len(set(wanted))} commits")
        out[sha] = free[0]
    return out


SLOTS = tuple("abcdefgh")  # at most this many checkouts of one repository


@contextmanager
def claim(repo: Repo, wanted: Sequence[str]) -> Iterator[dict[str, Slot]]:
    """A slot for each of the `wanted` commits, checked out at it and held
    (locked) until the block ends: a slot that holds the commit already if
    one is free, else another free one. GitError if too few are free."""
    need = len(set(wanted))
    held: dict[str, ExitStack] = {}
    try:
        for name in SLOTS:
            slot = Slot(repo, name)
            if len(held) >= need and not slot.root.exists():
                continue  # enough, and this one holds nothing
            stack = ExitStack()
            if stack.enter_context(cache.locked_if_free(slot.root.with_suffix(".lock"))):
                held[name] = stack
            else:
                stack.close()
        if len(held) < need:
            raise GitError(f"{len(SLOTS) - len(held)} of ktest's {len(SLOTS)} checkouts of "
                           f"{repo.top} are in use by other ktest processes")
        chosen = assign(wanted, {name: Slot(repo, name).head() for name in held})
        for name in [n for n in held if n not in chosen.values()]:
            held.pop(name).close()
        slots = {sha: Slot(repo, name) for sha, name in chosen.items()}
        for sha, slot in slots.items():
            slot.checkout(sha)
        yield slots
    finally:
        for stack in held.values():
            stack.close()
