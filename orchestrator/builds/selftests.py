"""The kernel's own NIC selftests, built from the guest kernel's tree.

``make -C tools/testing/selftests TARGETS="drivers/net drivers/net/hw"
install`` of the very tree the guest kernel is built from (Debian's unpacked
source or the user's ``--kernel-src``; the kernel itself need not be built),
objects outside the tree, packed as ``selftests.tar.gz`` for the guest
(unpacked there under :data:`GUEST_DIR`) with the list of tests the runner
knows (``kselftest-list.txt``: ``collection:program`` per line). Cached by
the tree's identity and the target list.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.builds import cache
from orchestrator.builds.common import BuildError, Progress, diagnostics, run_logged

TARGETS = ("drivers/net", "drivers/net/hw")
GUEST_DIR = "/opt/ktest-selftests"


@dataclass(frozen=True)
class Selftests:
    dir: Path
    key: str
    tests: tuple[str, ...]  # "collection:program", as run_kselftest.sh -t takes them
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def tarball(self) -> Path:
        return self.dir / "selftests.tar.gz"

    @property
    def source(self) -> Path:
        """The selftests directory of the tree they were built from."""
        return Path(self.info["src_dir"]) / "tools" / "testing" / "selftests"


def selftests_key(source_id: str) -> str:
    return cache.Hasher("selftests").add("source", source_id).add(
        "targets", " ".join(TARGETS)).hexdigest()


def build_selftests(src: Path, source_id: str, progress: Progress | None = None) -> Selftests:
    """The selftests of kernel tree `src` (identity `source_id`, see
    orchestrator.builds.kernel.source_tree)."""
    key = selftests_key(source_id)
    entry = cache.entry_dir("selftests", key)
    info = cache.read_marker(entry)
    if info is not None and (entry / "selftests.tar.gz").is_file():
        return Selftests(entry, key, tuple(info["tests"]), info)
    with cache.locked(entry.with_suffix(".lock")):
        info = cache.read_marker(entry)
        if info is not None and (entry / "selftests.tar.gz").is_file():
            return Selftests(entry, key, tuple(info["tests"]), info)
        return _build(src, source_id, key, entry, progress)


def _build(src: Path, source_id: str, key: str, entry: Path,
           progress: Progress | None) -> Selftests:
    root = src / "tools" / "testing" / "selftests"
    if not (root / "Makefile").is_file():
        raise BuildError(f"the kernel's tree {src} has no tools/testing/selftests")
    targets = [t for t in TARGETS if (root / t / "Makefile").is_file()]
    if not targets:
        raise BuildError(f"{root} has none of {', '.join(TARGETS)}")
    started = time.monotonic()
    entry.mkdir(parents=True, exist_ok=True)
    log = entry / "build.log"
    log.write_text(f"ktest selftests build {key} from {src}\n")
    if progress:
        progress(f"building the kernel's selftests ({', '.join(targets)})")
    with tempfile.TemporaryDirectory(prefix="ktest-selftests-") as tmp:
        install = Path(tmp) / "install"
        rc = run_logged(["make", "-C", str(root), f"O={tmp}/build", f"TARGETS={' '.join(targets)}",
                         f"INSTALL_PATH={install}", "install"], log)
        if rc != 0:
            raise BuildError(f"the kernel's selftests failed to build (make exit {rc})",
                             diagnostics(log.read_text(errors="replace")), log)
        listing = install / "kselftest-list.txt"
        tests = tuple(ln.strip() for ln in listing.read_text().splitlines() if ln.strip()) \
            if listing.is_file() else ()
        with tarfile.open(Path(tmp) / "selftests.tar.gz", "w:gz") as tar:
            tar.add(install, arcname="selftests")
        shutil.move(str(Path(tmp) / "selftests.tar.gz"), entry / "selftests.tar.gz")
    info = {"key": key, "source": source_id, "src_dir": str(src), "targets": targets,
            "tests": list(tests), "build_seconds": round(time.monotonic() - started, 1)}
    cache.write_marker(entry, info)
    return Selftests(entry, key, tests, info)
