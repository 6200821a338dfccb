"""The command line: dry runs, bad input gives one line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def ktest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_help_lists_the_commands() -> None:
    out = ktest("--help").stdout
    for cmd in ("doctor", "build", "boot", "ssh", "exec", "run", "smoke", "parse"):
        assert cmd in out


@pytest.mark.parametrize("name", ["e1000e", "e1000e-viommu", "virtio-net", "virtio-net-viommu"])
def test_boot_dry_run_prints_argv(name: str) -> None:
    r = ktest("boot", "--dry-run", "--machine", name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("qemu-system-x86_64 ") and "restrict=on" in r.stdout


def test_malformed_profile_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("nics:\n  - model: rtl8139\n")
    r = ktest("boot", "--dry-run", "--machine", str(bad))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "unknown NIC model 'rtl8139'" in r.stderr


def test_missing_kernel_source_dir(tmp_path: Path) -> None:
    r = ktest("build", "kernel", "--src", str(tmp_path / "nope"),
              env={"KTEST_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 2
    assert r.stderr.strip() == f"ktest: error: kernel source directory not found: {tmp_path}/nope"


def test_not_a_kernel_tree(tmp_path: Path) -> None:
    r = ktest("build", "kernel", "--src", str(tmp_path),
              env={"KTEST_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 2 and "is not a kernel source tree" in r.stderr


def test_unreadable_fragment(tmp_path: Path) -> None:
    r = ktest("build", "kernel", "--config", str(tmp_path / "missing.config"),
              env={"KTEST_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 2
    assert "cannot read config fragment" in r.stderr and r.stderr.count("\n") == 1


def test_malformed_fragment(tmp_path: Path) -> None:
    frag = tmp_path / "bad.config"
    frag.write_text("CONFIG_OK=y\nthis is not config\n")
    r = ktest("build", "kernel", "--config", str(frag),
              env={"KTEST_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 2 and f"{frag}:2: not a config line" in r.stderr


def test_missing_module_source(tmp_path: Path) -> None:
    r = ktest("build", "module", "--src", str(tmp_path / "none"),
              env={"KTEST_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 2


def test_ssh_without_guest(tmp_path: Path) -> None:
    r = ktest("ssh", "--", "true", env={"KTEST_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 2 and "no running guest" in r.stderr


def test_exec_without_command() -> None:
    r = ktest("exec", "--")
    assert r.returncode == 2 and "nothing to run" in r.stderr


def _caught_signals(pid: int) -> set[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            mask = int(line.split()[1], 16)
            return {n for n in range(1, 65) if mask & (1 << (n - 1))}
    return set()


@pytest.mark.parametrize("ignored", [False, True])
def test_hangup_ends_ktest_unless_it_runs_under_nohup(ignored: bool) -> None:
    """A hang-up ends ktest like SIGTERM (guests torn down), but `nohup ktest
    run` must outlive its terminal."""
    import signal

    def setup() -> None:  # either way: this test itself may run under nohup
        signal.signal(signal.SIGHUP, signal.SIG_IGN if ignored else signal.SIG_DFL)

    # `ktest parse /dev/stdin` blocks reading the open pipe: a command that
    # is still running when the hang-up comes
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "parse", "/dev/stdin"],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=setup)
    try:
        assert proc.stdout is not None
        caught = {signal.SIGTERM} | (set() if ignored else {signal.SIGHUP})
        deadline = time.monotonic() + 60
        while not caught <= _caught_signals(proc.pid):  # ktest's handlers are in place
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        proc.send_signal(signal.SIGHUP)
        out, err = proc.communicate("", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == (0 if ignored else 128 + signal.SIGHUP), err
