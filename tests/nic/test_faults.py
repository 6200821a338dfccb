"""Faults under traffic: AER, function resets, hot-unplug, a device that
stops answering, SR-IOV changes and allocation failures swept over every
injectable call. Each test runs with traffic flowing, injects the fault,
then judges: recovery within a bound, traffic flowing again, the settings
as before, and (the plugin) no kernel report. Allocation failures come two
ways: swept per operation (fail-nth of the task), and as a window of page
allocation failures under Rx traffic (the refill in softirq). What a driver is expected to
survive is its declaration (faults: in its ktest.yaml); a fault it declares
it fails is a known limitation, reported as such.

Knob: KTEST_SWEEP=OP:N runs the allocation sweep of one operation at one N
(the replay of a failure; the failure message names both); OP:N- sweeps on
from N to the end (the rest of a sweep that stopped at N); OP:N-M sweeps
points N to M (a stretch of a long sweep: the zoo's probe error paths).
"""

from __future__ import annotations

import errno
import os
import re
from typing import Any

import pytest
from steps import (
    TRAFFIC,
    assert_clean,
    background_rx,
    flow_in,
    maxima_and_current,
    ping,
    receive,
    ring_sizes,
    rings,
    traffic_back,
)

from orchestrator.plugin.capabilities import NOTHING_TO_TEST
from orchestrator.scenario import drivers
from orchestrator.scenario import faults as faults_mod
from orchestrator.scenario.dut import DutError

RECOVERY_S = 60  # a recovery that takes longer is a failure
GROUP_MAC = "01:00:5e:01:02:05"
SWEEP = os.environ.get("KTEST_SWEEP", "")
# injectable calls one operation may make before we call it runaway: the
# in-tree igb's probe makes 374 (Linux 6.12, QEMU 10.0), ktest_nic's 237
SWEEP_MAX = 800
# a clean error from a failed allocation: ENOMEM, ENOBUFS (the networking
# core's own, e.g. inetdev_init under register_netdev), or an errno the
# driver maps a failed set-up step to
CLEAN_ERRNOS = {errno.ENOMEM, errno.ENOBUFS, errno.EINVAL, errno.EIO, errno.EBUSY,
                errno.ENODEV, errno.ETIMEDOUT}
# A sweep runs on the smallest rings (64 descriptors: the least ktest_nic,
# e1000e, igb and igbvf take): a per-buffer call (an Rx buffer's page, its
# DMA mapping) is one call site repeated per buffer.
SWEEP_RING = 64
HOLD_PORT, HOLD_FLOW = 7003, 91  # frames the stack keeps (an agent that reads nothing)


def settings(dut: Any) -> dict[str, Any]:
    """What a recovery must keep: MTU, multicast groups, rings, channels,
    the RSS key and table, and the VLAN devices on top."""
    i = dut.ifname
    link = dut.guest.ip(f"-d link show dev {i}", json=True)[0]
    out: dict[str, Any] = {"mtu": link["mtu"]}
    maddr = dut.sh(f"ip maddr show dev {i}", check=False)
    out["groups"] = sorted(set(re.findall(r"link\s+(\S+)", maddr)))
    for opt in ("-g", "-l", "-x"):
        r = dut.guest.cmd(f"ethtool {opt} {i}", check=False)
        out[opt] = r.stdout if r.ok else None
    out["vlans"] = sorted(ln.split("@")[0].split(": ")[-1] for ln in dut.sh(
        "ip -o link show type vlan", check=False).splitlines())
    return out


@pytest.fixture
def configured(dut: Any, cleanup: Any) -> dict[str, Any]:
    """The DUT moved off its defaults where that is cheap, so that a
    recovery that forgets a setting shows: a larger MTU, a multicast group,
    a VLAN device on top."""
    i = dut.ifname
    dut.sh(f"ip link set {i} mtu 2000")
    dut.sh(f"ip maddr add {GROUP_MAC} dev {i}")
    cleanup(dut.sh, f"ip maddr del {GROUP_MAC} dev {i}", 60.0, False)
    dut.sh(f"modprobe 8021q && ip link add link {i} name {i}.77 type vlan id 77")
    cleanup(dut.sh, f"ip link del {i}.77", 60.0, False)
    dut.wait_carrier(1)
    return settings(dut)


