"""`ktest build kernel`: the debug guest kernel, cached by content.

Source: one of Debian's linux-source-X.Y tarballs (:data:`SOURCES`; 6.12 by
default, unpacked once into the cache with ktest's own patches for that
version applied) or a user's tree (``--src``). Config: allnoconfig plus the
fragments in guest-images/kernel/ (and ``--config`` extras), after which
every option a fragment asked for is checked against the final .config.

A cache entry ``<cache>/kernel/<key>/`` holds ``bzImage``, ``config``,
``modules.cpio`` (the in-tree modules, for the initramfs), ``build/`` (the
O= build tree, usable with ``make -C build M=...``) and ``build.log``.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import paths
from orchestrator.builds import cache, gittree, kconfig
from orchestrator.builds.common import (
    BuildError,
    Counter,
    Progress,
    diagnostics,
    die_with_parent,
    jobs,
    run_logged,
)
from orchestrator.builds.cpio import CpioWriter

FRAGMENT_DIR = paths.kernel_dir()
PATCH_DIR = FRAGMENT_DIR / "patches"
# Applied in this order; a variant adds its own fragment last.
BASE_FRAGMENTS = ("base", "pcie", "iommu", "nics", "debug")
VARIANTS = {"debug": (), "fast": ("fast",)}


@dataclass(frozen=True)
class DebianSource:
    """A kernel version ktest builds from Debian's linux-source package."""

    version: str
    note: str = ""  # why a user would pick it, for --help and errors

    @property
    def package(self) -> str:
        return f"linux-source-{self.version}"

    @property
    def tarball(self) -> Path:
        return Path("/usr/src") / f"{self.package}.tar.xz"

    def patches(self) -> list[Path]:
        """ktest's patches for this version (guest-images/kernel/patches/X.Y/),
        applied in name order after unpacking; part of the cache key."""
        return sorted((PATCH_DIR / self.version).glob("*.patch"))


SOURCES = {
    "6.12": DebianSource("6.12", "LTS, the default"),
    "6.1": DebianSource("6.1", "LTS, with ktest's fix for the RCU-tasks boot deadlock"),
}
DEFAULT_VERSION = "6.12"


def debian_source_for(version: str) -> DebianSource:
    try:
        return SOURCES[version]
    except KeyError:
        raise BuildError(
            f"unknown kernel version {version!r} (known: {', '.join(SOURCES)}; "
            "or --src DIR for your own tree)"
        ) from None


@dataclass(frozen=True)
class KernelRequest:
    src: Path | None = None  # None: Debian's linux-source-<version>
    variant: str = "debug"
    version: str = DEFAULT_VERSION  # which Debian source (ignored with src)
    extra_fragments: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Kernel:
    """A built kernel in the cache."""

    dir: Path
    key: str
    release: str
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def identity(self) -> str:
        """What a module built against this kernel depends on: its key, and
        for a user's tree (keyed by its path, so that it builds
        incrementally) the state of the tree it was built from."""
        if not str(self.info.get("source", "")).startswith("tree:"):
            return self.key
        state = self.info.get("tree_id") or f"built {self.info.get('built_at')}"
        return f"{self.key} {state}"

    @property
    def bzimage(self) -> Path:
        return self.dir / "bzImage"

    @property
    def vmlinux(self) -> Path:
        return self.dir / "build" / "vmlinux"

    @property
    def has_pvh(self) -> bool:
        """The uncompressed vmlinux has the PVH entry point (QEMU can enter
        it directly). Whether that boot works is machine.accel's to find."""
        return self.vmlinux.is_file() and "CONFIG_PVH=y" in self.config_text()

    def config_text(self) -> str:
        try:
            return self.config.read_text()
        except OSError:
            return ""

    @property
    def config(self) -> Path:
        return self.dir / "config"

    @property
    def modules_cpio(self) -> Path:
        return self.dir / "modules.cpio"

    @property
    def build_dir(self) -> Path:
        return self.dir / "build"

    @classmethod
    def load(cls, entry: Path) -> Kernel | None:
        info = cache.read_marker(entry)
        if info is None or not (entry / "bzImage").is_file():
            return None
        return cls(entry, str(info["key"]), str(info["release"]), info)


def fragments_for(req: KernelRequest) -> list[tuple[str, str]]:
    """(origin, text) of every fragment, in merge order."""
    if req.variant not in VARIANTS:
        raise BuildError(f"unknown kernel variant {req.variant!r} (known: {', '.join(VARIANTS)})")
    paths = [FRAGMENT_DIR / f"{n}.config" for n in (*BASE_FRAGMENTS, *VARIANTS[req.variant])]
    paths += list(req.extra_fragments)
    out = []
    for p in paths:
        try:
            out.append((str(p), p.read_text()))
        except OSError as e:
            raise BuildError(f"cannot read config fragment {p}: {e.strerror}") from e
        except UnicodeDecodeError as e:
            raise BuildError(f"config fragment {p} is not text: {e}") from e
    return out


