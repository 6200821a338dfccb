"""Shared steps of the NIC conformance suite (run by `ktest run`).

The suite runs unchanged against every driver: it only uses what Linux
offers every NIC driver (ip, ethtool, sysfs, the kernel's counters), the
host's traffic peer on the NIC's frame socket, and the guest-side flow agent.
Knobs: KTEST_CYCLES (load/unload, bind/unbind and link flap cycles, default 5).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

from orchestrator import dut as dut_mod
from orchestrator import traffic as traffic_mod

CYCLES = int(os.environ.get("KTEST_CYCLES", "5"))
SINK_PORT = 7000
PEER_PORT = 7001


def flow_in(fid: int, size: int = 590, *, v6: bool = False, src: str | None = None,
            sport: int = 5000, vlan: int | None = None) -> Any:
    """A flow from the peer to the guest's sink."""
    if v6:
        return traffic_mod.Flow(fid, src or dut_mod.PEER_IP6, dut_mod.GUEST_IP6, sport + fid,
                                SINK_PORT, size, vlan)
    return traffic_mod.Flow(fid, src or dut_mod.PEER_IP4, dut_mod.GUEST_IP4, sport + fid,
                            SINK_PORT, size, vlan)


def receive(dut: Any, traffic: Any, agent: Any, flows: list[Any], count: int,
            rate: int = 1000, vlan_ip: str | None = None) -> dict[int, Any]:
    """The peer sends `count` frames of each flow; the guest's sink counts
    them. Returns the sink's per-flow result."""
    agent.sink(port=SINK_PORT, duration=60 + count * len(flows) / max(rate, 1), idle=3)
    for f in flows:
        traffic.send_flow(f, count, rate=rate, dst_mac=dut.mac)
    res = agent.sink_result(timeout=120)
    return {int(k): v for k, v in res["flows"].items()}


def assert_clean(per_flow: dict[int, Any], fid: int, count: int) -> None:
    got = per_flow.get(fid)
    assert got is not None, f"flow {fid}: nothing received"
    assert got["received"] == count and got["lost"] == 0, f"flow {fid}: {got}"
    assert got["duplicated"] == 0 and got["corrupted"] == 0, f"flow {fid}: {got}"


def ping(dut: Any, count: int = 3, size: int = 56, v6: bool = False,
         df: bool = False) -> None:
    dst = dut_mod.PEER_IP6 if v6 else dut_mod.PEER_IP4
    opts = "-M do " if df else ""
    out = dut.sh(f"ping {'-6 ' if v6 else ''}{opts}-c {count} -i 0.2 -W 3 -s {size} {dst}",
                 check=False, timeout=60)
    assert f"{count} received" in out, out


def queue_rx_packets(stats: dict[str, int]) -> dict[int, int]:
    """Per-Rx-queue packet counters from `ethtool -S`, whatever the driver
    calls them (rx0_packets, rx_queue_0_packets, rx-0.packets...)."""
    per: dict[int, int] = {}
    for k, v in stats.items():
        m = re.fullmatch(r"rx[_-]?(?:queue[_-]?)?(\d+)[_.]packets", k)
        if m:
            per[int(m.group(1))] = v
    return per


@contextlib.contextmanager
def background_rx(dut: Any, traffic: Any, fid: int = 90, rate: int = 500,
                  max_seconds: float = 1800) -> Iterator[dict[str, int]]:
    """The peer sends flow `fid` to the guest while the block runs (bounded
    by `max_seconds`): the Rx path is busy whatever the block does to the
    driver. Yields counters: frames sent, frames the host refused to send."""
    flow = flow_in(fid)
    stop = threading.Event()
    counts = {"sent": 0, "failed": 0}
    failure: list[BaseException] = []

    def run() -> None:
        deadline = time.monotonic() + max_seconds
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                r = traffic.send_flow(flow, max(1, rate // 10), rate=rate, dst_mac=dut.mac,
                                      first_seq=counts["sent"])
                counts["sent"] += r.frames
                counts["failed"] += r.failed
        except BaseException as e:  # noqa: BLE001 - reported by the caller's thread
            failure.append(e)

    t = threading.Thread(target=run, name=f"background-rx-{fid}", daemon=True)
    t.start()
    try:
        yield counts
    finally:
        stop.set()
        t.join(timeout=30)
    if failure:
        raise AssertionError(f"background traffic failed: {failure[0]!r}")
    assert counts["sent"] > 0, "no background frames were sent"
