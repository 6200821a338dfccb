"""Cache keys and the newc cpio writer."""

from __future__ import annotations

import io
import stat
import tarfile
from pathlib import Path

import pytest

from orchestrator.builds import cache
from orchestrator.builds.cpio import CpioWriter


def read_newc(data: bytes) -> list[dict]:
    """A minimal newc reader (the format the kernel unpacks)."""
    out, pos = [], 0
    while True:
        assert data[pos : pos + 6] == b"070701", f"bad magic at {pos}"
        f = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = f[11], f[6]
        name = data[pos + 110 : pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos : pos + filesize]
        pos += filesize
        pos += -pos % 4
        if name == "TRAILER!!!":
            return out
        out.append({"name": name, "mode": f[1], "uid": f[2], "data": body,
                    "rdev": (f[9], f[10])})


def test_hasher_is_stable_and_labelled() -> None:
    a = cache.Hasher("k").add("x", "ab").add("y", "c").hexdigest()
    assert a == cache.Hasher("k").add("x", "ab").add("y", "c").hexdigest()
    assert a != cache.Hasher("k").add("x", "a").add("y", "bc").hexdigest()
    assert a != cache.Hasher("other").add("x", "ab").add("y", "c").hexdigest()


def test_cache_root_env(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KTEST_CACHE", str(tmp_path / "c"))
    assert cache.cache_root() == tmp_path / "c"
    monkeypatch.delenv("KTEST_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache.cache_root() == tmp_path / "x" / "ktest"


def test_runs_root_env(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KTEST_CACHE", str(tmp_path / "c"))
    monkeypatch.delenv("KTEST_RUNS", raising=False)
    assert cache.runs_root() == tmp_path / "c" / "runs"
    monkeypatch.setenv("KTEST_RUNS", str(tmp_path / "r"))
    assert cache.runs_root() == tmp_path / "r"


def test_marker_is_written_atomically(tmp_path: Path) -> None:
    assert cache.read_marker(tmp_path) is None
    cache.write_marker(tmp_path, {"key": "k"})
    assert cache.read_marker(tmp_path) == {"key": "k"}
    assert [p.name for p in tmp_path.iterdir()] == [cache.MARKER]


def test_cpio_entries_roundtrip(tmp_path: Path) -> None:
    buf = io.BytesIO()
    w = CpioWriter(buf)
    w.add_dir("etc")
    w.add_file("etc/x", b"hello", 0o600)
    w.add_symlink("bin", "usr/bin")
    w.add_device("dev/console", char=True, perm=0o600, major=5, minor=1)
    w.close()
    entries = {e["name"]: e for e in read_newc(buf.getvalue())}
    assert entries["etc/x"]["data"] == b"hello"
    assert stat.S_IMODE(entries["etc/x"]["mode"]) == 0o600
    assert stat.S_ISLNK(entries["bin"]["mode"]) and entries["bin"]["data"] == b"usr/bin"
    assert stat.S_ISCHR(entries["dev/console"]["mode"]) and entries["dev/console"]["rdev"] == (5, 1)
    assert stat.S_ISDIR(entries["etc"]["mode"])


def test_cpio_from_tar_keeps_links_devices_and_filters(tmp_path: Path) -> None:
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w") as tar:
        def add(name: str, data: bytes = b"", **attrs: object) -> None:
            info = tarfile.TarInfo(name)
            for key, value in attrs.items():
                setattr(info, key, value)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("./usr", type=tarfile.DIRTYPE, mode=0o755)
        add("./usr/a", b"AAA", mode=0o4755, uid=0)
        add("./usr/b", type=tarfile.LNKTYPE, linkname="./usr/a")
        add("./sh", type=tarfile.SYMTYPE, linkname="usr/a")
        add("./dev/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)
        add("./usr/share/perl/x", b"drop me")
    tbuf.seek(0)
    out = io.BytesIO()
    w = CpioWriter(out)
    with tarfile.open(fileobj=tbuf) as tar:
        w.add_tar(tar, keep=lambda n: not n.startswith("usr/share/perl"))
    w.close()
    entries = {e["name"]: e for e in read_newc(out.getvalue())}
    assert entries["usr/a"]["data"] == b"AAA" and entries["usr/a"]["mode"] & stat.S_ISUID
    assert entries["usr/b"]["data"] == b"AAA"  # hard link becomes a copy
    assert entries["sh"]["data"] == b"usr/a"
    assert entries["dev/null"]["rdev"] == (1, 3)
    assert "usr/share/perl/x" not in entries


def test_image_pack_filter() -> None:
    from orchestrator.builds.image import keep_in_image

    assert keep_in_image("usr/bin/ip")
    assert keep_in_image("usr/share/perl-nope")
    assert not keep_in_image("usr/share/perl/5.36/x.pm")
    assert not keep_in_image("usr/bin/perl")
    assert not keep_in_image("./usr/lib/x86_64-linux-gnu/gconv/UTF-16.so")


def test_newer_suite_packages(monkeypatch, tmp_path: Path) -> None:
    from orchestrator.builds import image
    from orchestrator.builds.common import BuildError

    (tmp_path / "packages.txt").write_text("# c\niproute2\nethtool/trixie  # json\njq/trixie\n")
    monkeypatch.setattr(image, "ROOTFS_DIR", tmp_path)
    pkgs = image.packages()
    assert pkgs == ["iproute2", "ethtool/trixie", "jq/trixie"]
    hooks = image.newer_suite_hooks(pkgs)
    assert hooks[0] == ("echo 'deb http://deb.debian.org/debian trixie main' > "
                        '"$1/etc/apt/sources.list.d/ktest-trixie.list"')
    assert hooks[2].endswith("apt-get -q download ethtool/trixie jq/trixie")
    # the tree's dpkg installs them (apt install from a hook would install on the host)
    assert hooks[3].startswith('chroot "$1" sh -c \'dpkg --install /tmp/ktest-debs/*.deb\'')
    assert len(hooks) == 5 and hooks[4].startswith("rm ")
    assert image.newer_suite_hooks(["iproute2"]) == []
    (tmp_path / "packages.txt").write_text("ethtool/trixie; rm -rf /\n")
    with pytest.raises(BuildError, match="not a package name"):
        image.packages()
