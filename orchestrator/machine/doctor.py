"""`ktest doctor`: every host prerequisite, found or missing, with versions.

Checks are data (:data:`CHECKS`): a name, the command whose version to show,
and the Debian package that provides it, so ``--install`` knows what to
install. The accelerator line comes from the real probe boot (accel.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.builds import cache
from orchestrator.machine import accel, qemu


@dataclass(frozen=True)
class Check:
    name: str
    package: str  # Debian package that provides it ("" = not installable by us)
    command: tuple[str, ...] = ()  # prints the version; first word must be on PATH
    path: str = ""  # a file that must exist instead of a command
    why: str = ""
    optional: bool = False  # missing is reported, but not an error


CHECKS: tuple[Check, ...] = (
    Check("qemu-img", "qemu-utils", ("qemu-img", "--version"), why="QEMU tools"),
    Check("gcc", "build-essential", ("gcc", "--version"), why="kernel and module builds"),
    Check("make", "build-essential", ("make", "--version")),
    Check("bc", "bc", ("bc", "--version")),
    Check("bison", "bison", ("bison", "--version")),
    Check("flex", "flex", ("flex", "--version")),
    Check("libelf-dev", "libelf-dev", path="/usr/include/libelf.h", why="objtool"),
    Check("libssl-dev", "libssl-dev", path="/usr/include/openssl/ssl.h", why="kernel certs"),
    Check("pahole", "dwarves", ("pahole", "--version")),
    Check("depmod", "kmod", ("depmod", "--version"), why="modules_install"),
    Check("linux-source-6.12", "linux-source-6.12", path="/usr/src/linux-source-6.12.tar.xz",
          why="default guest kernel source (or --src DIR)"),
    Check("linux-source-6.1", "linux-source-6.1", path="/usr/src/linux-source-6.1.tar.xz",
          why="guest kernel 6.1 (--kernel 6.1; Debian 12 only)", optional=True),
    Check("mmdebstrap", "mmdebstrap", ("mmdebstrap", "--version"), why="guest image"),
    Check("lcov", "lcov", ("lcov", "--version"), why="driver coverage (--coverage)"),
    Check("tar", "tar", ("tar", "--version")),
    Check("xz", "xz-utils", ("xz", "--version")),
    Check("cpio", "cpio", ("cpio", "--version"), why="inspecting initramfs archives"),
    Check("ssh-keygen", "openssh-client", path="/usr/bin/ssh-keygen", why="`ktest ssh`"),
    Check("python3-venv", "python3-venv", ("python3", "-c", "import ensurepip, venv"),
          why="the virtual environment"),
    Check("chromium", "chromium", ("chromium", "--version"),
          why="the test that opens report.html in a browser", optional=True),
)

# QEMU comes from bookworm-backports on Debian 12 (scripts/bootstrap).
QEMU_PACKAGES = ("qemu-system-x86", "qemu-utils")
DEBIAN_PACKAGES = tuple(dict.fromkeys(c.package for c in CHECKS
                                      if c.package and c.package not in QEMU_PACKAGES))


@dataclass(frozen=True)
class Status:
    check: Check
    found: bool
    detail: str  # version line, or what is missing


def run_check(check: Check) -> Status:
    if check.path:
        ok = Path(check.path).exists()
        version = _dpkg_version(check.package) if ok else ""
        return Status(check, ok, version or (check.path if ok else f"{check.path} not found"))
    exe = shutil.which(check.command[0])
    if exe is None:
        return Status(check, False, f"{check.command[0]} not on PATH")
    try:
        out = subprocess.run(list(check.command), capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return Status(check, False, f"{check.command[0]} failed: {e}")
    if out.returncode != 0:
        return Status(check, False, (out.stderr or out.stdout).strip().splitlines()[-1:][0]
                      if (out.stderr or out.stdout).strip() else f"exit {out.returncode}")
    lines = (out.stdout or out.stderr).strip().splitlines()
    return Status(check, True, lines[0] if lines else "ok")


def _dpkg_version(package: str) -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return f"{package} {out.stdout.strip()}" if out.returncode == 0 else ""


def qemu_status() -> Status:
    """The QEMU guests will use ($KTEST_QEMU or qemu-system-x86_64): its
    version line, or why it cannot be used."""
    check = Check("qemu", "qemu-system-x86", why="runs the guests")
    try:
        v = qemu.version()
    except qemu.QemuError as e:
        return Status(check, False, str(e))
    return Status(check, True, f"{qemu.binary()}: {v.text}")


def qemu_features() -> list[tuple[str, bool, str]]:
    """(feature, enabled, what) for the QEMU in use; empty if there is none."""
    try:
        v = qemu.version()
    except qemu.QemuError:
        return []
    return [(f"{f.name} (>= {f.since[0]}.{f.since[1]})", ok, f.what)
            for f, ok in qemu.enabled(v)]


def accelerator_line(refresh: bool = False) -> tuple[bool, str]:
    """The accelerator guests will use, from the (cached) probe boot."""
    from orchestrator.builds import kernel as kernel_mod

    try:
        k = kernel_mod.lookup(kernel_mod.KernelRequest())
    except Exception:  # no source/fragments yet: probe without a kernel
        k = None
    result = accel.probe(k.bzimage if k else None, qemu.binary(), refresh=refresh)
    how = "cached probe" if result.cached else "probe boot"
    return True, f"{result.accel} ({result.reason}; {how}, {result.seconds:.1f}s)"


BACKPORTS_SOURCE = Path("/etc/apt/sources.list.d/ktest-bookworm-backports.sources")
BACKPORTS_TEXT = """Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def debian_codename() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return ""


def _has_backports() -> bool:
    files = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for f in files:
        try:
            if "bookworm-backports" in f.read_text(errors="replace"):
                return True
        except OSError:
            continue
    return False


def install(packages: list[str], run: Callable[..., object] = subprocess.run,
            qemu_too: bool = False) -> int:
    """apt-get install `packages`; with `qemu_too`, QEMU 10 as well (from
    bookworm-backports on Debian 12, adding that suite to apt's sources)."""
    if os.geteuid() != 0:
        raise PermissionError("--install needs root (apt-get install)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    backports = qemu_too and debian_codename() == "bookworm"
    if backports and not _has_backports():
        BACKPORTS_SOURCE.write_text(BACKPORTS_TEXT)
    run(["apt-get", "update", "-qq"], check=True, env=env)
    base = ["apt-get", "install", "-y", "-qq", "--no-install-recommends"]
    if packages:
        run([*base, *packages], check=True, env=env)
    if qemu_too:
        target = ["-t", "bookworm-backports"] if backports else []
        run([*base, *target, *QEMU_PACKAGES], check=True, env=env)
    return 0


def cache_line() -> str:
    root = cache.cache_root()
    return f"{root} ({'exists' if root.exists() else 'will be created'})"
