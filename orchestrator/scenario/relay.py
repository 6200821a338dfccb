"""Two NICs of a guest wired back to back through the host.

Each NIC's far end is a host UDP socket carrying one Ethernet frame per
datagram (see :mod:`orchestrator.scenario.traffic`). :class:`Relay` passes
every frame that leaves one NIC to the other, in both directions, so the two
behave as if joined by a cable, and writes every frame to a pcap on the way.
"""

from __future__ import annotations

import os
import select
import socket
import threading
from pathlib import Path

from orchestrator.scenario.traffic import PcapWriter

__all__ = ["Relay"]


class Relay:
    """Frames from ``a`` go out on ``b`` and back (the sockets stay open:
    the machine owns them). Stops on :meth:`close`."""

    def __init__(self, a: socket.socket, b: socket.socket, pcap: Path | None = None) -> None:
        # own descriptors: the receive loop must not depend on the machine's timeouts
        self._a = socket.socket(fileno=os.dup(a.fileno()))
        self._b = socket.socket(fileno=os.dup(b.fileno()))
        self._pcap = PcapWriter(pcap) if pcap is not None else None
        self._wake_r, self._wake_w = socket.socketpair()
        self.frames = {"a_to_b": 0, "b_to_a": 0}
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pairs = {self._a: (self._b, "a_to_b"), self._b: (self._a, "b_to_a")}
        while True:
            ready, _, _ = select.select([self._a, self._b, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            for src in ready:
                dst, key = pairs[src]
                for _ in range(256):
                    try:
                        frame = src.recv(65536, socket.MSG_DONTWAIT)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        self.errors += 1
                        break
                    try:
                        dst.send(frame)
                    except OSError:
                        self.errors += 1  # the far NIC's queue is full: a lost frame
                        continue
                    self.frames[key] += 1
                    if self._pcap is not None:
                        self._pcap.write(frame)

    def close(self) -> None:
        if self._wake_w.fileno() < 0:
            return
        self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        for s in (self._a, self._b, self._wake_r, self._wake_w):
            s.close()
        if self._pcap is not None:
            self._pcap.close()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
