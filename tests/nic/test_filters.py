"""Rx filtering: unicast to another MAC only in promiscuous mode, multicast
only for joined groups."""

from __future__ import annotations

import dataclasses
from typing import Any

from steps import flow_in, rx_counted

FOREIGN_MAC = "52:54:00:aa:bb:cc"
GROUP_IP, GROUP_MAC = "239.1.2.3", "01:00:5e:01:02:03"
N = 200
STRAYS = N // 10  # ARP/ND frames of the guest's own that may cross the count


def test_promiscuous(dut: Any, traffic: Any, agent: Any) -> None:
    flow = flow_in(1)

    def foreign() -> None:
        traffic.send_flow(flow, N, rate=1000, dst_mac=FOREIGN_MAC)

    with dut.step("promisc off: frames for another MAC"):
        got = rx_counted(dut, traffic, agent, foreign)
        assert got < STRAYS, f"{got} of {N} frames for another MAC passed the filter"
    dut.sh(f"ip link set {dut.ifname} promisc on")
    try:
        with dut.step("promisc on: frames for another MAC"):
            got = rx_counted(dut, traffic, agent, foreign)
            assert got >= N, f"promiscuous mode delivered {got} of {N}"
    finally:
        dut.sh(f"ip link set {dut.ifname} promisc off")
    with dut.step("promisc off again"):
        got = rx_counted(dut, traffic, agent, foreign)
        assert got < STRAYS, f"promisc off did not restore the filter: {got} of {N} passed"


def test_multicast_join_leave(dut: Any, traffic: Any, agent: Any) -> None:
    flow = dataclasses.replace(flow_in(2), dst_ip=GROUP_IP)

    def group() -> None:
        traffic.send_flow(flow, N, rate=1000, dst_mac=GROUP_MAC)

    with dut.step("a group nobody joined"):
        got = rx_counted(dut, traffic, agent, group)
        assert got < STRAYS, f"{got} of {N} frames of a group nobody joined were received"
    dut.sh(f"ip maddr add {GROUP_MAC} dev {dut.ifname}")
    try:
        with dut.step("a joined group"):
            got = rx_counted(dut, traffic, agent, group)
            assert got >= N, f"a joined group was filtered: {got} of {N}"
    finally:
        dut.sh(f"ip maddr del {GROUP_MAC} dev {dut.ifname}")
    with dut.step("after leaving the group"):
        got = rx_counted(dut, traffic, agent, group)
        assert got < STRAYS, f"leaving the group did not restore the filter: {got} of {N}"
