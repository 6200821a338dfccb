"""Runs in the guest (python3 -I, standard library only): the kernel's page
pools as JSON, one object per pool, from the netdev generic netlink family
(NETDEV_CMD_PAGE_POOL_GET, Linux 6.8 and later). Only pools a driver linked
to its netdev are listed; a pool whose netdev is gone shows no ifindex and a
detach time, and stays listed until its last page comes back.

    python3 -I pp_dump.py   ->   {"pools": [{"id": 3, "ifindex": 4, "inflight": 64, ...}]}

Exit status 2 when the kernel has no page-pool netlink (the JSON says why).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME = 3, 1, 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NETDEV_CMD_PAGE_POOL_GET = 5
# NETDEV_A_PAGE_POOL_*: uapi/linux/netdev.h
ATTRS = {1: "id", 2: "ifindex", 3: "napi_id", 4: "inflight", 5: "inflight_mem",
         6: "detach_time", 7: "dmabuf"}
NLA_TYPE_MASK = 0x3FFF


def attrs(buf: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    off = 0
    while off + 4 <= len(buf):
        length, kind = struct.unpack_from("=HH", buf, off)
        if length < 4:
            break
        out[kind & NLA_TYPE_MASK] = buf[off + 4:off + length]
        off += (length + 3) & ~3
    return out


def uint(raw: bytes) -> int:
    return int.from_bytes(raw, sys.byteorder)


def request(sock: socket.socket, family: int, cmd: int, flags: int, payload: bytes,
            seq: int) -> list[bytes]:
    """Send one generic netlink request; the genl payloads of the answers."""
    body = struct.pack("=BBH", cmd, 1, 0) + payload
    sock.send(struct.pack("=IHHII", 16 + len(body), family, NLM_F_REQUEST | flags, seq, 0)
              + body)
    got: list[bytes] = []
    while True:
        data = sock.recv(1 << 16)
        off = 0
        while off + 16 <= len(data):
            length, kind, _, mseq, _ = struct.unpack_from("=IHHII", data, off)
            msg = data[off + 16:off + length]
            off += (length + 3) & ~3
            if mseq != seq:
                continue
            if kind == NLMSG_ERROR:
                err = struct.unpack_from("=i", msg)[0]
                if err:
                    raise OSError(-err, os.strerror(-err))
                return got
            if kind == NLMSG_DONE:
                return got
            got.append(msg[4:])
            if not flags & NLM_F_DUMP:
                return got


def main() -> int:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    name = b"netdev\0"
    nla = struct.pack("=HH", 4 + len(name), CTRL_ATTR_FAMILY_NAME) + name
    nla += b"\0" * (-len(nla) % 4)
    try:
        fam = request(sock, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0, nla, 1)
        family = uint(attrs(fam[0])[CTRL_ATTR_FAMILY_ID])
        answers = request(sock, family, NETDEV_CMD_PAGE_POOL_GET, NLM_F_DUMP, b"", 2)
    except (OSError, IndexError, KeyError) as e:
        print(json.dumps({"error": f"no page-pool netlink here: {e}"}))
        return 2
    pools = []
    for msg in answers:
        pool = {ATTRS[k]: uint(v) for k, v in attrs(msg).items() if k in ATTRS}
        pools.append(pool)
    print(json.dumps({"pools": pools}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
