"""A TCP receiver on the host traffic peer: what arrives of a guest's TCP
stream, checked segment by segment as it came off the wire.

The guest's stack hands the driver large skbs; with TSO the NIC cuts them into
segments, without it the stack does (GSO). Either way every segment on the
wire must be a valid one, and that is what :class:`TcpSink` checks per
connection:

* the IPv4 header checksum and lengths, the TCP checksum over the pseudo
  header (both as a receiver would verify them);
* the payload is at most the MSS the sink advertised, the IP packet at most
  the MTU;
* sequence numbers continue exactly where the previous segment ended (the
  link loses nothing, so a gap is a fault: counted, then the sink
  acknowledges only what it has, and the sender retransmits; a repeat is
  one only beyond the sender's own retransmissions);
* the payload is the stream pattern at that offset
  (:func:`orchestrator.scenario.flow_agent.stream_block`).

The sink acknowledges every segment with a window large enough that the
sender is never window-limited, and closes when the guest does. It agrees to
TCP timestamps, so every data segment carries 12 bytes of options (a driver
that confuses the MSS with the MTU shows). It speaks
only to the guest, from the peer's addresses, on frames the
:class:`~orchestrator.scenario.traffic.Peer` hands it.
"""

from __future__ import annotations

import random
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.scenario.checksum import internet_checksum, pseudo_header, sum_ok
from orchestrator.scenario.flow_agent import STREAM_PERIOD, stream_block

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
WSCALE = 7
WINDOW = 0xFFFF  # scaled by 2**WSCALE: 8 MiB in flight at most

# the peer sends a TCP segment: (peer address, guest address, segment)
Reply = Callable[[bytes, bytes, bytes], None]


@dataclass
class TcpConn:
    """One connection's record; counters of faults are all zero on a clean wire."""

    family: int
    guest: bytes
    gport: int
    opened: float = field(default_factory=time.monotonic)
    closed: float | None = None
    irs: int = 0  # the guest's initial sequence number
    rcv_nxt: int = 0
    iss: int = 0
    ts_recent: int | None = None  # the guest's last TSval (timestamps agreed)
    bytes: int = 0  # in-order payload bytes
    segments: int = 0  # segments with payload
    max_payload: int = 0
    sizes: dict[int, int] = field(default_factory=dict)  # payload length -> segments
    bad_ip_csum: int = 0
    bad_tcp_csum: int = 0
    bad_length: int = 0
    oversize: int = 0  # payload above the advertised MSS
    over_mtu: int = 0  # IP packet longer than the MTU
    gaps: int = 0  # a segment beyond rcv_nxt
    repeats: int = 0  # a segment (partly) before rcv_nxt
    corrupt: int = 0  # payload differs from the stream pattern
    resets: int = 0
    fin: bool = False

    @property
    def faults(self) -> int:
        """Segments no sender may put on the wire. Repeats are not among them:
        a TCP retransmission repeats a segment too (compare them with the
        sender's retransmission count)."""
        return (self.bad_ip_csum + self.bad_tcp_csum + self.bad_length + self.oversize
                + self.over_mtu + self.gaps + self.corrupt + self.resets)

    def as_dict(self) -> dict[str, Any]:
        keys = ("family", "gport", "bytes", "segments", "max_payload", "bad_ip_csum",
                "bad_tcp_csum", "bad_length", "oversize", "over_mtu", "gaps", "repeats",
                "corrupt", "resets", "fin")
        out: dict[str, Any] = {k: getattr(self, k) for k in keys}
        out["sizes"] = dict(sorted(self.sizes.items()))
        out["seconds"] = (self.closed or time.monotonic()) - self.opened
        return out


