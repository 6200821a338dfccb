"""Real builds against the real guest kernel build tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.builds import kernel as kernel_mod
from orchestrator.builds import module as module_mod
from orchestrator.builds.common import BuildError
from orchestrator.machine import doctor

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / "tests" / "modules"


def test_kernel_artifact_is_complete(artifacts) -> None:
    k = artifacts.kernel
    assert k.bzimage.stat().st_size > 1_000_000
    assert (k.build_dir / "Module.symvers").exists()
    config = k.config.read_text()
    for opt in ("CONFIG_KASAN=y", "CONFIG_PROVE_LOCKING=y", "CONFIG_DMA_API_DEBUG=y",
                "CONFIG_E1000E=m", "CONFIG_VIRTIO_NET=m", "CONFIG_E1000=y"):
        assert opt in config
    assert k.release.endswith("-ktest")


def test_second_request_is_a_cache_hit(artifacts) -> None:
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli", "build", "kernel"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert artifacts.kernel.key in r.stdout
    info = json.loads((artifacts.kernel.dir / "artifact.json").read_text())
    assert info["built_at"] == artifacts.kernel.info["built_at"]  # not rebuilt


def test_build_module_against_the_kernel(artifacts) -> None:
    m = module_mod.build_module(MODULES / "hello", artifacts.kernel)
    assert m.ko.name == "ktest_hello.ko"
    info = subprocess.run(["modinfo", "-F", "vermagic", str(m.ko)], capture_output=True,
                          text=True, check=True).stdout
    assert info.startswith(artifacts.kernel.release + " ")
    again = module_mod.build_module(MODULES / "hello", artifacts.kernel)
    assert again.dir == m.dir and again.info["built_at"] == m.info["built_at"]


def test_ktest_nic_builds_w1_and_is_checkpatch_clean(artifacts) -> None:
    m = module_mod.build_module(ROOT / "drivers" / "ktest_nic", artifacts.kernel)
    assert m.ko.name == "ktest_nic.ko"  # W=1 warnings would have raised
    src = Path(artifacts.kernel.info["src_dir"])
    files = sorted(str(p) for p in (ROOT / "drivers" / "ktest_nic").glob("*.[ch]"))
    r = subprocess.run(["perl", str(src / "scripts" / "checkpatch.pl"), "--no-tree", "--strict",
                        "--terse", "--show-types", "-f", *files],
                       capture_output=True, text=True, timeout=300)
    problems = [ln for ln in r.stdout.splitlines() if ": ERROR:" in ln or ": WARNING:" in ln
                or ": CHECK:" in ln]
    assert r.returncode == 0 and not problems, "\n".join(problems) or r.stderr


def test_broken_module_fails_with_compiler_lines(artifacts) -> None:
    with pytest.raises(BuildError) as exc:
        module_mod.build_module(MODULES / "broken", artifacts.kernel)
    assert "failed to build" in str(exc.value)
    assert any("undeclared_symbol_for_the_test" in d and "error" in d for d in exc.value.details)


def test_module_warning_fails_the_build(artifacts) -> None:
    with pytest.raises(BuildError, match="builds with warnings") as exc:
        module_mod.build_module(MODULES / "warning", artifacts.kernel)
    assert any("unused_but_set" in d for d in exc.value.details)


def test_cli_broken_module_one_line(artifacts) -> None:
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli", "build", "module", "--src",
                        str(MODULES / "broken")], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ktest: error: module broken failed to build")
    assert "undeclared_symbol_for_the_test" in r.stderr and "log: " in r.stderr


def test_dropped_option_is_named_with_its_dependency(artifacts, tmp_path: Path) -> None:
    """A fragment asking for an option Kconfig cannot keep: a real allnoconfig
    run in a fresh build directory, checked against the final .config."""
    frag = tmp_path / "dropped.config"
    # depends on X86_32: can never be set on our x86_64 guest (6.1 and 6.12).
    frag.write_text("CONFIG_X86_32_IRIS=y\n")
    req = kernel_mod.KernelRequest(extra_fragments=(frag,))
    with pytest.raises(BuildError) as exc:
        kernel_mod.build_kernel(req)
    msg = str(exc.value)
    assert "CONFIG_X86_32_IRIS=y" in msg
    assert "depends on X86_32 (X86_32=n)" in msg
    assert "arch/x86/Kconfig" in msg
    entry = kernel_mod.cache.entry_dir("kernel", kernel_mod.kernel_key(
        kernel_mod._debian_source_id(req.version),
        kernel_mod.kconfig.render(kernel_mod.merged_config(req))))
    assert not (entry / "artifact.json").exists()
    subprocess.run(["rm", "-rf", str(entry)], check=True)


def test_user_tree_is_checked(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="not a kernel source tree"):
        kernel_mod.build_kernel(kernel_mod.KernelRequest(src=tmp_path))


def test_doctor_real_probe() -> None:
    """Every prerequisite is found here (the project installs them) and the
    accelerator line comes from a real probe boot."""
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli", "doctor", "--refresh-probe",
                        "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    rows = {row["name"]: row for row in json.loads(r.stdout)["checks"]}
    # Debian's 6.1 source exists only on Debian 12; bootstrap installs it there
    elsewhere = {"linux-source-6.1"} if doctor.debian_codename() != "bookworm" else set()
    missing = [n for n, row in rows.items() if row["status"] != "found" and n not in elsewhere]
    assert r.returncode == 0 and not missing, (missing, r.stderr)
    accel = rows["accelerator"]["detail"]
    assert accel.startswith(("tcg (", "kvm (")) and "probe boot" in accel
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        assert accel.startswith("tcg")