def assert_recovered(dut: Any, traffic: Any, agent: Any, before: dict[str, Any],
                     what: str) -> None:
    with dut.step(f"after {what}: carrier"):
        dut.wait_carrier(1, timeout=RECOVERY_S)
    with dut.step(f"after {what}: traffic"):
        # a driver may say carrier before it passes traffic again (a VF
        # waits for its PF): the recovery bound applies to traffic too
        if traffic_back(dut, RECOVERY_S) is None:
            pytest.fail(f"no traffic within {RECOVERY_S}s after {what} (no ping answered; "
                        f"{dut.link_summary()})")
        ping(dut)
        assert_clean(receive(dut, traffic, agent, [flow_in(3)], 300), 3, 300)
    with dut.step(f"after {what}: settings"):
        after = settings(dut)
        changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
        assert not changed, f"settings lost in {what}: {changed}"
    # DMA-API debug names a mapping the driver left behind only when the
    # driver lets go of the device, and a page_pool shows its lost pages
    # only once it is destroyed: unbind here, so a buffer the fault's
    # recovery path forgot fails this test and not the next one that unbinds
    # (the in-tree e1000e's jumbo refill leak was first blamed on the probe
    # sweep)
    with dut.step(f"after {what}: unbind and bind, no buffer left behind"):
        lost = dut.unbind_returns_pages()
        assert not lost, (f"page_pool: after {what} and an unbind, pages of {dut.driver.name}'s "
                          f"Rx page pools never came back (lost Rx pages): {lost}")
        dut.bind()
        dut.setup()


@pytest.mark.fault("aer_nonfatal")
def test_aer_nonfatal_under_traffic(dut: Any, traffic: Any, agent: Any, faults: Any,
                                    configured: dict[str, Any]) -> None:
    with background_rx(dut, traffic, agent):
        out = faults.aer("nonfatal")
    assert out.recovered, f"AER non-fatal: no 'device recovery successful': {out.lines[-8:]}"
    assert out.grew("aer_rootport_total_err_nonfatal") >= 1, out.counters_after
    assert_recovered(dut, traffic, agent, configured, "AER non-fatal")


@pytest.mark.fault("aer_fatal")
def test_aer_fatal_under_traffic(dut: Any, traffic: Any, agent: Any, faults: Any,
                                 configured: dict[str, Any]) -> None:
    with background_rx(dut, traffic, agent):
        out = faults.aer("fatal")
    assert out.recovered, f"AER fatal: no 'device recovery successful': {out.lines[-8:]}"
    assert out.grew("aer_rootport_total_err_fatal") >= 1, out.counters_after
    assert_recovered(dut, traffic, agent, configured, "AER fatal")


@pytest.mark.fault("aer_correctable")
def test_aer_correctable(dut: Any, traffic: Any, agent: Any, faults: Any) -> None:
    before = settings(dut)
    out = faults.aer("correctable")
    assert out.grew("aer_dev_correctable") >= 1, (out.counters_before, out.counters_after)
    assert out.recovered is None and not any("recovery" in ln for ln in out.lines), out.lines
    assert_recovered(dut, traffic, agent, before, "a correctable error")


def _reset_test(dut: Any, traffic: Any, agent: Any, faults: Any, configured: dict[str, Any],
                method: str) -> None:
    with background_rx(dut, traffic, agent):
        for k in (1, 2):
            with dut.step(f"{method} reset {k} of 2"):
                faults.function_reset(method)
                dut.wait_carrier(1, timeout=RECOVERY_S)
    assert_recovered(dut, traffic, agent, configured, f"{method} resets")


