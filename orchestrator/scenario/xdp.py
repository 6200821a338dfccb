"""XDP programs on the NIC under test.

The guest tool ``ktest-xdp`` (guest-images/tools/ktest-xdp.c) assembles and
loads one of a few small programs and pins it on the guest's bpffs; it is
attached the way users attach programs, with ``ip link set DEV xdpdrv pinned
PATH`` (native mode only: a driver without XDP support must refuse it, not
fall back to generic XDP). Every program counts the frames it saw, the frames
it acted on and their whole length (fragments included) in a map that
:meth:`XdpProgram.counts` reads.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.scenario.dut import Dut

PROGRAMS = ("pass", "drop", "tx", "redirect", "abort")
PIN_ROOT = "/sys/fs/bpf/ktest"


class XdpError(Exception):
    pass


@dataclass(frozen=True)
class XdpCounts:
    seen: int
    matched: int
    bytes: int  # whole frames, fragments included
    linear: int  # what the program could read directly (data_end - data)


@dataclass
class XdpProgram:
    """One loaded program of a DUT; ``attach()``/``detach()`` it at will."""

    dut: Dut
    name: str
    pin_dir: str
    frags: bool

    def attach(self, check: bool = True) -> tuple[bool, str]:
        """``ip link set DEV xdpdrv pinned DIR/prog``; (attached, ip's stderr)."""
        r = self.dut.guest.cmd(f"ip link set dev {self.dut.ifname} xdpdrv pinned "
                               f"{shlex.quote(self.pin_dir + '/prog')}", check=False)
        if check and not r.ok:
            raise XdpError(f"{self.dut.ifname}: attaching XDP program {self.name!r} failed: "
                           f"{r.stderr.strip() or r.stdout.strip()}")
        return r.ok, r.stderr.strip()

    def detach(self) -> None:
        detach(self.dut)

    def counts(self) -> XdpCounts:
        out = self.dut.sh(f"ktest-xdp counts {shlex.quote(self.pin_dir)}")
        m = re.search(r"seen=(\d+) matched=(\d+) bytes=(\d+) linear=(\d+)", out)
        if not m:
            raise XdpError(f"ktest-xdp counts: unexpected output {out!r}")
        return XdpCounts(*(int(g) for g in m.groups()))

    def unload(self) -> None:
        """Unpin (the kernel frees the program once nothing holds it)."""
        self.dut.sh(f"rm -rf {shlex.quote(self.pin_dir)}", check=False)


_loaded = 0


def load(dut: Dut, prog: str, port: int | None = None, ifindex: int | None = None,
         frags: bool = False) -> XdpProgram:
    """Load ``prog`` (one of :data:`PROGRAMS`) in the DUT's guest, pinned."""
    global _loaded
    if prog not in PROGRAMS:
        raise ValueError(f"unknown XDP program {prog!r} (known: {', '.join(PROGRAMS)})")
    _loaded += 1
    pin_dir = f"{PIN_ROOT}-{prog}-{_loaded}"
    args = [prog] + [str(a) for a in (port, ifindex) if a is not None]
    if frags:
        args.append("frags")
    r = dut.guest.cmd(f"rm -rf {pin_dir}; ktest-xdp load {pin_dir} {' '.join(args)}",
                      check=False)
    if not r.ok:
        raise XdpError(f"ktest-xdp load {' '.join(args)}: {r.stderr.strip()[-2000:]}")
    return XdpProgram(dut, prog, pin_dir, frags)


def detach(dut: Dut) -> None:
    dut.sh(f"ip link set dev {dut.ifname} xdpdrv off", check=False)


def attached(dut: Dut) -> bool:
    link = dut.guest.ip(f"-d link show dev {dut.ifname}", json=True)[0]
    return "xdp" in link


def ifindex(dut: Dut) -> int:
    return int(dut.guest.read(f"/sys/class/net/{dut.ifname}/ifindex", check=True))


def probe(dut: Dut, frags: bool = False) -> bool:
    """Does a native XDP program attach (with ``frags``: a multi-buffer one,
    at MTU 9000)? Leaves the interface as it found it."""
    mtu = int(dut.guest.read(f"/sys/class/net/{dut.ifname}/mtu", check=True))
    prog = load(dut, "pass", frags=frags)
    try:
        if frags and dut.guest.cmd(f"ip link set {dut.ifname} mtu 9000", check=False).ok is False:
            return False
        ok, _ = prog.attach(check=False)
        return ok
    finally:
        detach(dut)
        prog.unload()
        if frags:
            dut.sh(f"ip link set {dut.ifname} mtu {mtu}", check=False)
