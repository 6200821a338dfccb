"""Rx filtering: unicast to another MAC only in promiscuous mode, multicast
only for joined groups, unicast to the address the interface has now."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from steps import flow_in, ping, rx_counted

FOREIGN_MAC = "52:54:00:aa:bb:cc"
# locally administered; its multicast-hash bit (see below) is no group's
NEW_MAC = "02:6b:74:00:5a:a5"
CLOSED_PORT = 7009  # no socket in the guest: counted by the NIC, answered by ICMP
GROUP_IP, GROUP_MAC = "239.1.2.3", "01:00:5e:01:02:03"
N = 200
STRAYS = N // 10  # ARP/ND frames of the guest's own that may cross the count


@pytest.mark.requires("promisc")
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


@pytest.mark.requires("mac_set")
def test_mac_address_change(dut: Any, traffic: Any, agent: Any) -> None:
    """A new address while up: the NIC receives for it and no longer for the
    old one, the guest sends from it; and back."""
    # not to the sink: rx_counted's sentinels end its sink job
    flow = flow_in(3, dport=CLOSED_PORT)
    old = dut.address()

    def to(mac: str) -> Any:
        return lambda: traffic.send_flow(flow, N, rate=1000, dst_mac=mac)

    def check(now: str, before: str) -> None:
        assert dut.address() == now, f"the interface reads {dut.address()}, not {now}"
        # the guest sends from `now`: the peer learns it and answers there
        ping(dut)
        assert traffic.guest_mac == now, \
            f"the guest's frames come from {traffic.guest_mac}, not {now}"
        got = rx_counted(dut, traffic, agent, to(now), mac=now)
        assert got >= N, f"{got} of {N} frames for the interface's address {now} were received"
        got = rx_counted(dut, traffic, agent, to(before), mac=now)
        assert got < STRAYS, f"{got} of {N} frames for the old address {before} were received"

    # The link-local address made from the old MAC stays after a change, and
    # so does its solicited-node group (33:33:ff + the MAC's low 3 bytes).
    # QEMU's e1000e and igb look unicast frames up in the multicast hash too,
    # where that group and the old MAC share a bit: it would let the old
    # address in. The link-local address goes while the MAC is another.
    info = dut.guest.ip(f"-6 addr show dev {dut.ifname} scope link", json=True)
    link_local = [a["local"] for i in info for a in i.get("addr_info", ()) if "local" in a]
    dut.sh(f"ip -6 addr flush dev {dut.ifname} scope link")
    dut.set_address(NEW_MAC)
    try:
        with dut.step(f"address {NEW_MAC} (was {old})"):
            check(NEW_MAC, old)
    finally:
        dut.set_address(old)
        for a in link_local:
            dut.sh(f"ip -6 addr add {a}/64 dev {dut.ifname} scope link nodad")
    with dut.step(f"address {old} again"):
        check(old, NEW_MAC)
