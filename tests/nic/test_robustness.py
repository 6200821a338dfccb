"""What users do to a NIC at awkward moments: read counters of an interface
that is down, open it the instant it appears, transmit right after a driver
reset, change rings while transmitting. A correct driver shrugs all of it
off; each is also the scenario that exposes one class of driver bug."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from steps import PEER_PORT, assert_clean, flow_in, ping, receive

from orchestrator.scenario import dut as dut_mod


def test_counters_of_a_down_interface(dut: Any) -> None:
    """ndo_get_stats64 and ethtool -S while the rings do not exist."""
    dut.unload(check_leaks=False)
    dut.load()
    with dut.step("counters before the first open"):
        dut.link_stats()
        dut.ethtool_stats()
    dut.setup()
    with dut.step("counters while down"):
        dut.sh(f"ip link set {dut.ifname} down")
        dut.link_stats()
        dut.ethtool_stats()
    dut.setup()
    ping(dut)


def test_open_the_moment_the_interface_appears(dut: Any, traffic: Any) -> None:
    """`ip link set up` while the driver's probe may still be running."""
    dut.unload(check_leaks=False)
    mac = dut.mac
    loader = threading.Thread(target=dut.load, name="load")
    loader.start()
    try:
        with dut.step("open as soon as the interface exists"):
            dut.sh("for i in $(seq 400); do "
                   f"d=$(ip -o link | grep -i {mac} | cut -d: -f2 | tr -d ' '); "
                   "[ -n \"$d\" ] && ip link set \"$d\" up 2>/dev/null && break; "
                   "sleep 0.05; done", timeout=120)
    finally:
        loader.join(timeout=180)
    dut.setup()
    ping(dut)


@pytest.mark.requires("ethtool_reset")
def test_transmit_after_a_driver_reset(dut: Any, traffic: Any, agent: Any) -> None:
    for k in (1, 2):
        with dut.step(f"ethtool --reset {k} of 2"):
            dut.sh(f"ethtool --reset {dut.ifname} all")
            dut.wait_carrier(1)
        with dut.step(f"transmit after reset {k}"):
            sent = agent.send(dst=dut_mod.PEER_IP4, port=PEER_PORT, flow=40 + k, count=500,
                              size=590, rate=2000)
            got = traffic.wait_rx(40 + k, 500, timeout=30)
            assert sent["sent"] == 500 and got.received == 500, (sent, got)


@pytest.mark.requires("ring_set")
def test_ring_changes_while_transmitting(dut: Any, traffic: Any, agent: Any) -> None:
    """Rings resized three times while the guest floods the peer: in-flight
    packets are dropped with the old ring, and the queue must not stay
    stopped (BQL and the stop/wake state start over)."""
    ping(dut, count=1)
    result: dict[str, Any] = {}

    def flood() -> None:
        result["send"] = agent.send(dst=dut_mod.PEER_IP4, port=PEER_PORT, flow=50,
                                    count=30000, size=1514, rate=0)

    sender = threading.Thread(target=flood, name="flood")
    sender.start()
    try:
        for k, size in enumerate((128, 512, 256), 1):
            with dut.step(f"ring change {k} of 3 under a Tx flood (tx {size})"):
                dut.sh(f"ethtool -G {dut.ifname} tx {size}")
    finally:
        sender.join(timeout=300)
    dut.wait_carrier(1)
    with dut.step("transmit after the ring changes"):
        sent = agent.send(dst=dut_mod.PEER_IP4, port=PEER_PORT, flow=51, count=500,
                          size=590, rate=2000)
        got = traffic.wait_rx(51, 500, timeout=30)
        assert sent["sent"] == 500 and got.received == 500, (sent, got)
    assert_clean(receive(dut, traffic, agent, [flow_in(52)], 300), 52, 300)
