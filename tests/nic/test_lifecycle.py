"""Driver life cycle under Rx traffic: load/unload, bind/unbind, link flaps,
admin down/up; what ethtool says of the driver and the link. Each cycle is a
step, so a failure names it."""

from __future__ import annotations

import re
from typing import Any

from steps import CYCLES, assert_clean, background_rx, flow_in, ping, receive


def test_load_unload_cycles_under_traffic(dut: Any, traffic: Any, agent: Any) -> None:
    with background_rx(dut, traffic, agent):
        for k in range(1, CYCLES):
            with dut.step(f"cycle {k} of {CYCLES}: unload"):
                dut.unload(check_leaks=False)
            with dut.step(f"cycle {k} of {CYCLES}: load and ping"):
                dut.setup()
                ping(dut, count=1)
        # the last unload is judged by kmemleak and the DMA-API error count
        with dut.step(f"cycle {CYCLES} of {CYCLES}: unload, leak check"):
            dut.unload()
        with dut.step("load after the cycles"):
            dut.setup()
    assert_clean(receive(dut, traffic, agent, [flow_in(1)], 300), 1, 300)


def test_bind_unbind_cycles_under_traffic(dut: Any, traffic: Any, agent: Any) -> None:
    with background_rx(dut, traffic, agent):
        for k in range(1, CYCLES + 1):
            with dut.step(f"cycle {k} of {CYCLES}: unbind"):
                dut.unbind()
                assert not dut.sh(f"ls {dut.bind_dir}/ | grep -Fx {dut.bind_dev} || true").strip()
            with dut.step(f"cycle {k} of {CYCLES}: bind and ping"):
                dut.bind()
                dut.setup()
                ping(dut, count=1)
    assert_clean(receive(dut, traffic, agent, [flow_in(1)], 300), 1, 300)


def test_link_down_up_under_traffic(dut: Any, traffic: Any, agent: Any) -> None:
    with background_rx(dut, traffic, agent):
        for k in range(1, CYCLES + 1):
            with dut.step(f"cycle {k} of {CYCLES}: cable out"):
                dut.set_link(False)
                dut.wait_carrier(0, timeout=10)
            with dut.step(f"cycle {k} of {CYCLES}: cable in"):
                dut.set_link(True)
                dut.wait_carrier(1, timeout=15)
    ping(dut)
    assert_clean(receive(dut, traffic, agent, [flow_in(1)], 300), 1, 300)


def ethtool_fields(text: str) -> dict[str, str]:
    """`Key: value` lines of ethtool's output (indented ones too)."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(": ")
        if sep:
            out[key] = value.strip()
    return out


def test_ethtool_reports_identity_and_link_state(dut: Any) -> None:
    """ethtool -i names the driver and its device; ethtool shows the link
    as it is: a speed and duplex while the cable is in, none while it is
    out (a speed left over from before is a classic stale report)."""
    info = ethtool_fields(dut.sh(f"ethtool -i {dut.ifname}"))
    assert info.get("driver") == dut.driver.name, f"ethtool -i says driver {info.get('driver')}"
    assert info.get("bus-info") in (dut.bdf, dut.bind_dev), \
        f"ethtool -i says bus-info {info.get('bus-info')}, the device is {dut.bdf}"
    with dut.step("cable in"):
        up = ethtool_fields(dut.sh(f"ethtool {dut.ifname}"))
        assert up.get("Link detected") == "yes", up
        speed = up.get("Speed", "Unknown!")
        # a virtio-net device has no speed unless QEMU is given one, and
        # igbvf on QEMU 10's igb VF says none either (measured; the PF's
        # link is up); every physical function here has one while it is up
        assert speed != "Unknown!" or dut.nic.model.startswith("virtio") or dut.is_vf, \
            f"cable in, and ethtool says no speed: {up}"
        if speed != "Unknown!":
            assert re.fullmatch(r"\d+Mb/s", speed), f"speed {speed!r}"
            assert up.get("Duplex") in ("Full", "Half"), f"duplex {up.get('Duplex')!r}"
    dut.set_link(False)
    try:
        with dut.step("cable out"):
            dut.wait_carrier(0, timeout=10)
            down = ethtool_fields(dut.sh(f"ethtool {dut.ifname}"))
            assert down.get("Link detected") == "no", down
            if speed != "Unknown!":
                assert down.get("Speed") == "Unknown!", \
                    f"cable out, and ethtool still says speed {down.get('Speed')}"
    finally:
        dut.set_link(True)
    with dut.step("cable in again"):
        dut.wait_carrier(1, timeout=15)
        assert ethtool_fields(dut.sh(f"ethtool {dut.ifname}")).get("Speed", "Unknown!") == speed


def test_admin_down_up_under_traffic(dut: Any, traffic: Any, agent: Any) -> None:
    # Found a ktest_nic bug (2026-11-24): the backlog queued while the
    # interface was down filled the ring before interrupts were enabled, and
    # Rx stalled for good.
    with background_rx(dut, traffic, agent, rate=1000):
        for k in range(1, 4):
            with dut.step(f"cycle {k} of 3: ip link set down, up"):
                dut.sh(f"ip link set {dut.ifname} down")
                dut.sh(f"ip link set {dut.ifname} up")
                dut.wait_carrier(1)
        dut.setup()
    # after the storm, a fresh flow arrives whole
    assert_clean(receive(dut, traffic, agent, [flow_in(2)], 300), 2, 300)
