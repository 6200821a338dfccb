"""Receive-side scaling, predicted on the host.

A NIC that hashes with Toeplitz and reports its key, indirection table and
hashed fields through ethtool (`ethtool -x`, `ethtool -n DEV rx-flow-hash`)
sends every flow to a queue the host can compute: hash the flow's fields
(source address, destination address, then source and destination port when
they are hashed) with the key, take the hash modulo the table size, and the
table entry names the queue. Tests use this to check steering exactly
rather than statistically.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# the hashed fields, as `ethtool -n DEV rx-flow-hash TYPE` prints them
FIELD_NAMES = {
    "IP SA": "ip_src",
    "IP DA": "ip_dst",
    "L4 bytes 0 & 1 [TCP/UDP src port]": "l4_src",
    "L4 bytes 2 & 3 [TCP/UDP dst port]": "l4_dst",
    "L2DA": "l2_dst",
    "VLAN tag": "vlan",
    "L3 proto": "l3_proto",
}


@dataclass(frozen=True)
class RssConfig:
    """What `ethtool -x` reports."""

    indir: tuple[int, ...]
    key: bytes
    hfunc: str | None  # the function that is on ("toeplitz", "xor", ...), if shown

    def queue_of(self, hash_value: int) -> int:
        return self.indir[hash_value % len(self.indir)]

    @property
    def queues(self) -> set[int]:
        return set(self.indir)


def toeplitz(key: bytes, data: bytes) -> int:
    """The 32-bit Toeplitz hash of `data`: for every set input bit (most
    significant first), XOR in the 32 key bits that start at its position."""
    if len(key) * 8 < len(data) * 8 + 32:
        raise ValueError(f"a {len(key)}-byte key cannot hash {len(data)} bytes")
    k = int.from_bytes(key, "big")
    top = len(key) * 8 - 32
    h = 0
    for i, byte in enumerate(data):
        for b in range(8):
            if byte & (0x80 >> b):
                h ^= (k >> (top - (i * 8 + b))) & 0xFFFFFFFF
    return h


def hash_input(fields: frozenset[str], src: str, dst: str,
               sport: int = 0, dport: int = 0) -> bytes:
    """The bytes a NIC feeds the hash for these fields, in the standard order."""
    out = b""
    if "ip_src" in fields:
        out += ipaddress.ip_address(src).packed
    if "ip_dst" in fields:
        out += ipaddress.ip_address(dst).packed
    if "l4_src" in fields:
        out += sport.to_bytes(2, "big")
    if "l4_dst" in fields:
        out += dport.to_bytes(2, "big")
    return out


def predictable(cfg: RssConfig | None, fields: frozenset[str] | None) -> bool:
    """Whether the queue of a flow can be computed: Toeplitz, a key, and
    only address/port fields (nothing such as VLAN or L2 that this module
    does not model)."""
    return (cfg is not None and fields is not None and bool(fields)
            and cfg.hfunc == "toeplitz" and bool(cfg.key) and bool(cfg.indir)
            and fields <= {"ip_src", "ip_dst", "l4_src", "l4_dst"})


def balanced(pred: dict[int, int], n: int) -> list[int]:
    """Up to n of the keys of `pred` (flow id -> queue), taken in turn from
    every queue that has any, in their order within each queue."""
    by_queue: dict[int, list[int]] = {}
    for fid, q in pred.items():
        by_queue.setdefault(q, []).append(fid)
    picked: list[int] = []
    while len(picked) < n and any(by_queue.values()):
        for q in sorted(by_queue):
            if by_queue[q] and len(picked) < n:
                picked.append(by_queue[q].pop(0))
    return picked


def parse_ethtool_x(text: str) -> RssConfig | None:
    """Parse `ethtool -x DEV`; None when it shows no indirection table."""
    indir: dict[int, list[int]] = {}
    key = b""
    hfunc: str | None = None
    section = "table"
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("RSS hash key"):
            section = "key"
            continue
        if s.startswith("RSS hash function"):
            section = "hfunc"
            continue
        if s.startswith("RSS input transformation"):  # ethtool 6.7+: symmetric-xor
            section = "xfrm"
            continue
        if section == "table":
            m = re.fullmatch(r"(\d+):\s+([\d\s]+)", s)
            if m:
                indir[int(m.group(1))] = [int(x) for x in m.group(2).split()]
        elif section == "key" and re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2})*", s):
            key += bytes.fromhex(s.replace(":", ""))
        elif section == "hfunc":
            m = re.fullmatch(r"([\w-]+):\s+on", s)
            if m:
                hfunc = m.group(1)
    if not indir:
        return None
    table: list[int] = []
    for start in sorted(indir):
        if start != len(table):
            return None  # a gap: not a table we understand
        table.extend(indir[start])
    return RssConfig(tuple(table), key, hfunc)


def parse_flow_hash(text: str) -> frozenset[str] | None:
    """Parse `ethtool -n DEV rx-flow-hash TYPE`; None if the fields are
    not listed or one is unknown."""
    lines = [s.strip() for s in text.splitlines() if s.strip()]
    if not lines or "Hash flow key" not in lines[0]:
        return None
    out = set()
    for s in lines[1:]:
        if s == "None":
            continue
        name = FIELD_NAMES.get(s)
        if name is None:
            return None
        out.add(name)
    return frozenset(out)
