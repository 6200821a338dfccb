"""The drivers ktest knows, what each declares, and the (profile, driver) pair.

A driver declaration is a small YAML file (the format of
``qemu-configs/drivers/*.yaml``)::

    name: e1000e                 # the module
    drives: [e1000e]             # QEMU NIC models it drives
    function: pf                 # pf, or vf: it drives the model's SR-IOV VFs
    load_first: [virtio_pci]     # in-tree modules loaded before it
    capabilities: [jumbo, ring_set, ...]   # see CAPABILITIES
    faults: {bus_reset: recovers, aer_fatal: "fails: REASON", ...}   # see FAULTS
    allocates_nothing_in: [mtu]  # see SWEEP_OPS

The in-tree drivers are declared in ``qemu-configs/drivers/``; ktest_nic in
``drivers/ktest_nic/ktest.yaml``; a user's driver may carry a ``ktest.yaml``
beside its source (a module directory) or its ``.ko`` (``ktest.yaml`` or
``NAME.ktest.yaml`` in the same folder). A capability a driver declares must
be confirmed by the live probe in the guest, or the tests that need it fail
naming it; one it does not declare makes those tests skip.

A :class:`Pair` is one machine profile plus the driver under test;
:func:`check_pair` is the one place that decides whether a driver can drive
a profile's NIC.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import paths, yamlconf
from orchestrator.builds import module as module_mod
from orchestrator.builds.common import Progress
from orchestrator.machine import profiles
from orchestrator.yamlconf import ConfigError, Reader

# Every capability a driver may declare, with what the live probe checks.
CAPABILITIES: dict[str, str] = {
    "jumbo": "MTU 9000 is accepted (max_mtu >= 9000)",
    "multiqueue": "more than one Rx queue",
    "rss": "several Rx queues fed by the device's receive hash",
    "rss_set": "the RSS indirection table can be written (ethtool -X DEV equal N)",
    "rss_key_set": "the RSS hash key can be written (ethtool -X DEV hkey)",
    "ethtool_stats": "ethtool -S lists counters",
    "channels_set": "the queue count can be changed (ethtool -L)",
    "ring_set": "ring sizes can be changed (ethtool -G)",
    "coalesce_set": "interrupt coalescing can be changed (ethtool -C)",
    "rx_csum": "receive checksum offload is on",
    "tx_csum": "transmit checksum offload is on",
    "ethtool_reset": "ethtool --reset resets the device",
    "tso": "TCP segmentation offload is on (tcp-segmentation-offload: on)",
    "xdp": "a native XDP program attaches (ip link set DEV xdpdrv)",
    "xdp_frags": "a multi-buffer XDP program (xdp.frags) attaches at MTU 9000",
    "mac_set": "the MAC address can be changed while the interface is up (ip link set DEV "
               "address)",
    # the kernel cannot refuse IFF_PROMISC (ndo_set_rx_mode returns nothing):
    # the probe only sees the flag taken; test_promiscuous checks the frames
    "promisc": "unicast promiscuous mode (ip link set DEV promisc on is taken)",
}
FUNCTIONS = ("pf", "vf")
# Every fault a driver may say it survives (faults: in its declaration), with
# what surviving means. A value "recovers" is checked by the fault suite;
# "fails: REASON" is a known limitation, reported as such (strict xfail). The
# long form {fails: REASON, reports: [TITLE, ...], says: [REGEX, ...]} also
# names the kernel reports (exact titles) that are that failure, as
# FAILURE_REPORTS does for every driver, and what the test says when it fails
# that way (regexes searched in its failure message). Where reports or says
# are known, a failure with neither is not the declared one, and fails.
FAULTS: dict[str, str] = {
    "aer_nonfatal": "an uncorrectable non-fatal AER error at the root port: recovery "
                    "successful, traffic flows again",
    "aer_fatal": "a fatal AER error (secondary bus reset): recovery successful, traffic "
                 "flows again",
    "aer_correctable": "a correctable AER error: logged, nothing else changes",
    "bus_reset": "a secondary bus reset through sysfs under traffic: traffic flows again",
    "flr": "a function-level reset through sysfs under traffic: traffic flows again",
    "hot_unplug": "device_del under traffic and device_add: the driver lets go, then "
                  "probes the new device",
    "dead_device": "MMIO reads return all ones (memory decoding off): the driver notices, "
                   "stops, and can be unbound",
    "alloc_failures": "every injectable allocation of probe, open, ring and channel "
                      "changes, MTU changes and a bus reset failing in turn: a clean "
                      "error, no report",
    "sriov": "VFs created and destroyed under PF traffic",
}
KNOWN_FAILS = "fails:"
# The operations the allocation sweep (alloc_failures) fails allocations in.
# A driver may declare those it makes no allocation or DMA mapping of its own
# in (allocates_nothing_in:): a sweep that injects nothing there is nothing
# to test, anywhere else a sweep that tested nothing.
SWEEP_OPS = ("probe", "open", "mtu", "rings", "channels", "reset")
# The kernel reports that are a fault's declared failure itself, allowed
# where the driver declares the fault as failing (so the test is the expected
# failure it declares; any other report still fails it). "{driver}": the
# driver's name. The AER core says it could not recover the function; after
# a fatal error it has also reset the link, which a driver without error
# handlers never hears of, so its Tx queue times out.
FAILURE_REPORTS: dict[str, tuple[str, ...]] = {
    "aer_nonfatal": (r"^AER: recovery failed$",),
    "aer_fatal": (r"^AER: recovery failed$",
                  r"^NETDEV WATCHDOG: transmit queue timed out in {driver}$"),
}


class PairError(ValueError):
    """A (profile, driver) pair that cannot run; one line says why."""


@dataclass(frozen=True)
class DriverInfo:
    """A driver's declaration."""

    name: str
    drives: tuple[str, ...] = ()  # empty: undeclared (a user's driver without YAML)
    function: str = "pf"
    load_first: tuple[str, ...] = ()
    allocates_nothing_in: tuple[str, ...] = ()  # of SWEEP_OPS
    capabilities: frozenset[str] = frozenset()
    description: str = ""
    source: Path | None = None  # the YAML it was read from
    declared: bool = True
    faults: dict[str, str] = field(default_factory=dict)  # see FAULTS
    # per fault declared as failing: the report titles that are its failure
    fault_reports: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # ... and the regexes its failure message matches
    fault_says: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def expectation(self, fault: str) -> str | None:
        """"recovers", "fails: REASON", or None when the driver says nothing."""
        return self.faults.get(fault)

    def can_drive(self, nic: profiles.NicSpec) -> bool:
        if self.drives and nic.model not in self.drives:
            return False
        return self.function == "pf" or nic.vfs > 0


