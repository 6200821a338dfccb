"""XDP: programs attached with `ip link set DEV xdpdrv`, on every driver that
declares native XDP (capability "xdp"; "xdp_frags" for multi-buffer frames).

Every program counts, in its own map, the frames it saw, the frames it acted
on and their whole length; the tests compare those counts, the driver's own
counters where it has them, and what the peer and the guest's sinks got.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator
from typing import Any

import pytest
from steps import assert_clean, background_rx, flow_in, ping, receive, rings

from orchestrator.scenario import dut as dut_mod
from orchestrator.scenario import traffic as traffic_mod
from orchestrator.scenario import xdp
from orchestrator.waiting import WaitTimeout, wait_until

XDP_PORT = 7010
JUMBO = 9014
# frames of one buffer for drivers without multi-buffer XDP
SMALL = 1514


@contextlib.contextmanager
def attached(dut: Any, prog: str, port: int | None = None, ifindex: int | None = None,
             frags: bool = False) -> Iterator[xdp.XdpProgram]:
    p = xdp.load(dut, prog, port, ifindex, frags)
    try:
        p.attach()
        assert xdp.attached(dut), f"{dut.ifname}: ip link shows no XDP program after attaching"
        yield p
    finally:
        p.detach()
        p.unload()


def driver_counter(dut: Any, before: dict[str, int], pattern: str) -> int | None:
    """The summed change of the driver's `ethtool -S` counters whose name
    matches `pattern` (per-queue counters of one kind), None if it has none.
    A driver listing per-queue counters and their total (virtio_net's
    rx0_xdp_drops and rx_xdp_drops) is counted once, by its queues."""
    now = dut.ethtool_stats()
    keys = [k for k in now if re.search(pattern, k)]
    if not keys:
        return None
    per_queue = [k for k in keys if re.search(r"\d", k)]
    keys = per_queue or keys
    return sum(now[k] - before.get(k, 0) for k in keys)


def flow_to(fid: int, port: int, size: int, v6: bool = False) -> Any:
    return flow_in(fid, size, v6=v6, dport=port)


def use_up_rx_buffers(dut: Any, traffic: Any, prog: xdp.XdpProgram, flow: Any) -> xdp.XdpCounts:
    """Send one small frame of `flow` (its 5-tuple, so its queue) per Rx
    descriptor and wait until `prog` saw them all: the buffers that queue
    held before the program came (posted without XDP headroom, sized for the
    traffic before) are used up, so the frames after meet only buffers posted
    for the program. Those older buffers are test_xdp_attach_after_jumbo_traffic's
    subject (virtio_net drops a jumbo frame that lands in one), not the
    multi-buffer tests'. Returns the program's counts at the end."""
    n = rings(dut)["cur"].get("rx", 0) or 4096
    before = prog.counts()
    traffic.send_flow(dataclasses.replace(flow, size=80), n, rate=1000, dst_mac=dut.mac)
    return wait_until(lambda: (c := prog.counts()).seen >= before.seen + n and c, 30,
                      f"the program to see {n} small frames, one per Rx descriptor")


@pytest.mark.requires("xdp")
@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_xdp_pass_keeps_traffic_intact(dut: Any, traffic: Any, agent: Any, v6: bool) -> None:
    with attached(dut, "pass") as prog:
        per = receive(dut, traffic, agent, [flow_in(1, 1514, v6=v6), flow_in(2, 80, v6=v6)], 300)
        assert_clean(per, 1, 300)
        assert_clean(per, 2, 300)
        ping(dut, v6=v6)
        seen = prog.counts()
        assert seen.seen >= 600 and seen.matched == seen.seen, seen


@pytest.mark.requires("xdp")
@pytest.mark.parametrize("verdict", ["drop", "abort"])
def test_xdp_drops_exactly_the_matching_frames(dut: Any, traffic: Any, agent: Any,
                                               verdict: str) -> None:
    """UDP to XDP_PORT is dropped (XDP_DROP, or XDP_ABORTED), the rest passes."""
    before = dut.ethtool_stats()
    victims = agent.sink(port=XDP_PORT, duration=120, name="xdp-victims")
    with attached(dut, verdict, XDP_PORT) as prog:
        for fid, v6 in ((11, False), (12, True)):
            traffic.send_flow(flow_to(fid, XDP_PORT, 590, v6), 150, rate=1000, dst_mac=dut.mac)
        per = receive(dut, traffic, agent, [flow_in(13, 590)], 200)
        assert_clean(per, 13, 200)
        counts = prog.counts()
    got = agent.sink_result(victims, stop=True, timeout=30)
    assert got["received"] == 0, f"frames the program {verdict}s reached the stack: {got}"
    assert counts.matched == 300, f"the program matched {counts.matched} of 300 frames"
    name = {"drop": r"xdp_?drops?$", "abort": r"xdp_?abort"}[verdict]
    driver = driver_counter(dut, before, name)
    assert driver in (None, 300), f"the driver counted {driver} XDP {verdict}s of 300"


@pytest.mark.requires("xdp")
@pytest.mark.parametrize("how", ["tx", "redirect"])
@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_xdp_reflects_frames_intact(dut: Any, traffic: Any, v6: bool, how: str) -> None:
    """XDP_TX, or a redirect through a devmap back out of the same device
    (ndo_xdp_xmit): every frame comes back to the peer, addresses swapped,
    payload and checksums intact."""
    fid = 20 + 2 * v6 + (how == "redirect")
    target = xdp.ifindex(dut) if how == "redirect" else None
    with attached(dut, how, XDP_PORT, target) as prog:
        traffic.send_flow(flow_to(fid, XDP_PORT, 1000, v6), 300, rate=1000, dst_mac=dut.mac)
        got = traffic.wait_rx(fid, 300, timeout=30)
        counts = prog.counts()
    assert counts.matched == 300, counts
    assert got.received == 300 and got.corrupted == 0 and got.duplicated == 0, \
        f"{how}: the peer got back {got} of 300"


@pytest.mark.requires("xdp")
def test_xdp_attach_detach_under_traffic(dut: Any, traffic: Any, agent: Any) -> None:
    """Programs come and go while frames arrive: nothing is corrupted or
    duplicated, the ring keeps working, and each program sees traffic."""
    with background_rx(dut, traffic, agent, rate=400, max_seconds=300):
        for i in range(10):
            with dut.step(f"cycle {i + 1} of 10"):
                prog = xdp.load(dut, "pass") if i % 2 else xdp.load(dut, "drop", XDP_PORT)
                try:
                    prog.attach()
                    wait_until(lambda p=prog: p.counts().seen > 0, 20,
                               "the attached program to see a frame")
                finally:
                    prog.detach()
                    prog.unload()
    assert not xdp.attached(dut)
    per = receive(dut, traffic, agent, [flow_in(30, 1514)], 300)
    assert_clean(per, 30, 300)


@pytest.mark.requires("xdp", "jumbo")
def test_xdp_mtu_change_with_a_program(dut: Any, traffic: Any, agent: Any) -> None:
    """A program that cannot see multi-buffer frames: a jumbo MTU is refused
    while it is attached, or handled (frames intact); it is refused at a
    jumbo MTU, or attaches and frames stay intact. Never corrupted."""
    i = dut.ifname
    with attached(dut, "pass") as prog:
        r = dut.guest.cmd(f"ip link set {i} mtu 9000", check=False)
        mtu = int(dut.guest.read(f"/sys/class/net/{i}/mtu", check=True))
        if r.ok:
            assert mtu == 9000
            dut.wait_carrier(1)
            per = receive(dut, traffic, agent, [flow_in(40, JUMBO)], 100, rate=300)
            try:
                assert_clean(per, 40, 100)
            except AssertionError as e:
                raise AssertionError(
                    f"MTU 9000 accepted with a program attached that cannot see "
                    f"multi-buffer frames, then jumbo frames lost ({e})") from None
            c = prog.counts()
            assert c.seen >= 100
            assert c.linear == c.bytes, \
                f"after the MTU change the program saw only {c.linear} of {c.bytes} bytes " \
                f"of its frames: multi-buffer frames for a program that cannot see them"
        else:
            assert mtu == 1500, f"MTU 9000 refused, yet the MTU is now {mtu}"
        per = receive(dut, traffic, agent, [flow_in(41, mtu + 14)], 100, rate=300)
        assert_clean(per, 41, 100)
    dut.sh(f"ip link set {i} mtu 9000")
    dut.wait_carrier(1)
    prog = xdp.load(dut, "pass")
    try:
        ok, why = prog.attach(check=False)
        if ok:
            per = receive(dut, traffic, agent, [flow_in(42, JUMBO)], 100, rate=300)
            assert_clean(per, 42, 100)
            c = prog.counts()
            assert c.linear == c.bytes, \
                f"a program without multi-buffer support saw only {c.linear} of {c.bytes} " \
                f"bytes of its frames: a multi-buffer frame was handed to a program that " \
                f"cannot see all of it"
        else:
            assert not xdp.attached(dut)
            assert why, "a refused program should come with a reason (extack)"
            per = receive(dut, traffic, agent, [flow_in(43, JUMBO)], 100, rate=300)
            assert_clean(per, 43, 100)
    finally:
        prog.detach()
        prog.unload()


@pytest.mark.requires("xdp_frags", "jumbo")
def test_xdp_multibuffer_jumbo(dut: Any, traffic: Any, agent: Any) -> None:
    """At MTU 9000 a multi-buffer program sees every fragment of a jumbo frame
    (its length, counted with bpf_xdp_get_buff_len), sends them back intact
    with XDP_TX, and passes them intact to the stack."""
    dut.sh(f"ip link set {dut.ifname} mtu 9000")
    dut.wait_carrier(1)
    with attached(dut, "drop", XDP_PORT, frags=True) as prog:
        flow = flow_to(50, XDP_PORT, JUMBO)
        c0 = use_up_rx_buffers(dut, traffic, prog, flow)
        traffic.send_flow(flow, 100, rate=300, dst_mac=dut.mac)
        wait_until(lambda: prog.counts().matched >= c0.matched + 100, 30,
                   "100 jumbo frames dropped")
        c = prog.counts()
    matched, length = c.matched - c0.matched, c.bytes - c0.bytes
    assert matched == 100 and length == 100 * JUMBO, \
        f"the program saw {length} bytes of {matched} frames (want {100 * JUMBO} of 100)"
    with attached(dut, "tx", XDP_PORT, frags=True):
        traffic.send_flow(flow_to(51, XDP_PORT, JUMBO), 100, rate=300, dst_mac=dut.mac)
        got = traffic.wait_rx(51, 100, timeout=30)
    assert got.received == 100 and got.corrupted == 0 and got.duplicated == 0, got
    with attached(dut, "pass", frags=True):
        per = receive(dut, traffic, agent, [flow_in(52, JUMBO), flow_in(53, JUMBO, v6=True)],
                      100, rate=300)
    assert_clean(per, 52, 100)
    assert_clean(per, 53, 100)


@pytest.mark.requires("xdp_frags", "jumbo")
def test_xdp_attach_after_jumbo_traffic(dut: Any, traffic: Any, agent: Any) -> None:
    """Jumbo frames that come after a multi-buffer program was attached all
    reach it, although the Rx ring was filled for jumbo traffic before the
    program came: a driver that keeps the buffers it posted then (without
    XDP headroom, as long as that traffic asked) must still carry every
    frame that lands in them to the program, or post new ones on attach."""
    dut.sh(f"ip link set {dut.ifname} mtu 9000")
    dut.wait_carrier(1)
    flow = flow_to(55, XDP_PORT, JUMBO)
    # the stack takes them first (a sink on the program's port, so the same
    # queue): the ring refills for jumbo frames, with no program
    per = traffic_mod.receive(traffic, agent, [flow], 300, XDP_PORT, dut.mac, rate=300)
    assert_clean(per, 55, 300)
    before = dut.snapshot()
    with attached(dut, "drop", XDP_PORT, frags=True) as prog:
        traffic.send_flow(flow, 100, rate=300, dst_mac=dut.mac, first_seq=300)
        # sent by now: a frame the program is to see comes within moments
        with contextlib.suppress(WaitTimeout):
            wait_until(lambda: prog.counts().matched >= 100, 10, "100 jumbo frames dropped")
        c = prog.counts()
    drops = {k: n for k, n in dut.counter_delta(before).items() if re.search("drop|err", k)}
    assert c.matched == 100 and c.bytes == 100 * JUMBO, \
        f"{100 - c.matched} of 100 jumbo frames sent after the program was attached " \
        f"never reached it ({c.bytes} bytes seen of {100 * JUMBO}): Rx buffers posted " \
        f"before the program? Drop and error counters that moved: {drops or 'none'}"


@pytest.mark.requires("xdp")
def test_xdp_jumbo_reconfiguration_under_traffic(dut: Any, traffic: Any, agent: Any) -> None:
    """The data-corruption scenario (run it on a vIOMMU profile): jumbo frames
    where the driver has multi-buffer XDP, a program attached, traffic both
    ways, and ring, MTU, channel changes and a reset while it flows. No frame
    may arrive corrupted or twice; afterwards every frame arrives intact.
    Kernel reports (DMAR faults, KASAN, DMA-API) fail the test by themselves."""
    # what the driver declares it has: a declared step that fails is a finding
    declared = set(dut.driver.info.capabilities)
    frags = {"xdp_frags", "jumbo"} <= declared
    mtu, size = (9000, JUMBO) if frags else (1500, SMALL)
    i = dut.ifname
    dut.sh(f"ip link set {i} mtu {mtu}")
    dut.wait_carrier(1)
    ping(dut, count=1)
    changes: list[tuple[str, str, str]] = []
    ring, chans = dut.ring_change(), dut.channel_change()
    if "ring_set" in declared:
        assert ring is not None, "ring_set is declared, yet ethtool -g shows no ring sizes"
        changes.append(("ring sizes", f"ethtool -G {i} {ring[0]}", f"ethtool -G {i} {ring[1]}"))
    if frags:
        changes.append(("MTU", f"ip link set {i} mtu 1500", f"ip link set {i} mtu 9000"))
    if "channels_set" in declared:
        assert chans is not None, "channels_set is declared, yet ethtool -l shows one queue"
        changes.append(("channels", f"ethtool -L {i} {chans[0]}", f"ethtool -L {i} {chans[1]}"))
    if "ethtool_reset" in declared:
        changes.append(("reset", f"ethtool --reset {i} mac", "true"))
    with attached(dut, "pass", frags=frags) as prog:
        out = agent.send_background(dut_mod.PEER_IP4, 7001, 60, 1_000_000, size, rate=200,
                                    max_seconds=600, name="xdp-tx-background")
        with background_rx(dut, traffic, agent, rate=200, max_seconds=600, size=size):
            for what, there, back in changes:
                for cmd in (there, back):
                    with dut.step(f"{what}: {cmd}"):
                        dut.sh(cmd, timeout=120)
                        dut.wait_carrier(1, timeout=30)
                        # under this load a single echo may be dropped (no Rx
                        # buffer); one answered within 20 s shows the path works
                        wait_until(lambda: "bytes from" in dut.sh(
                            f"ping -c 1 -W 2 {dut_mod.PEER_IP4}", check=False), 20,
                            "an echo reply after the change")
        sent = agent.result(out, stop=True, timeout=60)
        back_got = traffic.rx(60)
        assert back_got.corrupted == 0 and back_got.duplicated == 0, \
            f"guest to peer during the changes: {back_got} of {sent['sent']} sent"
        assert back_got.received > 0, f"guest to peer: nothing of {sent['sent']} arrived"
        per = receive(dut, traffic, agent, [flow_in(61, size)], 300, rate=300)
        assert_clean(per, 61, 300)
        res = agent.send(dst=dut_mod.PEER_IP4, port=7001, flow=62, count=300, size=size,
                         rate=300)
        assert res["sent"] == 300
        got = traffic.wait_rx(62, 300, timeout=30)
        assert got.received == 300 and got.corrupted == 0 and got.duplicated == 0, got
        assert prog.counts().seen > 0
