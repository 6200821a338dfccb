"""The guest's page-pool lister: netlink attributes parsed as the kernel
packs them (NETDEV_A_PAGE_POOL_*, 4-byte aligned, uints of 4 or 8 bytes)."""

from __future__ import annotations

import struct

from orchestrator.scenario import pp_dump


def nla(kind: int, value: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(value), kind) + value
    return raw + b"\0" * (-len(raw) % 4)


def test_attrs_of_an_orphaned_pool() -> None:
    msg = (nla(1, struct.pack("=I", 7)) + nla(4, struct.pack("=Q", 255))
           + nla(5, struct.pack("=Q", 255 * 4096)) + nla(6, struct.pack("=I", 62))
           + nla(0x8000 | 9, b"\1\2\3"))  # a nested/unknown attribute is kept apart
    got = pp_dump.attrs(msg)
    pool = {pp_dump.ATTRS[k]: pp_dump.uint(v) for k, v in got.items() if k in pp_dump.ATTRS}
    assert pool == {"id": 7, "inflight": 255, "inflight_mem": 255 * 4096, "detach_time": 62}
    assert got[9] == b"\1\2\3"


def test_attrs_stop_at_a_truncated_attribute() -> None:
    assert pp_dump.attrs(nla(2, struct.pack("=I", 3)) + b"\0\0") == {2: struct.pack("=I", 3)}
