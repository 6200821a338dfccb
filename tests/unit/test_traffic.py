"""Traffic peer and flow agent, without a VM.

A connected pair of UDP sockets on 127.0.0.1 plays the wire: the host end goes
to a :class:`Peer`, the test plays the guest on the other end with frames built
by scapy (or with a second Peer). The guest agent runs as real subprocesses
talking UDP on 127.0.0.1.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw
from scapy.utils import rdpcap
from wire import udp_pair

from orchestrator.machine.guest import CmdResult
from orchestrator.scenario import flow_agent, traffic
from orchestrator.scenario.flow_agent import (
    FlowRx,
    check_payload,
    make_payload,
    stamp_offsets,
)
from orchestrator.scenario.traffic import Flow, GuestAgent, Peer, internet_checksum

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "orchestrator" / "scenario" / "flow_agent.py"
GMAC = "52:54:00:12:34:56"
PMAC = "52:54:00:99:00:01"
BCAST = "ff:ff:ff:ff:ff:ff"


def xchg(guest: socket.socket, *frames: Packet | bytes) -> Ether:
    """Send frames from the guest; the first frame that comes back."""
    for f in frames:
        guest.send(bytes(f))
    return Ether(guest.recv(65536))


def checksums_ok(raw: bytes) -> bool:
    """scapy recomputes every checksum of the frame to the same bytes."""
    pkt = Ether(raw)
    for layer in pkt.iterpayloads():
        for name in ("chksum", "cksum"):
            if name in layer.fields:
                delattr(layer, name)
    return bytes(pkt) == raw


def gping4(dst: str, payload: bytes, vlan: int | None = None, src: str = "10.99.0.2") -> Packet:
    l2: Packet = Ether(src=GMAC, dst=PMAC)
    if vlan is not None:
        l2 = l2 / Dot1Q(vlan=vlan)
    return l2 / IP(src=src, dst=dst) / ICMP(id=0x1234, seq=7) / Raw(payload)


def gping6(dst: str, payload: bytes, vlan: int | None = None) -> Packet:
    l2: Packet = Ether(src=GMAC, dst=PMAC)
    if vlan is not None:
        l2 = l2 / Dot1Q(vlan=vlan)
    return l2 / IPv6(src="fd99::2", dst=dst) / ICMPv6EchoRequest(id=0x4321, seq=9, data=payload)


def ns(target: str, src: str = "fd99::2", vlan: int | None = None) -> Packet:
    l2: Packet = Ether(src=GMAC, dst="33:33:ff:00:00:01")
    if vlan is not None:
        l2 = l2 / Dot1Q(vlan=vlan)
    pkt = l2 / IPv6(src=src, dst="ff02::1:ff00:1", hlim=255) / ICMPv6ND_NS(tgt=target)
    if src != "::":
        pkt = pkt / ICMPv6NDOptSrcLLAddr(lladdr=GMAC)
    return pkt


# ---------------------------------------------------------------- wire format and FlowRx

def test_payload_round_trip_and_determinism() -> None:
    p = make_payload(5, 1234, 100)
    assert len(p) == 116 and p[:4] == b"KTFL"
    assert check_payload(p) == (5, 1234, True)
    other = make_payload(5, 99, 100)  # the seq is stamped at the body's end only
    assert other[16:112] == p[16:112] and other[112:] == (99).to_bytes(4, "big")
    assert make_payload(6, 1234, 100)[16:] != p[16:]
    assert check_payload(b"hello world, not a flow") is None
    assert check_payload(b"KTFL") is None
    flipped = bytearray(p)
    flipped[50] ^= 1
    assert check_payload(bytes(flipped)) == (5, 1234, False)
    assert check_payload(p[:-1]) == (5, 1234, False)  # truncated
    bad_crc = bytearray(p)
    bad_crc[12] ^= 0xFF
    assert check_payload(bytes(bad_crc)) == (5, 1234, False)


@pytest.mark.parametrize("first,end", [(60, 2108), (2108, 4156), (4156, 6204), (6204, 8252),
                                       (1010, 2038), (8252, 8974)])
def test_a_buffer_from_an_earlier_datagram_is_corruption(first: int, end: int) -> None:
    """A jumbo datagram whose receive buffers after the first came from an
    earlier datagram of the same flow (a page recycled too early, a stale
    descriptor): the bytes of the pattern are the same, the seq stamps are
    not."""
    body_len = 8958
    assert len(stamp_offsets(body_len)) == 9
    now, old = make_payload(7, 70_000, body_len), make_payload(7, 69_744, body_len)
    assert check_payload(now) == (7, 70_000, True)
    # payload bytes first:end in a receive buffer that held the old datagram
    assert check_payload(now[:first] + old[first:end] + now[end:]) == (7, 70_000, False)
    # the last buffer, however short
    assert check_payload(now[:-3] + old[-3:]) == (7, 70_000, False)


def test_flowrx_in_order_loss_dup_reorder_corrupt() -> None:
    rx = FlowRx()
    for s in range(10):
        rx.add(s, 100)
    assert (rx.received, rx.lost, rx.duplicated, rx.reordered, rx.corrupted) == (10, 0, 0, 0, 0)
    assert rx.bytes == 1000 and rx.max_seq == 9

    rx = FlowRx()
    for s in [0, 1, 2, 4, 5, 6, 8, 9]:  # 3 and 7 lost
        rx.add(s, 1)
    assert rx.lost == 2 and rx.reordered == 0

    rx = FlowRx()
    for s in [0, 1, 3, 2, 4, 4, 1, 6, 5]:
        rx.add(s, 1)
    # 2 and 5 came late; the second 4 and the second 1 are duplicates, not reorders
    assert (rx.received, rx.duplicated, rx.reordered, rx.lost) == (9, 2, 2, 0)

    rx = FlowRx()
    rx.add(0, 1)
    rx.add(1, 1, ok=False)  # corrupted and never received intact: lost too
    rx.add(2, 1)
    rx.add(3, 1, ok=False)
    rx.add(3, 1)  # retransmitted intact
    assert (rx.corrupted, rx.lost, rx.received, rx.duplicated) == (2, 1, 5, 0)

    rx = FlowRx(expected=20)
    for s in range(10):
        rx.add(s, 1)
    assert rx.lost == 10  # the tail counts when the expected count is known
    assert rx.lost_of(10) == 0 and rx.lost_of(15) == 5
    assert rx.as_dict() == {"received": 10, "lost": 10, "duplicated": 0, "reordered": 0,
                            "corrupted": 0, "bytes": 10, "max_seq": 9}


def test_flowrx_memory_bound_and_snapshot() -> None:
    rx = FlowRx(capacity=64)
    for s in range(200):
        rx.add(s, 1)
    rx.add(10, 1)  # tracked: a duplicate
    rx.add(150, 1)  # past the capacity: cannot tell, counted as new
    assert len(rx._seen) <= 8
    assert rx.duplicated == 1 and rx.lost == 0 and rx.received == 202
    big = FlowRx()
    big.add(5_000_000, 1)
    assert len(big._seen) <= (1 << 24) // 8
    snap = rx.snapshot(expected=300)
    assert snap.lost == 300 - rx.distinct and snap.received == 202
    with pytest.raises(RuntimeError):
        snap.add(1, 1)


def test_internet_checksum_matches_scapy() -> None:
    from scapy.utils import checksum

    for data in [b"", b"\x00", b"\x00\x00", b"\xff\xff", b"abc", bytes(range(256)) * 3,
                 b"\x12\x34\xed\xcb"]:
        assert internet_checksum(data) == (checksum(data) if data.strip(b"\0") else 0xFFFF)


# ---------------------------------------------------------------- ARP / ND / echo

def test_arp_replies_and_learning(wire: tuple[Peer, socket.socket]) -> None:
    peer, guest = wire

    def who_has(pdst: str, psrc: str = "10.99.0.2", vlan: int | None = None) -> Packet:
        l2: Packet = Ether(src=GMAC, dst=BCAST)
        if vlan is not None:
            l2 = l2 / Dot1Q(vlan=vlan)
        return l2 / ARP(op=1, hwsrc=GMAC, psrc=psrc, pdst=pdst)

    r = xchg(guest, who_has("10.99.0.1"))
    assert r[Ether].dst == GMAC and r[Ether].src == PMAC and len(bytes(r)) == 60
    assert r[ARP].op == 2 and r[ARP].hwsrc == PMAC and r[ARP].psrc == "10.99.0.1"
    assert r[ARP].hwdst == GMAC and r[ARP].pdst == "10.99.0.2"
    assert peer.guest_mac == GMAC and "10.99.0.2" in peer.guest_ipv4

    # Unanswered: the asker's own address, a probe, outside the subnet, the broadcast
    # address, an address the guest uses; the sentinel after them is answered first.
    guest.send(bytes(Ether(src=GMAC, dst=PMAC) / IP(src="10.99.0.3", dst="10.99.0.1") / UDP()))
    r = xchg(guest, who_has("10.99.0.2"), who_has("10.99.0.9", psrc="0.0.0.0"),
             who_has("10.98.0.1"), who_has("10.99.0.255"), who_has("10.99.0.3"),
             who_has("10.99.0.42"))
    assert r[ARP].psrc == "10.99.0.42"
    assert peer.guest_ipv4 == {"10.99.0.2", "10.99.0.3"}

    r = xchg(guest, who_has("10.99.0.10", vlan=42))
    assert r[Dot1Q].vlan == 42 and r[ARP].psrc == "10.99.0.10" and r[ARP].hwsrc == PMAC
    assert peer.arp_replies == 3


def test_neighbor_solicitation(wire: tuple[Peer, socket.socket]) -> None:
    peer, guest = wire
    r = xchg(guest, ns("fd99::1"))
    assert r[Ether].dst == GMAC and r[Ether].src == PMAC
    assert r[IPv6].src == "fd99::1" and r[IPv6].dst == "fd99::2" and r[IPv6].hlim == 255
    na = r[ICMPv6ND_NA]
    assert (na.R, na.S, na.O, na.tgt) == (0, 1, 1, "fd99::1")
    assert r[ICMPv6NDOptDstLLAddr].lladdr == PMAC
    assert checksums_ok(bytes(r))
    assert "fd99::2" in peer.guest_ipv6

    # DAD (source ::), outside the subnet and the guest's own address are not answered
    r = xchg(guest, ns("fd99::2"), ns("fd99::7", src="::"), ns("fd98::1"), ns("fd99::10"))
    assert r[ICMPv6ND_NA].tgt == "fd99::10"
    r = xchg(guest, ns(peer.link_local, vlan=7))
    assert r[Dot1Q].vlan == 7 and r[ICMPv6ND_NA].tgt == peer.link_local
    assert checksums_ok(bytes(r)) and peer.nd_replies == 3


@pytest.mark.parametrize("vlan", [None, 100])
@pytest.mark.parametrize("size", [56, 8972])  # 8972 + 8 + 20 = a 9000-byte IP packet
def test_icmp_echo(wire: tuple[Peer, socket.socket], vlan: int | None, size: int) -> None:
    peer, guest = wire
    payload = bytes(i & 0xFF for i in range(size))
    r = xchg(guest, gping4("10.99.0.33", payload, vlan))
    assert r[IP].src == "10.99.0.33" and r[IP].dst == "10.99.0.2" and r[Ether].dst == GMAC
    assert r[ICMP].type == 0 and (r[ICMP].id, r[ICMP].seq) == (0x1234, 7)
    assert r[Raw].load == payload
    assert checksums_ok(bytes(r))
    if vlan is not None:
        assert r[Dot1Q].vlan == vlan
    if size == 8972:
        assert len(bytes(r)) == 9014 + (4 if vlan else 0)
    assert peer.echo_replies == 1


@pytest.mark.parametrize("vlan", [None, 100])
@pytest.mark.parametrize("size", [56, 8952])  # 8952 + 8 + 40 = a 9000-byte IPv6 packet
def test_icmpv6_echo(wire: tuple[Peer, socket.socket], vlan: int | None, size: int) -> None:
    peer, guest = wire
    payload = bytes((i * 7) & 0xFF for i in range(size))
    r = xchg(guest, gping6("fd99::1", payload, vlan))
    assert r[IPv6].src == "fd99::1" and r[IPv6].dst == "fd99::2"
    assert r[ICMPv6EchoReply].data == payload
    assert (r[ICMPv6EchoReply].id, r[ICMPv6EchoReply].seq) == (0x4321, 9)
    assert checksums_ok(bytes(r))
    if vlan is not None:
        assert r[Dot1Q].vlan == vlan


def test_bad_icmp_checksum_and_junk_are_not_answered(wire: tuple[Peer, socket.socket]) -> None:
    peer, guest = wire
    bad = bytearray(bytes(gping4("10.99.0.1", b"x" * 32)))
    bad[14 + 20 + 2] ^= 0xFF
    r = xchg(guest, bytes(bad), b"\x00" * 5, bytes(Ether(src=GMAC, type=0x88B5) / b"hello"),
             gping4("10.99.0.1", b"ok"))
    assert r[Raw].load == b"ok"
    assert peer.malformed == 2 and peer.other_in >= 1 and peer.echo_replies == 1


def test_pcap_has_both_directions(tmp_path: Path) -> None:
    host, guest = udp_pair()
    guest.settimeout(2.0)
    with Peer(host, mac=PMAC, pcap=tmp_path / "x.pcap") as peer:
        xchg(guest, Ether(src=GMAC, dst=BCAST) / ARP(psrc="10.99.0.2", pdst="10.99.0.1"))
        xchg(guest, gping4("10.99.0.1", b"z" * 3000))
    host.close()
    guest.close()
    pkts = rdpcap(str(tmp_path / "x.pcap"))
    assert len(pkts) == 4 == peer.frames_in + peer.frames_out
    assert [p[Ether].src for p in pkts] == [GMAC, PMAC, GMAC, PMAC]
    assert pkts[3][ICMP].type == 0 and len(pkts[3][Raw].load) == 3000


# ---------------------------------------------------------------- sending flows

FLOW_CASES = [
    (4, None, 60), (4, None, 1514), (4, None, 9014),
    (6, None, 78), (6, None, 1514), (6, None, 9014),
    (4, 5, 64), (4, 5, 1518), (4, 5, 9018), (6, 5, 1518),
]


@pytest.mark.parametrize("family,vlan,size", FLOW_CASES)
def test_send_flow_frames_are_valid(wire: tuple[Peer, socket.socket], family: int,
                                    vlan: int | None, size: int) -> None:
    peer, guest = wire
    src, dst = ("10.99.0.1", "10.99.0.2") if family == 4 else ("fd99::1", "fd99::2")
    flow = Flow(3, src, dst, sport=1111, dport=2222, size=size, vlan=vlan)
    # first_seq crosses 2**16, where both checksum words change
    res = peer.send_flow(flow, 40, rate=0, dst_mac=GMAC, first_seq=0xFFFF - 20)
    assert res.frames == 40 and res.failed == 0
    for i in range(40):
        raw = guest.recv(65536)
        assert len(raw) == size
        assert checksums_ok(raw), f"seq {0xFFFF - 20 + i}"
        pkt = Ether(raw)
        assert pkt[UDP].sport == 1111 and pkt[UDP].dport == 2222 and pkt[UDP].chksum != 0
        assert pkt[Ether].dst == GMAC and pkt[Ether].src == PMAC
        if vlan is not None:
            assert pkt[Dot1Q].vlan == vlan
        assert check_payload(bytes(pkt[UDP].payload)) == (3, 0xFFFF - 20 + i, True)


@pytest.mark.parametrize("family", [4, 6])
def test_send_flow_checksum_zero_becomes_ffff(wire: tuple[Peer, socket.socket],
                                              family: int) -> None:
    peer, guest = wire
    src, dst = ("10.99.0.1", "10.99.0.2") if family == 4 else ("fd99::1", "fd99::2")
    flow = Flow(1, src, dst, size=200)
    tpl = Ether(peer.flow_template(flow, GMAC))
    c0 = tpl[UDP].chksum
    # the seq's words, once in the header and once per stamp, cancel the
    # template's checksum: the sum is -0, sent as 0xffff
    copies = 1 + len(stamp_offsets(flow.payload_len - 16))
    assert copies == 2
    seq = next(lo for lo in range(1, 0x10000) if (copies * lo - c0) % 0xFFFF == 0)
    peer.send_flow(flow, 3, dst_mac=GMAC, first_seq=seq - 1)
    raws = [guest.recv(65536) for _ in range(3)]
    assert Ether(raws[1])[UDP].chksum == 0xFFFF
    assert all(checksums_ok(r) for r in raws)


def test_send_flow_pacing_and_bounds(wire: tuple[Peer, socket.socket]) -> None:
    peer, guest = wire
    flow = Flow(2, "10.99.0.1", "10.99.0.2", size=100)
    res = peer.send_flow(flow, 200, rate=1000, dst_mac=GMAC)
    assert res.frames == 200 and 0.1 <= res.seconds <= 0.4
    got = 0
    guest.settimeout(0.5)
    while True:
        try:
            guest.recv(65536)
            got += 1
        except TimeoutError:
            break
    assert got == 200
    fast = peer.send_flow(flow, 2000, rate=0, dst_mac=GMAC)
    assert fast.frames == 2000 and fast.seconds < 2.0
    with pytest.raises(ValueError):
        peer.send_flow(flow, 10_000_001, dst_mac=GMAC)
    with pytest.raises(ValueError):
        peer.send_flow(flow, -1, dst_mac=GMAC)
    with pytest.raises(ValueError, match="MAC"):
        Peer.send_flow(peer, flow, 1)  # the guest's MAC is not known yet
    assert peer.send_frames([b"\x01" * 60] * 3, rate=100).frames == 3


@pytest.mark.parametrize("kw", [
    {"size": 60, "src_ip": "fd99::1", "dst_ip": "fd99::2"},  # no room for the header
    {"size": 59}, {"size": 9019}, {"vlan": 4095},
    {"src_ip": "10.99.0.1", "dst_ip": "fd99::2"}, {"sport": 0}, {"id": 70000},
])
def test_flow_validation(kw: dict[str, Any]) -> None:
    args: dict[str, Any] = {"id": 1, "src_ip": "10.99.0.1", "dst_ip": "10.99.0.2", **kw}
    with pytest.raises(ValueError):
        Flow(**args)


def test_flow_rx_from_a_second_peer_and_corruption(wire: tuple[Peer, socket.socket]) -> None:
    peer, guest = wire
    with Peer(guest, mac=GMAC, ips=("10.99.0.2", "fd99::2")) as other:
        f4 = Flow(10, "10.99.0.2", "10.99.0.1", size=1514)
        f6 = Flow(11, "fd99::2", "fd99::1", size=9014, vlan=3)
        other.send_flow(f4, 300, rate=0, dst_mac=PMAC)
        other.send_flow(f6, 100, rate=0, dst_mac=PMAC)
        rx4 = peer.wait_rx(10, 300, timeout=5)
        rx6 = peer.wait_rx(11, 100, timeout=5)
        assert (rx4.received, rx4.lost, rx4.corrupted, rx4.duplicated) == (300, 0, 0, 0)
        assert rx4.bytes == 300 * f4.payload_len
        assert (rx6.received, rx6.lost, rx6.corrupted) == (100, 0, 0)

        # loss, duplicate, reorder
        for seq in [0, 1, 3, 2, 2, 6]:
            other.send_flow(Flow(12, "10.99.0.2", "10.99.0.1", size=80), 1, dst_mac=PMAC,
                            first_seq=seq)
        rx = peer.wait_rx(12, 6, timeout=5)
        assert (rx.received, rx.duplicated, rx.reordered, rx.lost, rx.max_seq) == (6, 1, 1, 2, 6)
        assert peer.wait_rx(12, 8, timeout=0.05).lost == 3  # seq 7 too, when 8 were expected

        # corruption: a flipped body byte (UDP checksum now wrong), a wrong UDP checksum
        # on an intact payload, a payload crc wrong under a valid UDP checksum, and
        # a UDP length that disagrees with the IP length
        tpl = bytearray(other.flow_template(Flow(13, "10.99.0.2", "10.99.0.1", size=200), PMAC))
        flipped = bytearray(tpl)
        flipped[-5] ^= 0x40
        badsum = bytearray(tpl)
        badsum[14 + 20 + 6] ^= 0x01
        badcrc = Ether(bytes(tpl))
        load = bytearray(badcrc[Raw].load)
        load[12] ^= 0xFF
        badcrc[Raw].load = bytes(load)
        del badcrc[UDP].chksum
        badlen = bytearray(tpl)
        struct.pack_into("!H", badlen, 14 + 20 + 4, 150)
        nosum = bytearray(tpl)
        struct.pack_into("!H", nosum, 14 + 20 + 6, 0)  # IPv4: no checksum is fine
        other.send_frames([bytes(tpl), flipped, badsum, bytes(badcrc), badlen, nosum])
        rx = peer.wait_rx(13, 6, timeout=5)
        assert rx.received == 6 and rx.corrupted == 4 and rx.duplicated == 1
        assert peer.flows().keys() == {10, 11, 12, 13}
        assert other.stats()["frames_out"] == 300 + 100 + 6 + 6
    peer.reset()
    assert peer.rx(10).received == 0 and peer.frames_in == 0 and peer.guest_mac == GMAC


def test_resolve_learns_the_guest_mac(wire: tuple[Peer, socket.socket]) -> None:
    peer, guest = wire
    with Peer(guest, mac=GMAC, ips=("10.99.0.2", "fd99::2"), subnet_v4="10.99.0.2/32",
              subnet_v6="fd99::2/128") as other:
        assert peer.resolve("10.99.0.2", timeout=2) == GMAC
        assert peer.resolve("fd99::2", timeout=2) == GMAC
        assert other.arp_replies == 1 and other.nd_replies == 1
        assert peer.neighbors == {"10.99.0.2": GMAC, "fd99::2": GMAC}
        with pytest.raises(TimeoutError):
            peer.resolve("10.99.0.77", timeout=0.2)


# ---------------------------------------------------------------- the guest agent

def free_port() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s4:
            s4.bind(("0.0.0.0", 0))
            port = s4.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s6:
                    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    s6.bind(("::", port))
            except OSError as e:
                if e.errno == 98:  # EADDRINUSE
                    continue
            return int(port)
    raise RuntimeError("no free port")


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def agent(*args: str | float, flags: tuple[str, ...] = ("-I",), timeout: float = 20
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *flags, str(AGENT), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd="/")


class Background:
    """An agent mode running as a subprocess, started once it printed READY."""

    def __init__(self, *args: str | float) -> None:
        self.proc = subprocess.Popen([sys.executable, "-I", str(AGENT), *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd="/")
        assert self.proc.stderr is not None
        ready = threading.Event()
        lines: list[str] = []

        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                lines.append(line)
                if line.strip() == "READY":
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        assert ready.wait(10) and any(x.strip() == "READY" for x in lines), lines

    def result(self, stop: bool = False, timeout: float = 10) -> dict[str, Any]:
        if stop:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0
        data = json.loads(out)
        assert isinstance(data, dict)
        return data


def test_agent_sink_and_send_v4() -> None:
    port = free_port()
    sink = Background("sink", "--port", port, "--duration", 10, "--idle", 0.5)
    r = agent("send", "--dst", "127.0.0.1", "--port", port, "--flow", 7, "--count", 500,
              "--size", 1514, "--rate", 0)
    assert r.returncode == 0, r.stderr
    sent = json.loads(r.stdout)
    assert sent["sent"] == 500 and sent["failed"] == 0 and sent["payload_len"] == 1472
    # -S -I approximates the minimal interpreter: no site, no environment
    r = agent("send", "--dst", "127.0.0.1", "--port", port, "--flow", 8, "--count", 100,
              "--size", 60, "--rate", 500, flags=("-S", "-I"))
    assert r.returncode == 0, r.stderr
    paced = json.loads(r.stdout)
    assert paced["sent"] == 100 and 0.1 <= paced["seconds"] <= 0.4
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"not a flow", ("127.0.0.1", port))
        bad = bytearray(make_payload(9, 0, 100))
        bad[-1] ^= 1
        s.sendto(bytes(bad), ("127.0.0.1", port))
        for seq in (1, 1, 0):
            s.sendto(make_payload(9, seq, 100), ("127.0.0.1", port))
    res = sink.result()
    f7, f8, f9 = res["flows"]["7"], res["flows"]["8"], res["flows"]["9"]
    assert f7 == {"received": 500, "lost": 0, "duplicated": 0, "reordered": 0, "corrupted": 0,
                  "bytes": 500 * 1472, "max_seq": 499}
    assert f8["received"] == 100 and f8["bytes"] == 100 * 18 and f8["lost"] == 0
    assert (f9["corrupted"], f9["duplicated"], f9["reordered"], f9["lost"]) == (1, 1, 1, 0)
    assert res["other"] == 1 and res["received"] == 604


@pytest.mark.skipif(not has_ipv6(), reason="no IPv6 on this host")
def test_agent_sink_v6_count_stops_early() -> None:
    port = free_port()
    sink = Background("sink", "--port", port, "--duration", 10, "--count", 50)
    t0 = time.monotonic()
    r = agent("send", "--dst", "::1", "--port", port, "--flow", 1, "--count", 50,
              "--size", 78)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["payload_len"] == 16
    res = sink.result()
    assert time.monotonic() - t0 < 5
    assert res["flows"]["1"]["received"] == 50


def test_agent_echo_and_sigterm() -> None:
    port = free_port()
    echo = Background("echo", "--port", port, "--duration", 20)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        for i in range(3):
            s.sendto(b"ping %d" % i + bytes(8000), ("127.0.0.1", port))
            assert s.recv(65536) == b"ping %d" % i + bytes(8000)
    res = echo.result(stop=True)
    assert res["received"] == 3 and res["echoed"] == 3 and res["errors"] == 0


def test_agent_hold_reads_nothing_until_stopped() -> None:
    port = free_port()
    hold = Background("hold", "--port", port, "--duration", 20, "--rcvbuf", 1 << 20)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for seq in range(40):
            s.sendto(make_payload(3, seq, 1000), ("127.0.0.1", port))
    assert hold.proc.poll() is None, "hold ended before it was stopped"
    # what it read while running is not counted: only what it still held
    res = hold.result(stop=True)
    assert res["held"] == 40 and res["seconds"] < 20


def test_agent_bad_arguments() -> None:
    r = agent("send", "--dst", "::1", "--port", 9, "--flow", 1, "--count", 1, "--size", 60)
    assert r.returncode == 2 and "at least 78" in r.stderr
    assert agent("sink").returncode == 2
    assert agent("send", "--dst", "1.2.3.4", "--port", 0, "--flow", 1, "--count", 1,
                 "--size", 100).returncode == 2


# os: argparse imports it, so it is there wherever the agent can run at all
ALLOWED = {"__future__", "argparse", "errno", "os", "select", "signal", "socket", "struct",
           "sys", "time", "zlib", "collections.abc"}


def test_agent_imports_only_minimal_stdlib() -> None:
    tree = ast.parse(AGENT.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            names.add(node.module or "")
    assert "json" not in names and not any(n.startswith("orchestrator") for n in names)
    assert names <= ALLOWED, names - ALLOWED
    # collections.abc is imported for the type checker only
    assert "Callable" in AGENT.read_text().split("if TYPE_CHECKING:")[1].split("\n\n")[0]


def test_agent_runs_on_debians_minimal_stdlib(tmp_path: Path) -> None:
    """Only the files of python3.11-minimal + libpython3.11-minimal, when installed."""
    exe = Path("/usr/bin/python3.11")
    if not exe.exists() or shutil.which("dpkg-query") is None:
        pytest.skip("Debian's python3.11 is not installed")
    r = subprocess.run(["dpkg-query", "-L", "libpython3.11-minimal", "python3.11-minimal"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("python3.11-minimal is not installed")
    home = tmp_path / "usr"
    for line in r.stdout.splitlines():
        src = Path(line)
        if line.startswith("/usr/lib/python3.11/") and src.is_file():
            dst = home / src.relative_to("/usr")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    env = {"PYTHONHOME": str(home), "PATH": os.environ.get("PATH", "")}
    probe = subprocess.run([str(exe), "-S", "-s", "-c", "import json"], env=env,
                           capture_output=True, text=True)
    assert probe.returncode != 0  # the copy really lacks json
    port = free_port()
    sink = subprocess.Popen([str(exe), "-S", "-s", str(AGENT), "sink", "--port", str(port),
                             "--duration", "10", "--count", "20"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert sink.stderr is not None
    assert sink.stderr.readline().strip() == "READY"
    send = subprocess.run([str(exe), "-S", "-s", str(AGENT), "send", "--dst", "127.0.0.1",
                           "--port", str(port), "--flow", "4", "--count", "20", "--size",
                           "300"], env=env, capture_output=True, text=True, timeout=20)
    assert send.returncode == 0, send.stderr
    out, err = sink.communicate(timeout=10)
    assert sink.returncode == 0, err
    assert json.loads(out)["flows"]["4"]["received"] == 20


# ---------------------------------------------------------------- GuestAgent over a fake guest

class LocalGuest:
    """Plays orchestrator.guest.Guest: put copies, cmd runs sh locally."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def put(self, local: Path, remote: str) -> None:
        shutil.copyfile(local, remote)

    def cmd(self, command: str, *, check: bool = True, timeout: float = 60.0) -> CmdResult:
        self.commands.append(command)
        t0 = time.monotonic()
        p = subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                           timeout=timeout)
        return CmdResult(command, p.returncode, p.stdout, p.stderr, time.monotonic() - t0)


