"""Host-side traffic peer: the "other host on the wire" of a NIC under test.

Each NIC under test is a QEMU ``dgram`` netdev whose far end is a connected
UDP socket on 127.0.0.1 held by the host (``machine.nic_sockets["nic0"]``):
one datagram is one Ethernet frame without FCS. :class:`Peer` owns that end:

* a receive thread answers ARP who-has and IPv6 Neighbor Solicitations for
  every address of its subnets that the guest does not use itself, and ICMP /
  ICMPv6 echo requests to them (same payload, so jumbo pings work), untagged
  or 802.1Q-tagged (replies carry the same tag);
* it learns the guest's MAC and addresses, counts frames, and keeps a
  :class:`FlowRx` per test flow the guest sends (UDP checksum checked too);
* :meth:`Peer.send_flow` sends a flow's frames from a template built once
  with scapy, patching the sequence number and the UDP checksum (RFC 1624)
  per frame, paced against the monotonic clock;
* every frame in and out can go to a pcap file.

The hot path parses with slicing and ``struct``; scapy only builds templates.
:class:`GuestAgent` runs ``flow_agent.py`` (the guest-side sink/send/echo)
in a guest over SSH.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import select
import shlex
import socket
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from orchestrator.scenario import flow_agent
from orchestrator.scenario.checksum import internet_checksum, pseudo_header, sum_ok
from orchestrator.scenario.flow_agent import (
    HEADER_LEN,
    MAGIC,
    SEQ_OFFSET,
    UDP_HLEN,
    FlowRx,
    Pacer,
    check_payload,
    flow_body,
    make_payload,
    payload_len_for,
    stamp_offsets,
)
from orchestrator.scenario.tcp_peer import TcpSink

log = logging.getLogger(__name__)

__all__ = [
    "AgentError", "AgentJob", "Flow", "FlowRx", "GuestAgent", "Peer", "PcapWriter", "SendResult",
    "check_payload", "internet_checksum", "make_payload",
]

MAX_COUNT = 10_000_000
MIN_FRAME, MAX_FRAME = 60, 9018

_ET_IPV4 = b"\x08\x00"
_ET_ARP = b"\x08\x06"
_ET_IPV6 = b"\x86\xdd"
_ET_VLAN = b"\x81\x00"
_ZERO4 = bytes(4)
_ZERO16 = bytes(16)
_RETRY_ERRNOS = frozenset({105, 11, 111})  # ENOBUFS, EAGAIN, ECONNREFUSED


def mac_bytes(mac: str) -> bytes:
    raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return raw


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


_BODY_SUMS: dict[tuple[int, int], int] = {}


def _body_sum(flow: int, body_len: int) -> int:
    """The 16-bit word sum modulo 0xffff (as at an even offset) of the flow's
    body with its stamps zeroed: a datagram's body adds its seq's two words
    once per stamp."""
    key = (flow, body_len)
    v = _BODY_SUMS.get(key)
    if v is None:
        body = flow_body(flow, body_len)[0]
        v = (int.from_bytes(body, "big") << (8 * (body_len & 1))) % 0xFFFF
        if len(_BODY_SUMS) > 1024:
            _BODY_SUMS.clear()
        _BODY_SUMS[key] = v
    return v


@dataclass(frozen=True)
class Flow:
    """One test flow. ``size`` is the Ethernet frame length without FCS,
    the 802.1Q tag included when ``vlan`` is set."""

    id: int
    src_ip: str
    dst_ip: str
    sport: int = 40000
    dport: int = 9000
    size: int = 1514
    vlan: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.id <= 0xFFFF:
            raise ValueError(f"flow id {self.id} is not a u16")
        src, dst = ipaddress.ip_address(self.src_ip), ipaddress.ip_address(self.dst_ip)
        if src.version != dst.version:
            raise ValueError(f"flow {self.id}: {self.src_ip} and {self.dst_ip} differ in family")
        for port in (self.sport, self.dport):
            if not 0 < port < 65536:
                raise ValueError(f"flow {self.id}: port {port} out of range")
        if self.vlan is not None and not 0 <= self.vlan < 4095:
            raise ValueError(f"flow {self.id}: VLAN id {self.vlan} out of range")
        if not MIN_FRAME <= self.size <= MAX_FRAME:
            raise ValueError(f"flow {self.id}: frame size {self.size} not in "
                             f"{MIN_FRAME}..{MAX_FRAME}")
        payload_len_for(self.size, src.version, self.vlan is not None)

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.src_ip).version

    @property
    def payload_len(self) -> int:
        """UDP payload bytes of each datagram (16-byte flow header + body)."""
        return payload_len_for(self.size, self.family, self.vlan is not None)


@dataclass(frozen=True)
class SendResult:
    frames: int
    seconds: float
    errors: int = 0  # send attempts refused (ENOBUFS, EAGAIN, ...) and retried
    failed: int = 0  # frames still refused after the retries (not sent)

    @property
    def rate(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class BackgroundError(Exception):
    """A background sender failed or never sent a frame."""


@dataclass
class Background:
    """Counters of a background flow (see Peer.background)."""

    flow: Flow
    sent: int = 0
    failed: int = 0  # frames the host socket refused even after retries
    error: BaseException | None = None


class PcapWriter:
    """Classic pcap (microsecond stamps, LINKTYPE_ETHERNET), raw bytes per frame."""

    def __init__(self, path: Path, snaplen: int = 65535) -> None:
        self.path = path
        self.snaplen = snaplen
        self._fh: IO[bytes] | None = open(path, "wb", buffering=1 << 20)
        self._fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1))
        self._lock = threading.Lock()
        self.frames = 0

    def write(self, frame: bytes | bytearray, ts: float | None = None) -> None:
        t = time.time() if ts is None else ts
        sec = int(t)
        usec = int((t - sec) * 1_000_000)
        n = len(frame)
        cap = min(n, self.snaplen)
        with self._lock:
            if self._fh is None:
                return
            self._fh.write(struct.pack("<IIII", sec, usec, cap, n))
            self._fh.write(frame if cap == n else frame[:cap])
            self.frames += 1

    def flush(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.flush()

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


class _Net:
    """Which addresses of one family the peer answers for, on raw bytes."""

    def __init__(self, subnet: str, extra: Iterable[str]) -> None:
        net = ipaddress.ip_network(subnet, strict=False)
        self.version = net.version
        self.net = int(net.network_address)
        self.mask = int(net.netmask)
        self.special: set[bytes] = set()
        if net.version == 4 and net.prefixlen < 31:
            self.special = {net.network_address.packed, net.broadcast_address.packed}
        elif net.version == 6 and net.prefixlen < 127:
            self.special = {net.network_address.packed}  # subnet-router anycast
        self.extra = {ipaddress.ip_address(a).packed for a in extra}

    def answers(self, addr: bytes, guest: set[bytes]) -> bool:
        if addr in guest:
            return False
        if addr in self.extra:
            return True
        return (int.from_bytes(addr, "big") & self.mask) == self.net and addr not in self.special


class Peer:
    """The host end of one NIC under test (see the module docstring).

    ``sock`` is a connected UDP socket carrying one Ethernet frame per datagram;
    the peer does not close it (the machine does) unless ``own_socket``.
    """

    def __init__(self, sock: socket.socket, mac: str = "52:54:00:99:00:01",
                 ips: Iterable[str] = ("10.99.0.1", "fd99::1"),
                 subnet_v4: str = "10.99.0.0/24", subnet_v6: str = "fd99::/64",
                 pcap: Path | None = None, own_socket: bool = False) -> None:
        self.sock = sock
        self.mac = mac_str(mac_bytes(mac))
        self._mac = mac_bytes(mac)
        ips = tuple(ips)
        self.ips = ips
        self.link_local = str(ipaddress.IPv6Address(
            b"\xfe\x80" + bytes(6) + bytes([self._mac[0] ^ 2]) + self._mac[1:3] + b"\xff\xfe"
            + self._mac[3:]))
        self._v4 = _Net(subnet_v4, [a for a in ips if ":" not in a])
        self._v6 = _Net(subnet_v6, [a for a in ips if ":" in a] + [self.link_local])
        self._own_socket = own_socket
        self._lock = threading.Lock()
        self._tx_lock = threading.Lock()
        self.pcap = PcapWriter(pcap) if pcap is not None else None
        # learned from the guest's frames
        self._guest_mac: bytes | None = None
        self._guest_v4: set[bytes] = set()
        self._guest_v6: set[bytes] = set()
        self._neigh: dict[bytes, bytes] = {}  # guest address -> the MAC it came from
        self._flows: dict[int, FlowRx] = {}
        self._tcp: dict[int, TcpSink] = {}  # by the peer's port
        self._zero_counters()
        self._closed = False
        self._wake_r, self._wake_w = socket.socketpair()
        # The receive thread reads through its own descriptor: a timeout on ``sock``
        # (Python polls before each recv then) must not stall the non-blocking drain.
        self._rx_sock = socket.socket(fileno=os.dup(sock.fileno()))
        self._thread = threading.Thread(target=self._run, name=f"peer-{self.mac}", daemon=True)
        self._thread.start()

    def _zero_counters(self) -> None:
        self.frames_in = 0
        self.bytes_in = 0
        self.frames_out = 0
        self.bytes_out = 0
        self.arp_replies = 0
        self.nd_replies = 0  # Neighbor Advertisements sent
        self.echo_replies = 0  # ICMP + ICMPv6
        self.flow_frames_in = 0
        self.other_in = 0  # frames not handled (other protocols, multicast listener, ...)
        self.malformed = 0  # runts, bad headers, bad IP lengths, bad ICMP checksums
        self.fragments_in = 0  # IPv4 fragments (not reassembled)
        self.rx_errors = 0
        self.tx_errors = 0

    # ---------------------------------------------------------------- learned state

    @property
    def guest_mac(self) -> str | None:
        raw = self._guest_mac
        return mac_str(raw) if raw is not None else None

    @property
    def guest_ipv4(self) -> set[str]:
        with self._lock:
            return {str(ipaddress.IPv4Address(a)) for a in self._guest_v4}

    @property
    def guest_ipv6(self) -> set[str]:
        with self._lock:
            return {str(ipaddress.IPv6Address(a)) for a in self._guest_v6}

    @property
    def neighbors(self) -> dict[str, str]:
        """Guest addresses seen, each with the source MAC of its last frame."""
        with self._lock:
            return {str(ipaddress.ip_address(a)): mac_str(m) for a, m in self._neigh.items()}

    def stats(self) -> dict[str, Any]:
        keys = ("frames_in", "bytes_in", "frames_out", "bytes_out", "arp_replies", "nd_replies",
                "echo_replies", "flow_frames_in", "other_in", "malformed", "fragments_in",
                "rx_errors", "tx_errors")
        out: dict[str, Any] = {k: getattr(self, k) for k in keys}
        out.update(guest_mac=self.guest_mac, guest_ipv4=sorted(self.guest_ipv4),
                   guest_ipv6=sorted(self.guest_ipv6))
        return out

    # ---------------------------------------------------------------- flows

    def rx(self, flow_id: int, expected: int | None = None) -> FlowRx:
        """A snapshot of what arrived of ``flow_id`` so far."""
        with self._lock:
            rx = self._flows.get(flow_id)
            return rx.snapshot(expected) if rx is not None else FlowRx(expected).snapshot()

    def flows(self) -> dict[int, FlowRx]:
        with self._lock:
            return {k: v.snapshot() for k, v in self._flows.items()}

    def wait_rx(self, flow_id: int, count: int, timeout: float) -> FlowRx:
        """Wait until ``count`` datagrams of the flow arrived (or ``timeout``);
        the snapshot has ``expected=count``, so ``lost`` includes the tail."""
        deadline = time.monotonic() + timeout
        while True:
            snap = self.rx(flow_id, count)
            if snap.received >= count or time.monotonic() >= deadline:
                return snap
            time.sleep(0.005)

    def reset(self) -> None:
        """Forget flows and zero the counters (learned addresses stay)."""
        with self._lock:
            self._flows = {}
            self._zero_counters()

    def tcp_sink(self, port: int, mss: int | None = None, mtu: int = 1500) -> TcpSink:
        """Accept TCP connections from the guest to ``port`` of the peer's
        addresses from now on (see :mod:`orchestrator.scenario.tcp_peer`)."""
        sink = TcpSink(port, self._tcp_reply, mss, mtu)
        with self._lock:
            self._tcp[port] = sink
        return sink

    def _tcp_reply(self, src: bytes, dst: bytes, seg: bytes) -> None:
        mac = self._neigh.get(dst) or self._guest_mac
        if mac is None:
            return
        if len(src) == 4:
            iph = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), 0, 0x4000,
                                        64, 6, 0, src, dst))
            struct.pack_into("!H", iph, 10, internet_checksum(iph))
            self._reply(mac, None, _ET_IPV4, bytes(iph) + seg)
        else:
            ip6 = struct.pack("!IHBB16s16s", 0x60000000, len(seg), 6, 64, src, dst)
            self._reply(mac, None, _ET_IPV6, ip6 + seg)

    def _tcp_in(self, frame: bytes, l4: int, end: int, src: bytes, dst: bytes,
                ip_ok: bool, ip_len: int) -> None:
        sink = None
        if end - l4 >= 4:
            sink = self._tcp.get(struct.unpack_from("!H", frame, l4 + 2)[0])
        if sink is None:
            self.other_in += 1
            return
        sink.handle(frame, l4, end, src, dst, ip_ok, ip_len)

    # ---------------------------------------------------------------- sending

    def _send(self, frame: bytes | bytearray) -> tuple[int, bool]:
        """Send one frame, retrying briefly on ENOBUFS/EAGAIN; (errors, sent)."""
        errors = 0
        backoff = 0.0001
        give_up = 0.0
        while True:
            try:
                self.sock.send(frame)
            except OSError as e:
                errors += 1
                now = time.monotonic()
                if not give_up:
                    give_up = now + 0.5
                if e.errno not in _RETRY_ERRNOS or now > give_up:
                    return errors, False
                time.sleep(backoff)
                backoff = min(backoff * 2, 0.005)
                continue
            with self._tx_lock:
                self.frames_out += 1
                self.bytes_out += len(frame)
            if self.pcap is not None:
                self.pcap.write(frame)
            return errors, True

    def send_frames(self, frames: Iterable[bytes | bytearray], rate: float = 0.0) -> SendResult:
        """Send raw Ethernet frames paced at ``rate`` frames/s (0: unpaced)."""
        self._check_open()
        pacer = Pacer(rate)
        sent = errors = failed = 0
        for i, frame in enumerate(frames):
            if i >= MAX_COUNT:
                raise ValueError(f"more than {MAX_COUNT} frames")
            pacer.wait(i)
            e, ok = self._send(frame)
            errors += e
            sent += ok
            failed += not ok
        return SendResult(sent, time.monotonic() - pacer.start, errors, failed)

    def flow_template(self, flow: Flow, dst_mac: str | None = None) -> bytes:
        """Frame 0 of ``flow`` (seq 0), built with scapy."""
        from scapy.layers.inet import IP, UDP
        from scapy.layers.inet6 import IPv6
        from scapy.layers.l2 import Dot1Q, Ether
        from scapy.packet import Packet, Raw

        dst = dst_mac or self.guest_mac
        if dst is None:
            raise ValueError("the guest's MAC is not known yet: pass dst_mac")
        body_len = flow.payload_len - HEADER_LEN
        pkt: Packet = Ether(src=self.mac, dst=dst)
        if flow.vlan is not None:
            pkt = pkt / Dot1Q(vlan=flow.vlan)
        if flow.family == 4:
            pkt = pkt / IP(src=flow.src_ip, dst=flow.dst_ip, ttl=64)
        else:
            pkt = pkt / IPv6(src=flow.src_ip, dst=flow.dst_ip, hlim=64)
        pkt = pkt / UDP(sport=flow.sport, dport=flow.dport)
        pkt = pkt / Raw(make_payload(flow.id, 0, body_len))
        frame = bytes(pkt)
        if len(frame) != flow.size:
            raise RuntimeError(f"template is {len(frame)} bytes, not {flow.size}")
        return frame

    def send_flow(self, flow: Flow, count: int, rate: float = 0.0,
                  dst_mac: str | None = None, first_seq: int = 0) -> SendResult:
        """Send seqs ``first_seq .. first_seq+count-1`` of ``flow`` to the guest
        (``dst_mac``, or the learned guest MAC) at ``rate`` frames/s (0: unpaced)."""
        if not 0 <= count <= MAX_COUNT:
            raise ValueError(f"count {count} not in 0..{MAX_COUNT}")
        if first_seq < 0 or first_seq + count > 0x1_0000_0000:
            raise ValueError("seqs beyond 32 bits")
        self._check_open()
        template = self.flow_template(flow, dst_mac)
        pay_off = len(template) - flow.payload_len
        # the seq, in the flow header and in each of the body's stamps
        seq_at = (pay_off + SEQ_OFFSET,
                  *(pay_off + HEADER_LEN + off
                    for off in stamp_offsets(flow.payload_len - HEADER_LEN)))
        csum_off = pay_off - 2
        (hc,) = struct.unpack_from("!H", template, csum_off)
        # RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), with m = the template's seq
        # words (0) in each of the len(seq_at) places
        base = (~hc & 0xFFFF) + 0xFFFF * 2 * len(seq_at)
        copies = len(seq_at)
        buf = bytearray(template)
        pack_seq = struct.Struct("!I").pack_into
        pack_csum = struct.Struct("!H").pack_into
        pacer = Pacer(rate)
        sent = errors = failed = 0
        for i in range(count):
            seq = first_seq + i
            s = base + copies * ((seq >> 16) + (seq & 0xFFFF))
            while s >> 16:
                s = (s & 0xFFFF) + (s >> 16)
            c = ~s & 0xFFFF
            for at in seq_at:
                pack_seq(buf, at, seq)
            pack_csum(buf, csum_off, c or 0xFFFF)
            pacer.wait(i)
            e, ok = self._send(buf)
            errors += e
            sent += ok
            failed += not ok
        return SendResult(sent, time.monotonic() - pacer.start, errors, failed)

    @contextlib.contextmanager
    def background(self, flow: Flow, rate: float, dst_mac: str | None = None,
                   max_seconds: float = 900.0) -> Iterator[Background]:
        """Send `flow` at `rate` frames/s while the block runs (at most
        `max_seconds`), seqs counting up from 0. On leaving the block the
        sender stops; if it failed or sent nothing, BackgroundError (unless
        the block itself raised, which then wins)."""
        bg = Background(flow)
        stop = threading.Event()
        chunk = max(1, int(rate // 10)) if rate > 0 else 100

        def run() -> None:
            deadline = time.monotonic() + max_seconds
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    r = self.send_flow(flow, chunk, rate=rate, dst_mac=dst_mac,
                                       first_seq=bg.sent + bg.failed)
                    bg.sent += r.frames
                    bg.failed += r.failed
            except BaseException as e:  # noqa: BLE001 - handed to the test's thread
                bg.error = e

        t = threading.Thread(target=run, name=f"background-flow-{flow.id}", daemon=True)
        t.start()
        try:
            yield bg
        finally:
            stop.set()
            t.join(timeout=30)
        if t.is_alive():
            raise BackgroundError(f"background flow {flow.id}: the sender did not stop")
        if bg.error is not None:
            raise BackgroundError(f"background flow {flow.id} failed after {bg.sent} frames: "
                                  f"{bg.error!r}") from bg.error
        if bg.sent == 0:
            raise BackgroundError(f"background flow {flow.id} sent no frame")

    def resolve(self, ip: str, timeout: float = 2.0, vlan: int | None = None) -> str:
        """ARP / Neighbor Solicitation for a guest address (resent every 0.5 s);
        the MAC it answered from. Raises TimeoutError."""
        addr = ipaddress.ip_address(ip)
        src_ip = next((a for a in self.ips if ipaddress.ip_address(a).version == addr.version),
                      None)
        if src_ip is None:
            raise ValueError(f"the peer has no IPv{addr.version} address")
        src = ipaddress.ip_address(src_ip).packed
        tag = b"" if vlan is None else _ET_VLAN + struct.pack("!H", vlan)
        if addr.version == 4:
            arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, self._mac, src, bytes(6),
                              addr.packed)
            frame = b"\xff" * 6 + self._mac + tag + _ET_ARP + arp
        else:
            sn = b"\xff\x02" + bytes(9) + b"\x01\xff" + addr.packed[13:]
            dmac = b"\x33\x33" + sn[12:]
            icmp = bytearray(struct.pack("!BBHI16sBB6s", 135, 0, 0, 0, addr.packed, 1, 1,
                                         self._mac))
            struct.pack_into("!H", icmp, 2, internet_checksum(icmp, pseudo_header(src, sn, 58, 32)))
            ip6 = struct.pack("!IHBB16s16s", 0x60000000, len(icmp), 58, 255, src, sn)
            frame = dmac + self._mac + tag + _ET_IPV6 + ip6 + bytes(icmp)
        deadline = time.monotonic() + timeout
        while True:
            self._send(frame.ljust(MIN_FRAME, b"\0"))
            end = min(deadline, time.monotonic() + 0.5)
            while time.monotonic() < end:
                mac = self._neigh.get(addr.packed)
                if mac is not None:
                    return mac_str(mac)
                time.sleep(0.005)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no answer from {ip} within {timeout:.1f}s")

    # ---------------------------------------------------------------- receiving

    def _run(self) -> None:
        sock, wake = self._rx_sock, self._wake_r
        recv = sock.recv
        flags = socket.MSG_DONTWAIT
        while not self._closed:
            try:
                ready, _, _ = select.select([sock, wake], [], [], 1.0)
            except (OSError, ValueError):  # socket closed under us
                return
            if wake in ready or self._closed:
                return
            for _ in range(1024):
                try:
                    frame = recv(65536, flags)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    self.rx_errors += 1
                    if self._closed or sock.fileno() < 0:
                        return
                    break
                try:
                    self._handle(frame)
                except Exception:  # one bad frame must not stop the peer
                    self.rx_errors += 1
                    log.exception("peer %s: frame handling failed", self.mac)

    def _reply(self, dst_mac: bytes, tci: bytes | None, ethertype: bytes,
               body: bytes | bytearray) -> None:
        head = dst_mac + self._mac + (_ET_VLAN + tci if tci is not None else b"") + ethertype
        frame = head + body
        if len(frame) < MIN_FRAME:
            frame = frame.ljust(MIN_FRAME, b"\0")
        errors, _ = self._send(frame)
        self.tx_errors += errors

    def _handle(self, frame: bytes) -> None:
        n = len(frame)
        self.frames_in += 1
        self.bytes_in += n
        if self.pcap is not None:
            self.pcap.write(frame)
        if n < 14:
            self.malformed += 1
            return
        src_mac = frame[6:12]
        if src_mac != self._guest_mac and not src_mac[0] & 1 and src_mac != self._mac:
            self._guest_mac = src_mac
        et = frame[12:14]
        off = 14
        tci: bytes | None = None
        if et == _ET_VLAN:
            if n < 18:
                self.malformed += 1
                return
            tci, et, off = frame[14:16], frame[16:18], 18
        if et == _ET_IPV4:
            self._ipv4(frame, off, tci)
        elif et == _ET_IPV6:
            self._ipv6(frame, off, tci)
        elif et == _ET_ARP:
            self._arp(frame, off, tci)
        else:
            self.other_in += 1

    def _learn(self, known: set[bytes], addr: bytes, mac: bytes) -> None:
        with self._lock:
            known.add(addr)
            self._neigh[addr] = mac

    def _arp(self, frame: bytes, off: int, tci: bytes | None) -> None:
        if len(frame) < off + 28:
            self.malformed += 1
            return
        htype, ptype, hlen, plen, oper = struct.unpack_from("!HHBBH", frame, off)
        if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
            self.other_in += 1
            return
        sha = frame[off + 8:off + 14]
        spa = frame[off + 14:off + 18]
        tpa = frame[off + 24:off + 28]
        if spa != _ZERO4 and self._neigh.get(spa) != sha:
            self._learn(self._guest_v4, spa, sha)
        if oper != 1:
            return
        # not for probes (sender 0.0.0.0), not for the asker's own address
        if spa == _ZERO4 or tpa == spa or not self._v4.answers(tpa, self._guest_v4):
            return
        body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, self._mac, tpa, sha, spa)
        self.arp_replies += 1  # before the reply: a reader may see it at once
        self._reply(sha, tci, _ET_ARP, body)

    def _ipv4(self, frame: bytes, off: int, tci: bytes | None) -> None:
        n = len(frame)
        if n < off + 20 or frame[off] >> 4 != 4:
            self.malformed += 1
            return
        ihl = (frame[off] & 0x0F) * 4
        tot, frag = struct.unpack_from("!H2xH", frame, off + 2)
        if ihl < 20 or tot < ihl or off + tot > n:
            self.malformed += 1
            return
        proto = frame[off + 9]
        src = frame[off + 12:off + 16]
        dst = frame[off + 16:off + 20]
        if src != _ZERO4 and self._neigh.get(src) != frame[6:12]:
            self._learn(self._guest_v4, src, frame[6:12])
        if frag & 0x3FFF:  # MF or a fragment offset
            self.fragments_in += 1
            return
        l4, end = off + ihl, off + tot
        if proto == 17:
            self._udp(frame, l4, end, src, dst, 4)
        elif proto == 6:
            self._tcp_in(frame, l4, end, src, dst, sum_ok(frame[off:l4], 0), tot)
        elif proto == 1 and end - l4 >= 8 and frame[l4] == 8 and frame[l4 + 1] == 0:
            if not self._v4.answers(dst, self._guest_v4):
                self.other_in += 1
                return
            icmp = bytearray(frame[l4:end])
            if not sum_ok(icmp, 0):
                self.malformed += 1
                return
            icmp[0] = 0
            icmp[2:4] = b"\0\0"
            struct.pack_into("!H", icmp, 2, internet_checksum(icmp))
            tos, ident = frame[off + 1], struct.unpack_from("!H", frame, off + 4)[0]
            iph = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(icmp), ident,
                                        0, 64, 1, 0, dst, src))
            struct.pack_into("!H", iph, 10, internet_checksum(iph))
            self.echo_replies += 1  # before the reply: a reader may see it at once
            self._reply(frame[6:12], tci, _ET_IPV4, iph + icmp)
        else:
            self.other_in += 1

    def _ipv6(self, frame: bytes, off: int, tci: bytes | None) -> None:
        n = len(frame)
        if n < off + 40 or frame[off] >> 4 != 6:
            self.malformed += 1
            return
        plen, nh, hlim = struct.unpack_from("!HBB", frame, off + 4)
        l4, end = off + 40, off + 40 + plen
        if end > n:
            self.malformed += 1
            return
        src = frame[off + 8:off + 24]
        dst = frame[off + 24:off + 40]
        if src != _ZERO16 and self._neigh.get(src) != frame[6:12]:
            self._learn(self._guest_v6, src, frame[6:12])
        if nh == 17:
            self._udp(frame, l4, end, src, dst, 6)
            return
        if nh == 6:
            self._tcp_in(frame, l4, end, src, dst, True, 40 + plen)
            return
        if nh != 58 or plen < 8:
            self.other_in += 1
            return
        icmp = frame[l4:end]
        typ, code = icmp[0], icmp[1]
        if typ not in (128, 135) or code != 0:
            self.other_in += 1
            return
        if not sum_ok(icmp, pseudo_header(src, dst, 58, plen)):
            self.malformed += 1
            return
        if typ == 135:  # Neighbor Solicitation
            if plen < 24 or hlim != 255:
                self.malformed += 1
                return
            target = icmp[8:24]
            if src == _ZERO16 or not self._v6.answers(target, self._guest_v6):
                return  # DAD probe, or not ours to answer
            na = bytearray(struct.pack("!BBHI16sBB6s", 136, 0, 0, 0x60000000, target, 2, 1,
                                       self._mac))
            struct.pack_into("!H", na, 2, internet_checksum(na, pseudo_header(target, src, 58, 32)))
            ip6 = struct.pack("!IHBB16s16s", 0x60000000, len(na), 58, 255, target, src)
            self.nd_replies += 1  # before the reply: a reader may see it at once
            self._reply(frame[6:12], tci, _ET_IPV6, ip6 + na)
            return
        # Echo Request, unicast to one of ours
        if dst[0] == 0xFF or not self._v6.answers(dst, self._guest_v6):
            self.other_in += 1
            return
        reply = bytearray(icmp)
        reply[0] = 129
        reply[2:4] = b"\0\0"
        csum = internet_checksum(reply, pseudo_header(dst, src, 58, plen))
        struct.pack_into("!H", reply, 2, csum)
        ip6 = struct.pack("!IHBB16s16s", 0x60000000, plen, 58, 64, dst, src)
        self.echo_replies += 1  # before the reply: a reader may see it at once
        self._reply(frame[6:12], tci, _ET_IPV6, ip6 + reply)

    def _udp(self, frame: bytes, l4: int, end: int, src: bytes, dst: bytes, family: int) -> None:
        if end - l4 < 8:
            self.malformed += 1
            return
        data = frame[l4 + 8:end]
        if len(data) < HEADER_LEN or data[:4] != MAGIC:
            self.other_in += 1
            return
        ulen, csum = struct.unpack_from("!HH", frame, l4 + 4)
        ok_len = ulen == end - l4
        if not ok_len:
            ok = False
            flow, seq = struct.unpack_from("!HxxI", data, 4)
        else:
            res = check_payload(data)
            assert res is not None
            flow, seq, ok = res
            if ok and (csum != 0 or family == 6):
                # The body is the flow's known body (checked above), so its share
                # of the checksum is cached plus the seq once per stamp; only the
                # first 24 bytes are summed here.
                body_len = len(data) - HEADER_LEN
                start = (pseudo_header(src, dst, 17, ulen) + _body_sum(flow, body_len)
                         + len(stamp_offsets(body_len)) * ((seq >> 16) + (seq & 0xFFFF)))
                ok = sum_ok(frame[l4:l4 + UDP_HLEN + HEADER_LEN], start)
        with self._lock:
            rx = self._flows.get(flow)
            if rx is None:
                rx = self._flows[flow] = FlowRx()
            rx.add(seq, len(data), ok)
            self.flow_frames_in += 1

    # ---------------------------------------------------------------- life cycle

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the peer is closed")

    def close(self) -> None:
        """Stop the receive thread and close the pcap (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        self._wake_r.close()
        self._wake_w.close()
        self._rx_sock.close()
        if self.pcap is not None:
            self.pcap.close()
        if self._own_socket:
            self.sock.close()

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- guest agent

class _CmdResult(Protocol):
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...
    @property
    def exit_status(self) -> int: ...


class GuestLike(Protocol):
    """What :class:`GuestAgent` needs of :class:`orchestrator.guest.Guest`."""

    def put(self, local: Path, remote: str) -> None: ...

    def cmd(self, command: str, *, check: bool = ..., timeout: float = ...) -> _CmdResult: ...


# POSIX sh with builtins only (every exec is slow under TCG): ``alive PID`` is
# false for a gone or zombie process (the guest's init reaps late), ``until_t S``
# sets a deadline S seconds ahead and ``past`` tells whether it has passed.
_SH_HELPERS = (
    "alive() { [ -r /proc/$1/stat ] || return 1; read -r st < /proc/$1/stat || return 1; "
    "case \"$st\" in *') Z '*|*') X '*) return 1;; esac; }; "
    "now() { read -r up _ < /proc/uptime; t=${up%.*}; }; "
    "until_t() { now; end=$((t + $1 + 1)); }; "
    "past() { now; [ $t -ge $end ]; };"
)


def sink_flows(res: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """A sink's per-flow results by flow id. When the sink's own sockets
    dropped datagrams, each flow also carries ``sink_socket_drops`` and the
    guest's ``udp_errors`` by cause, so a flow that came up short says
    whether the frames died at a full buffer or a bad checksum rather than
    on the NIC."""
    extra = ({"sink_socket_drops": res["socket_drops"], "udp_errors": res.get("udp_errors")}
             if res.get("socket_drops") else {})
    return {int(k): {**v, **extra} for k, v in res["flows"].items()}


def receive(peer: Peer, agent: GuestAgent, flows: list[Flow], count: int, port: int,
            dst_mac: str, rate: float = 1000.0) -> dict[int, dict[str, Any]]:
    """The peer sends `count` frames of each flow to the guest's sink on
    `port`: the sink's per-flow results. The sink ends 1 s after the last
    expected frame (a duplicate trailing it still counts), or 3 s after the
    last frame when some never come."""
    agent.sink(port=port, duration=60 + count * len(flows) / max(rate, 1), idle=3,
               count=count * len(flows), linger=1)
    for f in flows:
        peer.send_flow(f, count, rate=rate, dst_mac=dst_mac)
    return sink_flows(agent.sink_result(timeout=120))


def flow_fault(per_flow: dict[int, dict[str, Any]], fid: int, count: int) -> str | None:
    """What is wrong with flow `fid` of a sink's results when `count`
    frames were sent (None: all arrived once and whole)."""
    got = per_flow.get(fid)
    if got is None:
        return f"flow {fid}: nothing received"
    if (got["received"], got["lost"], got["duplicated"], got["corrupted"]) != (count, 0, 0, 0):
        return f"flow {fid}: {got}"
    return None


class AgentError(Exception):
    pass


@dataclass
class AgentJob:
    """A background agent run in the guest."""

    name: str
    pid: int
    out: str
    err: str
    duration: float


class GuestAgent:
    """Runs ``flow_agent.py`` in a guest: copied once, sink/echo in the
    background (results read later), send in the foreground."""

    def __init__(self, guest: GuestLike, remote: str = "/tmp/ktest-flow-agent.py",
                 python: str = "python3", workdir: str = "/tmp") -> None:
        self.guest = guest
        self.remote = remote
        self.python = python
        self.workdir = workdir
        self._installed = False
        self._jobs: dict[str, AgentJob] = {}
        self._last: AgentJob | None = None

    def install(self) -> None:
        if not self._installed:
            self.guest.put(Path(flow_agent.__file__), self.remote)
            self._installed = True

    def _argv(self, mode: str, **opts: Any) -> str:
        words = [self.python, "-I", self.remote, mode]
        for key, value in opts.items():
            if value is None or value is False:
                continue
            words.append("--" + key.replace("_", "-"))
            if value is not True:
                words.append(str(value))
        return " ".join(shlex.quote(w) for w in words)

    def _start(self, name: str, mode: str, duration: float, ready_timeout: float,
               **opts: Any) -> AgentJob:
        self.install()
        out_path = f"{self.workdir}/ktest-flow-{name}.json"
        err_path = f"{self.workdir}/ktest-flow-{name}.err"
        out, err = shlex.quote(out_path), shlex.quote(err_path)
        argv = self._argv(mode, duration=duration, **opts)
        script = (
            f"{_SH_HELPERS} rm -f {out} {err}; "
            f"nohup {argv} > {out} 2> {err} < /dev/null & pid=$!; echo $pid; "
            f"until_t {ready_timeout:.0f}; "
            f"while :; do "
            f"[ -s {err} ] && while read -r l; do [ \"$l\" = READY ] && exit 0; done < {err}; "
            f"alive $pid || {{ cat {err} >&2; exit 3; }}; "
            f"past && {{ cat {err} >&2; exit 4; }}; "
            f"sleep 0.05; done"
        )
        res = self.guest.cmd(script, check=False, timeout=ready_timeout + 30)
        if res.exit_status != 0:
            what = {3: "exited before it was ready", 4: "was not ready in time"}.get(
                res.exit_status, f"failed to start (exit {res.exit_status})")
            raise AgentError(f"flow agent {mode} {what}: {res.stderr.strip()[-500:]}")
        job = AgentJob(name, int(res.stdout.split()[0]), out_path, err_path, duration)
        self._jobs[name] = job
        self._last = job
        return job

    def sink(self, port: int, duration: float = 30.0, idle: float | None = None,
             count: int | None = None, name: str | None = None,
             ready_timeout: float = 20.0, linger: float | None = None) -> AgentJob:
        """Start a sink in the background; returns once it listens. With
        ``count`` it ends that many test-flow datagrams in (``linger``
        seconds later: duplicates trailing the last frame are still seen)."""
        return self._start(name or f"sink-{port}", "sink", duration, ready_timeout,
                           port=port, idle=idle, count=count, linger=linger)

    def echo(self, port: int, duration: float = 30.0, idle: float | None = None,
             name: str | None = None, ready_timeout: float = 20.0) -> AgentJob:
        """Start an echo responder in the background; returns once it listens."""
        return self._start(name or f"echo-{port}", "echo", duration, ready_timeout,
                           port=port, idle=idle)

    def hold(self, port: int, duration: float = 60.0, rcvbuf: int = 64 << 20,
             name: str | None = None, ready_timeout: float = 20.0) -> AgentJob:
        """Start a socket that reads nothing (up to `rcvbuf` bytes queued):
        the Rx buffers of what arrives stay with the stack until it is
        stopped; its result says how many datagrams it held."""
        return self._start(name or f"hold-{port}", "hold", duration, ready_timeout,
                           port=port, rcvbuf=rcvbuf)

    def result(self, job: AgentJob | None = None, timeout: float | None = None,
               stop: bool = False) -> dict[str, Any]:
        """Wait for a background job to end (SIGTERM it with ``stop`` or when it
        outlives ``timeout``, default its duration + 30 s) and parse its output."""
        job = job or self._last
        if job is None:
            raise AgentError("no agent job was started")
        wait = job.duration + 30 if timeout is None else timeout
        pid = job.pid
        script = (
            f"{_SH_HELPERS} " + (f"kill -TERM {pid} 2>/dev/null; " if stop else "")
            + f"until_t {wait:.0f}; while alive {pid} && ! past; do sleep 0.1; done; "
            f"if alive {pid}; then kill -TERM {pid}; until_t 5; "
            f"while alive {pid} && ! past; do sleep 0.1; done; fi; "
            f"cat {shlex.quote(job.out)}"
        )
        res = self.guest.cmd(script, check=False, timeout=wait + 40)
        self._jobs.pop(job.name, None)
        return self._parse(res, f"{job.name} ({job.err})")

    def stop(self) -> None:
        """SIGTERM every background job not collected yet (best effort: a
        guest that is gone is no error here)."""
        jobs, self._jobs = list(self._jobs.values()), {}
        if jobs:
            pids = " ".join(str(j.pid) for j in jobs)
            try:
                self.guest.cmd(f"kill -TERM {pids} 2>/dev/null; true", check=False, timeout=30)
            except Exception as e:  # teardown must not mask the test's outcome
                log.warning("flow agent: could not stop %s: %s", pids, e)

    def sink_result(self, job: AgentJob | None = None, timeout: float | None = None,
                    stop: bool = False) -> dict[str, Any]:
        """The last (or given) sink's result dict; see :meth:`result`."""
        return self.result(job, timeout, stop)

    def send(self, dst: str, port: int, flow: int, count: int, size: int, rate: float = 0.0,
             sport: int | None = None, vlan: bool = False,
             timeout: float | None = None) -> dict[str, Any]:
        """Send ``count`` datagrams of ``flow`` from the guest; the agent's dict."""
        self.install()
        if timeout is None:
            timeout = 30.0 + (count / rate if rate > 0 else count / 5000)
        argv = self._argv("send", dst=dst, port=port, flow=flow, count=count, size=size,
                          rate=rate, sport=sport, vlan=vlan, timeout=timeout)
        res = self.guest.cmd(argv, check=False, timeout=timeout + 30)
        if res.exit_status not in (0, 1):
            raise AgentError(f"flow agent send exited {res.exit_status}: "
                             f"{res.stderr.strip()[-500:]}")
        return self._parse(res, "send")

    def send_background(self, dst: str, port: int, flow: int, count: int, size: int,
                        rate: float, max_seconds: float, name: str | None = None,
                        ready_timeout: float = 20.0) -> AgentJob:
        """Start sending ``count`` datagrams of ``flow`` (at most ``max_seconds``)
        in the background; :meth:`result` (with ``stop=True`` to end it early)
        gives the send dict."""
        return self._start(name or f"send-{flow}", "send", max_seconds, ready_timeout,
                           dst=dst, port=port, flow=flow, count=count, size=size, rate=rate)

    def tcp_send(self, dst: str, port: int, nbytes: int, chunk: int = 65536,
                 timeout: float = 300.0) -> dict[str, Any]:
        """Send ``nbytes`` of the stream pattern over one TCP connection from
        the guest (see :class:`orchestrator.scenario.tcp_peer.TcpSink`)."""
        self.install()
        argv = self._argv("tcp-send", dst=dst, port=port, bytes=nbytes, chunk=chunk,
                          timeout=timeout)
        res = self.guest.cmd(argv, check=False, timeout=timeout + 30)
        if res.exit_status not in (0, 1):
            raise AgentError(f"flow agent tcp-send exited {res.exit_status}: "
                             f"{res.stderr.strip()[-500:]}")
        return self._parse(res, "tcp-send")

    @staticmethod
    def _parse(res: _CmdResult, what: str) -> dict[str, Any]:
        text = res.stdout.strip()
        try:
            data = json.loads(text.splitlines()[-1]) if text else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise AgentError(f"flow agent {what}: no result (exit {res.exit_status}): "
                             f"{text[-300:]!r} {res.stderr.strip()[-300:]!r}")
        return data