@pytest.mark.fault("bus_reset")
def test_bus_reset_under_traffic(dut: Any, traffic: Any, agent: Any, faults: Any,
                                 configured: dict[str, Any]) -> None:
    _reset_test(dut, traffic, agent, faults, configured, "bus")


@pytest.mark.fault("flr")
def test_flr_under_traffic(dut: Any, traffic: Any, agent: Any, faults: Any,
                           configured: dict[str, Any]) -> None:
    _reset_test(dut, traffic, agent, faults, configured, "flr")


# Linux 6.12's pciehp takes reset_lock inside pci_rescan_remove_lock when it
# removes a device, the reverse of its reset path: lockdep reports it on every
# hot-unplug, whatever the driver. It is the PCI core's, not the driver's, and
# the guest is replaced after it (lockdep is off from then on).
@pytest.mark.allow_reports(r"^possible deadlock in pciehp_unconfigure_device$")
@pytest.mark.fault("hot_unplug")
def test_hot_unplug_and_replug_under_traffic(dut: Any, traffic: Any, agent: Any,
                                             faults: Any) -> None:
    with background_rx(dut, traffic, agent):
        for k in (1, 2):
            with dut.step(f"unplug {k} of 2"):
                faults.unplug()
                assert not dut.interface_remains(), \
                    f"the interface {dut.ifname} outlived its device"
            with dut.step(f"replug {k} of 2"):
                faults.replug()
                dut.ifname = ""
                dut.wait_netdev(timeout=RECOVERY_S)
                dut.setup()
    assert_recovered(dut, traffic, agent, settings(dut), "hot-unplug and replug")


@pytest.mark.fault("dead_device")
def test_dead_device_is_noticed_and_released(dut: Any, traffic: Any, agent: Any,
                                             faults: Any) -> None:
    """Memory decoding off (under QEMU the registers then read as zeros, and
    writes vanish). The driver must notice (carrier off) before its Tx
    watchdog fires, not hang, let go of the device on unbind, and bind
    again once the device answers."""
    with background_rx(dut, traffic, agent):
        faults.mmio_off()
        with dut.step("the driver notices the dead device"):
            dut.wait_carrier(0, timeout=RECOVERY_S)
        with dut.step("unbind from a dead device"):
            dut.unbind()
        faults.mmio_on()
        with dut.step("bind after the device answers again"):
            dut.bind()
            dut.setup()
    assert_recovered(dut, traffic, agent, settings(dut), "a dead device")


def test_link_flap_storm_with_ring_changes(dut: Any, traffic: Any, agent: Any,
                                           configured: dict[str, Any]) -> None:
    """Twenty cable pulls back to back, then admin down/up mixed with ring
    changes (where the driver has them), all under traffic. What was set
    before (MTU, multicast group, VLAN, channels, RSS) is still set after,
    and the rings are the last ones asked for."""
    ring_set = dut.driver.info.capabilities >= {"ring_set"}
    sizes = ring_sizes(dut) if ring_set else (0, 0, 0)
    with background_rx(dut, traffic, agent):
        with dut.step("20 cable pulls"):
            for _ in range(20):
                dut.set_link(False)
                dut.set_link(True)
            dut.wait_carrier(1, timeout=RECOVERY_S)
        for k, rx in enumerate(sizes, 1):
            with dut.step(f"admin down/up {k} of 3" + (f", rx ring {rx}" if ring_set else "")):
                dut.sh(f"ip link set {dut.ifname} down")
                if ring_set:
                    dut.sh(f"ethtool -G {dut.ifname} rx {rx}")
                dut.sh(f"ip link set {dut.ifname} up")
                dut.wait_carrier(1, timeout=RECOVERY_S)
    if ring_set:
        assert rings(dut)["cur"]["rx"] == sizes[-1], rings(dut)
    # the stack, not the driver, drops the IPv6 addresses at admin down
    # (keep_addr_on_down is 0) and makes a link-local one at up, in its own
    # time: their solicited-node groups (33:33:ff:...) come and go with them
    def joined(groups: list[str]) -> list[str]:
        return [g for g in groups if not g.startswith("33:33:ff:")]
    now = settings(dut)["groups"]
    assert joined(now) == joined(configured["groups"]), \
        f"multicast groups after a flap storm: {now}, before: {configured['groups']}"
    kept = {k: v for k, v in configured.items()
            if k != "groups" and (k != "-g" or not ring_set)}
    assert_recovered(dut, traffic, agent, kept, "a flap storm")


