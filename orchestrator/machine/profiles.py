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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import paths, yamlconf
from orchestrator.yamlconf import ConfigError, Reader

PROFILE_DIR = paths.profiles_dir()
DEFAULT_PROFILE = "e1000e"


@dataclass(frozen=True)
class NicModel:
    """What ktest knows of a QEMU NIC model (device facts only; which driver
    drives it is in orchestrator.scenario.drivers)."""

    name: str
    feature: str = "dgram-netdev"  # QEMU feature (machine.qemu.FEATURES) the model needs
    vectors: bool = False  # has a settable MSI-X vector count
    iommu_platform: bool = False  # has iommu_platform=on (virtio)
    max_vfs: int = 0  # SR-IOV virtual functions the model offers


NIC_MODELS: Mapping[str, NicModel] = {m.name: m for m in (
    NicModel("e1000e"),
    NicModel("igb", feature="igb", max_vfs=7),
    NicModel("virtio-net-pci", vectors=True, iommu_platform=True),
)}
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
    # The boot console from the kernel's first moments (setup_arch): a crash
    # before the serial console driver registers still reaches console.log.
    "earlyprintk=serial,ttyS0,115200",
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
# AMD-erratum-400 idle routine (timer broadcast around C1E). Plain HLT idle
# avoids that path.
TCG_CMDLINE = ("idle=halt",)

ProfileError = ConfigError


@dataclass(frozen=True)
class NicSpec:
    id: str
    model: str
    mac: str
    vectors: int | None = None
    iommu_platform: bool = False
    vfs: int = 0  # SR-IOV VFs the guest enables on this NIC (igb)

    @property
    def port_id(self) -> str:
        return f"rp-{self.id}"

    @property
    def netdev_id(self) -> str:
        return f"nd-{self.id}"

    def vf_mac(self, index: int) -> str:
        """The MAC ktest gives VF `index` (the PF's MAC with 0x80 + index in
        the fifth byte, so it never collides with another NIC's)."""
        raw = bytearray(int(b, 16) for b in self.mac.split(":"))
        raw[4] = 0x80 + index
        return ":".join(f"{b:02x}" for b in raw)


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
    # 1 GiB: enough for every suite; kmemleak's scan time grows with the
    # guest's memory (measured under TCG: 14 s a scan at 1 GiB, 22 s at 2)
    memory_mib: int = 1024
    cpus: int = 2
    accel: str = "auto"
    viommu: str = "off"
    mgmt: MgmtSpec = field(default_factory=MgmtSpec)
    nics: tuple[NicSpec, ...] = ()
    cmdline: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()

    def qemu_needs(self) -> list[tuple[str, str]]:
        """(QEMU feature, what needs it) for this profile."""
        return [(NIC_MODELS[n.model].feature, f"profile {self.name} (NIC {n.id}: {n.model})")
                for n in self.nics]


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
    if not path.exists():
        known = ", ".join(available_profiles()) or "none"
        raise ProfileError(f"{path}: no such profile (known: {known})")
    data, _ = yamlconf.load(path, "profile")
    return parse_profile(data, path)


def _mac(r: Reader, key: str, default: str) -> str:
    value = r.get(key, (str, int), default, "a MAC address")
    if not isinstance(value, str):
        raise r.error(key, f"expected a MAC address in quotes (YAML reads an unquoted one "
                           f"as a number), got {value!r}")
    if not _MAC_RE.match(value.lower()):
        raise r.error(key, f"expected a MAC address like 52:54:00:00:00:01, got {value!r}")
    return value.lower()


def _mac_plus(mac: str, n: int) -> str:
    value = int(mac.replace(":", ""), 16) + n
    raw = f"{value:012x}"
    return ":".join(raw[i : i + 2] for i in range(0, 12, 2))


def _memory(r: Reader) -> int:
    value = r.get("memory", (int, str), Profile.memory_mib, "a size")
    if isinstance(value, int) and not isinstance(value, bool):
        mib = value
    elif isinstance(value, str) and (m := re.fullmatch(r"(\d+)\s*([MG])i?B?", value.strip())):
        mib = int(m.group(1)) * (1024 if m.group(2) == "G" else 1)
    else:
        raise r.error("memory", f"expected MiB as a number or e.g. '2G', got {value!r}")
    if not 256 <= mib <= 65536:
        raise r.error("memory", f"{mib} MiB is outside 256..65536")
    return mib


