"""The content-addressed artifact cache: where it lives, keys, locks.

Every artifact (kernel, image, module) lives in ``<cache>/<kind>/<key>/``,
where the key is a hash of every input. An entry is complete once its
``artifact.json`` exists: it is written last, atomically, so a build that
was interrupted never looks like a cache hit.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

MARKER = "artifact.json"


def cache_root() -> Path:
    """$KTEST_CACHE, else $XDG_CACHE_HOME/ktest, else ~/.cache/ktest."""
    env = os.environ.get("KTEST_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "ktest"


def runs_root() -> Path:
    """Where run directories go unless --out says otherwise: $KTEST_RUNS,
    else the cache's runs/ (runs are results: nothing evicts them)."""
    env = os.environ.get("KTEST_RUNS")
    return Path(env) if env else cache_root() / "runs"


class Hasher:
    """A sha256 over labelled parts, so that different inputs never collide."""

    def __init__(self, kind: str) -> None:
        self._h = hashlib.sha256(f"ktest-{kind}-v1\0".encode())

    def add(self, label: str, data: bytes | str) -> Hasher:
        raw = data.encode() if isinstance(data, str) else data
        self._h.update(f"{label}\0{len(raw)}\0".encode())
        self._h.update(raw)
        return self

    def add_file(self, label: str, path: Path) -> Hasher:
        return self.add(label, path.read_bytes())

    def add_tree(self, label: str, root: Path, names: Iterable[Path] | None = None) -> Hasher:
        """Add every regular file below root (sorted, by relative path)."""
        files = sorted(names) if names is not None else sorted(
            p for p in root.rglob("*") if p.is_file()
        )
        for p in files:
            self.add(f"{label}/{p.relative_to(root)}", p.read_bytes())
        return self

    def hexdigest(self, n: int = 20) -> str:
        return self._h.hexdigest()[:n]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `path` (created if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def locked_if_free(path: Path) -> Iterator[bool]:
    """The lock of :func:`locked` if no one holds it: True while held by
    us; False (and nothing held) if another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def entry_dir(kind: str, key: str) -> Path:
    return cache_root() / kind / key


def read_marker(entry: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((entry / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_marker(entry: Path, data: dict[str, Any]) -> None:
    write_atomic(entry / MARKER, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_atomic(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode() if isinstance(text, str) else text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
