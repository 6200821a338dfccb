#!/usr/bin/env python3
"""Test-flow traffic agent: the wire format shared by host and guest, and the
guest-side command line (``python3 flow_agent.py sink|send|echo ...``).

This file runs on its own in the guest under Debian's ``python3.11-minimal``:
it imports only modules that interpreter has (no ``json``, no ``typing``, no
``orchestrator``), so results are printed as hand-built JSON. The host module
``orchestrator.traffic`` imports the format helpers from here.

Wire format (the UDP payload of one test-flow datagram)::

    0      4        6        8        12       16
    | KTFL | flow   | flags  | seq    | crc32  | body ...
           u16      u16 (0)  u32      u32 = zlib.crc32(body)

All fields are big-endian. The body is the flow's pattern (a function of the
flow id and the body length) with ``seq`` written into it again, as a u32,
every STAMP_EVERY bytes and at its end (``stamp_offsets``); the crc covers the
body with those stamps zeroed, so it too is the same for every datagram of a
flow and length. A sender builds one template per flow and patches ``seq``
(and the UDP checksum) per datagram; a receiver compares the body with the
one it expects, which catches corruption and truncation, and, with the
stamps, a receive buffer of the datagram that holds bytes of an earlier one
of the same flow (a page recycled while still in use, a stale descriptor, a
missed DMA sync): every buffer of a frame holds a stamp.

Frame sizes: ``send --size BYTES`` is the Ethernet frame length without FCS:
``BYTES = 14 (+4 with --vlan) + 20 (IPv4) or 40 (IPv6) + 8 (UDP) + payload``.
So the smallest is 60 for IPv4 (a 2-byte body) and 78 for IPv6.

Modes, each bounded in time, each printing one JSON object on stdout:

* ``sink --port P [--duration S] [--idle S] [--count N [--linger S]]``: receive on
  0.0.0.0:P and [::]:P (V6ONLY; skipped if the guest has no IPv6); prints
  ``READY`` on stderr once bound; stops at the duration, after ``--idle``
  seconds without datagrams once one arrived, after N test-flow datagrams
  (and ``--linger`` seconds more, for duplicates that trail them), or
  on SIGTERM/SIGINT; prints ``{"flows": {"<id>": {...}}, "other": N, ...}``;
  ``socket_drops`` is what the kernel dropped at the sink's own sockets, and
  ``udp_errors`` the guest's UDP receive errors while it ran, by cause:
  ``rcvbuf`` (a full receive buffer: the reader fell behind, not the NIC) and
  ``csum`` (a bad UDP checksum: a frame corrupted on the way). Its buffer is
  32 MiB by default: a driver that builds skbs on whole pages charges 4 KiB
  or more per small frame.
* ``send --dst IP --port P --flow ID --count N --size BYTES --rate PPS``:
  N datagrams paced at PPS (0: as fast as possible) by absolute deadlines
  (no drift); ENOBUFS/EAGAIN/ECONNREFUSED are retried briefly and counted in
  ``errors``; a datagram still refused after the retries counts in ``failed``.
  Prints ``{"sent": N, "errors": N, "failed": N, "seconds": S, ...}``.
* ``echo --port P [--duration S] [--idle S]``: reflect every datagram to its
  sender; prints ``{"received": N, "echoed": N, "errors": N, ...}``.
* ``hold --port P [--duration S] [--rcvbuf BYTES]``: bind and read nothing
  until the duration or SIGTERM/SIGINT, so what arrives stays queued in the
  socket (and the NIC driver's Rx buffers stay with the stack); then count
  what was queued and print ``{"held": N, "seconds": S}``.

Exit status: 0 on success, 2 on bad arguments, 1 when ``send`` could not send
everything.
"""

from __future__ import annotations

import argparse
import errno
import os
import select
import signal
import socket
import struct
import sys
import time
import zlib

TYPE_CHECKING = False  # no `typing` import: python3-minimal may lack it
if TYPE_CHECKING:
    from collections.abc import Callable

    Handler = Callable[[socket.socket, bytes, tuple], bool]

