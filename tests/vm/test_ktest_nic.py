"""VM tests of drivers/ktest_nic that the generic suite (tests/nic) cannot
express: debugfs ring state, interrupt modes and EITR values, per-queue
counters and both Rx queues under RSS, the reset work, allocation-failure
injection, a small-ring Tx flood, reconfiguration under traffic, and the
vIOMMU and INTx variants.

Most tests use the plugin's guest of the e1000e:ktest_nic pair (shared with
tests/nic in the same session) and leave the driver unloaded for the next
one; the vIOMMU and INTx cases boot a machine of their own and judge its
console themselves. Traffic comes from the host's traffic.Peer on the NIC's
frame socket and the guest's flow agent.

Knob: KTNIC_CYCLES, link flap and in-guest load/unload cycles (default 10;
the driver issue's figure is 50).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.scenario import drivers, rss
from orchestrator.scenario import dut as dut_mod
from orchestrator.scenario import traffic as traffic_mod
from orchestrator.waiting import WaitTimeout, wait_until

CYCLES = int(os.environ.get("KTNIC_CYCLES", "10"))
DBG = "/sys/kernel/debug/ktest_nic"
SINK_PORT, PEER_PORT = 7100, 7101


# ---------------------------------------------------------------- helpers


def debugfs(dut: Any, name: str) -> dict[str, str]:
    text = dut.guest.read(f"{DBG}/{dut.bdf}/{name}", check=True)
    return dict(re.findall(r"^(\w+): (.*)$", text, re.M))


def ping(dut: Any, count: int = 3, size: int = 56, df: bool = False) -> None:
    opts = "-M do " if df else ""
    out = dut.sh(f"ping {opts}-c {count} -i 0.2 -W 3 -s {size} {dut_mod.PEER_IP4}",
                 check=False, timeout=60)
    assert f"{count} received" in out, out


def spread_flows(n: int, size: int = 590) -> list[Any]:
    """`n` flows from IPv4 sources that differ in many bits of three bytes."""
    flows = []
    for s in range(n):
        a, b, c = 100 + (s * 73 + 5) % 150, (s * 151 + 17) % 253, s % 250 + 1
        flows.append(traffic_mod.Flow(20 + s, f"10.{a}.{b}.{c}", dut_mod.GUEST_IP4, 40000 + s,
                                      SINK_PORT, size))
    return flows


def balanced_flows(dut: Any, n: int) -> tuple[list[Any], dict[int, int]]:
    """`n` flows that the driver's RSS key and table split evenly over the
    Rx queues, and the queue of each: ktest_nic reports all it takes to
    compute them (ethtool -x, rx-flow-hash)."""
    candidates = {f.id: f for f in spread_flows(8 * n)}
    pred = dut.rss_predict(list(candidates.values()))
    assert pred is not None, dut.sh(f"ethtool -x {dut.ifname}", check=False)
    ids = rss.balanced(pred, n)
    return [candidates[i] for i in ids], {i: pred[i] for i in ids}


def rx_in(dut: Any, traffic: Any, agent: Any, flows: list[Any], count: int,
          rate: int = 1000) -> None:
    """The peer sends `count` frames of each flow; all arrive whole."""
    per = traffic_mod.receive(traffic, agent, flows, count, SINK_PORT, dut.mac, rate)
    faults = [traffic_mod.flow_fault(per, f.id, count) for f in flows]
    assert not any(faults), "\n".join(f for f in faults if f)


def tx_out(traffic: Any, agent: Any, fid: int, count: int, size: int = 590) -> None:
    """The guest sends `count` datagrams to the peer; all arrive whole with
    a correct UDP checksum (the peer checks it: a bad one is 'corrupted')."""
    sent = agent.send(dst=dut_mod.PEER_IP4, port=PEER_PORT, flow=fid, count=count, size=size,
                      rate=1000)
    assert sent["sent"] == count and sent["errors"] == 0, sent
    got = traffic.wait_rx(fid, count, timeout=30)
    assert got.received == count and got.lost == 0, got
    assert got.duplicated == 0 and got.corrupted == 0, got


def queue_delta(before: dict[str, int], after: dict[str, int], what: str) -> dict[int, int]:
    return {q: after[f"{what}{q}_packets"] - before[f"{what}{q}_packets"] for q in (0, 1)}


def traffic_both_ways(dut: Any, traffic: Any, agent: Any, per_flow: int = 125,
                      n_tx: int = 500) -> dict[int, int]:
    """Ping, a 16-flow load in (each Rx queue gets the flows RSS sends it, Rx
    checksum offload must be used), a flow out with offloaded checksums."""
    ping(dut)
    assert traffic.echo_replies >= 3
    # resolve the peer before the Tx flow: nothing waits in the ARP queue
    before, snmp0 = dut.ethtool_stats(), dut.udp_snmp()
    flows, pred = balanced_flows(dut, 16)
    rx_in(dut, traffic, agent, flows, per_flow, rate=2000)
    after, snmp1 = dut.ethtool_stats(), dut.udp_snmp()
    got = queue_delta(before, after, "rx")
    n_rx = per_flow * len(flows)
    want = {q: per_flow * list(pred.values()).count(q) for q in (0, 1)}
    assert want[0] and want[1], pred
    # each queue gets exactly its flows' frames (a few strays: ND, ARP)
    assert all(want[q] <= got[q] <= want[q] + 10 for q in (0, 1)), \
        f"RSS: per-queue {got}, predicted {want}\n{debugfs(dut, 'irq')}"
    assert sum(after[f"rx{q}_csum_ok"] - before[f"rx{q}_csum_ok"] for q in (0, 1)) >= n_rx
    assert snmp1["InCsumErrors"] == snmp0["InCsumErrors"]

    tx_out(traffic, agent, 3, n_tx)
    final = dut.ethtool_stats()
    assert sum(final[f"tx{q}_csum_hw"] - after[f"tx{q}_csum_hw"] for q in (0, 1)) >= n_tx
    assert final["tx0_busy"] == 0 and final["tx1_busy"] == 0
    link = dut.link_stats()
    assert link["rx"]["packets"] >= final["rx0_packets"] + final["rx1_packets"]
    assert link["tx"]["packets"] >= final["tx0_packets"] + final["tx1_packets"]
    print(f"rx per queue {got} of {n_rx}; tx {n_tx} of {n_tx}")
    return got


def unload_quietly(dut: Any) -> None:
    if dut.loaded():
        dut.unload(check_leaks=False)


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def knic(dut: Any, cleanup: Any) -> Any:
    """The plugin's DUT, which must be ktest_nic; the next test gets the
    driver freshly loaded (rings, channels and coalescing at defaults)."""
    if dut.driver.name != "ktest_nic":
        pytest.skip(f"tests of ktest_nic; the pair's driver is {dut.driver.name}")
    cleanup(unload_quietly, dut)
    return dut


@pytest.fixture
def agent(knic: Any) -> Iterator[Any]:
    a = traffic_mod.GuestAgent(knic.guest)
    yield a
    a.stop()


@dataclasses.dataclass
class Own:
    """A machine of the test's own: DUT, peer and agent; console judged at the end."""
    dut: Any
    peer: Any
    agent: Any


