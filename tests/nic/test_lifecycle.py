"""Driver life cycle: load/unload, bind/unbind, link flaps, admin down/up."""

from __future__ import annotations

import threading
import time
from typing import Any

from steps import CYCLES, assert_clean, background_rx, flow_in, ping, receive


def test_load_unload_cycles_under_traffic(dut: Any, traffic: Any, agent: Any) -> None:
    with background_rx(dut, traffic):
        for _ in range(CYCLES - 1):
            dut.unload(check_leaks=False)
            dut.setup()
            ping(dut, count=1)
        # the last unload is judged by kmemleak and the DMA-API error count
        dut.unload()
    dut.setup()
    assert_clean(receive(dut, traffic, agent, [flow_in(1)], 300), 1, 300)


def test_bind_unbind_cycles_under_traffic(dut: Any, traffic: Any, agent: Any) -> None:
    with background_rx(dut, traffic):
        for _ in range(CYCLES):
            dut.unbind()
            assert not dut.sh(f"ls {dut.bind_dir}/ | grep -Fx {dut.bind_dev} || true").strip()
            dut.bind()
            dut.setup()
            ping(dut, count=1)
    assert_clean(receive(dut, traffic, agent, [flow_in(1)], 300), 1, 300)


def test_link_down_up_under_traffic(dut: Any, traffic: Any, agent: Any) -> None:
    with background_rx(dut, traffic):
        for _ in range(CYCLES):
            dut.set_link(False)
            dut.wait_carrier(0, timeout=10)
            dut.set_link(True)
            dut.wait_carrier(1, timeout=15)
    ping(dut)
    assert_clean(receive(dut, traffic, agent, [flow_in(1)], 300), 1, 300)


def test_admin_down_up_under_traffic(dut: Any, traffic: Any, agent: Any) -> None:
    # Found a ktest_nic bug (2026-11-24): the backlog queued while the
    # interface was down filled the ring before interrupts were enabled, and
    # Rx stalled for good.
    flow = flow_in(1)
    sender = threading.Thread(target=traffic.send_flow, args=(flow, 3000),
                              kwargs={"rate": 1000, "dst_mac": dut.mac})
    sender.start()
    try:
        for _ in range(3):
            dut.sh(f"ip link set {dut.ifname} down")
            time.sleep(0.3)
            dut.sh(f"ip link set {dut.ifname} up")
            dut.wait_carrier(1)
    finally:
        sender.join()
    dut.setup()
    # after the storm, a fresh flow arrives whole
    assert_clean(receive(dut, traffic, agent, [flow_in(2)], 300), 2, 300)
