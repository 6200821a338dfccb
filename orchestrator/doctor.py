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

from . import accel, cache


@dataclass(frozen=True)
class Check:
    name: str
    package: str  # Debian package that provides it ("" = not installable by us)
    command: tuple[str, ...] = ()  # prints the version; first word must be on PATH
    path: str = ""  # a file that must exist instead of a command
    why: str = ""


CHECKS: tuple[Check, ...] = (
    Check("qemu-system-x86_64", "qemu-system-x86", ("qemu-system-x86_64", "--version"),
          why="runs the guests"),
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
    Check("linux-source-6.1", "linux-source-6.1", path="/usr/src/linux-source-6.1.tar.xz",
          why="default guest kernel source (or --src DIR)"),
    Check("mmdebstrap", "mmdebstrap", ("mmdebstrap", "--version"), why="guest image"),
    Check("tar", "tar", ("tar", "--version")),
    Check("xz", "xz-utils", ("xz", "--version")),
    Check("cpio", "cpio", ("cpio", "--version"), why="inspecting initramfs archives"),
    Check("ssh-keygen", "openssh-client", path="/usr/bin/ssh-keygen", why="`ktest ssh`"),
    Check("python3-venv", "python3-venv", ("python3", "-c", "import ensurepip, venv"),
          why="the virtual environment"),
)

DEBIAN_PACKAGES = tuple(dict.fromkeys(c.package for c in CHECKS if c.package))


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


def accelerator_line(refresh: bool = False) -> tuple[bool, str]:
    """The accelerator guests will use, from the (cached) probe boot."""
    from .build import kernel as kernel_mod

    try:
        k = kernel_mod.lookup(kernel_mod.KernelRequest())
    except Exception:  # no source/fragments yet: probe without a kernel
        k = None
    result = accel.probe(k.bzimage if k else None, refresh=refresh)
    how = "cached probe" if result.cached else "probe boot"
    return True, f"{result.accel} ({result.reason}; {how}, {result.seconds:.1f}s)"


def install(packages: list[str], run: Callable[..., object] = subprocess.run) -> int:
    if os.geteuid() != 0:
        raise PermissionError("--install needs root (apt-get install)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], check=True, env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        check=True, env=env)
    return 0


def cache_line() -> str:
    root = cache.cache_root()
    return f"{root} ({'exists' if root.exists() else 'will be created'})"