@pytest.fixture
def own_machine(machine_factory: Any, artifacts: Any, tmp_path: Path) -> Iterator[Any]:
    from orchestrator import report
    from orchestrator.machine import profiles

    made: list[tuple[Any, int, Own]] = []

    def boot(profile: str, cmdline: tuple[str, ...] = ()) -> Own:
        prof = profiles.load_profile(profile)
        prof = dataclasses.replace(prof, cmdline=(*prof.cmdline, *cmdline))
        # restored from the snapshot of this exact command line when cached
        m = machine_factory(prof, run_dir=tmp_path / f"run-{profile}", snapshots=True)
        m.launch()
        d = dut_mod.Dut(m, prof.nics[0], drivers.resolve_driver("ktest_nic", artifacts))
        start = m.console.size
        d.setup()
        peer = traffic_mod.Peer(m.nic_sockets[d.nic.id], mac=dut_mod.PEER_MAC,
                                ips=(dut_mod.PEER_IP4, dut_mod.PEER_IP6),
                                subnet_v4=dut_mod.SUBNET4, subnet_v6=dut_mod.SUBNET6)
        own = Own(d, peer, traffic_mod.GuestAgent(d.guest))
        made.append((m, start, own))
        return own

    yield boot
    for m, start, own in made:
        own.agent.stop()
        own.peer.close()
        if m.alive():
            unload_quietly(own.dut)
        verdict = report.judge(m.console.data(start))
        assert verdict.passed, f"kernel reports: {verdict.failing}"