def parse_profile(data: Any, path: Path | None = None, name: str | None = None) -> Profile:
    where = str(path) if path else "<profile>"
    r = Reader(data, where)
    pname = r.get("name", str, name or (path.stem if path else "profile"), "a string")
    description = r.get("description", str, "", "a string")
    machine = r.get("machine", str, "q35", "a machine type")
    if machine != "q35":
        raise r.error("machine", f"only q35 is supported, got {machine!r}")
    memory = _memory(r)
    cpus = r.get("cpus", int, 2, "a number of vCPUs")
    if not 1 <= cpus <= 8:
        raise r.error("cpus", f"expected 1..8, got {cpus}")
    accel = r.choice("accel", ACCELS, "auto")
    viommu = r.choice("viommu", VIOMMUS, "off")

    m = r.child("mgmt")
    mgmt = MgmtSpec(model=m.choice("model", MGMT_MODELS, "e1000"),
                    mac=_mac(m, "mac", MgmtSpec.mac))
    m.finish()

    nics: list[NicSpec] = []
    for _, raw, key, line in r.items("nics"):
        n = Reader(raw, where, key, line)
        model = n.required("model", str, "one of " + ", ".join(NIC_MODELS))
        if model not in NIC_MODELS:
            raise n.error("model", f"unknown NIC model {model!r} (known: {', '.join(NIC_MODELS)})")
        facts = NIC_MODELS[model]
        count = n.get("count", int, 1, "a count")
        if not 1 <= count <= 8:
            raise n.error("count", f"expected 1..8, got {count}")
        base_id = n.get("id", str, f"nic{len(nics)}", "an id")
        mac = _mac(n, "mac", f"52:54:00:00:{0x10 + len(nics):02x}:00")
        vectors = n.get("vectors", int, None, "a number of MSI-X vectors")
        if vectors is not None and not facts.vectors:
            raise n.error("vectors", f"model {model} has a fixed vector count")
        queues = n.get("queues", int, 1, "a number of queue pairs")
        if queues != 1:
            raise n.error("queues", f"{model} on a datagram backend has exactly 1 queue pair "
                                    "(QEMU multiqueue needs a tap/vhost-user backend)")
        iommu_platform = n.get("iommu_platform", bool, viommu != "off" and facts.iommu_platform,
                               "true/false")
        if iommu_platform and not facts.iommu_platform:
            raise n.error("iommu_platform", f"not a property of {model}")
        vfs = n.get("vfs", int, 0, "a number of SR-IOV virtual functions")
        if vfs and not facts.max_vfs:
            raise n.error("vfs", f"model {model} has no SR-IOV")
        if not 0 <= vfs <= facts.max_vfs:
            raise n.error("vfs", f"expected 0..{facts.max_vfs}, got {vfs}")
        n.finish()
        for j in range(count):
            nid = base_id if count == 1 else f"{base_id}{j}"
            if not _ID_RE.match(nid):
                raise n.error("id", f"{nid!r} is not a valid QEMU id")
            nics.append(NicSpec(nid, model, _mac_plus(mac, j), vectors, iommu_platform, vfs))

    ids = [n.id for n in nics]
    macs = [n.mac for n in nics] + [mgmt.mac]
    for seen, what in ((ids, "id"), (macs, "MAC")):
        dup = {x for x in seen if seen.count(x) > 1}
        if dup:
            raise r.error("nics", f"duplicate {what} {sorted(dup)[0]}")
    if len(nics) > 16:
        raise r.error("nics", "at most 16 NICs under test (root port slots)")

    cmdline = r.strings("cmdline")
    extra = r.strings("extra_args")
    r.finish()
    return Profile(
        name=pname, path=path, description=description, machine=machine, memory_mib=memory,
        cpus=cpus, accel=accel, viommu=viommu, mgmt=mgmt, nics=tuple(nics),
        cmdline=cmdline, extra_args=extra,
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


def nic_device(nic: NicSpec) -> dict[str, str | None]:
    """The -device properties of a NIC under test (the first key, with value
    None, is the model): the same for the command line and for a QMP
    device_add that plugs the NIC back in."""
    props: dict[str, str | None] = {
        nic.model: None, "id": nic.id, "bus": nic.port_id, "netdev": nic.netdev_id,
        "mac": nic.mac,
        "romfile": "",  # no option ROM: nothing boots from these NICs
    }
    if nic.vectors is not None:
        props["vectors"] = str(nic.vectors)
    if nic.iommu_platform:
        props.update({"iommu_platform": "on", "ats": "on"})
    return props


def qmp_device_args(nic: NicSpec) -> dict[str, Any]:
    """nic_device() as the arguments of a QMP device_add: the model as
    "driver", and each value typed as QMP checks it (-device takes strings,
    device_add does not: "ats": "on" is "Invalid parameter type for 'ats',
    expected: boolean"), so on/off are booleans and numbers integers."""
    props = nic_device(nic)
    model = next(iter(props))
    args: dict[str, Any] = {"driver": model}
    for k, v in props.items():
        if k == model:
            continue
        args[k] = v == "on" if v in ("on", "off") else \
            int(v) if v is not None and v.isdigit() else v
    return args


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
        argv += ["-device", ",".join(f"{k}={v}" if v is not None else k
                                     for k, v in nic_device(nic).items())]
    argv += list(profile.extra_args)
    return argv