MAGIC = b"KTFL"
HEADER = struct.Struct("!4sHHII")
HEADER_LEN = HEADER.size  # 16
SEQ_OFFSET = 8  # offset of the seq field inside the UDP payload
ETH_HLEN = 14
VLAN_HLEN = 4
IP_HLEN = {4: 20, 6: 40}
UDP_HLEN = 8
MAX_UDP_PAYLOAD = 65507
DEFAULT_CAPACITY = 1 << 24  # seqs tracked exactly per flow (a bitmap of at most 2 MiB)

_SO_SNDBUFFORCE, _SO_RCVBUFFORCE = 32, 33  # Linux; not exported by the socket module
_RETRY_ERRNOS = (errno.ENOBUFS, errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNREFUSED)
_PATTERNS: dict[int, bytes] = {}
_BODIES: dict[tuple[int, int], tuple[bytes, int]] = {}
# A receive buffer holding part of a frame's payload has 1.5 KiB or more (2 or
# 3 KiB, half a page, a page; a header-split buffer holds the flow header),
# and every run of STAMP_EVERY + 3 body bytes holds a whole stamp; the end
# stamp ends on the body's last byte (an even-length body) or the one before
# it, so a frame's last buffer holds one unless it is shorter than 5 bytes.
STAMP_EVERY = 1024
_STAMPS: dict[int, tuple[int, ...]] = {}
_U32 = struct.Struct("!I")


# ---------------------------------------------------------------- wire format

def _pattern(flow: int) -> bytes:
    pat = _PATTERNS.get(flow)
    if pat is None:
        # 251 (prime) bytes: the period does not line up with word or header sizes.
        pat = bytes(((i * 37) ^ (flow * 11) ^ (flow >> 8) ^ 0x5A) & 0xFF for i in range(251))
        if len(_PATTERNS) > 4096:
            _PATTERNS.clear()
        _PATTERNS[flow] = pat
    return pat


def stamp_offsets(body_len: int) -> tuple[int, ...]:
    """Where a body of ``body_len`` bytes holds its datagram's seq again (u32,
    big-endian): every STAMP_EVERY bytes and at its end, at even offsets (so
    each adds the seq's two 16-bit words to the UDP checksum), none
    overlapping; none in a body shorter than 4 bytes."""
    hit = _STAMPS.get(body_len)
    if hit is None:
        if body_len < 4:
            hit = ()
        else:
            end = (body_len - 4) & ~1
            hit = (*range(STAMP_EVERY, end - 3, STAMP_EVERY), end)
        if len(_STAMPS) > 1024:
            _STAMPS.clear()
        _STAMPS[body_len] = hit
    return hit


def stamp(buf: bytearray, at: int, body_len: int, seq: int) -> None:
    """Write ``seq`` into the stamps of the body at ``buf[at:at + body_len]``."""
    for off in stamp_offsets(body_len):
        _U32.pack_into(buf, at + off, seq)