# ---------------------------------------------------------------- tests


def test_probe_debugfs_and_clean_unload(knic: Any, traffic: Any) -> None:
    dut = knic
    unload_quietly(dut)
    dut.setup()  # a fresh probe
    info = dut.sh(f"ethtool -i {dut.ifname}")
    assert "driver: ktest_nic" in info and f"bus-info: {dut.bdf}" in info, info
    assert debugfs(dut, "irq")["mode"] == "msix"
    assert dut.sh(f"ethtool {dut.ifname}").count("Link detected: yes") == 1
    for ring in ("tx0", "tx1", "rx0", "rx1"):
        d = debugfs(dut, ring)
        assert d["state"] == "up" and int(d["count"]) == 256, d
    assert int(debugfs(dut, "rx0")["in_flight"]) == 255
    ping(dut)
    tx0 = debugfs(dut, "tx0")
    assert int(tx0["in_flight"]) == 0, tx0  # everything sent was reclaimed
    dut.unload()  # kmemleak and the DMA-API error count are judged
    assert dut.sh(f"ls {DBG} 2>/dev/null | wc -l").strip() == "0"


def test_traffic_both_ways(knic: Any, traffic: Any, agent: Any) -> None:
    traffic_both_ways(knic, traffic, agent)


def test_traffic_both_ways_through_the_viommu(own_machine: Any) -> None:
    own = own_machine("e1000e-viommu")
    dut = own.dut
    dmesg = dut.sh("dmesg")
    assert "DMAR: IOMMU enabled" in dmesg or "DMAR: Intel(R) Virtualization" in dmesg
    assert "IRQ remapping" in dmesg or "Enabled IRQ remapping" in dmesg
    group = f"/sys/bus/pci/devices/{dut.bdf}/iommu_group"
    assert dut.sh(f"ls {group}/devices/").strip()
    assert dut.sh(f"cat {group}/type").strip() in ("DMA", "DMA-FQ")  # translated
    # every frame is a map and an unmap through the emulated IOMMU: slow
    # under TCG, so a smaller load than on the plain machine
    traffic_both_ways(dut, own.peer, own.agent, per_flow=60, n_tx=200)
    dut.unload()


def test_intx_fallback(own_machine: Any) -> None:
    """pci=nomsi: no MSI-X and no MSI, so the driver falls back to INTx."""
    own = own_machine("e1000e", cmdline=("pci=nomsi",))
    dut = own.dut
    irq = debugfs(dut, "irq")
    assert irq["mode"] == "intx" and irq["vectors"] == "1", irq
    traffic_both_ways(dut, own.peer, own.agent, per_flow=60, n_tx=200)
    dut.set_link(False)
    dut.wait_carrier(0, timeout=10)
    dut.set_link(True)
    dut.wait_carrier(1, timeout=15)
    ping(dut)


