"""The console reader: every byte to disk, timestamped lines, waiting."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import pytest

from orchestrator.machine.console import (
    BOOT_FAIL_RE,
    Console,
    ConsoleClosed,
    ConsoleSilent,
    ConsoleTimeout,
)


@pytest.fixture
def pair(tmp_path: Path):  # type: ignore[no-untyped-def]
    a, b = socket.socketpair()
    c = Console(a, tmp_path / "console.raw", tmp_path / "console.log")
    yield c, b
    b.close()
    c.close()


def test_every_byte_and_stamped_lines(pair, tmp_path: Path) -> None:
    c, peer = pair
    peer.sendall(b"line one\r\nline t")
    peer.sendall(b"wo\npartial")
    c.wait_for(rb"line two", timeout=5)
    peer.close()
    with pytest.raises(ConsoleClosed):
        c.wait_for(rb"never", timeout=5)
    assert (tmp_path / "console.raw").read_bytes() == b"line one\r\nline two\npartial"
    lines = (tmp_path / "console.log").read_text().splitlines()
    assert [ln.split(" ", 1)[1] for ln in lines] == ["line one", "line two", "partial"]
    assert all(re.match(r"\d\d:\d\d:\d\d\.\d{6} ", ln) for ln in lines)
    assert c.first_seen(rb"line two") is not None and c.first_seen(rb"absent") is None


def test_wait_for_reports_failure_pattern_first(pair) -> None:
    c, peer = pair
    peer.sendall(b"[ 1.0] Kernel panic - not syncing: Fatal exception\n[ 2.0] KTEST-READY\n")
    m = c.wait_for(rb"KTEST-READY", timeout=5, fail=[BOOT_FAIL_RE])
    assert m.failed and "Kernel panic" in m.text
    assert c.panic_offset is not None


def test_wait_for_from_offset_and_timeouts(pair) -> None:
    c, peer = pair
    peer.sendall(b"marker A\n")
    c.wait_for(rb"marker A", timeout=5)
    start = c.size

    def later() -> None:
        time.sleep(0.3)
        peer.sendall(b"marker A again\n")

    threading.Thread(target=later).start()
    m = c.wait_for(rb"marker A", timeout=5, start=start)
    assert m.offset >= start
    with pytest.raises(ConsoleTimeout):
        c.wait_for(rb"nothing", timeout=0.3)
    with pytest.raises(ConsoleSilent):
        c.wait_for(rb"nothing", timeout=10, silence=0.3)


def test_tcg_lost_timer_signature() -> None:
    """The line RCU prints when TCG lost a halted vCPU's timer during a boot
    (from a real 6.12 guest's console), and not an ordinary stall report."""
    from orchestrator.machine.vm import TCG_LOST_TIMER

    seen = (b"[  68.860540][    C0] rcu: rcu_sched kthread timer wakeup didn't happen for "
            b"16251 jiffies! g-243 f0x0 RCU_GP_WAIT_FQS(5) ->state=0x402\n")
    assert TCG_LOST_TIMER.search(seen)
    assert not TCG_LOST_TIMER.search(b"rcu: INFO: rcu_sched detected stalls on CPUs/tasks:\n")
    assert not TCG_LOST_TIMER.search(b"rcu: rcu_sched kthread starved for 65007 jiffies!\n")
