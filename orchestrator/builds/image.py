"""`ktest build image`: the guest root filesystem as an initramfs.

mmdebstrap builds a Debian bookworm tree (the essential set plus
guest-images/rootfs/packages.txt; a ``name/suite`` line there takes that
package from a newer Debian suite, its dependencies staying bookworm's)
straight into a tar archive, which is
converted to a newc cpio in Python: no root-owned tree is unpacked on the
host and nothing stays mounted. Our /init, sshd_config and per-image SSH keys
(ed25519 host key, ed25519 client key; root by key only) are added on top.

A cache entry ``<cache>/image/<key>/`` (mode 0700) holds ``rootfs.cpio``,
``id_ed25519`` (0600) and ``.pub``, ``known_hosts`` and ``build.log``.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator import paths
from orchestrator.builds import cache
from orchestrator.builds.common import BuildError, Progress, run_logged
from orchestrator.builds.cpio import CpioWriter

ROOTFS_DIR = paths.rootfs_dir()
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# Things no test needs, left out of the image to keep it small and fast to boot.
PATH_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
    "/usr/share/lintian/*",
    "/usr/share/zoneinfo/*",
)

# Installed as dependencies but never run in the guest: dropped while packing
# the initramfs (the kernel unpacks every byte of it on each boot, and under
# TCG that costs about a second per 15 MB).
PACK_EXCLUDES = (
    "usr/lib/x86_64-linux-gnu/perl",
    "usr/lib/x86_64-linux-gnu/perl-base",
    "usr/lib/x86_64-linux-gnu/perl5",
    "usr/share/perl",
    "usr/share/perl5",
    "usr/lib/x86_64-linux-gnu/gconv",
    "usr/share/i18n",
    "usr/share/common-licenses",
    "var/cache/debconf",
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/log/apt",
)
PACK_EXCLUDE_FILES = ("usr/bin/perl", "usr/bin/perl5.36.0", "usr/lib/x86_64-linux-gnu/libperl")


def keep_in_image(name: str) -> bool:
    name = name.removeprefix("./")
    if name.startswith(PACK_EXCLUDE_FILES):
        return False
    return not any(name == p or name.startswith(p + "/") for p in PACK_EXCLUDES)


@dataclass(frozen=True)
class Image:
    dir: Path
    key: str
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def cpio(self) -> Path:
        return self.dir / "rootfs.cpio"

    @property
    def client_key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def host_public_key(self) -> str:
        return (self.dir / "ssh_host_ed25519_key.pub").read_text().strip()

    @classmethod
    def load(cls, entry: Path) -> Image | None:
        info = cache.read_marker(entry)
        if info is None or not (entry / "rootfs.cpio").is_file():
            return None
        return cls(entry, str(info["key"]), info)


def packages() -> list[str]:
    path = ROOTFS_DIR / "packages.txt"
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise BuildError(f"cannot read {path}: {e.strerror}") from e
    pkgs = [w for line in lines if (w := line.split("#", 1)[0].strip())]
    for p in pkgs:
        if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]*(/[a-z][a-z0-9-]*)?", p):
            raise BuildError(f"{path}: not a package name or name/suite: {p!r}")
    return pkgs


def newer_suite_hooks(pkgs: list[str]) -> list[str]:
    """mmdebstrap customize hooks that install the ``name/suite`` packages
    into the tree: the suite's index is added to the tree's apt (signatures
    checked with the tree's keyring), apt downloads just those packages, and
    the tree's own dpkg installs them, so their dependencies must already be
    met by the bookworm packages (dpkg fails the build otherwise). apt's
    ``install`` is not used: from a hook it would install on the host."""
    by_suite: dict[str, list[str]] = {}
    for p in pkgs:
        if "/" in p:
            by_suite.setdefault(p.split("/", 1)[1], []).append(p)
    apt = 'APT_CONFIG="$MMDEBSTRAP_APT_CONFIG" apt-get -q'
    debs = "/tmp/ktest-debs"
    hooks = []
    for suite, wanted in by_suite.items():
        lst = f'"$1/etc/apt/sources.list.d/ktest-{suite}.list"'
        hooks += [f"echo 'deb {MIRROR} {suite} main' > {lst}",
                  f"{apt} update",
                  f'mkdir -p "$1{debs}" && cd "$1{debs}" && {apt} download {" ".join(wanted)}',
                  f"chroot \"$1\" sh -c 'dpkg --install {debs}/*.deb' && rm -r \"$1{debs}\"",
                  f"rm {lst}"]
    return hooks


def image_key() -> str:
    h = cache.Hasher("image").add("suite", SUITE).add("excludes", "\n".join(PATH_EXCLUDES))
    for name in ("packages.txt", "init", "sshd_config", "fstab"):
        try:
            h.add_file(name, ROOTFS_DIR / name)
        except OSError as e:
            raise BuildError(f"cannot read {ROOTFS_DIR / name}: {e.strerror}") from e
    h.add("builder", Path(__file__).read_bytes())
    return h.hexdigest()


def lookup() -> Image | None:
    return Image.load(cache.entry_dir("image", image_key()))


def build_image(progress: Progress | None = None) -> Image:
    key = image_key()
    entry = cache.entry_dir("image", key)
    hit = Image.load(entry)
    if hit is not None:
        return hit
    with cache.locked(entry.with_suffix(".lock")):
        hit = Image.load(entry)
        if hit is not None:
            return hit
        return _build(key, entry, progress)


def _keypair() -> tuple[bytes, str]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public.decode()


def _build(key: str, entry: Path, progress: Progress | None) -> Image:
    if shutil.which("mmdebstrap") is None:
        raise BuildError("mmdebstrap not found: run `ktest doctor --install`")
    started = time.monotonic()
    entry.mkdir(parents=True, exist_ok=True)
    os.chmod(entry, 0o700)
    (entry / cache.MARKER).unlink(missing_ok=True)
    log = entry / "build.log"
    log.write_text(f"ktest image build {key}\n")
    pkgs = packages()
    tmp = Path(tempfile.mkdtemp(dir=entry, prefix=".build-"))
    try:
        tar_path = tmp / "rootfs.tar"
        argv = [
            "mmdebstrap",
            "--variant=essential",
            "--mode=root",
            "--format=tar",
            f"--include={','.join(p for p in pkgs if '/' not in p)}",
            *(f"--customize-hook={h}" for h in newer_suite_hooks(pkgs)),
            *(f"--dpkgopt=path-exclude={p}" for p in PATH_EXCLUDES),
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            SUITE,
            str(tar_path),
        ]
        if progress:
            progress(f"building the {SUITE} root filesystem with mmdebstrap (log: {log})")
        rc = run_logged(argv, log, on_line=_mmdebstrap_progress(progress))
        if rc != 0:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise BuildError(f"mmdebstrap failed (exit {rc})", tail, log)

        host_priv, host_pub = _keypair()
        client_priv, client_pub = _keypair()
        if progress:
            progress("packing the initramfs")
        with open(tmp / "rootfs.cpio", "wb") as out:
            w = CpioWriter(out)
            with tarfile.open(tar_path) as tar:
                w.add_tar(tar, keep=keep_in_image)
            _add_ktest_files(w, host_priv, host_pub, client_pub)
            w.close()
        os.replace(tmp / "rootfs.cpio", entry / "rootfs.cpio")
        cache.write_atomic(entry / "id_ed25519", client_priv, mode=0o600)
        cache.write_atomic(entry / "id_ed25519.pub", client_pub + " ktest-client\n", mode=0o600)
        cache.write_atomic(entry / "ssh_host_ed25519_key.pub", host_pub + "\n", mode=0o600)
        cache.write_atomic(entry / "known_hosts", f"ktest-guest {host_pub}\n", mode=0o600)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    info = {
        "key": key,
        "suite": SUITE,
        "packages": pkgs,
        "size": (entry / "rootfs.cpio").stat().st_size,
        "build_seconds": round(time.monotonic() - started, 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    cache.write_marker(entry, info)
    return Image(entry, key, info)


def _add_ktest_files(w: CpioWriter, host_priv: bytes, host_pub: str, client_pub: str) -> None:
    w.add_device("dev/console", char=True, perm=0o600, major=5, minor=1)
    w.add_file("init", (ROOTFS_DIR / "init").read_bytes(), 0o755)
    w.add_file("etc/ssh/sshd_config", (ROOTFS_DIR / "sshd_config").read_bytes(), 0o644)
    w.add_dir("etc/ktest")
    w.add_file("etc/ktest/fstab", (ROOTFS_DIR / "fstab").read_bytes(), 0o644)
    w.add_dir("run/sshd", 0o755)  # sshd's privilege-separation directory
    w.add_file("etc/ssh/ssh_host_ed25519_key", host_priv, 0o600)
    w.add_file("etc/ssh/ssh_host_ed25519_key.pub", (host_pub + "\n").encode(), 0o644)
    w.add_dir("root/.ssh", 0o700)
    w.add_file("root/.ssh/authorized_keys", (client_pub + "\n").encode(), 0o600)
    w.add_file("etc/hostname", b"ktest\n")
    w.add_file("etc/hosts", b"127.0.0.1 localhost ktest\n::1 localhost ip6-localhost\n")


def _mmdebstrap_progress(progress: Progress | None) -> Callable[[str], None]:
    phases = ("I: running apt-get update", "I: downloading packages", "I: extracting archives",
              "I: installing essential packages", "I: installing remaining packages",
              "I: cleaning package lists", "I: creating tarball")

    def on_line(line: str) -> None:
        if progress and line.startswith(phases):
            progress(f"mmdebstrap: {line[3:].strip()}")

    return on_line