def test_ethtool_rings_channels_coalesce(knic: Any, traffic: Any, agent: Any) -> None:
    dut, i = knic, knic.ifname
    ring = dut.sh(f"ethtool -g {i}")
    assert re.search(r"RX:\s+4096", ring) and re.search(r"RX:\s+256", ring), ring
    for bad in ("rx 100", "rx 32", "tx 8192", "tx 60"):
        r = dut.guest.cmd(f"ethtool -G {i} {bad}", check=False)
        assert r.exit_status != 0, f"ethtool -G {bad} was accepted"
    dut.sh(f"ethtool -G {i} rx 512 tx 128")
    assert int(debugfs(dut, "rx0")["count"]) == 512 and int(debugfs(dut, "tx1")["count"]) == 128
    dut.wait_carrier(1)
    ping(dut)

    assert dut.guest.cmd(f"ethtool -L {i} rx 3", check=False).exit_status != 0
    dut.sh(f"ethtool -L {i} rx 1 tx 1")
    assert debugfs(dut, "rx1")["state"] == "absent" and debugfs(dut, "tx1")["state"] == "absent"
    assert sorted(dut.sh(f"ls /sys/class/net/{i}/queues/").split()) == ["rx-0", "tx-0"]
    dut.wait_carrier(1)
    before = dut.ethtool_stats()
    rx_in(dut, traffic, agent, spread_flows(4), 75)
    got = queue_delta(before, dut.ethtool_stats(), "rx")
    assert got[0] >= 300 and got[1] == 0, got
    dut.sh(f"ethtool -L {i} rx 2 tx 2")
    dut.wait_carrier(1)
    ping(dut)

    dut.sh(f"ethtool -C {i} rx-usecs 100 tx-usecs 200")
    co = dut.sh(f"ethtool -c {i}")
    assert re.search(r"rx-usecs:\s+100", co) and re.search(r"tx-usecs:\s+200", co), co
    irq = debugfs(dut, "irq")  # EITR in 256 ns units, rounded up
    assert "eitr=391 " in irq["vector0"] and "eitr=782 " in irq["vector2"], irq
    assert dut.guest.cmd(f"ethtool -C {i} rx-usecs 20000", check=False).exit_status != 0
    assert dut.guest.cmd(f"ethtool -C {i} rx-frames 8", check=False).exit_status != 0
    traffic_both_ways(dut, traffic, agent, per_flow=60, n_tx=200)


def test_jumbo_mtu_9000(knic: Any, traffic: Any, agent: Any) -> None:
    dut = knic
    dut.setup(mtu=9000)
    ping(dut, size=8000, df=True)  # jumbo both ways, unfragmented (the reply is jumbo)
    before = dut.ethtool_stats()
    flow = traffic_mod.Flow(5, dut_mod.PEER_IP4, dut_mod.GUEST_IP4, 5005, SINK_PORT, 9014)
    rx_in(dut, traffic, agent, [flow], 200, rate=500)
    after = dut.ethtool_stats()
    rxb = sum(after[f"rx{q}_bytes"] - before[f"rx{q}_bytes"] for q in (0, 1))
    assert rxb >= 200 * 9000, rxb
    tx_out(traffic, agent, 6, 100, size=9014)
    dut.setup(mtu=1500)
    ping(dut)


def test_link_flap(knic: Any, traffic: Any) -> None:
    dut = knic
    before = dut.ethtool_stats()["link_irq"]
    down, up = [], []
    for _ in range(CYCLES):
        dut.set_link(False)
        down.append(dut.wait_carrier(0, timeout=10))
        dut.set_link(True)
        up.append(dut.wait_carrier(1, timeout=15))
    print(f"link flap x{CYCLES}: carrier off after max {max(down):.2f}s, "
          f"on after max {max(up):.2f}s")
    ping(dut)
    assert dut.ethtool_stats()["link_irq"] - before >= 2 * CYCLES


def test_in_guest_load_unload_loop(knic: Any, traffic: Any) -> None:
    """insmod, up, rmmod back to back inside the guest (no SSH round trips
    between them: the link work and remove race as tightly as they can)."""
    dut = knic
    ko = drivers.ko_in_guest(dut.driver)
    assert dut.sh(f"test -f {ko} && echo ok", check=False).strip() == "ok", \
        "the plugin did not copy the module in"
    dut.unload(check_leaks=False)
    script = (f"for i in $(seq 1 {CYCLES}); do insmod {ko} || exit 1; "
              "d=$(ls /sys/bus/pci/drivers/ktest_nic/*/net/); ip link set $d up || exit 2; "
              "sleep 0.5; rmmod ktest_nic || exit 3; done")
    dut.sh(script, timeout=60 + 10 * CYCLES)
    dut.setup()
    ping(dut)


