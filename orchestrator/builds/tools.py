"""ktest's own guest tools: small static programs built on the host.

Every ``guest-images/tools/NAME.c`` is compiled with the host's gcc as a
static binary (the guest image has no compiler) and packed into
``tools.cpio`` as ``/usr/local/bin/NAME``; the guest's initramfs carries it
next to the image and the kernel's modules. Cached by the sources and the
compiler.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import paths
from orchestrator.builds import cache
from orchestrator.builds.common import BuildError, Progress, diagnostics, run_logged
from orchestrator.builds.cpio import CpioWriter

CFLAGS = ("-static", "-O2", "-Wall", "-Wextra", "-Werror")


@dataclass(frozen=True)
class Tools:
    dir: Path
    key: str
    names: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def cpio(self) -> Path:
        return self.dir / "tools.cpio"


def tools_dir() -> Path:
    return paths.data_root() / "guest-images" / "tools"


def sources() -> list[Path]:
    return sorted(tools_dir().glob("*.c"))


def tools_key() -> str:
    h = cache.Hasher("tools").add("cflags", " ".join(CFLAGS))
    h.add("cc", shutil.which("gcc") or "no gcc")
    for src in sources():
        h.add_file(src.name, src)
    return h.hexdigest()


def build_tools(progress: Progress | None = None) -> Tools:
    key = tools_key()
    entry = cache.entry_dir("tools", key)
    info = cache.read_marker(entry)
    if info is not None and (entry / "tools.cpio").is_file():
        return Tools(entry, key, tuple(info["names"]), info)
    with cache.locked(entry.with_suffix(".lock")):
        info = cache.read_marker(entry)
        if info is not None and (entry / "tools.cpio").is_file():
            return Tools(entry, key, tuple(info["names"]), info)
        return _build(key, entry, progress)


def _build(key: str, entry: Path, progress: Progress | None) -> Tools:
    started = time.monotonic()
    entry.mkdir(parents=True, exist_ok=True)
    log = entry / "build.log"
    log.write_text(f"ktest tools build {key}\n")
    names = []
    buf = io.BytesIO()
    w = CpioWriter(buf)
    w.add_dir("usr/local/bin")
    with tempfile.TemporaryDirectory(prefix="ktest-tools-") as tmp:
        for src in sources():
            if progress:
                progress(f"building guest tool {src.stem}")
            out = Path(tmp) / src.stem
            rc = run_logged(["gcc", *CFLAGS, "-o", str(out), str(src)], log)
            if rc != 0:
                raise BuildError(f"guest tool {src.name} failed to build (gcc exit {rc})",
                                 diagnostics(log.read_text(errors="replace")), log)
            w.add_file(f"usr/local/bin/{src.stem}", out.read_bytes(), 0o755)
            names.append(src.stem)
    w.close()
    cache.write_atomic(entry / "tools.cpio", buf.getvalue())
    info = {"key": key, "names": names, "build_seconds": round(time.monotonic() - started, 1)}
    cache.write_marker(entry, info)
    return Tools(entry, key, tuple(names), info)
