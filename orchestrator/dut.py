"""The device under test: one NIC of a running guest and the driver bound to it.

A `Driver` says which module drives the NIC (the built ktest_nic, an in-tree
module such as e1000e or virtio_net, or any .ko file) and how to load it. A
`Dut` ties a driver to a NIC of a `Machine`: it loads and unloads the
module, finds the interface by MAC, configures the test addresses, flaps the
link through QMP, reads the kernel's counters and discovers which features
the driver advertises (for `requires(...)` markers).

Test addressing on the wire between the guest and the host's traffic peer:
the guest has GUEST_IP4/GUEST_IP6, the peer PEER_IP4/PEER_IP6 (and answers
for the rest of the /24 and /64, so extra flow sources work).
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import rss
from .guest import Guest
from .machine import Machine
from .profiles import NicSpec
from .smoke import netdev_for_mac

GUEST_IP4, PEER_IP4, PREFIX4 = "10.99.0.2", "10.99.0.1", 24
GUEST_IP6, PEER_IP6, PREFIX6 = "fd99::2", "fd99::1", 64
SUBNET4, SUBNET6 = "10.99.0.0/16", "fd99::/64"
PEER_MAC = "52:54:00:99:00:01"

# In-tree drivers that claim a NIC model; loading one of them means the
# others must be gone (ktest_nic has the same PCI ID as e1000e).
CLAIMANTS = {"e1000e": ("e1000e", "ktest_nic"), "virtio-net-pci": ("virtio_net",)}
# In-tree modules loaded first (transport) for a model.
PREREQS = {"virtio-net-pci": ("virtio_pci",)}
# Which driver names can drive which model (a .ko path can drive any).
DRIVES = {"ktest_nic": ("e1000e",), "e1000e": ("e1000e",), "virtio_net": ("virtio-net-pci",)}


class DutError(Exception):
    """The driver or the NIC did not do what was asked."""


@dataclass(frozen=True)
class Driver:
    """A driver under test: `name` is the module name; `ko` a local file to
    insmod (None: an in-tree module, loaded with modprobe)."""

    name: str
    ko: Path | None = None

    @property
    def label(self) -> str:
        return self.name

    def can_drive(self, model: str) -> bool:
        if self.name in DRIVES:
            return model in DRIVES[self.name]
        return True  # a user's .ko: trust the user


def resolve_driver(spec: str, arts: Any) -> Driver:
    """`ktest_nic` (built from drivers/ktest_nic), an in-tree module name, a
    module source directory (built) or a path to a .ko."""
    from . import session

    name, ko = session.resolve_module(spec, arts)
    return Driver(name, ko)


@dataclass
class Dut:
    machine: Machine
    nic: NicSpec
    driver: Driver
    ifname: str = ""
    bdf: str = ""
    _caps: dict[str, bool] = field(default_factory=dict)
    _ko_remote: str = ""
    bind_dev: str = ""
    bind_dir: str = ""

    @property
    def guest(self) -> Guest:
        return self.machine.ssh()

    @property
    def port_id(self) -> str:
        return self.nic.port_id

    @property
    def mac(self) -> str:
        return self.nic.mac

    def sh(self, command: str, timeout: float = 60.0, check: bool = True) -> str:
        return self.guest.cmd(command, timeout=timeout, check=check).stdout

    # -- module --
    def loaded(self) -> bool:
        out = self.sh("cat /proc/modules", check=False)
        return any(line.split(" ", 1)[0] == self.driver.name for line in out.splitlines())

    def load(self, params: str = "") -> None:
        """Load the driver (unloading other claimants of the NIC first) and
        wait for its interface; addresses are not configured (see setup())."""
        g = self.guest
        for other in CLAIMANTS.get(self.nic.model, ()):
            if other != self.driver.name:
                g.cmd(f"modprobe -r {other} 2>/dev/null || rmmod {other} 2>/dev/null || true",
                      timeout=120)
        for mod in PREREQS.get(self.nic.model, ()):
            g.cmd(f"modprobe {mod}", timeout=120)
        if self.driver.ko is None:
            g.cmd(f"modprobe {shlex.quote(self.driver.name)} {params}".strip(), timeout=120)
        else:
            if not self._ko_remote:
                self._ko_remote = f"/tmp/{self.driver.ko.name}"
                g.put(self.driver.ko, self._ko_remote)
            g.cmd(f"insmod {self._ko_remote} {params}".strip(), timeout=120)
        self._caps.clear()
        self.wait_netdev()

    def unload(self, check_leaks: bool = True) -> None:
        """Unload the driver; then (by default) check that kmemleak finds
        nothing new and the DMA-API debug error count did not grow."""
        before = self.dma_api_errors()
        if check_leaks:
            self.sh("echo clear > /sys/kernel/debug/kmemleak", check=False)
        cmd = "rmmod" if self.driver.ko is not None else "modprobe -r"
        self.guest.cmd(f"{cmd} {self.driver.name}", timeout=120)
        self.ifname = ""
        if check_leaks:
            self.check_leaks(before)

    def check_leaks(self, dma_errors_before: int) -> None:
        # kmemleak only reports objects unreferenced in two scans and older
        # than its minimum age (5 s): scan, wait, scan again.
        leaks = self.sh("echo scan > /sys/kernel/debug/kmemleak; sleep 6; "
                        "echo scan > /sys/kernel/debug/kmemleak; "
                        "cat /sys/kernel/debug/kmemleak", timeout=180)
        if leaks.strip():
            first = leaks.strip().split("\nunreferenced object")[0]
            count = leaks.count("unreferenced object")
            raise DutError(f"kmemleak: {count} unreferenced object(s) after unloading "
                           f"{self.driver.name}:\n{first[:3000]}")
        after = self.dma_api_errors()
        if after > dma_errors_before:
            raise DutError(f"DMA-API debug error count grew from {dma_errors_before} to "
                           f"{after} during {self.driver.name} unload")

    def dma_api_errors(self) -> int:
        out = self.sh("cat /sys/kernel/debug/dma-api/error_count 2>/dev/null", check=False)
        return int(out.strip() or 0)

    def bind(self) -> None:
        self.sh(f"echo {self.bind_dev} > {self.bind_dir}/bind")
        self.wait_netdev()

    def unbind(self) -> None:
        self.sh(f"echo {self.bind_dev} > {self.bind_dir}/unbind")
        self.ifname = ""

    # -- interface --
    def wait_netdev(self, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            name = netdev_for_mac(self.machine, self.mac)
            if name:
                self.ifname = name
                dev = self.sh(f"readlink -f /sys/class/net/{name}/device").strip()
                # virtio: .../0000:01:00.0/virtio1 -> the PCI function is the parent
                parts = dev.split("/")
                self.bdf = next(p for p in reversed(parts) if p.count(":") == 2)
                # virtio_net binds to the virtio device, not the PCI function
                bus = "virtio" if parts[-1].startswith("virtio") else "pci"
                self.bind_dev = parts[-1]
                self.bind_dir = f"/sys/bus/{bus}/drivers/{self.driver.name}"
                return name
            time.sleep(0.3)
        raise DutError(f"no interface with MAC {self.mac} within {timeout:.0f}s "
                       f"after loading {self.driver.name}")

    def setup(self, mtu: int = 1500, wait_carrier: bool = True) -> None:
        """Driver loaded, interface up with the test addresses and MTU."""
        if not self.loaded():
            self.load()
        if not self.ifname:
            self.wait_netdev()
        i = self.ifname
        self.sh(f"ip link set {i} mtu {mtu}; ip addr flush dev {i}; "
                f"ip addr add {GUEST_IP4}/{PREFIX4} dev {i}; "
                f"ip -6 addr add {GUEST_IP6}/{PREFIX6} dev {i} nodad; "
                f"ip link set {i} promisc off; ip link set {i} up")
        if wait_carrier:
            self.wait_carrier(1)

    def carrier(self) -> int:
        out = self.sh(f"cat /sys/class/net/{self.ifname}/carrier 2>/dev/null", check=False)
        return int(out.strip() or 0)

    def wait_carrier(self, want: int, timeout: float = 20.0) -> float:
        t0 = time.monotonic()
        while self.carrier() != want:
            if time.monotonic() - t0 > timeout:
                raise DutError(f"{self.ifname}: carrier did not become {want} "
                               f"within {timeout:.0f}s")
            time.sleep(0.1)
        return time.monotonic() - t0

    def set_link(self, up: bool) -> None:
        """The cable: QMP set_link on the NIC's netdev."""
        assert self.machine.qmp is not None
        self.machine.qmp.execute("set_link", {"name": self.nic.id, "up": up})

    # -- counters --
    def ethtool_stats(self) -> dict[str, int]:
        r = self.guest.cmd(f"ethtool -S {self.ifname}", check=False)
        stats: dict[str, int] = {}
        for line in r.stdout.splitlines()[1:]:
            key, _, value = line.strip().partition(":")
            with contextlib.suppress(ValueError):
                stats[key.strip()] = int(value)
        return stats

    def link_stats(self) -> dict[str, Any]:
        """`ip -s link` counters: {'rx': {...}, 'tx': {...}}."""
        link = self.guest.ip(f"-s link show dev {self.ifname}", json=True)[0]
        return dict(link.get("stats64") or link["stats"])

    def udp_snmp(self) -> dict[str, int]:
        lines = [ln.split() for ln in self.sh("grep '^Udp:' /proc/net/snmp").splitlines()]
        return {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:], strict=True)}

    def rx_queues(self) -> int:
        return len(self.sh(f"ls -d /sys/class/net/{self.ifname}/queues/rx-*").split())

    # -- receive-side scaling --
    def rss_config(self) -> rss.RssConfig | None:
        """Indirection table, key and hash function (`ethtool -x`)."""
        r = self.guest.cmd(f"ethtool -x {self.ifname}", check=False)
        return rss.parse_ethtool_x(r.stdout) if r.ok else None

    def rss_fields(self, flow_type: str) -> frozenset[str] | None:
        """The fields hashed for e.g. "udp4" (`ethtool -n DEV rx-flow-hash`)."""
        r = self.guest.cmd(f"ethtool -n {self.ifname} rx-flow-hash {flow_type}", check=False)
        return rss.parse_flow_hash(r.stdout) if r.ok else None

    def rss_predict(self, flows: list[Any], flow_type: str = "udp4") -> dict[int, int] | None:
        """Flow id -> the Rx queue the NIC will pick for it (flows have
        id, src_ip, dst_ip, sport, dport); None if the driver does not tell
        enough to compute it (see rss.predictable)."""
        cfg, fields = self.rss_config(), self.rss_fields(flow_type)
        if cfg is None or fields is None or not rss.predictable(cfg, fields):
            return None
        return {f.id: cfg.queue_of(rss.toeplitz(cfg.key, rss.hash_input(
            fields, f.src_ip, f.dst_ip, f.sport, f.dport))) for f in flows}

    def set_rss(self, *, table: str | None = None, key: bytes | None = None) -> None:
        """`ethtool -X`: table is e.g. "default", "equal 2" or "weight 0 1"."""
        hkey = "" if key is None else f" hkey {key.hex(':')}"
        if table == "default" and hkey:
            # Linux 6.1's ETHTOOL_SRSSH reads the key from the wrong offset
            # when it comes with "default" (no table): a garbage key. Two calls.
            self.sh(f"ethtool -X {self.ifname} default")
            self.sh(f"ethtool -X {self.ifname}{hkey}")
            return
        self.sh(f"ethtool -X {self.ifname} {table or ''}{hkey}")

    # -- capabilities --
    def has(self, cap: str) -> bool:
        if cap not in self._caps:
            probe = CAPS.get(cap)
            if probe is None:
                raise KeyError(f"unknown capability {cap!r} (known: {', '.join(sorted(CAPS))})")
            self._caps[cap] = bool(probe(self))
        return self._caps[cap]


