"""`ktest build module`: an out-of-tree module against a cached kernel, W=1.

The module source is copied into a scratch directory (so the user's tree
gets no build products) and built with ``make -C <kernel build> M=... W=1``.
Any compiler error or warning fails the build with the compiler's lines.
A cache entry ``<cache>/module/<key>/`` holds the ``.ko`` files; the key is
the hash of the module source and the kernel artifact's key. The module is
compiled with debug information (``-g`` changes no code): the guest gets the
``.ko`` without it, and ``debug/<name>.ko`` keeps it on the host, so that a
kernel report's frame in the module names the function inlined there
(:func:`inlined_at`).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import paths
from orchestrator.builds import cache
from orchestrator.builds.common import BuildError, Progress, diagnostics, jobs, run_logged
from orchestrator.builds.kernel import Kernel

DEFAULT_MODULE_DIR = paths.ktest_nic_dir()
_SOURCE_SUFFIXES = (".c", ".h", ".S")
_SOURCE_NAMES = ("Kbuild", "Makefile")


@dataclass(frozen=True)
class Module:
    dir: Path
    key: str
    kos: tuple[Path, ...]
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def ko(self) -> Path:
        """The module file (the first, for sources that build several)."""
        return self.kos[0]

    @property
    def gcov_dir(self) -> Path | None:
        """With coverage: the kept build directory (sources and .gcno files;
        the guest's gcov data for the module is named after this path)."""
        path = self.info.get("gcov_dir")
        return Path(path) if path else None

    @classmethod
    def load(cls, entry: Path) -> Module | None:
        info = cache.read_marker(entry)
        if info is None:
            return None
        kos = tuple(entry / name for name in info.get("kos", []))
        if not kos or not all(k.is_file() for k in kos):
            return None
        return cls(entry, str(info["key"]), kos, info)


def source_files(src: Path) -> list[Path]:
    files = [
        p for p in src.rglob("*")
        if p.is_file() and (p.suffix in _SOURCE_SUFFIXES or p.name in _SOURCE_NAMES)
        and not p.name.endswith(".mod.c")
    ]
    return sorted(files)


def check_src(src: Path) -> Path:
    src = src.expanduser().resolve()
    if not src.is_dir():
        raise BuildError(f"module source directory not found: {src}")
    if not (src / "Kbuild").is_file() and not (src / "Makefile").is_file():
        raise BuildError(f"{src} has no Kbuild or Makefile: not a kernel module source")
    return src


def module_key(src: Path, kernel: Kernel, coverage: bool = False) -> str:
    h = cache.Hasher("module").add("kernel", kernel.identity).add("debuginfo", "host copy")
    h.add_tree("src", src, source_files(src))
    if coverage:
        h.add("coverage", "gcov")
    return h.hexdigest()


def build_module(src: Path, kernel: Kernel, progress: Progress | None = None,
                 coverage: bool = False) -> Module:
    """The module built (or from the cache). With `coverage`, built with
    GCOV_PROFILE=y in a build directory that is kept (see Module.gcov_dir)."""
    src = check_src(src)
    key = module_key(src, kernel, coverage)
    entry = cache.entry_dir("module", key)
    hit = Module.load(entry)
    if hit is not None:
        return hit
    with cache.locked(cache.cache_root() / "module" / f"{key}.lock"):
        hit = Module.load(entry)
        if hit is not None:
            return hit
        return _build(src, kernel, key, entry, progress, coverage)


def _build(src: Path, kernel: Kernel, key: str, entry: Path,
           progress: Progress | None, coverage: bool = False) -> Module:
    started = time.monotonic()
    entry.mkdir(parents=True, exist_ok=True)
    log = entry / "build.log"
    log.write_text(f"ktest module build {key}\nsource: {src}\nkernel: {kernel.key}\n")
    if progress:
        progress(f"building module {src.name} against kernel {kernel.release} (log: {log})")
    with tempfile.TemporaryDirectory(prefix="ktest-mod-") as tmp:
        # coverage: the build directory must outlive the build (the .gcno
        # files, and the path the guest names the module's gcov data by)
        work = (entry / "gcov" if coverage else Path(tmp)) / src.name
        if work.exists():
            shutil.rmtree(work)
        for f in source_files(src):
            dest = work / f.relative_to(src)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
        argv = ["make", "-C", str(kernel.build_dir), f"M={work}", "W=1", f"-j{jobs()}",
                "KCFLAGS=-g",
                *(["GCOV_PROFILE=y"] if coverage else []), "modules"]
        before = len(log.read_text(errors="replace"))
        rc = run_logged(argv, log)
        output = log.read_text(errors="replace")[before:]
        diags = [d.replace(str(work) + "/", "") for d in diagnostics(output)]
        if rc != 0:
            raise BuildError(f"module {src.name} failed to build (make exit {rc})", diags, log)
        warnings = [d for d in diags if "warning" in d.lower()]
        if warnings:
            raise BuildError(f"module {src.name} builds with warnings (W=1)", warnings, log)
        kos = sorted(work.rglob("*.ko"))
        if not kos:
            raise BuildError(f"module {src.name} built no .ko file", [], log)
        names = []
        (entry / "debug").mkdir(exist_ok=True)
        for ko in kos:
            shutil.copy2(ko, entry / "debug" / ko.name)
            strip = subprocess.run(["objcopy", "--strip-debug", str(ko), str(entry / ko.name)],
                                   capture_output=True, text=True, check=False)
            if strip.returncode != 0:
                raise BuildError(f"module {src.name}: objcopy --strip-debug failed",
                                 strip.stderr.strip().splitlines()[-1:], log)
            names.append(ko.name)
    info = {
        "key": key,
        "src": str(src),
        "gcov_dir": str(entry / "gcov" / src.name) if coverage else None,
        "kernel": kernel.key,
        "kernel_release": kernel.release,
        "kos": names,
        "build_seconds": round(time.monotonic() - started, 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    cache.write_marker(entry, info)
    return Module(entry, key, tuple(entry / n for n in names), info)


def debug_twin(ko: Path) -> Path | None:
    """The module file with its debug information that ktest kept beside
    `ko` (None for a module ktest did not build)."""
    twin = ko.parent / "debug" / ko.name
    return twin if twin.is_file() else None


SHF_ALLOC, SHF_EXECINSTR = 0x2, 0x4


def module_text_size(ko: Path) -> int:
    """Bytes of a module's core text as the kernel's loader lays it out:
    every allocated executable section but the .init ones, in file order,
    each at its alignment."""
    from elftools.elf.elffile import ELFFile

    size = 0
    with open(ko, "rb") as fh:
        for sec in ELFFile(fh).iter_sections():
            flags = sec["sh_flags"]
            if flags & SHF_ALLOC and flags & SHF_EXECINSTR and not sec.name.startswith(".init"):
                align = max(int(sec["sh_addralign"]), 1)
                size = -(-size // align) * align + int(sec["sh_size"])
    return size


def _functions(ko: Path) -> tuple[tuple[str, str, int, int], ...]:
    """The module's functions: (name, section, offset in it, size)."""
    st = ko.stat()
    return _read_functions(str(ko), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _read_functions(ko: str, size: int,
                    mtime_ns: int) -> tuple[tuple[str, str, int, int], ...]:
    """(_functions, read once per version of the file)"""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    out = []
    with open(ko, "rb") as fh:
        elf = ELFFile(fh)
        for table in elf.iter_sections():
            if not isinstance(table, SymbolTableSection):
                continue
            for sym in table.iter_symbols():
                ndx = sym["st_shndx"]
                if sym["st_info"]["type"] == "STT_FUNC" and isinstance(ndx, int):
                    out.append((sym.name, elf.get_section(ndx).name, int(sym["st_value"]),
                                int(sym["st_size"])))
    return tuple(out)


def function_at(ko: Path, section: str, offset: int) -> tuple[str, int, int] | None:
    """The module's function at `offset` into `section`: (name, offset
    into the function, its size)."""
    for name, sec, value, size in _functions(ko):
        if sec == section and value <= offset < value + size:
            return name, offset - value, size
    return None


def inlined_at(ko: Path, function: str, offset: int) -> list[tuple[str, str]]:
    """The functions at `function`+`offset` of the module, innermost first
    (an inlined function, then each one it was inlined into), each with its
    source file; empty when the module has no debug information or no such
    function. `offset` is a frame's: a return address, so the byte before
    it is looked up (the call)."""
    for name, section, value, _ in _functions(ko):
        if name == function:
            addr = value + max(offset - 1, 0)
            out = subprocess.run(["addr2line", "-f", "-i", "-j", section, "-e", str(ko),
                                  hex(addr)], capture_output=True, text=True, check=False)
            lines = out.stdout.splitlines()
            chain = [(lines[i], lines[i + 1].split(":")[0]) for i in range(0, len(lines) - 1, 2)]
            return [(f, file) for f, file in chain if f != "??"]
    return []
