"""Machine profiles: validation errors that name file and key, and the
profile -> QEMU argv function against golden files.

Regenerate the golden files with KTEST_UPDATE_GOLDEN=1."""

from __future__ import annotations

import dataclasses
import os
import shlex
from pathlib import Path

import pytest

from orchestrator.machine import profiles

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "argv"
RES = profiles.Resources(
    kernel=Path("/k/bzImage"), initrd=Path("/k/initrd.cpio"), qmp_socket=Path("/run/qmp.sock"),
    console_socket=Path("/run/console.sock"), ssh_port=10022, nic_fds={"nic0": 7, "nic1": 8},
    accel="tcg",
)


@pytest.mark.parametrize("name", profiles.available_profiles())
def test_argv_golden(name: str) -> None:
    prof = profiles.load_profile(name)
    res = dataclasses.replace(RES, nic_fds={n.id: 7 + i for i, n in enumerate(prof.nics)})
    argv = profiles.qemu_argv(prof, res)
    text = "\n".join(argv) + "\n"
    golden = GOLDEN / f"{name}.txt"
    if os.environ.get("KTEST_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.read_text() == text, f"regenerate with KTEST_UPDATE_GOLDEN=1 ({golden})"


def test_shipped_profiles() -> None:
    assert set(profiles.available_profiles()) >= {
        "e1000e", "e1000e-viommu", "virtio-net", "virtio-net-viommu"}
    v = profiles.load_profile("virtio-net-viommu")
    assert v.viommu == "intel" and v.nics[0].iommu_platform


def test_argv_invariants() -> None:
    argv = profiles.qemu_argv(profiles.load_profile("e1000e-viommu"), RES)
    joined = shlex.join(argv)
    assert "restrict=on" in joined  # the guest can reach nothing but the host forward
    assert "hostfwd=tcp:127.0.0.1:10022-:22" in joined
    assert "-no-reboot" in argv and "panic=-1" in joined
    assert "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off" in argv
    assert argv.index("intel-iommu,intremap=on,device-iotlb=on") > 0
    assert "dgram,id=nd-nic0,local.type=fd,local.str=7" in argv
    kvm = profiles.qemu_argv(profiles.load_profile("e1000e"),
                             profiles.Resources(**{**RES.__dict__, "accel": "kvm"}))
    assert kvm[kvm.index("-accel") + 1] == "kvm" and "host" in kvm


def _load(tmp_path: Path, text: str) -> profiles.Profile:
    p = tmp_path / "p.yaml"
    p.write_text(text)
    return profiles.load_profile(str(p))


def test_profile_errors_carry_the_line(tmp_path: Path) -> None:
    text = "name: x\nnics:\n  - model: e1000e\n  - model: e1000e\n    vfs: 2\n"
    with pytest.raises(profiles.ProfileError, match=r"p\.yaml:5: nics\[1\]\.vfs: model "
                                                    r"e1000e has no SR-IOV"):
        _load(tmp_path, text)
    with pytest.raises(profiles.ProfileError, match=r"p\.yaml:3: malformed YAML"):
        _load(tmp_path, "name: x\nnics: [\n  - a: b\n")


def test_igb_vfs_and_macs(tmp_path: Path) -> None:
    p = _load(tmp_path, "nics:\n  - {model: igb, mac: '52:54:00:00:30:00', vfs: 2}\n")
    nic = p.nics[0]
    assert nic.vfs == 2 and nic.vf_mac(1) == "52:54:00:00:81:00"
    assert ("igb", "profile p (NIC nic0: igb)") in p.qemu_needs()
    with pytest.raises(profiles.ProfileError, match=r"vfs: expected 0\.\.7, got 9"):
        _load(tmp_path, "nics:\n  - {model: igb, vfs: 9}\n")


def test_nic_device_is_one_function() -> None:
    nic = profiles.NicSpec("nic0", "virtio-net-pci", "52:54:00:00:20:00", vectors=4,
                           iommu_platform=True)
    opts = ",".join(k if v is None else f"{k}={v}" for k, v in profiles.nic_device(nic).items())
    assert opts == ("virtio-net-pci,id=nic0,bus=rp-nic0,netdev=nd-nic0,mac=52:54:00:00:20:00,"
                    "romfile=,vectors=4,iommu_platform=on,ats=on")
    # the same properties for QMP's device_add, typed as it checks them
    assert profiles.qmp_device_args(nic) == {
        "driver": "virtio-net-pci", "id": "nic0", "bus": "rp-nic0", "netdev": "nd-nic0",
        "mac": "52:54:00:00:20:00", "romfile": "", "vectors": 4, "iommu_platform": True,
        "ats": True}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nics: [\n", r"p.yaml:\d+: malformed YAML"),
        ("- a\n- b\n", r"top level: expected a mapping, got a list"),
        ("memory: lots\n", r"memory: expected MiB"),
        ("cpus: two\n", r"cpus: expected a number of vCPUs, got 'two'"),
        ("cpus: true\n", r"cpus: expected a number"),
        ("accel: hvf\n", r"accel: expected one of auto, tcg, kvm"),
        ("viommu: amd\n", r"viommu: expected one of off, intel"),
        ("nics:\n  - model: rtl8139\n", r"nics\[0\].model: unknown NIC model 'rtl8139'"),
        ("nics:\n  - id: x\n", r"nics\[0\].model: missing"),
        ("nics:\n  - model: e1000e\n    mac: 52:54:00:00:00:01\n",
         r"nics\[0\].mac: expected a MAC address in quotes"),
        ("nics:\n  - model: e1000e\n    mac: 'zz'\n", r"nics\[0\].mac: expected a MAC"),
        ("nics:\n  - {model: e1000e, id: a}\n"
         "  - {model: e1000e, id: a, mac: '52:54:00:00:99:00'}\n", r"duplicate id a"),
        ("nics:\n  - {model: e1000e, mac: '52:54:00:12:34:56'}\n", r"duplicate MAC"),
        ("nics:\n  - {model: e1000e, vectors: 4}\n", r"nics\[0\].vectors: model e1000e"),
        ("nics:\n  - {model: virtio-net-pci, queues: 4}\n", r"queues: .* exactly 1 queue pair"),
        ("nics:\n  - {model: e1000e, speed: 10}\n", r"nics\[0\].speed: unknown key"),
        ("bogus: 1\n", r"bogus: unknown key"),
        ("cmdline: [1, [2]]\n", r"cmdline: expected strings"),
    ],
)
def test_profile_errors_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(profiles.ProfileError, match=message) as exc:
        _load(tmp_path, text)
    assert str(tmp_path / "p.yaml") in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_profile_lists_known() -> None:
    with pytest.raises(profiles.ProfileError, match=r"no such profile \(known: .*e1000e"):
        profiles.load_profile("nope")


def test_count_expands_nics(tmp_path: Path) -> None:
    p = _load(tmp_path, "nics:\n  - {model: e1000e, id: n, count: 3, mac: '52:54:00:00:10:fe'}\n")
    assert [(n.id, n.mac) for n in p.nics] == [
        ("n0", "52:54:00:00:10:fe"), ("n1", "52:54:00:00:10:ff"), ("n2", "52:54:00:00:11:00")]
    res = profiles.Resources(**{**RES.__dict__, "nic_fds": {"n0": 3, "n1": 4, "n2": 5}})
    argv = profiles.qemu_argv(p, res)
    ports = [a for a in argv if a.startswith("pcie-root-port")]
    assert len(ports) == 3 and len({a.split(",")[0] for a in ports}) == 1