def test_guest_agent_sink_send_echo(tmp_path: Path) -> None:
    guest = LocalGuest()
    ga = GuestAgent(guest, remote=str(tmp_path / "agent.py"), python=sys.executable,
                    workdir=str(tmp_path))
    port = free_port()
    job = ga.sink(port, duration=10, idle=0.5)
    sent = ga.send("127.0.0.1", port, flow=9, count=100, size=200, rate=0)
    assert sent["sent"] == 100
    res = ga.sink_result()
    assert res["flows"]["9"]["received"] == 100 and res["flows"]["9"]["lost"] == 0
    assert job.pid > 0
    assert sum("put" in c for c in guest.commands) == 0  # one copy, by put
    assert (tmp_path / "agent.py").read_bytes() == AGENT.read_bytes()

    eport = free_port()
    ejob = ga.echo(eport, duration=20)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(b"hi", ("127.0.0.1", eport))
        assert s.recv(100) == b"hi"
    t0 = time.monotonic()
    res = ga.result(ejob, stop=True)
    assert res["echoed"] == 1 and time.monotonic() - t0 < 5

    with pytest.raises(traffic.AgentError):
        ga.send("::1", port, flow=1, count=1, size=60)  # exit 2: bad size

    # stop() ends what was not collected
    sjob = ga.sink(free_port(), duration=30)
    ga.stop()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{sjob.pid}/stat").exists() and time.monotonic() < deadline:
        if Path(f"/proc/{sjob.pid}/stat").read_text().split(") ")[1].startswith("Z"):
            break
        time.sleep(0.05)
    assert '"flows"' in Path(sjob.out).read_text()  # it ended on SIGTERM and printed
    ga.stop()  # nothing left: no command