def merged_config(req: KernelRequest) -> dict[str, kconfig.Option]:
    try:
        return kconfig.merge(fragments_for(req))
    except kconfig.FragmentError as e:
        raise BuildError(f"bad config fragment: {e}") from e


def _compiler_id() -> str:
    try:
        out = subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=False)
        return out.stdout.splitlines()[0] if out.stdout else "gcc: unknown"
    except OSError:
        raise BuildError("gcc not found: run `ktest doctor --install`") from None


def _debian_source_id(version: str) -> str:
    ds = debian_source_for(version)
    if not ds.tarball.is_file():
        raise BuildError(
            f"{ds.tarball} not found: install {ds.package} (`ktest doctor --install`) "
            "or pass --src DIR"
        )
    st = ds.tarball.stat()
    ver = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", ds.package],
        capture_output=True, text=True, check=False,
    ).stdout.strip()
    ident = f"debian:{ds.package}={ver or 'unknown'}:{st.st_size}:{int(st.st_mtime)}"
    h = cache.Hasher("patches")
    for p in ds.patches():
        h.add_file(p.name, p)
    return f"{ident}:patches={h.hexdigest(12)}" if ds.patches() else ident


def debian_source(version: str = DEFAULT_VERSION, progress: Progress | None = None) -> Path:
    """Unpack a Debian tarball into the cache once, apply ktest's patches for
    that version, and return the tree."""
    ds = debian_source_for(version)
    ident = _debian_source_id(version)
    tag = cache.Hasher("src").add("id", ident).hexdigest(12)
    dest = cache.cache_root() / "src" / f"{ds.package}-{tag}"
    if (dest / ".ktest-unpacked").exists():
        return dest
    with cache.locked(dest.parent / f"{dest.name}.lock"):
        if (dest / ".ktest-unpacked").exists():
            return dest
        if progress:
            progress(f"unpacking {ds.tarball.name} into the cache")
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".unpack-"))
        try:
            subprocess.run(["tar", "-xf", str(ds.tarball), "-C", str(tmp)], check=True,
                           preexec_fn=die_with_parent)
            tree = tmp / ds.package
            for patch in ds.patches():
                if progress:
                    progress(f"applying {patch.name}")
                out = subprocess.run(
                    ["patch", "-p1", "--forward", "--batch", "-i", str(patch)], cwd=tree,
                    capture_output=True, text=True, check=False,
                )
                if out.returncode != 0:
                    raise BuildError(
                        f"ktest's patch {patch.name} does not apply to {ds.package}",
                        (out.stdout + out.stderr).splitlines()[-10:],
                    )
            (tree / ".ktest-unpacked").write_text(ident + "\n")
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tree, dest)
        except subprocess.CalledProcessError as e:
            raise BuildError(f"unpacking {ds.tarball} failed (tar exit {e.returncode})") from e
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def source_tree(req: KernelRequest, progress: Progress | None = None) -> tuple[Path, str]:
    """The tree a request builds from (Debian's unpacked and patched, or the
    user's), and an identity of its content for cache keys."""
    if req.src is None:
        return debian_source(req.version, progress), _debian_source_id(req.version)
    src = check_user_src(req.src)
    return src, gittree.tree_id(src) or f"tree:{src}"


def check_user_src(src: Path) -> Path:
    src = src.expanduser().resolve()
    if not src.is_dir():
        raise BuildError(f"kernel source directory not found: {src}")
    if not (src / "Makefile").is_file() or not (src / "Kconfig").is_file():
        raise BuildError(f"{src} is not a kernel source tree (no Makefile/Kconfig)")
    return src


def kernel_key(source_id: str, merged: str) -> str:
    return (
        cache.Hasher("kernel")
        .add("source", source_id)
        .add("config", merged)
        .add("cc", _compiler_id())
        .hexdigest()
    )


def planned_entry(req: KernelRequest) -> Path:
    """The cache entry the kernel for `req` has or will have (no build)."""
    merged = kconfig.render(merged_config(req))
    if req.src is None:
        return cache.entry_dir("kernel", kernel_key(_debian_source_id(req.version), merged))
    src = check_user_src(req.src)
    return cache.entry_dir("kernel", kernel_key(f"tree:{src}", merged))


def lookup(req: KernelRequest) -> Kernel | None:
    """The cached kernel for `req` if it is complete and current, else None."""
    merged = kconfig.render(merged_config(req))
    if req.src is None:
        key = kernel_key(_debian_source_id(req.version), merged)
        return Kernel.load(cache.entry_dir("kernel", key))
    src = check_user_src(req.src)
    key = kernel_key(f"tree:{src}", merged)
    kernel = Kernel.load(cache.entry_dir("kernel", key))
    tree_id = gittree.tree_id(src)
    if kernel and tree_id and kernel.info.get("tree_id") == tree_id:
        return kernel
    return None