def parse_declaration(data: object, path: Path) -> DriverInfo:
    r = Reader(data, str(path))
    name = r.required("name", str, "the module name")
    drives = r.strings("drives")
    unknown_models = [m for m in drives if m not in profiles.NIC_MODELS]
    if unknown_models:
        raise r.error("drives", f"unknown NIC model {unknown_models[0]!r} "
                                f"(known: {', '.join(profiles.NIC_MODELS)})")
    function = r.choice("function", FUNCTIONS, "pf")
    caps = r.strings("capabilities")
    bad = [c for c in caps if c not in CAPABILITIES]
    if bad:
        raise r.error("capabilities", f"unknown capability {bad[0]!r} "
                                      f"(known: {', '.join(CAPABILITIES)})")
    quiet = r.strings("allocates_nothing_in")
    bad = [op for op in quiet if op not in SWEEP_OPS]
    if bad:
        raise r.error("allocates_nothing_in", f"unknown operation {bad[0]!r} "
                                              f"(known: {', '.join(SWEEP_OPS)})")
    f = r.child("faults")
    faults: dict[str, str] = {}
    reports: dict[str, tuple[str, ...]] = {}
    says: dict[str, tuple[str, ...]] = {}
    for fault in list(f.data):
        if fault not in FAULTS:
            raise f.error(str(fault), f"unknown fault (known: {', '.join(FAULTS)})")
        if isinstance(f.data[fault], dict):
            long = f.child(str(fault))
            reason = long.required("fails", str, "the reason it fails").strip()
            if not reason:
                raise long.error("fails", "empty reason")
            value = f"{KNOWN_FAILS} {reason}"
            reports[str(fault)] = long.strings("reports")
            says[str(fault)] = long.strings("says")
            for pattern in says[str(fault)]:
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise long.error("says", f"{pattern!r} is no regex: {e}") from None
            long.finish()
        else:
            value = f.get(str(fault), str, "", "'recovers' or 'fails: REASON'").strip()
        if value != "recovers" and not (value.startswith(KNOWN_FAILS) and
                                        value[len(KNOWN_FAILS):].strip()):
            raise f.error(str(fault), f"expected 'recovers' or 'fails: REASON', got {value!r}")
        faults[str(fault)] = value
    f.finish()
    info = DriverInfo(
        name=name, drives=drives, function=function, load_first=r.strings("load_first"),
        allocates_nothing_in=quiet,
        capabilities=frozenset(caps), description=r.get("description", str, "", "a string"),
        source=path, faults=faults, fault_reports=reports, fault_says=says,
    )
    r.finish()
    return info