def flow_body(flow: int, body_len: int) -> tuple[bytes, int]:
    """The body of ``flow``'s datagrams of ``body_len`` bytes with its stamps
    zeroed (datagram 0's body), and its crc32 (every datagram's crc field)."""
    key = (flow, body_len)
    hit = _BODIES.get(key)
    if hit is None:
        if body_len < 0:
            raise ValueError(f"negative body length {body_len}")
        pat = _pattern(flow)
        raw = bytearray((pat * (body_len // len(pat) + 1))[:body_len])
        stamp(raw, 0, body_len, 0)
        body = bytes(raw)
        hit = (body, zlib.crc32(body) & 0xFFFFFFFF)
        if len(_BODIES) > 1024:
            _BODIES.clear()
        _BODIES[key] = hit
    return hit


def make_payload(flow: int, seq: int, body_len: int) -> bytes:
    """The UDP payload of datagram ``seq`` of ``flow``: 16-byte header + body."""
    if not 0 <= flow <= 0xFFFF:
        raise ValueError(f"flow id {flow} is not a u16")
    if not 0 <= seq <= 0xFFFFFFFF:
        raise ValueError(f"seq {seq} is not a u32")
    body, crc = flow_body(flow, body_len)
    out = bytearray(HEADER.pack(MAGIC, flow, 0, seq, crc) + body)
    stamp(out, HEADER_LEN, body_len, seq)
    return bytes(out)


def check_payload(data: bytes | bytearray) -> tuple[int, int, bool] | None:
    """``(flow, seq, ok)`` for a test-flow payload, None when it is not one.

    ``ok`` is False when the crc field or any body byte differs from what the
    flow's datagram ``seq`` of that length carries (corruption, truncation,
    or bytes of another datagram: a stamp that is not ``seq``).
    """
    if len(data) < HEADER_LEN or data[:4] != MAGIC:
        return None
    _, flow, _, seq, crc = HEADER.unpack_from(data)
    body_len = len(data) - HEADER_LEN
    body, want = flow_body(flow, body_len)
    if crc != want:
        return flow, seq, False
    expect = bytearray(body)
    stamp(expect, 0, body_len, seq)
    return flow, seq, data[HEADER_LEN:] == expect  # (a memoryview compares bytewise: slow)


# TCP streams (tcp-send): byte k of every stream is STREAM_BLOCK[k % len]; the
# length is prime, so segment and buffer boundaries never line up with it.
STREAM_PERIOD = 65521
_STREAM: list[bytes] = []


def stream_block() -> bytes:
    """Two periods of the TCP stream pattern (a slice of any length up to one
    period can start at any offset)."""
    if not _STREAM:
        one = bytes(((i * 131) ^ (i >> 7) ^ 0xA5) & 0xFF for i in range(STREAM_PERIOD))
        _STREAM.append(one + one)
    return _STREAM[0]


def payload_len_for(size: int, family: int, vlan: bool = False) -> int:
    """UDP payload length that makes an Ethernet frame (no FCS) of ``size`` bytes."""
    if family not in IP_HLEN:
        raise ValueError(f"IP version {family} is not 4 or 6")
    n = size - ETH_HLEN - (VLAN_HLEN if vlan else 0) - IP_HLEN[family] - UDP_HLEN
    if n < HEADER_LEN:
        least = size - n + HEADER_LEN
        raise ValueError(f"a {size}-byte IPv{family}{' VLAN' if vlan else ''} frame cannot "
                         f"carry the {HEADER_LEN}-byte flow header (at least {least} bytes)")
    if n > MAX_UDP_PAYLOAD:
        raise ValueError(f"frame size {size} is too large for one UDP datagram")
    return n


class FlowRx:
    """Receive accounting of one flow.

    * ``received``/``bytes``: every datagram of the flow and its UDP payload bytes;
    * ``corrupted``: bad crc, body or length (these seqs are *not* marked seen, so a
      corrupted datagram that is not also received intact counts as lost too);
    * ``duplicated``: an intact seq seen before;
    * ``reordered``: an intact, new seq lower than the highest seen so far;
    * ``lost``: ``max_seq + 1 - distinct`` or, with ``expected`` set,
      ``expected - distinct`` (which includes losses at the tail).

    Seen seqs are kept in a bitmap that grows with ``max_seq`` up to ``capacity``
    seqs; past it, duplicates are no longer detected (and counted as new).
    """

    __slots__ = ("received", "bytes", "duplicated", "reordered", "corrupted", "max_seq",
                 "distinct", "expected", "capacity", "_seen", "_frozen")

    def __init__(self, expected: int | None = None, capacity: int = DEFAULT_CAPACITY) -> None:
        self.received = 0
        self.bytes = 0
        self.duplicated = 0
        self.reordered = 0
        self.corrupted = 0
        self.max_seq = -1
        self.distinct = 0
        self.expected = expected
        self.capacity = capacity
        self._seen = bytearray()
        self._frozen = False

    def add(self, seq: int, nbytes: int, ok: bool = True) -> None:
        if self._frozen:
            raise RuntimeError("a FlowRx snapshot cannot take datagrams")
        self.received += 1
        self.bytes += nbytes
        if not ok:
            self.corrupted += 1
            return
        if seq < self.capacity:
            idx, bit = seq >> 3, 1 << (seq & 7)
            seen = self._seen
            if idx >= len(seen):
                grow = max(idx + 1 - len(seen), len(seen), 1024)
                seen.extend(bytes(min(grow, (self.capacity + 7) // 8 - len(seen))))
            if seen[idx] & bit:
                self.duplicated += 1
                return
            seen[idx] |= bit
        self.distinct += 1
        if seq < self.max_seq:
            self.reordered += 1
        else:
            self.max_seq = seq

    @property
    def lost(self) -> int:
        if self.expected is not None:
            top = max(self.expected, self.max_seq + 1)
        else:
            top = self.max_seq + 1
        return max(0, top - self.distinct)

    def lost_of(self, expected: int) -> int:
        """Datagrams of the first ``expected`` seqs that never arrived intact."""
        return max(0, max(expected, self.max_seq + 1) - self.distinct)

    def snapshot(self, expected: int | None = None) -> FlowRx:
        """A frozen copy of the counters (without the bitmap)."""
        snap = FlowRx(self.expected if expected is None else expected, self.capacity)
        for name in ("received", "bytes", "duplicated", "reordered", "corrupted", "max_seq",
                     "distinct"):
            setattr(snap, name, getattr(self, name))
        snap._frozen = True
        return snap

    def as_dict(self) -> dict[str, int]:
        return {"received": self.received, "lost": self.lost, "duplicated": self.duplicated,
                "reordered": self.reordered, "corrupted": self.corrupted, "bytes": self.bytes,
                "max_seq": self.max_seq}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.as_dict().items())
        return f"FlowRx({inner})"


class Pacer:
    """Paces items at ``rate`` per second against absolute monotonic deadlines.

    Item ``i`` is due at ``start + i / rate``: a late item does not push the
    later ones back, so the long-run rate does not drift. Items less than
    ``slack`` seconds early go out at once (sleeping that little costs more
    than it saves). ``rate <= 0`` means as fast as possible.
    """

    def __init__(self, rate: float, slack: float = 0.0002) -> None:
        self.rate = rate
        self.slack = slack
        self.start = time.monotonic()

    def restart(self) -> None:
        self.start = time.monotonic()

    def wait(self, i: int) -> None:
        if self.rate <= 0:
            return
        delay = self.start + i / self.rate - time.monotonic()
        if delay > self.slack:
            time.sleep(delay)


# ---------------------------------------------------------------- JSON out

def _json_str(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def to_json(obj: object) -> str:
    """JSON for dicts (str keys), lists, str, int, float, bool and None."""
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if isinstance(obj, int):
        return str(obj)
    if isinstance(obj, float):
        return f"{obj:.6f}" if obj == obj and abs(obj) != float("inf") else "null"
    if isinstance(obj, str):
        return _json_str(obj)
    if isinstance(obj, dict):
        return "{" + ", ".join(_json_str(str(k)) + ": " + to_json(v)
                               for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ", ".join(to_json(v) for v in obj) + "]"
    raise TypeError(f"cannot encode {type(obj).__name__}")


# ---------------------------------------------------------------- guest modes

class _Stop:
    """Turns SIGTERM/SIGINT into a flag the receive loops check."""

    def __init__(self) -> None:
        self.flag = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handler)

    def _handler(self, signum: int, frame: object) -> None:
        self.flag = True


def _bind_both(port: int, rcvbuf: int) -> list[socket.socket]:
    socks = []
    s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s4.bind(("0.0.0.0", port))
    socks.append(s4)
    try:
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    except OSError as e:
        sys.stderr.write(f"no IPv6 socket: {e}\n")
    else:
        try:
            s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s6.bind(("::", port))
            socks.append(s6)
        except OSError as e:
            sys.stderr.write(f"no IPv6 bind: {e}\n")
            s6.close()
    for s in socks:
        _set_buf(s, socket.SO_RCVBUF, _SO_RCVBUFFORCE, rcvbuf)
    return socks


def _set_buf(sock: socket.socket, opt: int, force: int, size: int) -> None:
    """Set a socket buffer size, past net.core.[rw]mem_max when root."""
    for o in (force, opt):
        try:
            sock.setsockopt(socket.SOL_SOCKET, o, size)
            return
        except OSError:
            pass


def socket_drops(socks: list[socket.socket]) -> int | None:
    """Datagrams the kernel dropped at these sockets (the drops column of
    /proc/net/udp and udp6, found by inode); None when it cannot be read."""
    inodes = {str(os.fstat(s.fileno()).st_ino) for s in socks}
    total, seen = 0, 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) >= 13 and cols[9] in inodes:
                total += int(cols[-1])
                seen += 1
    return total if seen else None


def udp_errors() -> dict[str, int]:
    """The guest's UDP (v4 + v6) receive-buffer and checksum error counts."""
    out = {"rcvbuf": 0, "csum": 0}
    try:
        with open("/proc/net/snmp") as f:
            rows = [r.split() for r in f if r.startswith("Udp:")]
        if len(rows) == 2:
            v4 = dict(zip(rows[0][1:], rows[1][1:], strict=False))
            out["rcvbuf"] += int(v4.get("RcvbufErrors", 0))
            out["csum"] += int(v4.get("InCsumErrors", 0))
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/net/snmp6") as f:
            v6 = dict(r.split()[:2] for r in f if r.startswith("Udp6"))
        out["rcvbuf"] += int(v6.get("Udp6RcvbufErrors", 0))
        out["csum"] += int(v6.get("Udp6InCsumErrors", 0))
    except (OSError, ValueError):
        pass
    return out


def _serve(socks: list[socket.socket], duration: float, idle: float, stop: _Stop,
           handle: Handler, end: list[float] | None = None) -> float:
    """Receive until duration/idle/stop, ``handle`` returns True, or the
    monotonic time ``end[0]`` (which ``handle`` may set); return seconds."""
    start = time.monotonic()
    deadline = start + duration
    end = end if end is not None else [deadline]
    last = None  # time of the last datagram
    done = False
    while not done and not stop.flag:
        now = time.monotonic()
        stop_at = min(deadline, end[0])
        if now >= stop_at or (idle > 0 and last is not None and now - last >= idle):
            break
        timeout = min(0.2, stop_at - now)
        ready, _, _ = select.select(socks, [], [], max(0.0, timeout))
        for s in ready:
            for _ in range(512):
                try:
                    data, addr = s.recvfrom(65536, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # e.g. ECONNREFUSED from an earlier echo
                    break
                last = time.monotonic()
                if handle(s, data, addr):
                    done = True
                    break
            if done:
                break
    return time.monotonic() - start


def cmd_sink(args: argparse.Namespace) -> int:
    stop = _Stop()
    socks = _bind_both(args.port, args.rcvbuf)
    flows: dict[int, FlowRx] = {}
    other = [0]
    total = [0]
    end = [float("inf")]
    errs0 = udp_errors()
    sys.stderr.write("READY\n")
    sys.stderr.flush()

    def handle(sock: socket.socket, data: bytes, addr: tuple) -> bool:
        res = check_payload(data)
        if res is None:
            other[0] += 1
            return False
        flow, seq, ok = res
        rx = flows.get(flow)
        if rx is None:
            rx = flows[flow] = FlowRx()
        rx.add(seq, len(data), ok)
        total[0] += 1
        if args.count is not None and total[0] == args.count:
            if args.linger <= 0:
                return True
            end[0] = time.monotonic() + args.linger
        return False

    secs = _serve(socks, args.duration, args.idle, stop, handle, end)
    drops = socket_drops(socks)
    errs = udp_errors()
    for s in socks:
        s.close()
    out = {"flows": {str(k): flows[k].as_dict() for k in sorted(flows)},
           "other": other[0], "received": total[0], "seconds": secs,
           "socket_drops": drops, "udp_errors": {k: errs[k] - errs0[k] for k in errs}}
    sys.stdout.write(to_json(out) + "\n")
    sys.stdout.flush()
    return 0


def cmd_echo(args: argparse.Namespace) -> int:
    stop = _Stop()
    socks = _bind_both(args.port, args.rcvbuf)
    counts = {"received": 0, "echoed": 0, "errors": 0}
    sys.stderr.write("READY\n")
    sys.stderr.flush()

    def handle(sock: socket.socket, data: bytes, addr: tuple) -> bool:
        counts["received"] += 1
        for _ in range(20):
            try:
                sock.sendto(data, addr)
                counts["echoed"] += 1
                break
            except OSError as e:
                counts["errors"] += 1
                if e.errno not in _RETRY_ERRNOS:
                    break
                time.sleep(0.0005)
        return False

    secs = _serve(socks, args.duration, args.idle, stop, handle)
    drops = socket_drops(socks)
    for s in socks:
        s.close()
    out: dict[str, object] = dict(counts)
    out["seconds"] = secs
    out["socket_drops"] = drops
    sys.stdout.write(to_json(out) + "\n")
    sys.stdout.flush()
    return 0


def cmd_hold(args: argparse.Namespace) -> int:
    stop = _Stop()
    socks = _bind_both(args.port, args.rcvbuf)
    sys.stderr.write("READY\n")
    sys.stderr.flush()
    start = time.monotonic()
    while not stop.flag:
        left = args.duration - (time.monotonic() - start)
        if left <= 0:
            break
        select.select([], [], [], min(0.2, left))  # a signal ends it early
    secs = time.monotonic() - start
    held = 0
    for s in socks:
        while True:
            try:
                s.recv(65536, socket.MSG_DONTWAIT)
            except OSError:
                break
            held += 1
        s.close()
    sys.stdout.write(to_json({"held": held, "seconds": secs}) + "\n")
    sys.stdout.flush()
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    family = 6 if ":" in args.dst else 4
    af = socket.AF_INET6 if family == 6 else socket.AF_INET
    try:
        plen = payload_len_for(args.size, family, args.vlan)
        if not 0 <= args.flow <= 0xFFFF:
            raise ValueError(f"flow id {args.flow} is not a u16")
        if args.count < 0 or args.count > 0xFFFFFFFF:
            raise ValueError(f"count {args.count} out of range")
        addr = socket.getaddrinfo(args.dst, args.port, af, socket.SOCK_DGRAM, 0,
                                  socket.AI_NUMERICHOST)[0][4]
    except (ValueError, OSError) as e:
        sys.stderr.write(f"flow_agent send: {e}\n")
        return 2
    sock = socket.socket(af, socket.SOCK_DGRAM)
    _set_buf(sock, socket.SO_SNDBUF, _SO_SNDBUFFORCE, args.sndbuf)
    if args.sport:
        sock.bind(("::" if family == 6 else "0.0.0.0", args.sport))
    sock.connect(addr)
    stop = _Stop()
    sys.stderr.write("READY\n")  # for a background run (see GuestAgent.send_background)
    sys.stderr.flush()
    buf = bytearray(make_payload(args.flow, 0, plen - HEADER_LEN))
    seq_at = (SEQ_OFFSET, *(HEADER_LEN + off for off in stamp_offsets(plen - HEADER_LEN)))
    sent = errors = failed = 0
    pacer = Pacer(args.rate)
    limit = args.timeout if args.duration is None else min(args.timeout, args.duration)
    deadline = time.monotonic() + limit
    pack_seq = struct.Struct("!I").pack_into
    for seq in range(args.count):
        if stop.flag:
            break
        pacer.wait(seq)
        for at in seq_at:
            pack_seq(buf, at, seq)
        backoff = 0.0001
        give_up = time.monotonic() + 0.5
        while True:
            try:
                sock.send(buf)
                sent += 1
                break
            except OSError as e:
                errors += 1
                if e.errno not in _RETRY_ERRNOS or time.monotonic() > give_up:
                    failed += 1
                    break
                time.sleep(backoff)
                backoff = min(backoff * 2, 0.005)
        if time.monotonic() > deadline:
            break
    secs = time.monotonic() - pacer.start
    sock.close()
    out = {"sent": sent, "errors": errors, "failed": failed, "seconds": secs,
           "payload_len": plen, "flow": args.flow}
    sys.stdout.write(to_json(out) + "\n")
    sys.stdout.flush()
    return 0 if sent == args.count else 1


def cmd_tcp_send(args: argparse.Namespace) -> int:
    """Connect, send ``--bytes`` of the stream pattern in writes of ``--chunk``
    bytes (large writes: the stack hands TSO/GSO skbs to the driver), close the
    sending side and wait for the peer's FIN. ``writes``: the send() calls it
    took (each may end in a segment shorter than the MSS)."""
    block = memoryview(stream_block())
    chunk = max(1, min(args.chunk, STREAM_PERIOD))
    start = time.monotonic()
    sent = writes = 0
    try:
        sock = socket.create_connection((args.dst, args.port), timeout=args.timeout)
        sock.settimeout(max(1.0, args.timeout - (time.monotonic() - start)))
        while sent < args.bytes:
            off = sent % STREAM_PERIOD
            n = min(chunk, args.bytes - sent)
            sent += sock.send(block[off:off + n])
            writes += 1
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(4096):
            pass
        sock.close()
    except OSError as e:
        out = {"sent": sent, "writes": writes, "seconds": time.monotonic() - start,
               "error": str(e)}
        sys.stdout.write(to_json(out) + "\n")
        return 1
    out = {"sent": sent, "writes": writes, "seconds": time.monotonic() - start}
    sys.stdout.write(to_json(out) + "\n")
    sys.stdout.flush()
    return 0


def _port(text: str) -> int:
    n = int(text)
    if not 0 < n < 65536:
        raise argparse.ArgumentTypeError(f"port {n} out of range")
    return n


def _seconds(text: str) -> float:
    x = float(text)
    if not 0 <= x <= 86400:
        raise argparse.ArgumentTypeError(f"{text} seconds out of range")
    return x


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flow_agent", description="ktest test-flow agent")
    sub = p.add_subparsers(dest="mode", required=True)
    for name in ("sink", "echo"):
        sp = sub.add_parser(name)
        sp.add_argument("--port", type=_port, required=True)
        sp.add_argument("--duration", type=_seconds, default=30.0,
                        help="stop after this many seconds (default 30)")
        sp.add_argument("--idle", type=_seconds, default=0.0,
                        help="stop after this many quiet seconds once a datagram came (0: off)")
        sp.add_argument("--rcvbuf", type=int, default=32 << 20)
        if name == "sink":
            sp.add_argument("--count", type=int, default=None,
                            help="stop after this many test-flow datagrams")
            sp.add_argument("--linger", type=_seconds, default=0.0,
                            help="with --count: go on receiving this long after it")
    sp = sub.add_parser("hold")
    sp.add_argument("--port", type=_port, required=True)
    sp.add_argument("--duration", type=_seconds, default=30.0,
                    help="stop after this many seconds (default 30)")
    sp.add_argument("--rcvbuf", type=int, default=64 << 20)
    sp = sub.add_parser("send")
    sp.add_argument("--dst", required=True)
    sp.add_argument("--port", type=_port, required=True)
    sp.add_argument("--flow", type=int, required=True)
    sp.add_argument("--count", type=int, required=True)
    sp.add_argument("--size", type=int, required=True,
                    help="Ethernet frame length without FCS")
    sp.add_argument("--rate", type=float, default=0.0, help="datagrams/s (0: unpaced)")
    sp.add_argument("--sport", type=int, default=0)
    sp.add_argument("--vlan", action="store_true", help="frames carry an 802.1Q tag")
    sp.add_argument("--timeout", type=_seconds, default=300.0,
                    help="stop sending after this many seconds (default 300)")
    sp.add_argument("--duration", type=_seconds, default=None,
                    help="the same, for a background run (the lower of the two counts)")
    sp.add_argument("--sndbuf", type=int, default=4 << 20)
    sp = sub.add_parser("tcp-send")
    sp.add_argument("--dst", required=True)
    sp.add_argument("--port", type=_port, required=True)
    sp.add_argument("--bytes", type=int, required=True)
    sp.add_argument("--chunk", type=int, default=65536, help="bytes per send() call")
    sp.add_argument("--timeout", type=_seconds, default=300.0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.mode == "sink":
        return cmd_sink(args)
    if args.mode == "echo":
        return cmd_echo(args)
    if args.mode == "hold":
        return cmd_hold(args)
    if args.mode == "tcp-send":
        return cmd_tcp_send(args)
    return cmd_send(args)


if __name__ == "__main__":
    sys.exit(main())
