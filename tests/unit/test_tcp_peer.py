"""The peer's TCP receiver, without a VM: the test plays the guest's stack on
the other end of a UDP "wire" with segments built by scapy, good ones and
each kind of bad one, and checks what the sink recorded and answered."""

from __future__ import annotations

import socket

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from orchestrator.scenario.flow_agent import STREAM_PERIOD, stream_block
from orchestrator.scenario.traffic import Peer

GMAC = "52:54:00:12:34:56"
PMAC = "52:54:00:99:00:01"
PORT = 5201
ISN = 1000


def seg(v6: bool, flags: str, seq: int, payload: bytes = b"", **tcp: object) -> Packet:
    ip: Packet = (IPv6(src="fd99::2", dst="fd99::1") if v6
                  else IP(src="10.99.0.2", dst="10.99.0.1"))
    pkt = Ether(src=GMAC, dst=PMAC) / ip / TCP(sport=40000, dport=PORT, flags=flags, seq=seq,
                                               **tcp)  # type: ignore[arg-type]
    return pkt / Raw(payload) if payload else pkt


def answer(guest: socket.socket) -> Packet:
    pkt = Ether(guest.recv(65536))
    assert TCP in pkt
    return pkt


def stream(offset: int, n: int) -> bytes:
    block = stream_block()
    return block[offset % STREAM_PERIOD:offset % STREAM_PERIOD + n]


def handshake(guest: socket.socket, v6: bool) -> Packet:
    guest.send(bytes(seg(v6, "S", ISN, options=[("MSS", 1460), ("WScale", 7),
                                                ("Timestamp", (77, 0))])))
    synack = answer(guest)
    assert synack[TCP].flags == "SA" and synack[TCP].ack == ISN + 1
    return synack


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_clean_stream_is_acknowledged_and_recorded(wire: tuple[Peer, socket.socket],
                                                   v6: bool) -> None:
    peer, guest = wire
    sink = peer.tcp_sink(PORT)
    synack = handshake(guest, v6)
    opts = dict(synack[TCP].options)
    assert opts["MSS"] == (1440 if v6 else 1460) and opts["WScale"] == 7
    assert opts["Timestamp"][1] == 77, "the SYN-ACK echoes the guest's TSval"
    raw = bytes(synack)
    # the sink's checksums are what scapy computes for the same segment
    again = Ether(raw)
    del again[TCP].chksum
    if not v6:
        del again[IP].chksum
    assert bytes(again) == raw

    mss = 1440 if v6 else 1460
    sent = 0
    for i, n in enumerate((mss - 12, mss - 12, 100, mss - 12, 7)):
        guest.send(bytes(seg(v6, "PA", ISN + 1 + sent, stream(sent, n),
                             options=[("NOP", None), ("NOP", None), ("Timestamp", (100 + i, 5))])))
        sent += n
        ack = answer(guest)[TCP]
        assert ack.ack == ISN + 1 + sent
        assert dict(ack.options)["Timestamp"][1] == 100 + i
    guest.send(bytes(seg(v6, "FA", ISN + 1 + sent)))
    fin = answer(guest)
    assert fin[TCP].flags == "FA" and fin[TCP].ack == ISN + 2 + sent

    (conn,) = sink.wait_closed(1, timeout=5)
    assert conn.faults == 0, conn.as_dict()
    assert conn.bytes == sent and conn.segments == 5 and conn.max_payload == mss - 12
    assert conn.sizes == {7: 1, 100: 1, mss - 12: 3}


def test_each_kind_of_bad_segment_is_counted(wire: tuple[Peer, socket.socket]) -> None:
    peer, guest = wire
    sink = peer.tcp_sink(PORT, mss=1000)
    handshake(guest, v6=False)
    good = stream(0, 500)

    bad_csum = seg(False, "PA", ISN + 1, good, chksum=0x1234)
    guest.send(bytes(bad_csum))                               # dropped, no ACK
    corrupt = bytearray(good)
    corrupt[10] ^= 0xFF
    guest.send(bytes(seg(False, "PA", ISN + 1, bytes(corrupt))))
    assert answer(guest)[TCP].ack == ISN + 501                # received, but wrong bytes
    guest.send(bytes(seg(False, "PA", ISN + 1 + 600, good)))  # a gap of 100 bytes
    assert answer(guest)[TCP].ack == ISN + 501
    guest.send(bytes(seg(False, "PA", ISN + 1, good)))        # a repeat
    assert answer(guest)[TCP].ack == ISN + 501
    big = stream(500, 1200)
    guest.send(bytes(seg(False, "PA", ISN + 501, big)))       # above the MSS
    assert answer(guest)[TCP].ack == ISN + 1701
    huge = stream(1700, 1470)
    guest.send(bytes(seg(False, "PA", ISN + 1701, huge)))     # and above the MTU
    assert answer(guest)[TCP].ack == ISN + 3171
    bad_ip = Ether(bytes(seg(False, "PA", ISN + 3171, stream(3170, 10))))
    bad_ip[IP].chksum = 0xBEEF
    guest.send(bytes(bad_ip))
    assert answer(guest)[TCP].ack == ISN + 3181
    guest.send(bytes(seg(False, "R", ISN + 3181)))

    (conn,) = sink.wait_closed(1, timeout=5)
    d = conn.as_dict()
    assert (d["bad_tcp_csum"], d["corrupt"], d["gaps"], d["repeats"], d["oversize"],
            d["over_mtu"], d["bad_ip_csum"], d["resets"]) == (1, 1, 1, 1, 2, 1, 1, 1), d
    assert conn.bytes == 3180


def test_segments_to_other_ports_are_not_answered(wire: tuple[Peer, socket.socket]) -> None:
    peer, guest = wire
    peer.tcp_sink(PORT)
    guest.send(bytes(Ether(src=GMAC, dst=PMAC) / IP(src="10.99.0.2", dst="10.99.0.1")
                     / TCP(sport=40000, dport=PORT + 1, flags="S", seq=5)))
    with pytest.raises(TimeoutError):
        guest.settimeout(0.5)
        guest.recv(65536)
