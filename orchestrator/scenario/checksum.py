"""The Internet checksum (RFC 1071) as the traffic peer computes and checks it."""

from __future__ import annotations

import struct

__all__ = ["internet_checksum", "pseudo_header", "sum_ok"]


def internet_checksum(data: bytes | bytearray, start: int = 0) -> int:
    """The 16-bit one's-complement checksum (RFC 1071) of ``data``.

    ``start`` is the integer value of an even-length prefix (e.g. a pseudo
    header) taken into the sum. The big-endian integer value of a byte string
    is congruent to the sum of its 16-bit words modulo 0xffff, which turns the
    word loop into one C-level conversion.
    """
    v = int.from_bytes(data, "big")
    if len(data) & 1:
        v <<= 8
    v += start
    if v == 0:
        return 0xFFFF
    s = v % 0xFFFF
    return 0xFFFF - s if s else 0


def sum_ok(data: bytes | bytearray, start: int) -> bool:
    """True when ``data`` (checksum field included) plus ``start`` sums to -0."""
    v = int.from_bytes(data, "big")
    if len(data) & 1:
        v <<= 8
    v += start
    return v != 0 and v % 0xFFFF == 0


def pseudo_header(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """The integer value of the IPv4 or IPv6 pseudo header (added as ``start``)."""
    if len(src) == 4:
        return int.from_bytes(src + dst + struct.pack("!BBH", 0, proto, length), "big")
    return int.from_bytes(src + dst + struct.pack("!IxxxB", length, proto), "big")