def _max_mtu(d: Dut) -> int:
    link = d.guest.ip(f"-d link show dev {d.ifname}", json=True)[0]
    return int(link.get("max_mtu", 1500))


def _channels(d: Dut) -> dict[str, int]:
    r = d.guest.cmd(f"ethtool -l {d.ifname}", check=False)
    if r.exit_status != 0:
        return {}
    out: dict[str, int] = {}
    section = ""
    for line in r.stdout.splitlines():
        if line.startswith("Pre-set maximums"):
            section = "max_"
        elif line.startswith("Current hardware settings"):
            section = "cur_"
        elif ":" in line and section:
            k, _, v = line.partition(":")
            with contextlib.suppress(ValueError):
                out[section + k.strip().lower()] = int(v.strip())
    return out


def _try_set(d: Dut, get: str, set_: str,
             parse: Callable[[str], tuple[str, str] | None]) -> bool:
    """Whether a `set_` ethtool op exists: re-apply a current value the core
    passes to the driver (ethtool skips a request that changes nothing, so
    apply a different valid value and then restore it)."""
    cur = d.guest.cmd(f"ethtool {get} {d.ifname}", check=False)
    if cur.exit_status != 0:
        return False
    change = parse(cur.stdout)
    if change is None:
        return False
    r = d.guest.cmd(f"ethtool {set_} {d.ifname} {change[0]}", check=False)
    if r.exit_status != 0:
        return False
    d.guest.cmd(f"ethtool {set_} {d.ifname} {change[1]}", check=False)
    return True


