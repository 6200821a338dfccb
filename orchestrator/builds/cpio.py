"""A writer for the newc cpio format the kernel unpacks as an initramfs.

Used to pack the guest root filesystem (converted from mmdebstrap's tar
output, so no root-owned tree is ever unpacked on the host) and the kernel's
modules. Archives written here can be concatenated: the kernel unpacks each
one in turn, later files replacing earlier ones.
"""

from __future__ import annotations

import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_TRAILER = "TRAILER!!!"


class CpioWriter:
    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._ino = 1
        self._closed = False

    def _entry(self, name: str, mode: int, data: bytes = b"", *, uid: int = 0, gid: int = 0,
               mtime: int = 0, rdev: tuple[int, int] = (0, 0), nlink: int = 1) -> None:
        name = name.lstrip("/") or "."
        encoded = name.encode() + b"\0"
        fields = (self._ino, mode, uid, gid, nlink, int(mtime), len(data), 0, 0,
                  rdev[0], rdev[1], len(encoded), 0)
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._ino += 1
        self._fh.write(header + encoded)
        self._fh.write(b"\0" * (-(len(header) + len(encoded)) % 4))
        self._fh.write(data)
        self._fh.write(b"\0" * (-len(data) % 4))

    def add_dir(self, name: str, perm: int = 0o755, **kw: int) -> None:
        self._entry(name, stat.S_IFDIR | perm, nlink=2, **kw)  # type: ignore[arg-type]

    def add_file(self, name: str, data: bytes, perm: int = 0o644, **kw: int) -> None:
        self._entry(name, stat.S_IFREG | perm, data, **kw)  # type: ignore[arg-type]

    def add_symlink(self, name: str, target: str, **kw: int) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode(), **kw)  # type: ignore[arg-type]

    def add_device(self, name: str, char: bool, perm: int, major: int, minor: int) -> None:
        kind = stat.S_IFCHR if char else stat.S_IFBLK
        self._entry(name, kind | perm, rdev=(major, minor))

    def add_tree(self, root: Path, prefix: str = "") -> None:
        """Add a host directory tree (directories, files and symlinks)."""
        for path in sorted(root.rglob("*")):
            rel = f"{prefix}/{path.relative_to(root)}".lstrip("/")
            st = path.lstat()
            perm = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                self.add_symlink(rel, str(path.readlink()))
            elif stat.S_ISDIR(st.st_mode):
                self.add_dir(rel, perm)
            elif stat.S_ISREG(st.st_mode):
                self.add_file(rel, path.read_bytes(), perm)

    def add_tar(self, tar: tarfile.TarFile,
                keep: Callable[[str], bool] | None = None) -> list[str]:
        """Copy the members of a tar archive (those `keep` accepts); returns
        the names of members of a kind cpio cannot hold."""
        skipped = []
        links: dict[str, bytes] = {}
        for m in tar:
            name = m.name.removeprefix("./") or "."
            if keep is not None and not keep(name):
                continue
            kw = {"uid": m.uid, "gid": m.gid, "mtime": int(m.mtime)}
            if m.isdir():
                self._entry(name, stat.S_IFDIR | m.mode, nlink=2, **kw)  # type: ignore[arg-type]
            elif m.isreg():
                f = tar.extractfile(m)
                data = f.read() if f else b""
                links[name] = data
                self._entry(name, stat.S_IFREG | m.mode, data, **kw)  # type: ignore[arg-type]
            elif m.islnk():
                target = m.linkname.removeprefix("./")
                self._entry(name, stat.S_IFREG | m.mode, links.get(target, b""), **kw)  # type: ignore[arg-type]
            elif m.issym():
                self._entry(name, stat.S_IFLNK | 0o777, m.linkname.encode(), **kw)  # type: ignore[arg-type]
            elif m.ischr() or m.isblk():
                kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
                self._entry(name, kind | m.mode, rdev=(m.devmajor, m.devminor), **kw)  # type: ignore[arg-type]
            elif m.isfifo():
                self._entry(name, stat.S_IFIFO | m.mode, **kw)  # type: ignore[arg-type]
            else:
                skipped.append(name)
        return skipped

    def close(self) -> None:
        if not self._closed:
            self._entry(_TRAILER, 0, nlink=1)
            self._closed = True
