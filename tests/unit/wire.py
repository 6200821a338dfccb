"""Helpers of the unit tests: the "wire" of the peer tests without a VM (a
connected pair of UDP sockets on 127.0.0.1, one datagram per Ethernet frame,
as QEMU's dgram netdev has it), and an inner pytest run with the plugin."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path


def udp_pair() -> tuple[socket.socket, socket.socket]:
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    a.connect(b.getsockname())
    b.connect(a.getsockname())
    for s in (a, b):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return a, b



def run_inner(tmp_path: Path, source: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run `source` as test_inner.py under pytest with --ktest-out; the
    completed process and the out directory."""
    (tmp_path / "test_inner.py").write_text(source)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py"),
                        "--ktest-out", str(out)], capture_output=True, text=True, timeout=120)
    return r, out