def test_reset_and_failed_reconfig_keep_working(knic: Any, traffic: Any, agent: Any) -> None:
    """The reset work (ndo_tx_timeout's path) restores traffic; a ring or
    channel change whose allocation fails leaves the old rings running."""
    dut, i = knic, knic.ifname
    dbg = f"{DBG}/{dut.bdf}"
    dut.sh(f"echo 1 > {dbg}/reset")
    wait_until(lambda: dut.ethtool_stats()["resets"] >= 1, 10, "the reset work")
    dut.wait_carrier(1)
    ping(dut)

    dut.sh(f"echo Y > {dbg}/inject_alloc_fail")
    r = dut.guest.cmd(f"ethtool -G {i} rx 1024 tx 1024", check=False)
    assert r.exit_status != 0, "ring change succeeded although allocation failed"
    assert debugfs(dut, "rx0")["count"] == "256" and debugfs(dut, "rx0")["state"] == "up"
    assert dut.carrier() == 1
    ping(dut)

    dut.sh(f"echo Y > {dbg}/inject_alloc_fail")
    r = dut.guest.cmd(f"ethtool -L {i} rx 1 tx 1", check=False)
    assert r.exit_status != 0, "channel change succeeded although allocation failed"
    assert debugfs(dut, "rx1")["state"] == "up" and debugfs(dut, "tx1")["state"] == "up"
    traffic_both_ways(dut, traffic, agent, per_flow=30, n_tx=100)


def test_tx_flood_small_ring(knic: Any, traffic: Any) -> None:
    """Unpaced guest Tx into a 64-descriptor ring: queues stop and wake,
    nothing is ever refused (busy), nothing times out, all is reclaimed."""
    dut = knic
    dut.sh(f"ethtool -G {dut.ifname} tx 64")
    dut.wait_carrier(1)
    ping(dut, count=1)
    before = dut.ethtool_stats()
    dut.sh(f"timeout 8 socat -u -b 1400 /dev/zero UDP-SENDTO:{dut_mod.PEER_IP4}:{PEER_PORT}"
           " || true", timeout=60)
    # the last completions are reclaimed by the next polls
    with contextlib.suppress(WaitTimeout):
        wait_until(lambda: all(debugfs(dut, f"tx{q}")["in_flight"] == "0" for q in (0, 1)),
                   10, "Tx rings drained")
    after = dut.ethtool_stats()
    sent = sum(queue_delta(before, after, "tx").values())
    assert sent > 1000, f"only {sent} packets sent"
    print("flood: sent", sent, {k: v - before[k] for k, v in after.items()
                               if re.match(r"tx\d_(stop|wake|restart|busy)", k)})
    for q in (0, 1):
        assert after[f"tx{q}_busy"] == 0 and after[f"tx{q}_timeouts"] == 0, after
        assert after[f"tx{q}_stop"] - after[f"tx{q}_restart"] <= after[f"tx{q}_wake"] + 1
        assert debugfs(dut, f"tx{q}")["in_flight"] == "0"
    ping(dut)


def test_unload_with_a_reset_pending(knic: Any, traffic: Any) -> None:
    """A reset, and once it is done a second one (which waits out the rate
    limit as delayed work, its timer armed), then the driver unloaded at
    once: remove must cancel the pending reset, or its timer is freed
    while active and fires on freed memory."""
    dut = knic
    resets = dut.ethtool_stats()["resets"]
    dut.sh(f"echo 1 > {DBG}/{dut.bdf}/reset")
    wait_until(lambda: dut.ethtool_stats()["resets"] > resets, 20.0, "the first reset done")
    dut.sh(f"echo 1 > {DBG}/{dut.bdf}/reset")
    dut.unload()
    dut.setup()
    ping(dut)


def test_reconfigure_under_traffic(knic: Any, traffic: Any, agent: Any) -> None:
    """Ring, channel, MTU and coalescing changes while frames arrive."""
    dut, i = knic, knic.ifname
    flow = traffic_mod.Flow(7, dut_mod.PEER_IP4, dut_mod.GUEST_IP4, 5007, SINK_PORT, 590)
    with traffic.background(flow, 1000, dst_mac=dut.mac, max_seconds=120):
        for change in ("-G {i} rx 128 tx 64", "-L {i} rx 1 tx 1", "-C {i} rx-usecs 300",
                       "-L {i} rx 2 tx 2", "-G {i} rx 256 tx 256", "-C {i} rx-usecs 50"):
            dut.sh("ethtool " + change.format(i=i))
        dut.sh(f"ip link set {i} mtu 9000; ip link set {i} mtu 1500")
    dut.wait_carrier(1)
    traffic_both_ways(dut, traffic, agent, per_flow=30, n_tx=100)
