"""TSO: large TCP writes from the guest leave the NIC as valid segments.

The peer's TCP receiver (orchestrator.scenario.tcp_peer) checks every segment
as it came off the wire: IP and TCP checksums, payload at most the MSS it
advertised, sequence numbers without gaps or repeats, the bytes of the
stream pattern. Afterwards BQL must account for everything it was told was
queued: each Tx queue's in-flight byte count drains to zero.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from steps import ping

from orchestrator.scenario import dut as dut_mod
from orchestrator.waiting import wait_until

TCP_PORT = 5201
STREAM = 8 << 20  # bytes per connection


def bql_inflight(dut: Any) -> dict[str, int]:
    out = dut.sh(f"cd /sys/class/net/{dut.ifname}/queues && "
                 "grep . tx-*/byte_queue_limits/inflight", check=False)
    return {line.split("/", 1)[0]: int(line.rsplit(":", 1)[1])
            for line in out.splitlines() if ":" in line}


def segmentation_counter(dut: Any, before: dict[str, int]) -> int | None:
    """The driver's count of TSO skbs (or segments) sent, where it has one."""
    now = dut.ethtool_stats()
    keys = [k for k in now if re.search(r"(^|_)tso$|tcp_seg", k)]
    return sum(now[k] - before.get(k, 0) for k in keys) if keys else None


def retransmitted(dut: Any) -> int:
    """The guest's TCP RetransSegs (IPv4 and IPv6 share it)."""
    lines = [ln.split() for ln in dut.sh("grep '^Tcp:' /proc/net/snmp").splitlines()]
    return int(dict(zip(lines[0][1:], lines[1][1:], strict=True))["RetransSegs"])


def run_stream(dut: Any, traffic: Any, agent: Any, v6: bool,
               mtu: int = 1500) -> tuple[Any, int]:
    """Send the stream; the peer's connection and the sender's write count."""
    sink = traffic.tcp_sink(TCP_PORT, mtu=mtu)
    ping(dut, count=1, v6=v6)
    dst = dut_mod.PEER_IP6 if v6 else dut_mod.PEER_IP4
    before = retransmitted(dut)
    res = agent.tcp_send(dst, TCP_PORT, STREAM, timeout=600)
    assert "error" not in res, f"the guest's TCP send failed: {res}"
    conns = sink.wait_closed(1, timeout=60)
    assert conns, f"the connection never closed (sent {res})"
    conn = conns[-1]
    retrans = retransmitted(dut) - before
    # a slow peer (TCG, a loaded host) can make TCP retransmit: a repeat that
    # the sender did not count as a retransmission is the driver's
    assert conn.repeats <= retrans, \
        f"{conn.repeats} segments arrived twice, the guest retransmitted {retrans}: " \
        f"{conn.as_dict()}"
    return conn, int(res["writes"])


def check_stream(stream: tuple[Any, int], mss: int) -> None:
    """Clean, complete, and cut at the MSS (less the 12 bytes of timestamps):
    a segment shorter than the longest ends one of the sender's writes (when
    the stack pushed its tail at once; at MTU 9000 a 64 KiB write is seven
    full segments and one short one) or is a retransmission; more than that
    and the NIC cut TSO sends short."""
    conn, writes = stream
    d = conn.as_dict()
    assert conn.faults == 0, f"bad segments on the wire: {d}"
    assert conn.bytes == STREAM, f"{conn.bytes} of {STREAM} bytes arrived: {d}"
    assert mss - 40 <= conn.max_payload <= mss, d
    short = conn.segments - conn.sizes.get(conn.max_payload, 0)
    assert short <= writes + conn.repeats + 1, \
        f"{short} of {conn.segments} segments are shorter than {conn.max_payload} bytes, " \
        f"for {writes} writes: {d['sizes']}"


def check_bql_drained(dut: Any) -> None:
    wait_until(lambda: not any(bql_inflight(dut).values()), 10,
               "BQL in-flight bytes of every Tx queue to drain to 0")


@pytest.mark.requires("tso")
@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_tso_stream_arrives_segmented_correctly(dut: Any, traffic: Any, agent: Any,
                                                v6: bool) -> None:
    before = dut.ethtool_stats()
    check_stream(run_stream(dut, traffic, agent, v6), 1440 if v6 else 1460)
    used = segmentation_counter(dut, before)
    assert used is None or used > 0, "the driver counted no TSO sends for an 8 MiB stream"
    check_bql_drained(dut)


@pytest.mark.requires("tso", "jumbo")
def test_tso_jumbo_stream(dut: Any, traffic: Any, agent: Any) -> None:
    """MTU 9000: segments of 8960 bytes, TSO skbs of a few segments each."""
    dut.sh(f"ip link set {dut.ifname} mtu 9000")
    dut.wait_carrier(1)
    check_stream(run_stream(dut, traffic, agent, False, mtu=9000), 8960)
    check_bql_drained(dut)


@pytest.mark.requires("tso")
def test_tso_off_and_on_again(dut: Any, traffic: Any, agent: Any) -> None:
    """With TSO off the stack segments (GSO); turned on again, the NIC does."""
    i = dut.ifname
    dut.sh(f"ethtool -K {i} tso off")
    try:
        before = dut.ethtool_stats()
        check_stream(run_stream(dut, traffic, agent, False), 1460)
        assert segmentation_counter(dut, before) in (None, 0), \
            "the driver counted TSO sends with TSO off"
    finally:
        dut.sh(f"ethtool -K {i} tso on")
    check_stream(run_stream(dut, traffic, agent, False), 1460)
    check_bql_drained(dut)