def build_kernel(req: KernelRequest, progress: Progress | None = None) -> Kernel:
    """Return the cached kernel for `req`, building it first when needed."""
    options = merged_config(req)
    merged = kconfig.render(options)
    if req.src is None:
        source_id = _debian_source_id(req.version)
        key = kernel_key(source_id, merged)
        entry = cache.entry_dir("kernel", key)
        hit = Kernel.load(entry)
        if hit is not None:
            return hit
        src = debian_source(req.version, progress)
        tree_id = None
    else:
        src = check_user_src(req.src)
        # A user tree is keyed by its path, not its content, so that the same
        # build directory serves every edit: make rebuilds incrementally.
        source_id = f"tree:{src}"
        key = kernel_key(source_id, merged)
        entry = cache.entry_dir("kernel", key)
        tree_id = gittree.tree_id(src)
        hit = Kernel.load(entry)
        if hit is not None and tree_id and hit.info.get("tree_id") == tree_id:
            return hit

    with cache.locked(entry.with_suffix(".lock")):
        if req.src is None and (hit := Kernel.load(entry)) is not None:
            return hit
        return _build(req, src, source_id, tree_id, key, entry, options, merged, progress)


def _build(
    req: KernelRequest,
    src: Path,
    source_id: str,
    tree_id: str | None,
    key: str,
    entry: Path,
    options: dict[str, kconfig.Option],
    merged: str,
    progress: Progress | None,
) -> Kernel:
    started = time.monotonic()
    build = entry / "build"
    build.mkdir(parents=True, exist_ok=True)
    (entry / cache.MARKER).unlink(missing_ok=True)
    log = entry / "build.log"
    log.write_text(f"ktest kernel build {key}\nsource: {source_id}\n")
    fragment = entry / "merged.config"
    fragment.write_text(merged)

    make = ["make", "-C", str(src), f"O={build}", f"-j{jobs()}"]
    if progress:
        progress(f"configuring kernel {key} (log: {log})")
    rc = run_logged([*make, f"KCONFIG_ALLCONFIG={fragment}", "allnoconfig"], log)
    if rc != 0:
        text = log.read_text(errors="replace")
        raise BuildError("kernel configuration failed", diagnostics(text), log)

    final = kconfig.read_dotconfig((build / ".config").read_text())
    dropped = kconfig.dropped_options(options, final)
    if dropped:
        tree = kconfig.KconfigTree(src)
        msgs = [
            kconfig.Dropped(d.option, d.got, tree.explain(d.option.name, final)).message()
            for d in dropped
        ]
        with open(log, "a") as fh:
            fh.write("\n".join(["dropped options:", *msgs]) + "\n")
        first = msgs[0] + (f" (and {len(msgs) - 1} more)" if len(msgs) > 1 else "")
        raise BuildError(f"Kconfig dropped an option: {first}", msgs, log)

    flavour = req.version if req.src is None else "tree"
    steps_file = cache.cache_root() / "kernel" / f"steps-{flavour}-{req.variant}.txt"
    try:
        total: int | None = int(steps_file.read_text())
    except (OSError, ValueError):
        total = None
    counter = Counter(progress, "building kernel", total)
    rc = run_logged([*make, "bzImage", "modules"], log, on_line=counter)
    if rc != 0:
        text = log.read_text(errors="replace")
        raise BuildError(f"kernel build failed (make exit {rc})", diagnostics(text), log)
    if counter.count > 100 and not total:
        cache.write_atomic(steps_file, f"{counter.count}\n")

    release = (build / "include/config/kernel.release").read_text().strip()
    staging = Path(tempfile.mkdtemp(dir=entry, prefix=".modules-"))
    try:
        rc = run_logged(
            [*make, f"INSTALL_MOD_PATH={staging}", "INSTALL_MOD_STRIP=1", "modules_install"], log
        )
        if rc != 0:
            raise BuildError("modules_install failed", diagnostics(log.read_text()), log)
        buf = io.BytesIO()
        w = CpioWriter(buf)
        # No entry for "lib" itself: in a merged-/usr image it is a symlink to
        # usr/lib, and a directory entry would replace that symlink.
        w.add_dir("lib/modules")
        w.add_tree(staging / "lib" / "modules", prefix="lib/modules")
        w.close()
        cache.write_atomic(entry / "modules.cpio", buf.getvalue())
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    shutil.copyfile(build / "arch/x86/boot/bzImage", entry / "bzImage")
    shutil.copyfile(build / ".config", entry / "config")
    info = {
        "key": key,
        "release": release,
        "source": source_id,
        "src_dir": str(src),
        "tree_id": tree_id,
        "variant": req.variant,
        "version": req.version if req.src is None else None,
        "fragments": [o for o, _ in fragments_for(req)],
        "build_seconds": round(time.monotonic() - started, 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    cache.write_marker(entry, info)
    return Kernel(entry, key, release, info)