def _ring_change(text: str) -> tuple[str, str] | None:
    import re

    maxes = re.search(r"maximums:.*?RX:\s+(\d+)", text, re.S)
    cur = re.search(r"Current hardware settings:.*?RX:\s+(\d+)", text, re.S)
    if not maxes or not cur:
        return None
    m, c = int(maxes.group(1)), int(cur.group(1))
    if m <= 0:
        return None
    new = c // 2 if c // 2 >= 64 else min(m, c * 2)
    if new == c:
        return None
    return f"rx {new}", f"rx {c}"


def _rss_settable(d: Dut) -> bool:
    cfg = d.rss_config()
    if d.rx_queues() < 2 or cfg is None or not cfg.key:
        return False
    # writing the same key back changes nothing
    return d.guest.cmd(f"ethtool -X {d.ifname} hkey {cfg.key.hex(':')}", check=False).ok


def _coalesce_change(text: str) -> tuple[str, str] | None:
    import re

    m = re.search(r"^rx-usecs:\s+(\d+)", text, re.M)
    if not m:
        return None
    c = int(m.group(1))
    return f"rx-usecs {c + 10}", f"rx-usecs {c}"


CAPS: dict[str, Callable[[Dut], bool]] = {
    "jumbo": lambda d: _max_mtu(d) >= 9000,
    "multiqueue": lambda d: d.rx_queues() > 1,
    # several Rx queues fed by the device's hash (no ntuple filters here)
    "rss": lambda d: d.rx_queues() > 1,
    # the key and table can be written (ethtool -X)
    "rss_set": lambda d: _rss_settable(d),
    "ethtool_stats": lambda d: bool(d.ethtool_stats()),
    "channels_set": lambda d: max(_channels(d).get("max_rx", 0),
                                  _channels(d).get("max_combined", 0)) > 1,
    "ring_set": lambda d: _try_set(d, "-g", "-G", _ring_change),
    "coalesce_set": lambda d: _try_set(d, "-c", "-C", _coalesce_change),
    "rx_csum": lambda d: "rx-checksumming: on" in d.sh(f"ethtool -k {d.ifname}"),
    "tx_csum": lambda d: "tx-checksumming: on" in d.sh(f"ethtool -k {d.ifname}"),
}
