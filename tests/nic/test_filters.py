"""Rx filtering: unicast to another MAC only in promiscuous mode, multicast
only for joined groups."""

from __future__ import annotations

import dataclasses
from typing import Any

from steps import flow_in

FOREIGN_MAC = "52:54:00:aa:bb:cc"
GROUP_IP, GROUP_MAC = "239.1.2.3", "01:00:5e:01:02:03"
N = 200


def rx_delta(dut: Any, send: Any) -> int:
    before = dut.link_stats()["rx"]["packets"]
    send()
    import time

    time.sleep(1.5)
    return int(dut.link_stats()["rx"]["packets"] - before)


def test_promiscuous(dut: Any, traffic: Any) -> None:
    def send() -> None:
        traffic.send_flow(flow_in(1), N, rate=1000, dst_mac=FOREIGN_MAC)

    assert rx_delta(dut, send) < N // 10, "frames for another MAC passed the filter"
    dut.sh(f"ip link set {dut.ifname} promisc on")
    try:
        assert rx_delta(dut, send) >= N, "promiscuous mode did not deliver them"
    finally:
        dut.sh(f"ip link set {dut.ifname} promisc off")
    assert rx_delta(dut, send) < N // 10, "promisc off did not restore the filter"


def test_multicast_join_leave(dut: Any, traffic: Any) -> None:
    flow = dataclasses.replace(flow_in(2), dst_ip=GROUP_IP)

    def send() -> None:
        traffic.send_flow(flow, N, rate=1000, dst_mac=GROUP_MAC)

    assert rx_delta(dut, send) < N // 10, "a group nobody joined was received"
    dut.sh(f"ip maddr add {GROUP_MAC} dev {dut.ifname}")
    try:
        assert rx_delta(dut, send) >= N, "a joined group was filtered"
    finally:
        dut.sh(f"ip maddr del {GROUP_MAC} dev {dut.ifname}")
    assert rx_delta(dut, send) < N // 10, "leaving the group did not restore the filter"