def _timestamp(seg: bytes, hlen: int) -> int | None:
    """The TSval of a segment's timestamps option, if it has one."""
    i = 20
    while i < hlen:
        kind = seg[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= hlen or seg[i + 1] < 2:
            break
        if kind == 8 and seg[i + 1] == 10 and i + 10 <= hlen:
            return int.from_bytes(seg[i + 2:i + 6], "big")
        i += seg[i + 1]
    return None


class TcpSink:
    """Accepts connections to ``port`` on the peer's addresses (see the module
    docstring). ``mss`` is advertised in the SYN-ACK (default: what ``mtu``
    allows for the connection's family)."""

    def __init__(self, port: int, reply: Reply, mss: int | None = None,
                 mtu: int = 1500) -> None:
        self.port = port
        self.mss = mss
        self.mtu = mtu
        self._reply = reply
        self._lock = threading.Lock()
        self._conns: dict[tuple[bytes, int], TcpConn] = {}
        self._done: list[TcpConn] = []
        self._closed_event = threading.Condition(self._lock)
        self._block = stream_block()

    # ------------------------------------------------------------ results

    def connections(self) -> list[TcpConn]:
        with self._lock:
            return list(self._done) + list(self._conns.values())

    def wait_closed(self, n: int, timeout: float) -> list[TcpConn]:
        """Wait until ``n`` connections were closed by the guest (FIN)."""
        deadline = time.monotonic() + timeout
        with self._closed_event:
            while len(self._done) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._closed_event.wait(left)
            return list(self._done)

    # ------------------------------------------------------------ receive

    def handle(self, frame: bytes, l4: int, end: int, src: bytes, dst: bytes,
               ip_ok: bool, ip_len: int) -> None:
        """A TCP segment to our port (``src`` the guest, ``dst`` the peer) in
        an IP packet of ``ip_len`` bytes."""
        family = 4 if len(src) == 4 else 6
        seg = frame[l4:end]
        if len(seg) < 20:
            return
        sport, _, seq, ack, off_flags, _win = struct.unpack_from("!HHIIHH", seg)
        hlen = (off_flags >> 12) * 4
        flags = off_flags & 0x3F
        key = (src, sport)
        ts = _timestamp(seg, hlen)
        with self._lock:
            conn = self._conns.get(key)
            if flags & SYN:
                conn = self._open(key, family, seq, seg, hlen)
                conn.ts_recent = ts
                self._send(conn, src, dst, conn.iss, SYN | ACK, syn=True)
                return
            if conn is None:
                return  # not a connection of ours (a late segment after close)
            if flags & RST:
                conn.resets += 1
                self._close(key, conn)
                return
            if not ip_ok:
                conn.bad_ip_csum += 1
            if ip_len > self.mtu:
                conn.over_mtu += 1
            if ts is not None and conn.ts_recent is not None:
                conn.ts_recent = ts
            if hlen < 20 or hlen > len(seg):
                conn.bad_length += 1
                return
            if not sum_ok(seg, pseudo_header(src, dst, 6, len(seg))):
                conn.bad_tcp_csum += 1
                return  # a receiver drops it; the sender retransmits
            payload = seg[hlen:]
            n = len(payload)
            if n:
                self._data(conn, seq, payload)
            if flags & FIN and seq + n == conn.rcv_nxt and not conn.fin:
                conn.fin = True
                conn.rcv_nxt = (conn.rcv_nxt + 1) & 0xFFFFFFFF
                self._send(conn, src, dst, (conn.iss + 1) & 0xFFFFFFFF, FIN | ACK)
                self._close(key, conn)
                return
            if n:
                self._send(conn, src, dst, (conn.iss + 1) & 0xFFFFFFFF, ACK)

    def _open(self, key: tuple[bytes, int], family: int, seq: int, seg: bytes,
              hlen: int) -> TcpConn:
        old = self._conns.get(key)
        if old is not None and old.irs == seq:
            return old  # a retransmitted SYN: answer it again
        conn = TcpConn(family, key[0], key[1])
        conn.irs = seq
        conn.rcv_nxt = (seq + 1) & 0xFFFFFFFF
        conn.iss = random.getrandbits(32)
        self._conns[key] = conn
        return conn

    def _close(self, key: tuple[bytes, int], conn: TcpConn) -> None:
        conn.closed = time.monotonic()
        self._conns.pop(key, None)
        self._done.append(conn)
        self._closed_event.notify_all()

    def _mss(self, family: int) -> int:
        return self.mss or self.mtu - (40 if family == 4 else 60)

    def _data(self, conn: TcpConn, seq: int, payload: bytes) -> None:
        n = len(payload)
        delta = (seq - conn.rcv_nxt) & 0xFFFFFFFF
        if delta:
            if delta < 0x80000000:
                conn.gaps += 1
            else:
                conn.repeats += 1
            return
        if n > self._mss(conn.family):
            conn.oversize += 1
        off = ((seq - conn.irs - 1) & 0xFFFFFFFF) % STREAM_PERIOD
        pos = 0
        while pos < n:  # a jumbo segment may span more than one period
            take = min(n - pos, STREAM_PERIOD)
            if payload[pos:pos + take] != self._block[off:off + take]:
                conn.corrupt += 1
                break
            pos += take
            off = (off + take) % STREAM_PERIOD
        conn.segments += 1
        conn.bytes += n
        conn.max_payload = max(conn.max_payload, n)
        conn.sizes[n] = conn.sizes.get(n, 0) + 1
        conn.rcv_nxt = (conn.rcv_nxt + n) & 0xFFFFFFFF

    # ------------------------------------------------------------ send

    def _send(self, conn: TcpConn, guest: bytes, peer: bytes, seq: int, flags: int,
              syn: bool = False) -> None:
        opts = b""
        if syn:
            # MSS, NOP, window scale
            opts = struct.pack("!BBH", 2, 4, self._mss(conn.family)) + bytes([1, 3, 3, WSCALE])
        if conn.ts_recent is not None:
            # NOP, NOP, timestamps (our clock in ms, the guest's last TSval)
            now = int(time.monotonic() * 1000) & 0xFFFFFFFF
            opts += struct.pack("!BBBBII", 1, 1, 8, 10, now, conn.ts_recent)
        hdr = bytearray(struct.pack("!HHIIHHHH", self.port, conn.gport, seq, conn.rcv_nxt,
                                    ((20 + len(opts)) // 4) << 12 | flags, WINDOW, 0, 0)
                        + opts)
        csum = internet_checksum(hdr, pseudo_header(peer, guest, 6, len(hdr)))
        struct.pack_into("!H", hdr, 16, csum)
        self._reply(peer, guest, bytes(hdr))
