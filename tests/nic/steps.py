"""Shared steps of the NIC conformance suite (run by `ktest run`).

The suite runs unchanged against every driver: it only uses what Linux
offers every NIC driver (ip, ethtool, sysfs, the kernel's counters), the
host's traffic peer on the NIC's frame socket, and the guest-side flow agent.
Knobs: KTEST_CYCLES (load/unload, bind/unbind and link flap cycles, default 5);
KTEST_TRAFFIC (a factor on the rate of the background traffic the lifecycle,
fault and XDP tests run under, default 1). `ktest repro --cycles/--traffic`
sets them to stress a replay.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from typing import Any

from orchestrator import waiting
from orchestrator.scenario import dut as dut_mod
from orchestrator.scenario import rss
from orchestrator.scenario import traffic as traffic_mod

CYCLES = int(os.environ.get("KTEST_CYCLES", "5"))
TRAFFIC = float(os.environ.get("KTEST_TRAFFIC", "1"))
SINK_PORT = 7000
PEER_PORT = 7001
BG_PORT, BG_FLOW = 7002, 90
SENTINEL_FLOW = 200  # ids 200.. are sentinels (see rx_counted)


def flow_in(fid: int, size: int = 590, *, v6: bool = False, src: str | None = None,
            sport: int = 5000, vlan: int | None = None, dport: int = SINK_PORT) -> Any:
    """A flow from the peer to the guest's sink."""
    if v6:
        return traffic_mod.Flow(fid, src or dut_mod.PEER_IP6, dut_mod.GUEST_IP6, sport + fid,
                                dport, size, vlan)
    return traffic_mod.Flow(fid, src or dut_mod.PEER_IP4, dut_mod.GUEST_IP4, sport + fid,
                            dport, size, vlan)


def receive(dut: Any, traffic: Any, agent: Any, flows: list[Any], count: int,
            rate: int = 1000) -> dict[int, Any]:
    """The peer sends `count` frames of each flow; the guest's sink counts
    them. Returns the sink's per-flow result."""
    return traffic_mod.receive(traffic, agent, flows, count, SINK_PORT, dut.mac, rate)


def assert_clean(per_flow: dict[int, Any], fid: int, count: int) -> None:
    fault = traffic_mod.flow_fault(per_flow, fid, count)
    assert fault is None, fault


def assert_sent_clean(sent: dict[str, Any], got: Any, count: int) -> None:
    """The guest sent `count` datagrams of one flow (an agent's send result)
    and the peer got each once and whole (`got`: Peer.wait_rx's snapshot). A
    driver that sends a stale descriptor again after a reset, or loses some
    frames and doubles others, fails here even when the totals add up."""
    assert sent["sent"] == count, sent
    assert (got.received, got.lost, got.duplicated, got.corrupted) == (count, 0, 0, 0), got


def maxima_and_current(dut: Any, opt: str) -> dict[str, dict[str, int]]:
    """ethtool -g or -l: {"max": {"rx": N, "tx": N, ...}, "cur": {...}},
    the numeric lines of each block by their lower-case names ("combined")."""
    text = dut.sh(f"ethtool {opt} {dut.ifname}")
    out: dict[str, dict[str, int]] = {"max": {}, "cur": {}}
    section = ""
    for line in text.splitlines():
        if line.startswith("Pre-set maximums"):
            section = "max"
        elif line.startswith("Current hardware settings"):
            section = "cur"
        m = re.match(r"^([\w ]+):\s+(\d+)$", line)
        if m and section:
            out[section][m.group(1).strip().lower()] = int(m.group(2))
    return out


def rings(dut: Any) -> dict[str, dict[str, int]]:
    """ethtool -g: {"max": {"rx": N, "tx": N}, "cur": {...}}."""
    return maxima_and_current(dut, "-g")


def ring_sizes(dut: Any) -> tuple[int, int, int]:
    """Three Tx/Rx ring sizes the driver takes, to change to in turn: a small
    one, the largest up to 512 and one between (powers of two within
    ethtool -g's pre-set maximums: 128, 512, 256 where they allow; virtio's
    rings stop at 256)."""
    mx = rings(dut)["max"]
    top = min(512, mx.get("rx", 512), mx.get("tx", 512))
    big = 1 << (top.bit_length() - 1)
    return big // 4, big, big // 2


