"""Rx and Tx integrity: every frame arrives once, in order, unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from steps import PEER_PORT, assert_clean, flow_in, ping, queue_rx_packets, receive

from orchestrator import dut as dut_mod

COUNT = 500


def test_ping_v4_v6(dut: Any, traffic: Any) -> None:
    ping(dut, count=5)
    ping(dut, count=5, v6=True)
    assert traffic.echo_replies >= 10


@pytest.mark.parametrize("size,v6", [(60, False), (590, False), (1514, False),
                                     (78, True), (1514, True)],
                         ids=["v4-60", "v4-590", "v4-1514", "v6-78", "v6-1514"])
def test_rx_integrity(dut: Any, traffic: Any, agent: Any, size: int, v6: bool) -> None:
    per = receive(dut, traffic, agent, [flow_in(1, size, v6=v6)], COUNT)
    assert_clean(per, 1, COUNT)
    assert per[1]["reordered"] == 0, per[1]


@pytest.mark.parametrize("size,v6", [(60, False), (1514, False), (1514, True)],
                         ids=["v4-60", "v4-1514", "v6-1514"])
def test_tx_integrity(dut: Any, traffic: Any, agent: Any, size: int, v6: bool) -> None:
    dst = dut_mod.PEER_IP6 if v6 else dut_mod.PEER_IP4
    # resolve the neighbour first: datagrams queued during ARP/ND resolution
    # may leave after later ones (the stack's doing, not the driver's)
    ping(dut, count=1, v6=v6)
    sent = agent.send(dst=dst, port=PEER_PORT, flow=3, count=COUNT, size=size, rate=1000)
    assert sent["sent"] == COUNT and sent["errors"] == 0, sent
    got = traffic.wait_rx(3, COUNT, timeout=30)
    assert got.received == COUNT and got.lost == 0, got
    assert got.duplicated == 0 and got.corrupted == 0 and got.reordered == 0, got


def test_vlan_tagged_both_ways(dut: Any, traffic: Any, agent: Any) -> None:
    vid = 42
    dev = f"{dut.ifname}.{vid}"
    dut.sh(f"modprobe 8021q; ip link add link {dut.ifname} name {dev} type vlan id {vid}; "
           f"ip addr add 10.99.42.2/24 dev {dev}; ip link set {dev} up")
    try:
        out = dut.sh("ping -c 3 -i 0.2 -W 3 10.99.42.1", check=False, timeout=30)
        assert "3 received" in out, out
        flow = flow_in(4, 590, vlan=vid, src="10.99.42.1")
        per = receive(dut, traffic, agent, [flow_dst(flow, "10.99.42.2")], 300)
        assert_clean(per, 4, 300)
    finally:
        dut.sh(f"ip link del {dev}", check=False)


def flow_dst(flow: Any, dst: str) -> Any:
    import dataclasses

    return dataclasses.replace(flow, dst_ip=dst)


@pytest.mark.requires("rss")
def test_multiflow_spreads_over_rx_queues(dut: Any, traffic: Any, agent: Any) -> None:
    flows = [flow_in(10 + i, 590, src=f"10.99.0.{10 + i}") for i in range(8)]
    before = queue_rx_packets(dut.ethtool_stats())
    per = receive(dut, traffic, agent, flows, 200)
    for f in flows:
        assert_clean(per, f.id, 200)
    after = queue_rx_packets(dut.ethtool_stats())
    got = {q: after[q] - before.get(q, 0) for q in after}
    busy = [q for q, n in got.items() if n >= 8 * 200 // 10]
    assert len(busy) >= 2, f"8 flows landed on queues {got}"