def builtin_dir() -> Path:
    return paths.profiles_dir() / "drivers"


def _builtin_paths() -> dict[str, Path]:
    out = {p.stem: p for p in sorted(builtin_dir().glob("*.yaml"))}
    out["ktest_nic"] = paths.ktest_nic_dir() / "ktest.yaml"
    return out


def known() -> list[str]:
    return sorted(_builtin_paths())


def load_declaration(path: Path) -> DriverInfo:
    data, _ = yamlconf.load(path, "driver declaration")
    return parse_declaration(data, path)


def module_name(spec: str) -> str:
    """The module a --driver spec names: ktest_nic, an in-tree module, a
    module source directory (its folder name) or a .ko file (its stem)."""
    p = Path(spec)
    return p.stem if p.suffix == ".ko" else p.name if "/" in spec else spec


def info_for(spec: str) -> DriverInfo:
    """The declaration for a --driver spec (see module_name)."""
    builtin = _builtin_paths()
    if spec in builtin:
        return load_declaration(builtin[spec])
    p = Path(spec)
    name = module_name(spec)
    if p.suffix == ".ko":
        candidates = [p.parent / "ktest.yaml", p.parent / f"{p.stem}.ktest.yaml"]
    elif p.is_dir():
        candidates = [p / "ktest.yaml"]
    else:  # an in-tree module ktest has no declaration for
        candidates = []
    for c in candidates:
        if c.is_file():
            return load_declaration(c)
    return DriverInfo(name=name, declared=False)


def claimants(info: DriverInfo, nic: profiles.NicSpec) -> list[str]:
    """Other known drivers that would bind the same function of `nic` (to
    unload before loading `info`'s module)."""
    out = []
    for name in known():
        if name == info.name:
            continue
        other = info_for(name)
        if nic.model in other.drives and other.function == info.function:
            out.append(other.name)
    return out


def in_tree_driver(nic: profiles.NicSpec) -> str:
    """The in-tree driver of a NIC's physical function."""
    for name in known():
        info = info_for(name)
        if name != "ktest_nic" and nic.model in info.drives and info.function == "pf":
            return name
    raise PairError(f"no in-tree driver is declared for NIC model {nic.model}")


@dataclass(frozen=True)
class Pair:
    """A machine profile and the driver under test (as the user named them)."""

    profile: str
    driver: str

    @property
    def label(self) -> str:
        return f"{Path(self.profile).stem}/{module_name(self.driver)}"

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.label)

    @classmethod
    def parse(cls, text: str) -> Pair:
        """'PROFILE:DRIVER'."""
        prof, sep, drv = text.partition(":")
        if not sep or not prof or not drv:
            raise PairError(f"{text!r}: expected PROFILE:DRIVER")
        return cls(prof, drv)


@dataclass(frozen=True)
class CheckedPair:
    pair: Pair
    profile: profiles.Profile
    driver: DriverInfo
    nic: profiles.NicSpec = field(compare=False)


