"""Machine profiles: YAML -> frozen dataclasses -> QEMU argv (pure).

A profile (``qemu-configs/NAME.yaml``) describes one guest: machine type,
memory, vCPUs, accelerator, vIOMMU, the management NIC and the NICs under
test. Each NIC under test sits behind its own pcie-root-port and ends in a
UDP datagram socket owned by the host (one datagram = one Ethernet frame).

Loading validates everything and names the file and key of any error.
:func:`qemu_argv` is a pure function of a profile plus the run-time
resources (paths, ports, file descriptors, kernel and initrd), so the exact
command line can be printed (``--dry-run``) and golden-tested.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import cache

PROFILE_DIR = cache.project_root() / "qemu-configs"
DEFAULT_PROFILE = "e1000e"

# Device models we know how to wire up, with what each supports.
# "modules": what to load, in order, for the in-tree driver (nothing in the
# guest auto-loads modules: virtio_net needs the virtio_pci transport first).
NIC_MODELS: Mapping[str, Mapping[str, Any]] = {
    "e1000e": {"driver": "e1000e", "modules": ("e1000e",), "vectors": False,
               "iommu_platform": False},
    "virtio-net-pci": {"driver": "virtio_net", "modules": ("virtio_pci", "virtio_net"),
                       "vectors": True, "iommu_platform": True},
}
MGMT_MODELS = ("e1000",)
ACCELS = ("auto", "tcg", "kvm")
VIOMMUS = ("off", "intel")
_MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,30}$")

# QEMU quirks as data (see ../shared/QEMU-NOTES.md): native PCIe hotplug on the
# root ports is what makes bus resets and fatal-AER recovery work.
MACHINE_GLOBALS = ("ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",)
BASE_CMDLINE = (
    "console=ttyS0,115200",
    "panic=-1",
    "kasan.fault=report",
    "kmemleak=on",
    "printk.devkmsg=on",
    "net.ifnames=0",
    # Seed the kernel RNG from RDRAND at boot: otherwise sshd waits several
    # seconds in getrandom() for "crng init done" (there is no hardware RNG
    # device in the guest). Fine for a throw-away test guest.
    "random.trust_cpu=on",
)

# Under TCG, "-cpu max" is an AMD family 0xf CPU, for which Linux picks the
# AMD-erratum-400 idle routine (timer broadcast around C1E). Observed here:
# about one boot in three then stops for good at "Running RCU-tasks wait API
# self tests" with every vCPU halted in amd_e400_idle and no timer interrupt
# ever arriving. Plain HLT idle avoids that path.
TCG_CMDLINE = ("idle=halt",)


class ProfileError(ValueError):
    """A profile that cannot be used; the message names file and key."""


@dataclass(frozen=True)
class NicSpec:
    id: str
    model: str
    mac: str
    vectors: int | None = None
    iommu_platform: bool = False

    @property
    def port_id(self) -> str:
        return f"rp-{self.id}"

    @property
    def netdev_id(self) -> str:
        return f"nd-{self.id}"

    @property
    def driver(self) -> str:
        return str(NIC_MODELS[self.model]["driver"])

    @property
    def modules(self) -> tuple[str, ...]:
        """In-tree modules that make this NIC work, in load order."""
        return tuple(NIC_MODELS[self.model]["modules"])


@dataclass(frozen=True)
class MgmtSpec:
    model: str = "e1000"
    mac: str = "52:54:00:12:34:56"
    ip: str = "10.0.2.15/24"
    gateway: str = "10.0.2.2"


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path | None
    description: str = ""
    machine: str = "q35"
    memory_mib: int = 2048
    cpus: int = 2
    accel: str = "auto"
    viommu: str = "off"
    mgmt: MgmtSpec = field(default_factory=MgmtSpec)
    nics: tuple[NicSpec, ...] = ()
    cmdline: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Resources:
    """What a launch provides at run time: paths, ports and descriptors."""

    kernel: Path
    initrd: Path
    qmp_socket: Path
    console_socket: Path
    ssh_port: int
    nic_fds: Mapping[str, int]  # NIC id -> fd of QEMU's connected UDP socket
    accel: str  # resolved: "tcg" or "kvm"


def profile_path(name_or_path: str) -> Path:
    """A profile name (looked up in qemu-configs/) or a path to a YAML file."""
    if name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path:
        return Path(name_or_path)
    return PROFILE_DIR / f"{name_or_path}.yaml"


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name_or_path: str) -> Profile:
    path = profile_path(name_or_path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        known = ", ".join(available_profiles()) or "none"
        raise ProfileError(f"{path}: no such profile (known: {known})") from None
    except OSError as e:
        raise ProfileError(f"{path}: cannot read: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ProfileError(f"{path}{where}: malformed YAML: {problem}") from None
    return parse_profile(data, path)


class _Reader:
    """Typed access to one mapping of a profile, with error messages."""

    def __init__(self, data: Any, where: str, key: str) -> None:
        if not isinstance(data, dict):
            raise ProfileError(f"{where}: {key or 'profile'}: expected a mapping, "
                               f"got {type(data).__name__}")
        self.data = data
        self.where = where
        self.key = key
        self.used: set[str] = set()

    def _name(self, k: str) -> str:
        return f"{self.key}.{k}" if self.key else k

    def get(self, k: str, typ: type | tuple[type, ...], default: Any, what: str) -> Any:
        self.used.add(k)
        if k not in self.data or self.data[k] is None:
            return default
        v = self.data[k]
        if isinstance(v, bool) and bool not in (typ if isinstance(typ, tuple) else (typ,)):
            raise ProfileError(f"{self.where}: {self._name(k)}: expected {what}, got {v!r}")
        if not isinstance(v, typ):
            raise ProfileError(f"{self.where}: {self._name(k)}: expected {what}, got {v!r}")
        return v

    def choice(self, k: str, choices: Sequence[str], default: str) -> str:
        v = self.get(k, (str, bool), default, "one of " + "/".join(choices))
        if v is False:
            v = "off"
        if v not in choices:
            raise ProfileError(
                f"{self.where}: {self._name(k)}: expected one of {', '.join(choices)}, got {v!r}"
            )
        return str(v)

    def strings(self, k: str) -> tuple[str, ...]:
        v = self.get(k, (list, str), [], "a list of strings")
        items = v.split() if isinstance(v, str) else v
        for item in items:
            if not isinstance(item, str | int | float) or isinstance(item, bool):
                raise ProfileError(f"{self.where}: {self._name(k)}: expected strings, "
                                   f"got {item!r}")
        return tuple(str(i) for i in items)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ProfileError(f"{self.where}: {self._name(unknown[0])}: unknown key "
                               f"(known: {', '.join(sorted(self.used))})")


def _mac(where: str, key: str, value: str) -> str:
    if not isinstance(value, str):
        raise ProfileError(f"{where}: {key}: expected a MAC address in quotes "
                           f"(YAML reads an unquoted one as a number), got {value!r}")
    if not _MAC_RE.match(value.lower()):
        raise ProfileError(f"{where}: {key}: expected a MAC address like 52:54:00:00:00:01, "
                           f"got {value!r}")
    return value.lower()


def _mac_plus(mac: str, n: int) -> str:
    value = int(mac.replace(":", ""), 16) + n
    raw = f"{value:012x}"
    return ":".join(raw[i : i + 2] for i in range(0, 12, 2))


def _memory(where: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        mib = value
    elif isinstance(value, str) and (m := re.fullmatch(r"(\d+)\s*([MG])i?B?", value.strip())):
        mib = int(m.group(1)) * (1024 if m.group(2) == "G" else 1)
    else:
        raise ProfileError(f"{where}: memory: expected MiB as a number or e.g. '2G', got {value!r}")
    if not 256 <= mib <= 65536:
        raise ProfileError(f"{where}: memory: {mib} MiB is outside 256..65536")
    return mib


def parse_profile(data: Any, path: Path | None = None, name: str | None = None) -> Profile:
    where = str(path) if path else "<profile>"
    r = _Reader(data, where, "")
    pname = r.get("name", str, name or (path.stem if path else "profile"), "a string")
    description = r.get("description", str, "", "a string")
    machine = r.get("machine", str, "q35", "a machine type")
    if machine != "q35":
        raise ProfileError(f"{where}: machine: only q35 is supported, got {machine!r}")
    memory = _memory(where, r.get("memory", (int, str), 2048, "a size"))
    cpus = r.get("cpus", int, 2, "a number of vCPUs")
    if not 1 <= cpus <= 8:
        raise ProfileError(f"{where}: cpus: expected 1..8, got {cpus}")
    accel = r.choice("accel", ACCELS, "auto")
    viommu = r.choice("viommu", VIOMMUS, "off")

    m = _Reader(r.get("mgmt", dict, {}, "a mapping"), where, "mgmt")
    mgmt_model = m.choice("model", MGMT_MODELS, "e1000")
    mgmt = MgmtSpec(
        model=mgmt_model,
        mac=_mac(where, "mgmt.mac", m.get("mac", (str, int), MgmtSpec.mac, "a MAC address")),
    )
    m.finish()

    nics: list[NicSpec] = []
    raw_nics = r.get("nics", list, [], "a list of NICs")
    for i, raw in enumerate(raw_nics):
        key = f"nics[{i}]"
        n = _Reader(raw, where, key)
        model = n.get("model", str, None, "a NIC model")
        if model is None:
            raise ProfileError(f"{where}: {key}.model: missing (one of {', '.join(NIC_MODELS)})")
        if model not in NIC_MODELS:
            raise ProfileError(f"{where}: {key}.model: unknown NIC model {model!r} "
                               f"(known: {', '.join(NIC_MODELS)})")
        caps = NIC_MODELS[model]
        count = n.get("count", int, 1, "a count")
        if not 1 <= count <= 8:
            raise ProfileError(f"{where}: {key}.count: expected 1..8, got {count}")
        base_id = n.get("id", str, f"nic{len(nics)}", "an id")
        mac = _mac(where, f"{key}.mac",
                   n.get("mac", (str, int), f"52:54:00:00:{0x10 + len(nics):02x}:00", "a MAC"))
        vectors = n.get("vectors", int, None, "a number of MSI-X vectors")
        if vectors is not None and not caps["vectors"]:
            raise ProfileError(f"{where}: {key}.vectors: model {model} has a fixed vector count")
        queues = n.get("queues", int, 1, "a number of queue pairs")
        if queues != 1:
            raise ProfileError(
                f"{where}: {key}.queues: {model} on a datagram backend has exactly 1 queue pair "
                "(QEMU multiqueue needs a tap/vhost-user backend)"
            )
        iommu_platform = n.get("iommu_platform", bool, viommu != "off" and caps["iommu_platform"],
                               "true/false")
        if iommu_platform and not caps["iommu_platform"]:
            raise ProfileError(f"{where}: {key}.iommu_platform: not a property of {model}")
        n.finish()
        for j in range(count):
            nid = base_id if count == 1 else f"{base_id}{j}"
            if not _ID_RE.match(nid):
                raise ProfileError(f"{where}: {key}.id: {nid!r} is not a valid QEMU id")
            nics.append(NicSpec(nid, model, _mac_plus(mac, j), vectors, iommu_platform))

    ids = [n.id for n in nics]
    macs = [n.mac for n in nics] + [mgmt.mac]
    for seen, what in ((ids, "id"), (macs, "MAC")):
        dup = {x for x in seen if seen.count(x) > 1}
        if dup:
            raise ProfileError(f"{where}: nics: duplicate {what} {sorted(dup)[0]}")
    if len(nics) > 16:
        raise ProfileError(f"{where}: nics: at most 16 NICs under test (root port slots)")

    cmdline = r.strings("cmdline")
    extra = r.strings("extra_args")
    r.finish()
    return Profile(
        name=pname, path=path, description=description, machine=machine, memory_mib=memory,
        cpus=cpus, accel=accel, viommu=viommu, mgmt=mgmt, nics=tuple(nics), cmdline=cmdline,
        extra_args=extra,
    )


def kernel_cmdline(profile: Profile, accel: str = "tcg") -> str:
    parts = list(BASE_CMDLINE)
    if accel == "tcg":
        parts += TCG_CMDLINE
    parts += [
        f"ktest.mgmt_mac={profile.mgmt.mac}",
        f"ktest.mgmt_ip={profile.mgmt.ip}",
        f"ktest.mgmt_gw={profile.mgmt.gateway}",
    ]
    if profile.viommu == "intel":
        parts.append("intel_iommu=on")
    parts += profile.cmdline
    return " ".join(parts)


def qemu_argv(profile: Profile, res: Resources, qemu: str = "qemu-system-x86_64") -> list[str]:
    """The complete QEMU command line for `profile` with `res` (pure)."""
    if res.accel == "kvm":
        accel = ["-accel", "kvm", "-cpu", "host"]
    else:
        accel = ["-accel", "tcg", "-cpu", "max"]
    argv = [
        qemu,
        "-name", f"ktest-{profile.name},debug-threads=on",
        "-machine", profile.machine,
        *accel,
        "-m", str(profile.memory_mib),
        "-smp", str(profile.cpus),
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-vga", "none",
        "-no-reboot",
        "-chardev", f"socket,id=console,path={res.console_socket},server=on,wait=on",
        "-serial", "chardev:console",
        "-qmp", f"unix:{res.qmp_socket},server=on,wait=off",
        "-kernel", str(res.kernel),
        "-initrd", str(res.initrd),
        "-append", kernel_cmdline(profile, res.accel),
    ]
    for g in MACHINE_GLOBALS:
        argv += ["-global", g]
    if profile.viommu == "intel":
        argv += ["-device", "intel-iommu,intremap=on,device-iotlb=on"]
    argv += [
        "-netdev",
        f"user,id=mgmt,restrict=on,ipv6=off,hostfwd=tcp:127.0.0.1:{res.ssh_port}-:22",
        "-device", f"{profile.mgmt.model},netdev=mgmt,mac={profile.mgmt.mac},romfile=",
    ]
    for slot, nic in enumerate(profile.nics, start=1):
        argv += [
            "-device",
            f"pcie-root-port,id={nic.port_id},bus=pcie.0,chassis={slot},slot={slot},"
            f"addr={0x3 + slot:#x}",
        ]
        fd = res.nic_fds[nic.id]
        argv += ["-netdev", f"dgram,id={nic.netdev_id},local.type=fd,local.str={fd}"]
        props = [nic.model, f"id={nic.id}", f"bus={nic.port_id}", f"netdev={nic.netdev_id}",
                 f"mac={nic.mac}"]
        props.append("romfile=")  # no option ROM: nothing boots from these NICs
        if nic.vectors is not None:
            props.append(f"vectors={nic.vectors}")
        if nic.iommu_platform:
            props += ["iommu_platform=on", "ats=on"]
        argv += ["-device", ",".join(props)]
    argv += list(profile.extra_args)
    return argv
