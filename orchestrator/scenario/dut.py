"""The device under test: one NIC of a running guest and the driver bound to it.

A `Dut` ties a driver (orchestrator.scenario.drivers.Driver) to a NIC of a
`Machine`: it loads and unloads the module (creating SR-IOV VFs through the
PF first when the driver drives a VF), finds the interface by MAC,
configures the test addresses, flaps the link through QMP, reads the
kernel's counters and probes live which features the driver really has
(confirming what its declaration says, for `requires(...)` markers).

Test addressing on the wire between the guest and the host's traffic peer:
the guest has GUEST_IP4/GUEST_IP6, the peer PEER_IP4/PEER_IP6 (and answers
for the rest of the /24 and /64, so extra flow sources work).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shlex
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.builds.module import function_at
from orchestrator.machine.guest import Guest
from orchestrator.machine.profiles import NicSpec
from orchestrator.machine.vm import Machine
from orchestrator.scenario import drivers, pp_dump, rss, xdp
from orchestrator.scenario.drivers import Driver
from orchestrator.waiting import WaitTimeout, wait_until

GUEST_IP4, PEER_IP4, PREFIX4 = "10.99.0.2", "10.99.0.1", 24
GUEST_IP6, PEER_IP6, PREFIX6 = "fd99::2", "fd99::1", 64
SUBNET4, SUBNET6 = "10.99.0.0/16", "fd99::/64"
PEER_MAC = "52:54:00:99:00:01"



# kmemleak reports an object only when two scans in a row found it
# unreferenced (with an unchanged checksum) and it was older than the minimum
# age (5 s) when the second scan began. So: note the time (the driver is gone
# by now), scan, and start the second scan no sooner than 5.2 s after that
# note; under TCG a scan alone often takes that long.
_KMEMLEAK_TWO_SCANS = (
    "cs() { read u _ < /proc/uptime; echo $(( ${u%.*} * 100 + 1${u#*.} - 100 )); }; "
    "t0=$(cs); echo scan > /sys/kernel/debug/kmemleak; "
    "d=$(( 520 - ($(cs) - t0) )); "
    "if [ $d -gt 0 ]; then sleep $(printf '%d.%02d' $((d / 100)) $((d % 100))); fi; "
    "echo scan > /sys/kernel/debug/kmemleak; ")
KMEMLEAK_CHECK = ("echo stack=on > /sys/kernel/debug/kmemleak; " + _KMEMLEAK_TWO_SCANS
                  + "cat /sys/kernel/debug/kmemleak")
# kmemleak scans each task's whole stack, dead frames included, so a stale
# copy of a pointer there hides a leak (igb's lost q_vectors went unseen in
# about half of the runs). The second look leaves the stacks out; it counts
# only what the driver allocated (driver_records), since an object that only
# a stack refers to may belong to a syscall in progress. Such an object
# still makes kmemleak print "N new suspected memory leaks" (KERN_INFO), which
# the verdict reads as a leak: the console leaves out KERN_INFO meanwhile
# (what the driver leaked goes to the console below, record by record)
KMEMLEAK_CHECK_NO_STACKS = ("read lvl _ < /proc/sys/kernel/printk; "
                            "trap 'echo stack=on > /sys/kernel/debug/kmemleak; "
                            "echo $lvl > /proc/sys/kernel/printk' EXIT; "
                            "echo 6 > /proc/sys/kernel/printk; "
                            "echo stack=off > /sys/kernel/debug/kmemleak; " + _KMEMLEAK_TWO_SCANS
                            + "echo stack=on > /sys/kernel/debug/kmemleak; "
                            "echo $lvl > /proc/sys/kernel/printk; "
                            "cat /sys/kernel/debug/kmemleak")
# kmemleak only says "N new suspected memory leaks" on the console: copy the
# first objects (with their backtraces) there too, a line per record, so the
# verdict can name the function that leaked
KMEMLEAK_TO_CONSOLE = (
    "echo {b64} | base64 -d | "
    "while IFS= read -r l; do printf '%s\\n' \"$l\" > /dev/kmsg; done")
KMEMLEAK_CONSOLE_LINES = 80
# a backtrace frame kmemleak could not name (its module is gone)
RAW_FRAME = re.compile(r"^(\s+)0x([0-9a-f]{16})$", re.M)


def name_module_frames(text: str, text_base: int, ko: Path, module: str) -> str:
    """`text` with each bare frame address inside the module's .text (as
    loaded at `text_base`) written as ``func+0xOFF/0xSIZE [module]``."""
    def name(m: re.Match[str]) -> str:
        at = function_at(ko, ".text", int(m.group(2), 16) - text_base)
        if at is None:
            return m.group(0)
        func, off, size = at
        return f"{m.group(1)}{func}+{off:#x}/{size:#x} [{module}]"
    return RAW_FRAME.sub(name, text)


def driver_records(text: str, module: str) -> str:
    """The records of kmemleak's report `text` whose backtrace runs through
    `module`: a frame named ``[module]``, or a bare address (a module that
    is gone, when no module file could name it)."""
    records = re.split(r"^(?=unreferenced object )", text, flags=re.M)
    return "".join(r for r in records if r.startswith("unreferenced object ")
                   and (f" [{module}]" in r or RAW_FRAME.search(r)))


class DutError(Exception):
    """The driver or the NIC did not do what was asked."""


def ip_batch_failures(lines: Sequence[str], stderr: str) -> list[str]:
    """What `ip -force -batch -` said about each line of `lines` that
    failed: "`ip LINE`: MESSAGE". ip prints a line's messages, then
    "Command failed -:N" (N counts from 1)."""
    out: list[str] = []
    said: list[str] = []
    for text in stderr.splitlines():
        m = re.fullmatch(r"Command failed -:(\d+)", text.strip())
        if m is None:
            if text.strip():
                said.append(text.strip())
            continue
        n = int(m.group(1))
        cmd = lines[n - 1] if 0 < n <= len(lines) else f"line {n}"
        out.append(f"`ip {cmd}`: {'; '.join(said) or 'failed'}")
        said = []
    return out


# The interfaces with a device (not VLANs or other stacked ones, which share
# their parent's MAC) and this MAC: "NAME DEVICE-PATH" for the first, DEVICE-
# PATH empty when the device link dangles. Bash builtins only: each exec
# costs a few hundred milliseconds under TCG, and every load and bind waits
# on this.
NETDEV_FOR_MAC = (
    'for d in /sys/class/net/*; do [ -L "$d/device" ] || continue; '
    'read -r a < "$d/address" 2>/dev/null || continue; [ "$a" = {mac} ] || continue; '
    'p=; cd -P "$d/device" 2>/dev/null && p=$PWD; echo "${{d##*/}} $p"; break; done; true')


def netdev_for_mac(machine: Machine, mac: str) -> tuple[str, str] | None:
    """The guest interface with this MAC address and a device, if there is
    one: (name, the device's sysfs path, "" if it went meanwhile). An
    interface whose device was removed under it is not seen here (its sysfs
    directory went with the device): Dut.interface_remains asks that."""
    out = machine.ssh().cmd(NETDEV_FOR_MAC.format(mac=shlex.quote(mac.lower()))).stdout
    name, _, path = out.strip().partition(" ")
    return (name, path) if name else None


@dataclass
class Dut:
    machine: Machine
    nic: NicSpec
    driver: Driver
    ifname: str = ""
    bdf: str = ""
    _caps: dict[str, bool] = field(default_factory=dict)
    bind_dev: str = ""
    bind_dir: str = ""
    pf_ifname: str = ""  # the PF's interface when the DUT is a VF
    params: str = ""  # module parameters for every load
    current_step: str = ""  # what the test is doing now, for failure messages

    @property
    def guest(self) -> Guest:
        return self.machine.ssh()

    @property
    def port_id(self) -> str:
        return self.nic.port_id

    @property
    def is_vf(self) -> bool:
        return self.driver.info.function == "vf"

    @property
    def mac(self) -> str:
        """The MAC of the function under test (VF 0 for a VF driver)."""
        return self.nic.vf_mac(0) if self.is_vf else self.nic.mac

    def sh(self, command: str, timeout: float = 60.0, check: bool = True) -> str:
        return self.guest.cmd(command, timeout=timeout, check=check).stdout

    # -- module --
    def loaded(self) -> bool:
        out = self.guest.read("/proc/modules")
        return any(line.split(" ", 1)[0] == self.driver.name for line in out.splitlines())

    def load(self, params: str | None = None) -> None:
        """Load the driver (unloading other claimants of the NIC first) and
        wait for its interface; addresses are not configured (see setup()).
        `params`: module parameters (default: the Dut's own)."""
        params = self.params if params is None else params
        g = self.guest
        for other in drivers.claimants(self.driver.info, self.nic):
            g.cmd(f"modprobe -r {other} 2>/dev/null || rmmod {other} 2>/dev/null || true",
                  timeout=120)
        for mod in self.driver.info.load_first:
            g.cmd(f"modprobe {mod}", timeout=120)
        if self.is_vf:
            self._make_vfs()
        drivers.load_module(g, self.driver, params)
        self._caps.clear()
        self.wait_netdev()

    def _make_vfs(self) -> None:
        """The PF (its in-tree driver, not under test) up with nic.vfs VFs,
        each with ktest's MAC; the VF driver is loaded afterwards, so every VF
        probes with the MAC it will keep."""
        pf_driver = drivers.in_tree_driver(self.nic)
        self.sh(f"modprobe {pf_driver}", timeout=120)
        pf, pf_dev = self._netdev_of(self.nic.mac, pf_driver)
        pf_bdf = _bdf(pf_dev)
        self.pf_ifname = pf
        numvfs = f"/sys/bus/pci/devices/{pf_bdf}/sriov_numvfs"
        self.sh(f"ip link set {pf} up")
        if int(self.guest.read(numvfs, check=True).strip() or 0) != self.nic.vfs:
            self.sh(f"echo 0 > {numvfs}; echo {self.nic.vfs} > {numvfs}", timeout=120)
        for i in range(self.nic.vfs):
            self.sh(f"ip link set {pf} vf {i} mac {self.nic.vf_mac(i)}")

    def _netdev_of(self, mac: str, what: str, timeout: float = 20.0) -> tuple[str, str]:
        """(name, device path) of the interface with `mac`, once it has both."""
        def found() -> tuple[str, str] | None:
            hit = netdev_for_mac(self.machine, mac)
            return hit if hit and hit[1] else None
        try:
            return wait_until(found, timeout, f"an interface with MAC {mac} after loading {what}",
                              interval=0.2)
        except WaitTimeout as e:
            raise DutError(str(e)) from None

    def unload(self, check_leaks: bool = True) -> None:
        """Unload the driver; then (by default) check that kmemleak finds
        nothing new and the DMA-API debug error count did not grow."""
        before = self.dma_api_errors()
        text = None
        if check_leaks:
            self.sh("echo clear > /sys/kernel/debug/kmemleak", check=False)
            text = self._text_base()
        cmd = "rmmod" if self.driver.ko is not None else "modprobe -r"
        self.guest.cmd(f"{cmd} {self.driver.name}", timeout=120)
        self.ifname = ""
        if check_leaks:
            self.check_leaks(before, text)

    def _host_ko(self) -> Path | None:
        """The driver's module file on the host (ktest's build, or the
        kernel build tree's for an in-tree module)."""
        kernel = getattr(self.machine, "kernel", None)
        if self.driver.ko is None and kernel is None:
            return None
        return drivers.host_ko(self.driver, kernel)

    def _text_base(self) -> int | None:
        """Where the loaded driver's .text is (None: no module file)."""
        if self._host_ko() is None:
            return None
        out = self.guest.read(f"/sys/module/{self.driver.name}/sections/.text").strip()
        return int(out, 16) if re.fullmatch(r"0x[0-9a-f]+", out) else None

    def check_leaks(self, dma_errors_before: int, text_base: int | None = None) -> None:
        """kmemleak finds nothing new, and dma-debug no new error. A leak
        found after the driver was unloaded has its frames in the driver
        as bare addresses: `text_base` (the driver's .text when it was
        loaded) names them from its module file."""
        leaks = self._kmemleak(KMEMLEAK_CHECK, text_base)
        where = ""
        if not leaks.strip():
            leaks = driver_records(self._kmemleak(KMEMLEAK_CHECK_NO_STACKS, text_base),
                                   self.driver.name)
            where = ", with task stacks left out of the scan"
        if leaks.strip():
            head = "\n".join(leaks.strip().splitlines()[:KMEMLEAK_CONSOLE_LINES]) + "\n"
            self.sh(KMEMLEAK_TO_CONSOLE.format(b64=base64.b64encode(head.encode()).decode()),
                    check=False, timeout=60)
            first = leaks.strip().split("\nunreferenced object")[0]
            count = leaks.count("unreferenced object")
            raise DutError(f"kmemleak: {count} unreferenced object(s) after unloading "
                           f"{self.driver.name}{where}:\n{first[:3000]}")
        after = self.dma_api_errors()
        if after > dma_errors_before:
            raise DutError(f"DMA-API debug error count grew from {dma_errors_before} to "
                           f"{after} during {self.driver.name} unload")

    def _kmemleak(self, check: str, text_base: int | None) -> str:
        """kmemleak's report after `check`, the driver's bare frames named."""
        leaks = self.sh(check, timeout=180)
        ko = self._host_ko() if text_base is not None and leaks.strip() else None
        if text_base is not None and ko is not None:
            leaks = name_module_frames(leaks, text_base, ko, self.driver.name)
        return leaks

    def dma_api_errors(self) -> int:
        out = self.guest.read("/sys/kernel/debug/dma-api/error_count")
        return int(out.strip() or 0)

    def bind(self) -> None:
        self.sh(f"echo {self.bind_dev} > {self.bind_dir}/bind")
        self.wait_netdev()

    def unbind(self) -> None:
        self.sh(f"echo {self.bind_dev} > {self.bind_dir}/unbind")
        self.ifname = ""

    def page_pools(self) -> list[dict[str, int]] | None:
        """The guest's page pools that drivers linked to their netdev (from
        netlink; None: this kernel lists none)."""
        remote = "/tmp/ktest-pp-dump.py"
        self.guest.put_once(Path(pp_dump.__file__), remote)
        r = self.guest.cmd(f"python3 -I {remote}", check=False, timeout=60)
        if r.exit_status == 2:
            return None
        if r.exit_status != 0:
            raise DutError(f"listing page pools failed ({r.exit_status}): {r.stderr.strip()}")
        return list(json.loads(r.stdout)["pools"])

    def unbind_returns_pages(self, timeout: float = 10.0) -> list[dict[str, int]]:
        """Unbind the driver, and wait for every page of its interface's page
        pools to come back (a pool outlives its netdev until then). Returns
        the pools still waiting for pages after `timeout` s: Rx pages the
        driver lost track of. DMA-API debug cannot tell: a destroyed pool
        unmaps the pages still out (upstream 6.15; Debian's 6.12.118 has it)."""
        ifindex = int(self.guest.read(f"/sys/class/net/{self.ifname}/ifindex", check=True))
        ours = {p["id"] for p in self.page_pools() or [] if p.get("ifindex") == ifindex}
        self.unbind()
        if not ours:
            return []
        left: list[dict[str, int]] = []

        def returned() -> bool:
            nonlocal left
            left = [p for p in self.page_pools() or [] if p["id"] in ours]
            return not left
        with contextlib.suppress(WaitTimeout):
            wait_until(returned, timeout, "the pages of the driver's page pools", interval=1.0)
        return left

    # -- interface --
    def wait_netdev(self, timeout: float = 20.0) -> str:
        name, dev = self._netdev_of(self.mac, self.driver.name, timeout)
        self.ifname = name
        # virtio: .../0000:01:00.0/virtio1 -> the PCI function is the parent
        parts = dev.split("/")
        self.bdf = _bdf(dev)
        # virtio_net binds to the virtio device, not the PCI function
        bus = "virtio" if parts[-1].startswith("virtio") else "pci"
        self.bind_dev = parts[-1]
        self.bind_dir = f"/sys/bus/{bus}/drivers/{self.driver.name}"
        return name

    def setup(self, mtu: int = 1500, wait_carrier: bool = True) -> None:
        """Driver loaded, interface up with the test addresses and MTU."""
        if not self.loaded():
            self.load()
        if not self.ifname:
            self.wait_netdev()
        i = self.ifname
        # one exec (each costs a few hundred ms under TCG); -force: every
        # line is tried, and any that failed fails the whole
        lines = (f"link set {i} mtu {mtu}", f"addr flush dev {i}",
                 f"addr add {GUEST_IP4}/{PREFIX4} dev {i}",
                 f"addr add {GUEST_IP6}/{PREFIX6} dev {i} nodad",
                 f"link set {i} promisc off", f"link set {i} up")
        r = self.guest.cmd(f"printf '%s\\n' {shlex.join(lines)} | ip -force -batch -",
                           check=False)
        if not r.ok:
            why = ip_batch_failures(lines, r.stderr) or [r.stderr.strip() or "no message"]
            raise DutError(f"{i} cannot be set up: {'; '.join(why)}")
        if wait_carrier:
            self.wait_carrier(1)

    def function_gone(self) -> bool:
        """The PCI function under test was seen (bdf known) and is gone now
        (removed, or unplugged without coming back): no driver reload can
        bring it back. A VF counts as present: the PF driver recreates it."""
        if not self.bdf or self.is_vf:
            return False
        res = self.guest.cmd(f"test -e /sys/bus/pci/devices/{self.bdf}", check=False)
        return res.exit_status == 1

    def interface_remains(self) -> bool:
        """The DUT's interface is still registered under its name. When
        its device goes first (a driver that forgets unregister_netdev at
        remove), sysfs drops the device's directory with the interface's in
        it, but not the interface's link in /sys/class/net, which dangles:
        so test the link itself, not what it points to, and do not ask
        rtnetlink, which would call into the driver for statistics."""
        if not self.ifname:
            raise DutError("the DUT's interface is not known yet")
        link = shlex.quote(f"/sys/class/net/{self.ifname}")
        return self.guest.cmd(f"[ -L {link} ]", check=False).exit_status == 0

    def carrier(self) -> int | None:
        """The interface's carrier, 0 or 1; None when it cannot be read (the
        interface is administratively down, or gone): never taken for 0, or
        a driver that drops its interface would pass for one that noticed a
        dead link."""
        out = self.guest.read(f"/sys/class/net/{self.ifname}/carrier").strip()
        return int(out) if out in ("0", "1") else None

    def wait_carrier(self, want: int, timeout: float = 20.0) -> float:
        """Wait until the carrier is `want`; return the seconds it took."""
        t0 = time.monotonic()
        try:
            wait_until(lambda: self.carrier() == want, timeout,
                       f"{self.ifname}: carrier {want}")
        except WaitTimeout as e:
            raise DutError(str(e)) from None
        return time.monotonic() - t0

    def address(self) -> str:
        """The interface's MAC address now (`mac` is the function's own)."""
        return self.guest.read(f"/sys/class/net/{self.ifname}/address", check=True).strip()

    def set_address(self, mac: str, check: bool = True) -> bool:
        """Change the interface's MAC address (as it is: up or down)."""
        return self.guest.cmd(f"ip link set dev {self.ifname} address {mac}", check=check).ok

    def set_link(self, up: bool) -> None:
        """The cable: QMP set_link on the NIC's netdev."""
        assert self.machine.qmp is not None
        self.machine.qmp.execute("set_link", {"name": self.nic.id, "up": up})

    # -- what a failure report shows --
    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[None]:
        """Announce what the test does (e.g. "cycle 3 of 5: bind"); a failure
        inside the block is reported with it. Left set if the block fails."""
        previous = self.current_step
        self.current_step = text
        yield
        self.current_step = previous

    def link_summary(self) -> str:
        link = self.guest.ip(f"link show dev {self.ifname}", json=True)[0]
        return (f"{self.ifname} ({self.driver.name}, {self.bdf}): carrier {self.carrier()}, "
                f"operstate {link.get('operstate', '?')}, flags {','.join(link.get('flags', []))}")

    def snapshot(self) -> dict[str, int]:
        """Every counter of `ip -s link` and `ethtool -S`, flattened."""
        out = {f"ethtool.{k}": v for k, v in self.ethtool_stats().items()}
        for direction, values in self.link_stats().items():
            for k, v in (values or {}).items():
                if isinstance(v, int):
                    out[f"ip.{direction}.{k}"] = v
        return out

    def counter_delta(self, before: dict[str, int]) -> dict[str, int]:
        """The counters that moved since `before` (a snapshot)."""
        now = self.snapshot()
        return {k: v - before.get(k, 0) for k, v in now.items() if v != before.get(k, 0)}

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

    # -- reconfiguration --
    def ring_change(self) -> tuple[str, str] | None:
        """`ethtool -G` arguments that change the Rx ring size, and the ones
        that restore it (None if the driver reports no ring sizes)."""
        return _ring_change(self.sh(f"ethtool -g {self.ifname}", check=False))

    def channel_change(self) -> tuple[str, str] | None:
        """`ethtool -L` arguments that go to one queue (pair), and the ones
        that restore the current count (None if it cannot change)."""
        ch = _channels(self)
        for kind in ("combined", "rx"):
            cur = ch.get(f"cur_{kind}", 0)
            if cur > 1:
                if kind == "rx":
                    return "rx 1 tx 1", f"rx {cur} tx {ch.get('cur_tx', cur)}"
                return "combined 1", f"combined {cur}"
        return None

    # -- capabilities --
    def has(self, cap: str) -> bool:
        if cap not in self._caps:
            probe = CAPS.get(cap)
            if probe is None:
                raise KeyError(f"unknown capability {cap!r} (known: {', '.join(sorted(CAPS))})")
            self._caps[cap] = bool(probe(self))
        return self._caps[cap]


def _bdf(device_path: str) -> str:
    """The PCI function in a device's sysfs path (its last d:b:d.f part)."""
    return next(p for p in reversed(device_path.split("/")) if p.count(":") == 2)


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
    back = d.guest.cmd(f"ethtool {set_} {d.ifname} {change[1]}", check=False)
    if back.exit_status != 0:
        # it took the change and refuses the value it had: a driver bug, and
        # the test would start from a setting it did not choose
        raise DutError(f"`ethtool {set_} {d.ifname} {change[1]}`, back to what it was after "
                       f"`{change[0]}` was taken, failed: {back.stderr.strip() or 'no message'}")
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


def _rss_table_settable(d: Dut) -> bool:
    """An even table over the queues is taken (then the default again)."""
    nq = d.rx_queues()
    if nq < 2:
        return False
    i = shlex.quote(d.ifname)
    return d.guest.cmd(f"ethtool -X {i} equal {nq}; r=$?; ethtool -X {i} default; exit $r",
                       check=False).ok


def _rss_key_settable(d: Dut) -> bool:
    cfg = d.rss_config()
    if d.rx_queues() < 2 or cfg is None or not cfg.key:
        return False
    # writing the same key back changes nothing
    return d.guest.cmd(f"ethtool -X {d.ifname} hkey {cfg.key.hex(':')}", check=False).ok


PROBE_MAC = "02:6b:74:00:00:fe"  # locally administered, no NIC of ktest's has it


def _mac_settable(d: Dut) -> bool:
    """Another address is taken while up (the same one would not reach the
    driver), and the old one back."""
    old = d.address()
    if not d.set_address(PROBE_MAC, check=False):
        return False
    return d.set_address(old, check=False)


def _promisc_settable(d: Dut) -> bool:
    """The interface takes IFF_PROMISC (and gives it back)."""
    i = shlex.quote(d.ifname)
    r = d.guest.cmd(f"ip link set {i} promisc on && ip -o link show dev {i}; "
                    f"ip link set {i} promisc off", check=False)
    return "PROMISC" in r.stdout.split(">", 1)[0]


def _resettable(d: Dut) -> bool:
    """ethtool --reset mac works (and the link comes back)."""
    if not d.guest.cmd(f"ethtool --reset {d.ifname} mac", check=False).ok:
        return False
    d.wait_carrier(1)
    return True


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
    "rss_set": lambda d: _rss_table_settable(d),
    "rss_key_set": lambda d: _rss_key_settable(d),
    "ethtool_stats": lambda d: bool(d.ethtool_stats()),
    "channels_set": lambda d: max(_channels(d).get("max_rx", 0),
                                  _channels(d).get("max_combined", 0)) > 1,
    "ring_set": lambda d: _try_set(d, "-g", "-G", _ring_change),
    "coalesce_set": lambda d: _try_set(d, "-c", "-C", _coalesce_change),
    "ethtool_reset": lambda d: _resettable(d),
    "rx_csum": lambda d: "rx-checksumming: on" in d.sh(f"ethtool -k {d.ifname}"),
    "tx_csum": lambda d: "tx-checksumming: on" in d.sh(f"ethtool -k {d.ifname}"),
    "tso": lambda d: "tcp-segmentation-offload: on" in d.sh(f"ethtool -k {d.ifname}"),
    "xdp": lambda d: xdp.probe(d),
    "xdp_frags": lambda d: _max_mtu(d) >= 9000 and xdp.probe(d, frags=True),
    "mac_set": lambda d: _mac_settable(d),
    "promisc": lambda d: _promisc_settable(d),
}