def ping(dut: Any, count: int = 3, size: int = 56, v6: bool = False,
         df: bool = False) -> None:
    dst = dut_mod.PEER_IP6 if v6 else dut_mod.PEER_IP4
    opts = "-M do " if df else ""
    out = dut.sh(f"ping {'-6 ' if v6 else ''}{opts}-c {count} -i 0.2 -W 3 -s {size} {dst}",
                 check=False, timeout=60)
    got = re.search(r"(\d+) received", out)
    assert got is not None and int(got.group(1)) == count, \
        (f"ping {dst} with {size}-byte payloads{' (DF)' * df}: "
         f"{got.group(1) if got else 'no'} of {count} replies received\n{out}")


def traffic_back(dut: Any, timeout: float) -> float | None:
    """Seconds until a ping to the peer is answered (one a second), or
    None if none is within `timeout`."""
    t0 = time.monotonic()
    try:
        waiting.wait_until(lambda: dut.guest.cmd(
            f"ping -c 1 -W 1 {dut_mod.PEER_IP4}", check=False).ok, timeout, "a ping answered")
    except waiting.WaitTimeout:
        return None
    return time.monotonic() - t0


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
def background_rx(dut: Any, traffic: Any, agent: Any, rate: int = 500,
                  max_seconds: float = 900, size: int = 590) -> Iterator[Any]:
    """The peer sends a sequence-numbered flow (`rate` frames a second, times
    KTEST_TRAFFIC) to a sink in the guest while the block runs (bounded by
    `max_seconds`), so the Rx path is busy whatever the block does to the
    driver. Afterwards the sink's count is checked: frames were lost while
    the driver was down, but none may arrive corrupted or twice, and some
    must have arrived."""
    rate = max(1, round(rate * TRAFFIC))
    flow = flow_in(BG_FLOW, size, sport=5100, dport=BG_PORT)
    job = agent.sink(port=BG_PORT, duration=max_seconds + 60, name="background")
    with traffic.background(flow, rate, dst_mac=dut.mac, max_seconds=max_seconds) as bg:
        yield bg
    res = agent.sink_result(job, stop=True, timeout=30)
    got = res["flows"].get(str(BG_FLOW))
    assert got is not None and got["received"] > 0, \
        f"background flow: none of {bg.sent} frames reached the guest ({res})"
    assert got["corrupted"] == 0 and got["duplicated"] == 0, f"background flow: {got}"
    assert got["received"] <= bg.sent, f"background flow: {got}, sent {bg.sent}"


def spread_flows(dut: Any, n: int, first_id: int,
                 unpredicted: int | None = None) -> tuple[list[Any], dict[int, int] | None]:
    """n IPv4 flows from different sources of the peer's /24 that, by the
    driver's own key and table, land on every queue the table names, and
    the queue of each (or, when the queue cannot be predicted, `unpredicted`
    (default n) sources that differ in many bits, and None)."""
    candidates = {first_id + i: flow_in(first_id + i, 590, src=f"10.99.0.{10 + (i * 37) % 240}")
                  for i in range(120)}
    pred = dut.rss_predict(list(candidates.values()))
    if pred is None:
        return list(candidates.values())[:unpredicted or n], None
    ids = rss.balanced(pred, n)
    return [candidates[fid] for fid in ids], {fid: pred[fid] for fid in ids}


def sentinel_flows(dut: Any) -> list[Any]:
    """Unicast flows to the guest's sink that reach every Rx queue: one per
    queue when the driver's hash can be predicted, else 32 different sources."""
    queues = dut.rx_queues()
    if queues == 1:
        return [flow_in(SENTINEL_FLOW)]
    return spread_flows(dut, queues, SENTINEL_FLOW, unpredicted=32)[0]


def rx_counted(dut: Any, traffic: Any, agent: Any, send: Any, per_sentinel: int = 2,
               mac: str | None = None) -> int:
    """How many frames the NIC counted as received while `send()` sent them.
    The counter is read once sentinel frames sent afterwards on every Rx
    queue reached a sink in the guest: each queue had handled the earlier
    frames by then (a queue delivers in order). Sentinels are not counted.
    They go to `mac` (default: the function's own MAC). The frames `send()`
    sends must not go to the sink (they would end its job early)."""
    sentinels = sentinel_flows(dut)
    total = per_sentinel * len(sentinels)
    before = dut.link_stats()["rx"]["packets"]
    job = agent.sink(port=SINK_PORT, duration=60, count=total, name="sentinel")
    send()
    for f in sentinels:
        traffic.send_flow(f, per_sentinel, rate=1000, dst_mac=mac or dut.mac)
    res = agent.sink_result(job, timeout=60)
    got = sum(res["flows"].get(str(f.id), {}).get("received", 0) for f in sentinels)
    assert got == total, f"only {got} of {total} sentinel frames arrived: {res}"
    return int(dut.link_stats()["rx"]["packets"] - before) - total
