"""The guest's serial console: every byte to disk, and a watcher on top.

A reader thread owns the console socket. Every byte goes to ``console.raw``
as it arrives, and every line to ``console.log`` prefixed with the host's
wall-clock time (``HH:MM:SS.ffffff``), the same clock the QMP and SSH logs
use. Waiters block on a condition variable until a pattern shows up, a
failure pattern shows up, the console goes silent for too long, or the
stream ends (QEMU exited).
"""

from __future__ import annotations

import bisect
import re
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

# Output that means the guest kernel is dead (or about to be).
PANIC_RE = re.compile(rb"Kernel panic - not syncing|---\[ end Kernel panic")
# Output that means boot went wrong, when seen before readiness.
BOOT_FAIL_RE = re.compile(
    rb"Kernel panic - not syncing|---\[ end Kernel panic|KTEST-INIT-ERROR|"
    rb"BUG: unable to handle|general protection fault|Oops: |kernel BUG at"
)


def host_stamp(t: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if t is None else t).strftime("%H:%M:%S.%f")


@dataclass(frozen=True)
class Match:
    offset: int  # byte offset of the match in the console stream
    text: str
    failed: bool  # True when a failure pattern matched


class ConsoleClosed(Exception):
    """The console stream ended (QEMU exited) before the pattern appeared."""


class ConsoleSilent(Exception):
    """No console output for longer than the allowed silence."""


class ConsoleTimeout(Exception):
    """The pattern did not appear in time."""


class Console:
    def __init__(self, sock: socket.socket, raw_path: Path, log_path: Path) -> None:
        self._sock = sock
        self._raw: BinaryIO = open(raw_path, "ab", buffering=0)
        self._log: BinaryIO = open(log_path, "ab", buffering=0)
        self.raw_path, self.log_path = raw_path, log_path
        self._buf = bytearray()
        self._arrivals: list[tuple[int, float]] = []  # (end offset, monotonic time)
        self._partial = b""
        self._cond = threading.Condition()
        self.closed = False
        self.last_output = time.monotonic()
        self.panic_offset: int | None = None
        self._thread = threading.Thread(target=self._reader, name="ktest-console", daemon=True)
        self._thread.start()

    # -- reader side --
    def _reader(self) -> None:
        try:
            while True:
                try:
                    chunk = self._sock.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                self._raw.write(chunk)
                self._stamp_lines(chunk)
                with self._cond:
                    start = max(0, len(self._buf) - 64)
                    self._buf += chunk
                    self.last_output = time.monotonic()
                    self._arrivals.append((len(self._buf), self.last_output))
                    if self.panic_offset is None:
                        m = PANIC_RE.search(self._buf, start)
                        if m:
                            self.panic_offset = m.start()
                    self._cond.notify_all()
        finally:
            if self._partial:
                self._log.write(f"{host_stamp()} ".encode() + self._partial + b"\n")
                self._partial = b""
            with self._cond:
                self.closed = True
                self._cond.notify_all()

    def _stamp_lines(self, chunk: bytes) -> None:
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if lines:
            stamp = f"{host_stamp()} ".encode()
            self._log.write(b"".join(stamp + line.rstrip(b"\r") + b"\n" for line in lines))

    # -- consumer side --
    @property
    def size(self) -> int:
        with self._cond:
            return len(self._buf)

    def data(self, start: int = 0, end: int | None = None) -> bytes:
        with self._cond:
            return bytes(self._buf[start:end])

    def tail(self, lines: int = 40) -> str:
        with self._cond:
            text = bytes(self._buf[-256 * lines :]).decode(errors="replace")
        return "\n".join(text.replace("\r", "").splitlines()[-lines:])

    def wait_for(
        self,
        pattern: bytes | re.Pattern[bytes],
        *,
        timeout: float,
        start: int = 0,
        fail: Sequence[re.Pattern[bytes]] = (),
        silence: float | None = None,
    ) -> Match:
        """Wait until `pattern` appears at or after byte `start`.

        Returns a Match (failed=True if a `fail` pattern came first). Raises
        ConsoleTimeout, ConsoleSilent or ConsoleClosed.
        """
        rx = re.compile(pattern) if isinstance(pattern, bytes) else pattern
        deadline = time.monotonic() + timeout
        pos = start
        with self._cond:
            while True:
                found: list[tuple[int, re.Match[bytes], bool]] = []
                m = rx.search(self._buf, pos)
                if m:
                    found.append((m.start(), m, False))
                for f in fail:
                    fm = f.search(self._buf, pos)
                    if fm:
                        found.append((fm.start(), fm, True))
                if found:
                    off, hit, failed = min(found, key=lambda x: x[0])
                    line_end = self._buf.find(b"\n", hit.end())
                    text = bytes(self._buf[hit.start() : line_end if line_end >= 0 else None])
                    return Match(off, text.decode(errors="replace").strip(), failed)
                pos = max(start, len(self._buf) - 256)
                if self.closed:
                    raise ConsoleClosed("console closed (QEMU exited)")
                now = time.monotonic()
                if now >= deadline:
                    raise ConsoleTimeout(f"no {rx.pattern!r} within {timeout:.0f}s")
                if silence is not None and now - self.last_output > silence:
                    raise ConsoleSilent(f"no console output for {silence:.0f}s")
                self._cond.wait(min(0.5, deadline - now))

    def wait_closed(self, timeout: float) -> bool:
        """Wait until the stream ends (QEMU exited); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(0.5, left))
        return True

    def first_seen(self, pattern: bytes) -> float | None:
        """Host monotonic time at which `pattern` first arrived, if it did."""
        with self._cond:
            m = re.search(pattern, self._buf)
            if m is None:
                return None
            i = bisect.bisect_left(self._arrivals, m.end(), key=lambda a: a[0])
            return self._arrivals[min(i, len(self._arrivals) - 1)][1]

    def write(self, data: bytes) -> None:
        self._sock.sendall(data)

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(timeout=5)
        self._raw.close()
        self._log.close()