def check_pair(pair: Pair) -> CheckedPair:
    """Load the pair's profile and driver declaration and make sure the
    driver can drive the profile's first NIC; PairError says why not."""
    try:
        prof = profiles.load_profile(pair.profile)
        info = info_for(pair.driver)
    except ConfigError as e:
        raise PairError(str(e)) from None
    if not prof.nics:
        raise PairError(f"profile {prof.name} has no NIC under test")
    nic = prof.nics[0]
    if not info.can_drive(nic):
        if info.drives and nic.model in info.drives and info.function == "vf":
            why = f"it drives SR-IOV VFs and NIC {nic.id} of {prof.name} has none (vfs: 0)"
        else:
            why = f"it drives {', '.join(info.drives)}, not the {nic.model} NIC of {prof.name}"
        raise PairError(f"driver {info.name} cannot run on profile {prof.name}: {why}")
    return CheckedPair(pair, prof, info, nic)


def pairs_for(machines: Iterable[str], drivers: Iterable[str]) -> list[Pair]:
    """Every (machine, driver) combination that can run; with no drivers,
    each machine with its NIC's in-tree driver. PairError if none can."""
    out: list[Pair] = []
    drivers = list(drivers)
    for m in machines:
        try:
            prof = profiles.load_profile(m)
        except ConfigError as e:
            raise PairError(str(e)) from None
        if not prof.nics:
            raise PairError(f"profile {prof.name} has no NIC under test")
        for d in drivers or [in_tree_driver(prof.nics[0])]:
            pair = Pair(m, d)
            try:
                check_pair(pair)
            except PairError:
                continue
            if pair not in out:
                out.append(pair)
    if not out:
        raise PairError(f"none of the drivers {', '.join(drivers)} can run on the profiles "
                        f"{', '.join(machines)}")
    return out


@dataclass(frozen=True)
class Driver:
    """A driver under test, ready to load: its declaration and the local
    .ko to copy into the guest (None: an in-tree module, loaded with
    modprobe)."""

    info: DriverInfo
    ko: Path | None = None
    gcov_dir: Path | None = None  # built for coverage: its kept build directory

    @property
    def name(self) -> str:
        return self.info.name


def resolve_driver(spec: str, arts: Any, progress: Progress | None = None,
                   coverage: bool = False) -> Driver:
    """A --driver/--load spec, built if it is a source: "ktest_nic" builds
    drivers/ktest_nic; a module source directory is built; a .ko is used as
    is; any other name is an in-tree module. BuildError or FileNotFoundError
    if that fails. `coverage`: a built module is built for gcov."""
    info = info_for(spec)
    path = Path(spec)
    if spec == "ktest_nic":
        mod = module_mod.build_module(module_mod.DEFAULT_MODULE_DIR, arts.kernel, progress,
                                      coverage)
        return Driver(info, mod.ko, mod.gcov_dir)
    if spec.endswith(".ko"):
        if not path.is_file():
            raise FileNotFoundError(f"module file not found: {spec}")
        return Driver(info, path)
    if path.is_dir():
        mod = module_mod.build_module(path, arts.kernel, progress, coverage)
        return Driver(info, mod.ko, mod.gcov_dir)
    if "/" in spec:
        raise FileNotFoundError(f"module source directory not found: {spec}")
    return Driver(info, None)


def host_ko(driver: Driver, kernel: Any) -> Path | None:
    """The driver's module file on the host: the one ktest built, or the
    in-tree module in the kernel's build tree (None if it has none)."""
    if driver.ko is not None:
        return driver.ko
    hits = sorted((Path(kernel.build_dir) / "drivers").rglob(f"{driver.name}.ko"))
    return hits[0] if hits else None


def ko_in_guest(driver: Driver, remote_dir: str = "/tmp") -> str:
    """Where load_module() puts an out-of-tree driver's .ko in the guest."""
    assert driver.ko is not None, f"{driver.name} is an in-tree module"
    return f"{remote_dir}/{driver.ko.name}"


def load_module(guest: Any, driver: Driver, params: str = "", remote_dir: str = "/tmp") -> None:
    """Load `driver` in the guest: modprobe an in-tree module, or copy the
    .ko in (once per guest) and insmod it."""
    if driver.ko is None:
        guest.cmd(f"modprobe {shlex.quote(driver.name)} {params}".strip(), timeout=120)
        return
    remote = ko_in_guest(driver, remote_dir)
    guest.put_once(driver.ko, remote)
    guest.cmd(f"insmod {remote} {params}".strip(), timeout=120)
