"""Driver life cycle under Rx traffic: load/unload, bind/unbind, link flaps,
admin down/up. Each cycle is a step, so a failure names it."""

from __future__ import annotations

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
