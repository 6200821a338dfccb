"""Snapshots of booted, ready guests: a fresh guest in seconds.

A snapshot is the whole state of a guest that has just become ready (SSH
answers, no driver loaded), saved to a file with QMP ``migrate`` once and
cached under ``<cache>/snapshot/<key>/``. The key covers everything that
went into that state: the QEMU version, the accelerator, the kernel, image
and initramfs keys and the QEMU command line with its run-time parts (socket
paths, the SSH port, descriptor numbers) replaced by placeholders, since
those may differ between the saving and the restoring process.

Restoring starts QEMU with the same command line plus ``-incoming defer``
and loads the file with ``migrate-incoming``; the guest continues where it
was saved. With QEMU 9.0 or later the file uses ``mapped-ram`` (only the
pages in use, loaded faster); older versions stream through ``exec:cat``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.builds import cache
from orchestrator.machine import qemu as qemu_mod
from orchestrator.machine.qmp import QMP, QMPError

STATE = "state.bin"
META = "snapshot.json"
SAVE_TIMEOUT = 300.0


class SnapshotError(Exception):
    pass


_RUNTIME = (
    (re.compile(r"path=[^,]+\.sock"), "path=RUN.sock"),
    (re.compile(r"unix:[^,]+\.sock"), "unix:RUN.sock"),
    (re.compile(r"hostfwd=tcp:127\.0\.0\.1:\d+-"), "hostfwd=tcp:127.0.0.1:PORT-"),
    (re.compile(r"local\.str=\d+"), "local.str=FD"),
)


def canonical_argv(argv: list[str]) -> list[str]:
    """The command line with what differs between two launches replaced."""
    out = []
    for a in argv:
        for rx, repl in _RUNTIME:
            a = rx.sub(repl, a)
        out.append(a)
    return out


def snapshot_key(argv: list[str], version: qemu_mod.QemuVersion, parts: dict[str, str]) -> str:
    h = cache.Hasher("snapshot").add("qemu", version.text).add(
        "argv", "\0".join(canonical_argv(argv)))
    for k in sorted(parts):
        h.add(k, parts[k])
    return h.hexdigest()


@dataclass(frozen=True)
class Snapshot:
    dir: Path
    key: str
    info: dict[str, Any]

    @property
    def state(self) -> Path:
        return self.dir / STATE

    @property
    def mapped_ram(self) -> bool:
        return bool(self.info.get("mapped_ram"))


def lookup(key: str) -> Snapshot | None:
    entry = cache.entry_dir("snapshot", key)
    info = cache.read_marker(entry)
    if info is None or not (entry / STATE).is_file():
        return None
    return Snapshot(entry, key, info)


def _uses_mapped_ram(version: qemu_mod.QemuVersion) -> bool:
    return qemu_mod.has(version, "mapped-ram")


def _set_capabilities(qmp: QMP, mapped_ram: bool) -> None:
    if mapped_ram:
        qmp.execute("migrate-set-capabilities",
                    {"capabilities": [{"capability": "mapped-ram", "state": True}]})


def _wait_migration(qmp: QMP, timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        info = qmp.execute("query-migrate")
        status = info.get("status")
        if status == "completed":
            return dict(info)
        if status in ("failed", "cancelled"):
            raise SnapshotError(f"{what}: migration {status}: {info.get('error-desc', '')}")
        if time.monotonic() > deadline:
            raise SnapshotError(f"{what}: migration not done within {timeout:.0f}s "
                                f"(status {status})")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def save(qmp: QMP, key: str, version: qemu_mod.QemuVersion, info: dict[str, Any],
         console_log: Path | None = None) -> Snapshot:
    """Save the running guest behind `qmp` as snapshot `key`, then let it
    run on. Written to a temporary file and renamed: never half a snapshot."""
    entry = cache.entry_dir("snapshot", key)
    with cache.locked(entry.with_suffix(".lock")):
        done = lookup(key)
        if done is not None:
            return done
        entry.mkdir(parents=True, exist_ok=True)
        os.chmod(entry, 0o700)
        tmp = entry / f".{STATE}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        mapped = _uses_mapped_ram(version)
        kind = "file" if qemu_mod.has(version, "file-migration") else "exec"
        t0 = time.monotonic()
        qmp.execute("stop")
        try:
            _set_capabilities(qmp, mapped)
            uri = f"file:{tmp}" if kind == "file" else f"exec:cat > {shlex.quote(str(tmp))}"
            qmp.execute("migrate", {"uri": uri})
            _wait_migration(qmp, SAVE_TIMEOUT, "saving a snapshot")
        finally:
            qmp.execute("cont")
        os.replace(tmp, entry / STATE)
        if console_log is not None and console_log.is_file():
            (entry / "boot-console.log").write_bytes(console_log.read_bytes())
        meta = {**info, "key": key, "mapped_ram": mapped, "uri_kind": kind,
                "qemu": version.text,
                # what the (sparse) file really takes on disk
                "bytes": (entry / STATE).stat().st_blocks * 512,
                "save_seconds": round(time.monotonic() - t0, 2),
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (entry / META).write_text(json.dumps(meta, indent=2) + "\n")
        cache.write_marker(entry, meta)
        return Snapshot(entry, key, meta)


def restore(qmp: QMP, snap: Snapshot, timeout: float = 120.0) -> float:
    """Load `snap` into a QEMU started with ``-incoming defer``; the guest
    runs when this returns. Seconds the load took."""
    t0 = time.monotonic()
    _set_capabilities(qmp, snap.mapped_ram)
    # no self-announce frames on the NICs' wires: the traffic peers would
    # see RARP frames nobody sent
    try:
        qmp.execute("migrate-set-parameters", {"announce-rounds": 0})
    except QMPError:
        pass  # an old QEMU without the parameter: the peers ignore RARP
    uri = f"file:{snap.state}" if snap.info.get("uri_kind") == "file" \
        else f"exec:cat {shlex.quote(str(snap.state))}"
    qmp.execute("migrate-incoming", {"uri": uri})
    _wait_migration(qmp, timeout, "restoring a snapshot")
    status = qmp.execute("query-status").get("status")
    if status != "running":
        qmp.execute("cont")
    return time.monotonic() - t0
