"""ethtool rings, coalescing and channels: valid changes apply and traffic
flows; invalid ones are refused with the old configuration intact."""

from __future__ import annotations

import re
from typing import Any

import pytest
from steps import assert_clean, flow_in, ping, receive, rings


@pytest.mark.requires("ring_set")
def test_ring_sizes(dut: Any, traffic: Any, agent: Any) -> None:
    r0 = rings(dut)
    mx, cur = r0["max"], r0["cur"]
    r = dut.guest.cmd(f"ethtool -G {dut.ifname} rx {mx['rx'] * 2}", check=False)
    assert r.exit_status != 0, "a ring above the maximum was accepted"
    assert rings(dut)["cur"] == cur
    new_rx = max(64, cur["rx"] // 2)
    dut.sh(f"ethtool -G {dut.ifname} rx {new_rx}")
    assert rings(dut)["cur"]["rx"] == new_rx
    dut.wait_carrier(1)
    ping(dut)
    assert_clean(receive(dut, traffic, agent, [flow_in(1)], 300), 1, 300)
    dut.sh(f"ethtool -G {dut.ifname} rx {cur['rx']}")
    assert rings(dut)["cur"] == cur
    dut.wait_carrier(1)
    ping(dut)


@pytest.mark.requires("coalesce_set")
def test_coalescing(dut: Any, traffic: Any) -> None:
    def rx_usecs() -> int:
        m = re.search(r"^rx-usecs:\s+(\d+)", dut.sh(f"ethtool -c {dut.ifname}"), re.M)
        assert m
        return int(m.group(1))

    old = rx_usecs()
    dut.sh(f"ethtool -C {dut.ifname} rx-usecs {old + 50}")
    assert rx_usecs() == old + 50
    ping(dut)
    # a parameter no NIC driver here declares: the core refuses it
    r = dut.guest.cmd(f"ethtool -C {dut.ifname} rx-usecs-high 100", check=False)
    assert r.exit_status != 0, "an unsupported coalescing parameter was accepted"
    assert rx_usecs() == old + 50
    dut.sh(f"ethtool -C {dut.ifname} rx-usecs {old}")


def channels(dut: Any) -> tuple[str, int]:
    """The kind of channel the driver sets (combined or rx) and its maximum."""
    text = dut.sh(f"ethtool -l {dut.ifname}")
    kind = "combined" if re.search(r"Combined:\s+[1-9]", text.split("Current")[0]) \
        and not re.search(r"^RX:\s+[1-9]", text.split("Current")[0], re.M) else "rx"
    mx = int(re.findall(rf"^{kind.capitalize() if kind == 'combined' else 'RX'}:\s+(\d+)",
                        text, re.M | re.I)[0])
    return kind, mx


@pytest.mark.requires("channels_set")
def test_channels(dut: Any, traffic: Any, agent: Any) -> None:
    kind, mx = channels(dut)
    r = dut.guest.cmd(f"ethtool -L {dut.ifname} {kind} {mx + 1}", check=False)
    assert r.exit_status != 0, "more channels than the maximum were accepted"
    dut.sh(f"ethtool -L {dut.ifname} {kind} 1")
    assert dut.rx_queues() == 1
    dut.wait_carrier(1)
    assert_clean(receive(dut, traffic, agent, [flow_in(1)], 300), 1, 300)
    dut.sh(f"ethtool -L {dut.ifname} {kind} {mx}")
    # as many Rx queues as channels asked for (a driver that keeps fewer
    # than it says has queues no frame reaches)
    assert dut.rx_queues() == mx, f"{kind} {mx} set, {dut.rx_queues()} Rx queues"
    dut.wait_carrier(1)
    ping(dut)


@pytest.mark.requires("channels_set")
def test_unload_with_one_channel(dut: Any, traffic: Any) -> None:
    """A driver frees what it allocated in any configuration, not only in
    the one it probed with: one channel, traffic, then unload (kmemleak and
    DMA-API debug judge it) and load again. The in-tree igb keeps the queue
    vectors of a larger channel count and frees at remove only as many as the
    current count."""
    kind, _ = channels(dut)
    dut.sh(f"ethtool -L {dut.ifname} {kind} 1")
    assert dut.rx_queues() == 1
    dut.wait_carrier(1)
    ping(dut)
    with dut.step("unload with one channel, leak check"):
        dut.unload()
    dut.setup()
    ping(dut)
