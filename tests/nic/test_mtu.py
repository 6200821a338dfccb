"""MTU changes: valid ones work end to end, invalid ones are refused."""

from __future__ import annotations

from typing import Any

import pytest
from steps import assert_clean, assert_sent_clean, flow_in, ping, receive


def test_mtu_changes(dut: Any, traffic: Any) -> None:
    # downwards: below 1280 the kernel drops the interface's IPv6 addresses
    for mtu in (1500, 1280, 576):
        dut.sh(f"ip link set {dut.ifname} mtu {mtu}")
        dut.wait_carrier(1)
        ping(dut, count=2, size=mtu - 28, df=True)
        if mtu >= 1280:  # IPv6's minimum link MTU
            ping(dut, count=2, size=mtu - 48, v6=True, df=True)


def test_invalid_mtu_is_refused(dut: Any, traffic: Any) -> None:
    link = dut.guest.ip(f"-d link show dev {dut.ifname}", json=True)[0]
    lo, hi = int(link.get("min_mtu", 68)), int(link.get("max_mtu", 1500))
    for bad in (lo - 1, hi + 1):
        r = dut.guest.cmd(f"ip link set {dut.ifname} mtu {bad}", check=False)
        assert r.exit_status != 0, f"mtu {bad} accepted (range {lo}..{hi})"
    now = dut.guest.ip(f"link show dev {dut.ifname}", json=True)[0]["mtu"]
    assert now == 1500
    ping(dut)


@pytest.mark.requires("jumbo")
def test_jumbo_9000(dut: Any, traffic: Any, agent: Any) -> None:
    dut.sh(f"ip link set {dut.ifname} mtu 9000")
    dut.wait_carrier(1)
    ping(dut, count=3, size=8972, df=True)          # 9000-byte IP packets both ways
    ping(dut, count=2, size=8952, v6=True, df=True)
    per = receive(dut, traffic, agent, [flow_in(1, size=9014)], 200, rate=500)
    assert_clean(per, 1, 200)
    ping(dut, count=1)  # neighbour resolved before the flow starts
    sent = agent.send(dst=traffic.ips[0], port=7001, flow=2, count=200, size=9014, rate=500)
    assert_sent_clean(sent, traffic.wait_rx(2, 200, timeout=20), 200)