# ---------------------------------------------------------------- SR-IOV


@pytest.mark.fault("sriov")
def test_vfs_come_and_go_under_pf_traffic(dut: Any, traffic: Any, agent: Any,
                                          faults: Any) -> None:
    before = settings(dut)
    with background_rx(dut, traffic, agent):
        for n in (2, 0, 4, 0):
            with dut.step(f"{n} VFs"):
                faults.set_vfs(dut.bdf, n)
                got = int(dut.guest.read(f"/sys/bus/pci/devices/{dut.bdf}/sriov_numvfs",
                                         check=True))
                assert got == n
    assert_recovered(dut, traffic, agent, before, "VF changes")


@pytest.mark.fault("sriov")
def test_pf_reset_and_unload_with_vfs(dut: Any, traffic: Any, agent: Any,
                                      faults: Any) -> None:
    """VFs enabled (and bound to igbvf): a bus reset of the PF, which keeps
    the PF's settings, then the PF driver unloaded and loaded again, all
    without a kernel report."""
    faults.set_vfs(dut.bdf, 2)
    dut.sh("modprobe igbvf", check=False)
    before = settings(dut)
    with background_rx(dut, traffic, agent):
        with dut.step("bus reset of the PF with VFs"):
            faults.function_reset("bus")
            dut.wait_carrier(1, timeout=RECOVERY_S)
    with dut.step("after the bus reset with VFs: settings"):
        after = settings(dut)
        changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
        assert not changed, f"settings lost in a bus reset with VFs: {changed}"
    with dut.step("PF driver unloaded with VFs enabled"):
        dut.sh("modprobe -r igbvf", check=False)
        dut.unload()
    dut.setup()
    assert_recovered(dut, traffic, agent, settings(dut), "a PF reset and reload with VFs")


# ---------------------------------------------------------------- allocation failures