def test_flow_agent_module_is_the_format_source() -> None:
    assert traffic.make_payload is flow_agent.make_payload
    assert traffic.FlowRx is flow_agent.FlowRx


def test_sink_counts_its_own_socket_drops() -> None:
    """A socket whose buffer overflowed: its drops come from /proc/net/udp,
    and sink_flows puts them beside every flow (none when there were none)."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        rx.bind(("127.0.0.1", 0))
        assert flow_agent.socket_drops([rx]) == 0
        for _ in range(200):
            tx.sendto(b"x" * 1000, rx.getsockname())
        drops = flow_agent.socket_drops([rx])
        assert drops is not None and 150 <= drops < 200, drops
    errs = flow_agent.udp_errors()
    assert set(errs) == {"rcvbuf", "csum"} and all(v >= 0 for v in errs.values())
    res = {"flows": {"3": {"received": 5}}, "socket_drops": 7,
           "udp_errors": {"rcvbuf": 7, "csum": 0}}
    assert traffic.sink_flows(res) == {3: {"received": 5, "sink_socket_drops": 7,
                                           "udp_errors": {"rcvbuf": 7, "csum": 0}}}
    assert traffic.sink_flows({**res, "socket_drops": 0}) == {3: {"received": 5}}


def test_sink_with_count_lingers_for_trailing_duplicates(tmp_path: Path) -> None:
    """--count ends the sink at the expected number of datagrams, --linger
    later: duplicates that trail the last expected frame are still counted,
    and nothing waits for the idle timeout or the duration."""
    ga = GuestAgent(LocalGuest(), remote=str(tmp_path / "agent.py"), python=sys.executable,
                    workdir=str(tmp_path))
    port = free_port()
    ga.sink(port, duration=60, idle=30, count=10, linger=1.5)
    t0 = time.monotonic()
    ga.send("127.0.0.1", port, flow=5, count=10, size=200, rate=0)
    ga.send("127.0.0.1", port, flow=5, count=2, size=200, rate=0)  # seqs 0 and 1 again
    res = ga.sink_result(timeout=20)
    took = time.monotonic() - t0
    assert res["flows"]["5"]["received"] == 12 and res["flows"]["5"]["duplicated"] == 2, res
    assert 1.5 <= took < 10, took

    port = free_port()
    ga.sink(port, duration=60, idle=30, count=10)  # no linger: ends at the 10th
    ga.send("127.0.0.1", port, flow=6, count=10, size=200, rate=0)
    t0 = time.monotonic()
    res = ga.sink_result(timeout=20)
    assert res["flows"]["6"]["received"] == 10 and time.monotonic() - t0 < 5, res


def test_flow_fault_names_what_is_wrong() -> None:
    clean = {"received": 10, "lost": 0, "duplicated": 0, "corrupted": 0}
    per = {1: clean, 2: {**clean, "received": 9, "lost": 1}, 3: {**clean, "duplicated": 1},
           4: {**clean, "corrupted": 2}, 5: {**clean, "received": 11}}
    assert traffic.flow_fault(per, 1, 10) is None
    assert traffic.flow_fault(per, 9, 10) == "flow 9: nothing received"
    for fid in (2, 3, 4, 5):
        fault = traffic.flow_fault(per, fid, 10)
        assert fault is not None and fault.startswith(f"flow {fid}: {{")
