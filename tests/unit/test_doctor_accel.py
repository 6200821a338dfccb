"""Doctor checks as data, and the probe's hand-made /init."""

from __future__ import annotations

import struct
from pathlib import Path

from orchestrator.machine import accel, doctor

ROOT = Path(__file__).resolve().parents[2]


def test_check_found_and_missing() -> None:
    ok = doctor.run_check(doctor.Check("sh", "dash", ("sh", "-c", "echo v1.2")))
    assert ok.found and ok.detail == "v1.2"
    missing = doctor.run_check(doctor.Check("nope", "nope-pkg", ("ktest-no-such-tool",)))
    assert not missing.found and "not on PATH" in missing.detail
    failing = doctor.run_check(
        doctor.Check("false", "coreutils", ("sh", "-c", "echo bad >&2; exit 3")))
    assert not failing.found and failing.detail == "bad"
    path = doctor.run_check(doctor.Check("x", "x", path="/nonexistent/file"))
    assert not path.found and "not found" in path.detail


def test_bootstrap_installs_every_package_doctor_checks() -> None:
    text = (ROOT / "scripts" / "bootstrap").read_text()
    block = text.split("pkgs=(", 1)[1].split(")", 1)[0]
    installed = set(block.split()) | {"linux-source-6.1"}  # added on bookworm only
    assert set(doctor.DEBIAN_PACKAGES) <= installed, set(doctor.DEBIAN_PACKAGES) - installed
    qemu_block = text.split("qemu_pkgs=(", 1)[1].split(")", 1)[0]
    assert set(doctor.QEMU_PACKAGES) == set(qemu_block.split())
    assert "pkgs+=(linux-source-6.1)" in text


def test_doctor_lists_every_prerequisite(capsys, monkeypatch) -> None:
    from orchestrator import cli

    monkeypatch.setattr(doctor, "accelerator_line", lambda refresh=False: (True, "tcg (test)"))
    code = cli.main(["doctor"])
    out = capsys.readouterr().out
    for check in doctor.CHECKS:
        assert check.name in out
    assert "accelerator" in out and "tcg (test)" in out
    assert code in (0, 1)


def test_probe_init_is_a_static_x86_64_elf() -> None:
    elf = accel.probe_init_elf()
    assert elf[:4] == b"\x7fELF" and elf[4] == 2 and elf[5] == 1
    e_type, e_machine, _, e_entry, e_phoff = struct.unpack_from("<HHIQQ", elf, 16)
    assert (e_type, e_machine, e_phoff) == (2, 0x3E, 64)
    p_type, p_flags, p_off, p_vaddr, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, 64)
    assert p_type == 1 and p_filesz == len(elf) and p_vaddr <= e_entry < p_vaddr + len(elf)
    assert accel.PROBE_LINE in elf


def test_probe_without_kernel_says_tcg(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("KTEST_CACHE", str(tmp_path))
    monkeypatch.setattr(accel.os, "access", lambda *a: True)
    monkeypatch.setattr(accel.shutil, "which", lambda *a: "/usr/bin/qemu-system-x86_64")
    r = accel.probe(None, refresh=True)
    assert r.accel == "tcg" and "no guest kernel" in r.reason