def _ops(dut: Any) -> list[tuple[str, list[str], str]]:
    """(name, ktest-fault arguments, how to restore) per swept operation;
    the ring and channel changes go from the current settings to others
    and back."""
    caps = dut.driver.info.capabilities
    i = dut.ifname
    ops = [
        ("probe", ["write", f"{dut.bind_dir}/bind", dut.bind_dev], "bind"),
        ("open", ["up", i], "up"),
        ("mtu", ["mtu", i, "3000"], f"ip link set {i} mtu 1500"),
    ]
    if "ring_set" in caps:
        cur = maxima_and_current(dut, "-g")["cur"]
        rx, tx = cur["rx"], cur["tx"]
        ops.append(("rings", ["rings", i, str(rx * 2 if rx <= 1024 else rx // 2),
                              str(tx * 2 if tx <= 1024 else tx // 2)],
                    f"ethtool -G {i} rx {rx} tx {tx}"))
    if dut.driver.info.expectation("bus_reset") == "recovers":
        # the driver's reset_prepare/reset_done (or its recovery without
        # them) brings the rings back: the buffers are allocated again
        dev = f"/sys/bus/pci/devices/{dut.bdf}"
        ops.append(("reset", ["write", f"{dev}/reset", "1"],
                    f"echo default > {dev}/reset_method"))
    if "channels_set" in caps:
        cur = maxima_and_current(dut, "-l")["cur"]
        ops.append(("channels", ["channels", i, str(min(1, cur.get("rx", 0))),
                                 str(min(1, cur.get("tx", 0))),
                                 str(min(1, cur.get("combined", 0)))],
                    f"ethtool -L {i} " + " ".join(f"{k} {v}" for k, v in cur.items()
                                                  if k in ("rx", "tx", "combined") and v)))
    return ops


def _prepare(dut: Any, op: str) -> None:
    """The state each operation starts from."""
    if op == "probe":
        if dut.loaded() and dut.ifname:
            dut.unbind()
    elif op == "open":
        dut.sh(f"ip link set {dut.ifname} down")
    elif op == "reset":
        dut.sh(f"echo bus > /sys/bus/pci/devices/{dut.bdf}/reset_method")


def _restore(dut: Any, op: str, how: str) -> None:
    if op == "probe":
        if not dut.guest.cmd(f"[ -e {dut.bind_dir}/{dut.bind_dev} ]", check=False).ok:
            dut.bind()
        dut.ifname = ""
        dut.setup()
    elif op == "open":
        dut.setup()
    else:
        dut.sh(how, check=False)
        dut.setup()


def _vectors(dut: Any) -> int:
    """How many MSI/MSI-X vectors the DUT's PCI function has (0: INTx)."""
    out = dut.guest.cmd(f"ls /sys/bus/pci/devices/{dut.bdf}/msi_irqs 2>/dev/null | wc -l",
                        check=False).stdout
    return int(out.strip() or 0)


def _smallest_rings(dut: Any, cleanup: Any) -> None:
    """The DUT's rings at SWEEP_RING for the test (a driver that refuses
    keeps its own); the sizes it had come back afterwards."""
    cur = maxima_and_current(dut, "-g")["cur"]
    if cur.get("rx") == SWEEP_RING and cur.get("tx") == SWEEP_RING:
        return
    r = dut.guest.cmd(f"ethtool -G {dut.ifname} rx {SWEEP_RING} tx {SWEEP_RING}", check=False)
    if r.ok:
        cleanup(dut.sh, f"ethtool -G {dut.ifname} rx {cur['rx']} tx {cur['tx']}", 60.0, False)
        dut.wait_carrier(1)


def _sweep_range(op: str) -> tuple[int, int, bool]:
    """(first, last, one point only) for `op`'s sweep, from KTEST_SWEEP
    (OP:N one point, OP:N- from N on, OP:N-M points N to M; otherwise the
    whole sweep)."""
    if not SWEEP.startswith(f"{op}:"):
        return 1, SWEEP_MAX, False
    spec = SWEEP.split(":", 1)[1]
    first, dash, end = spec.partition("-")
    if not dash:
        return int(first), int(first), True
    return int(first), min(int(end), SWEEP_MAX) if end else SWEEP_MAX, False


def _scope(dut: Any, faults: Any) -> str:
    """Allocation failures armed and scoped to the driver under test; what
    the scope is (or why there is none)."""
    faults.arm_allocation_failures()
    ko = drivers.host_ko(dut.driver, dut.machine.kernel)
    return faults.scope_to_module(dut.driver.name, ko) if ko else \
        f"unscoped: no module file for {dut.driver.name}"


@pytest.mark.fault("alloc_failures")
@pytest.mark.parametrize("frame", [590, 8000], ids=["standard", "jumbo"])
def test_rx_refill_failures_under_traffic(dut: Any, traffic: Any, agent: Any, faults: Any,
                                          cleanup: Any, frame: int) -> None:
    """Under Rx traffic, with the stack holding what arrives (a socket
    that reads nothing: no buffer comes back for reuse), every page
    allocation the driver makes fails for a while, so a ring that refills
    only when a frame completes runs dry. When allocations work again and the stack
    lets go, Rx must come back by itself (no down/up) within the recovery
    bound, with nothing corrupted, no kernel report and no DMA-API error.
    The jumbo case spreads each frame over several buffers, so failures
    land in the middle of a chain."""
    if frame > 1500:
        if "jumbo" not in dut.driver.info.capabilities:
            pytest.skip(f"not declared: {dut.driver.name} declares no capability for jumbo")
        dut.sh(f"ip link set {dut.ifname} mtu 9000")
        cleanup(dut.sh, f"ip link set {dut.ifname} mtu 1500", 60.0, False)
        dut.wait_carrier(1)
    scope = _scope(dut, faults)
    if scope.startswith("unscoped"):
        # unscoped, the window would fail the guest's SSH and everything else
        pytest.skip(f"cannot confine allocation failures to the driver: {scope}")
    rx = maxima_and_current(dut, "-g")["cur"].get("rx", 256)
    before = settings(dut)
    dma0 = dut.dma_api_errors()
    ping(dut, count=1)
    hold = agent.hold(HOLD_PORT, duration=RECOVERY_S + 60)
    flow = flow_in(HOLD_FLOW, frame, sport=5101, dport=HOLD_PORT)
    with traffic.background(flow, max(1, round(500 * TRAFFIC)), dst_mac=dut.mac,
                            max_seconds=RECOVERY_S):
        with dut.step(f"Rx under traffic held by the stack, page allocations failing "
                      f"(ring of {rx})"):
            injected = faults.fail_page_allocations(4 * rx, timeout=10.0)
            assert injected, "no page allocation of the driver failed: is traffic reaching it?"
    held = agent.result(hold, stop=True)["held"]
    with dut.step(f"Rx resumes by itself after {injected} page allocation failures "
                  f"({held} frames were held)"):
        if traffic_back(dut, RECOVERY_S) is None:
            pytest.fail(f"Rx never resumed after {injected} page allocation failures under "
                        f"traffic (no ping answered within {RECOVERY_S}s): the Rx ring "
                        "ran dry and nothing refills it")
    assert dut.dma_api_errors() == dma0, "DMA-API errors grew under allocation failures"
    assert_recovered(dut, traffic, agent, before, "Rx allocation failures")


@pytest.mark.fault("alloc_failures")
@pytest.mark.parametrize("op", drivers.SWEEP_OPS)
def test_allocation_failure_sweep(dut: Any, traffic: Any, faults: Any, cleanup: Any,
                                  op: str) -> None:
    """Fail the 1st, 2nd, ... injectable allocation or DMA mapping of one
    driver operation until it makes no more: each time a clean error (or
    success), no kernel report, no DMA-API error, and the operation then
    works and traffic flows. Each point is judged with its restore, before the next one. The
    last step is judged by kmemleak too. A driver that answers a failure by
    falling back for good (MSI-X to MSI, say: fewer vectors afterwards) is
    reloaded before the next point, or the rest of the sweep would fail
    the fallback's allocations instead of the operation's."""
    ops = {name: (args, how) for name, args, how in _ops(dut)}
    if op not in ops:
        what = "surviving bus_reset" if op == "reset" else f"a capability for {op}"
        pytest.skip(f"not declared: {dut.driver.name} does not declare {what}")
    if op != "probe" and "ring_set" in dut.driver.info.capabilities:
        _smallest_rings(dut, cleanup)
        ops = {name: (args, how) for name, args, how in _ops(dut)}
    args, how = ops[op]
    faults.keep_checkers_out(dut.machine.kernel)  # first: the scope covers its mapping points
    scope = _scope(dut, faults)
    first, last, only = _sweep_range(op)
    dma0 = dut.dma_api_errors()
    console = dut.machine.console
    assert console is not None
    from orchestrator import report

    points = 0
    start = console.size
    vectors = _vectors(dut) if op != "probe" else 0  # probe: a new device each point
    for n in range(first, last + 1):
        _prepare(dut, op)
        if op == "probe":
            args = ["write", f"{dut.bind_dir}/bind", dut.bind_dev]
        with dut.step(f"{op} with fail-nth {n} (replay: KTEST_SWEEP={op}:{n})"):
            res = faults.nth(n, *args)
            where = f"fail-nth {n} in {op}"
            if res.site:
                where += f" (at {faults_mod.short_site(res.site, dut.driver.name)})"
            if res.injected:
                assert res.errno == 0 or res.errno in CLEAN_ERRNOS, \
                    f"{where}: unexpected error {res.errno} ({res.message})"
            if res.injected and res.errno == 0 and op not in ("probe", "open"):
                # it said it worked: traffic flows in the state it made, not
                # only once the restore has rebuilt it (probe and open are
                # restored by setting the interface up, nothing undone)
                try:
                    dut.wait_carrier(1)
                    ping(dut, count=1)
                except (DutError, AssertionError) as e:
                    raise AssertionError(f"{where}: the {op} reported success, yet before "
                                         f"the restore: {e}") from None
            try:
                _restore(dut, op, how)
            except DutError as e:
                if res.injected and res.errno == 0:
                    # the failure was swallowed: what the driver kept is unusable
                    raise AssertionError(f"{where}: the {op} reported success, yet {e}") \
                        from None
                raise
            ping(dut, count=1)
            dut.machine.mark(f"ktest: sweep {op} {n} done")
            bugs = report.judge(console.data(start)).failing
            assert not bugs, f"{where} (or the restore after it): {bugs[0].title}"
            assert dut.dma_api_errors() == dma0, f"{where}: DMA-API errors grew"
        if op != "probe" and res.injected and (now := _vectors(dut)) != vectors:
            with dut.step(f"{op}: {now} interrupt vectors after fail-nth {n}, {vectors} "
                          f"before: reload {dut.driver.name} (unload with leak check)"):
                def reload() -> str:
                    dut.unload()
                    dut.setup()
                    if "ring_set" in dut.driver.info.capabilities:
                        _smallest_rings(dut, cleanup)
                    return f"{_vectors(dut)} interrupt vectors again"
                faults.record(f"reload after fail-nth {n} ({vectors} interrupt vectors "
                              f"before, {now} after)", dut.ifname, reload)
                # a reloaded module's code may sit elsewhere: scope the failures
                # to where it is now, or the rest of the sweep counts none of its calls
                scope = _scope(dut, faults)
                vectors = _vectors(dut)
                bugs = report.judge(console.data(start)).failing
                assert not bugs, f"reload after fail-nth {n} in {op}: {bugs[0].title}"
        start = console.size
        points += res.injected
        if not res.injected:
            break
    else:
        if not only and last == SWEEP_MAX:
            pytest.fail(f"{op}: still injecting at fail-nth {SWEEP_MAX}: runaway allocations?")
    if only:
        what = f"replay of point {first}: {'injected' if points else 'nothing injected'}"
    elif last < SWEEP_MAX:
        what = f"{points} injection point{'s' * (points != 1)} in points {first}-{last}"
    else:
        what = f"{points} injection point{'s' * (points != 1)}" + \
            (f" from point {first} on" if first > 1 else "")
    what += f", {faults.exempted()} calls exempt (the kernel's checkers, cache refills)"
    faults.record(f"sweep {op} complete", dut.ifname, lambda: f"{what} ({scope})")
    with dut.step(f"{op}: {what}; unload with leak check"):
        dut.unload()
        dut.setup()
    ping(dut)
    quiet = op in dut.driver.info.allocates_nothing_in
    source = dut.driver.info.source or "its declaration"
    if quiet and points and first == 1:
        pytest.fail(f"{dut.driver.name} declares that {op} allocates nothing ({source}), "
                    f"yet {points} of its allocations failed in turn: the declaration is wrong")
    if not points:
        # a pass would claim a sweep that never failed anything
        if quiet and first == 1:
            pytest.skip(f"{NOTHING_TO_TEST} {dut.driver.name} declares that {op} allocates "
                        f"nothing ({source}), and none failed")
        pytest.fail(f"{op}: no allocation or DMA mapping of {dut.driver.name} failed from "
                    f"fail-nth {first} on: the sweep tested nothing (if {op} allocates "
                    f"nothing in {dut.driver.name}, declare allocates_nothing_in: [{op}])")
