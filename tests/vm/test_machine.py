"""Real guests under the debug kernel: every shipped profile to SSH, the
vIOMMU really on, NIC drivers load and unload, panics and hangs detected,
and no QEMU survives its orchestrator."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.builds import module
from orchestrator.machine import accel, profiles
from orchestrator.machine.guest import CmdTimeout
from orchestrator.machine.vm import POWEROFF_HUNG, BootError
from orchestrator.scenario import drivers, smoke

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def runs_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The ktest commands these tests start put their run directories in a
    temporary folder, removed afterwards, never among the user's runs. Not
    under tmp_path: QEMU's sockets live in a run directory, and a socket's
    path must stay under 108 bytes."""
    d = Path(tempfile.mkdtemp(prefix="ktest-runs-"))
    monkeypatch.setenv("KTEST_RUNS", str(d))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def qemu_pids(marker: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"qemu-system-x86_64.*{marker}"],
                         capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def bdf_of(g, mac: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    for link in g.ip("link show", json=True):
        if link.get("address") == mac:
            dev = link["ifname"]
            path = g.cmd(f"readlink -f /sys/class/net/{dev}/device").stdout.strip()
            return dev, path.rsplit("/", 1)[1]
    raise AssertionError(f"no netdev with MAC {mac}")


# e1000e-viommu boots in tests/vm/test_ktest_nic.py (traffic through the
# vIOMMU, with the same DMAR and IOMMU-group checks); the plans load the
# in-tree e1000e on it. Each profile comes up the way `ktest run` brings it
# up: restored from the snapshot of its cold boot (keyed by the exact QEMU
# command line, QEMU, kernel and image), or booted cold and saved when there
# is none yet. The cold-boot path itself is what the other tests here run.
@pytest.mark.parametrize("name", ["e1000e", "virtio-net", "virtio-net-viommu", "igb"])
def test_profile_boots_and_driver_loads(machine_factory, name: str) -> None:
    m = machine_factory(name, snapshots=True)
    times = m.launch()
    assert times.ready > 0
    cold = m.restored_from is None
    if cold:
        assert times.run_init is not None and times.run_init < times.ready
    g = m.ssh()
    assert g.cmd("uname -r").stdout.strip().endswith("-ktest")
    assert g.cmd("lsmod").stdout.strip().splitlines()[1:] == []  # nothing auto-loaded
    nic = m.profile.nics[0]
    info = drivers.info_for(drivers.in_tree_driver(nic))
    modules = [*info.load_first, info.name]
    for mod in modules:
        g.cmd(f"modprobe {mod}", timeout=120)
    deadline = time.monotonic() + 20
    while True:
        try:
            dev, bdf = bdf_of(g, nic.mac)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    driver = g.cmd(f"basename $(readlink /sys/class/net/{dev}/device/driver)").stdout.strip()
    assert driver in (info.name, "virtio-pci")
    if m.profile.viommu == "intel":
        dmesg = g.cmd("dmesg").stdout
        assert "DMAR: IOMMU enabled" in dmesg or "DMAR: Intel(R) Virtualization" in dmesg
        assert "IRQ remapping" in dmesg or "Enabled IRQ remapping" in dmesg
        pci_bdf = bdf if bdf.count(":") == 2 else g.cmd(
            f"basename $(readlink -f /sys/class/net/{dev}/device/..)").stdout.strip()
        group = g.cmd(f"readlink /sys/bus/pci/devices/{pci_bdf}/iommu_group").stdout.strip()
        assert "iommu_groups/" in group
        assert g.cmd(f"cat /sys/bus/pci/devices/{pci_bdf}/iommu_group/type").stdout.strip() \
            in ("DMA", "DMA-FQ")
    g.cmd(f"ip link set {dev} up")
    for mod in reversed(modules):
        g.cmd(f"modprobe -r {mod}", timeout=120)
    assert g.cmd(f"test -e /sys/class/net/{dev}", check=False).exit_status != 0
    assert m.shutdown() == "poweroff"
    assert not qemu_pids(str(m.run_dir))
    log = (m.run_dir / "console.log").read_text()
    assert ("KTEST-READY" if cold else f"restoring snapshot {m.restored_from}") in log


def test_commands_share_a_kept_open_shell_but_no_state(machine_factory) -> None:
    """Guest.cmd runs each command in a subshell of one bash kept open on
    its channel: nothing a command changes reaches the next, a command past
    its timeout costs only its shell, two threads run commands at once, and
    a command with input gets a session of its own."""
    m = machine_factory("e1000e", snapshots=True)
    m.launch()
    g = m.ssh()
    shell = g.cmd("echo $$").stdout
    g.cmd("cd /sys; export KTEST_X=1; set -e")
    assert g.cmd("pwd; echo ${KTEST_X:-unset}; false; echo on").stdout == "/root\nunset\non\n"
    assert g.cmd("echo $$").stdout == shell
    r = g.cmd("echo out; printf err >&2; exit 7", check=False)
    assert (r.exit_status, r.stdout, r.stderr) == (7, "out\n", "err")
    with pytest.raises(CmdTimeout):
        g.cmd("sleep 20", timeout=1)
    assert g.cmd("echo $$").stdout != shell  # the timed-out shell was dropped
    slow: list[str] = []
    t = threading.Thread(target=lambda: slow.append(g.cmd("sleep 4; echo slow").stdout))
    t.start()
    time.sleep(0.5)
    assert g.cmd("echo fast").stdout == "fast\n" and not slow  # did not wait for it
    t.join()
    assert slow == ["slow\n"]
    assert g.cmd("cat; echo", input="from the host").stdout == "from the host\n"
    assert m.shutdown() == "poweroff"


def test_panic_is_reported_as_crash(machine_factory) -> None:
    m = machine_factory("e1000e")
    m.launch()
    g = m.ssh()
    t = time.monotonic()
    g.cmd("echo c > /proc/sysrq-trigger &", check=False, timeout=10)
    while not m.crashed and time.monotonic() - t < 30:
        time.sleep(0.1)
    assert m.crashed, "panic not noticed"
    assert time.monotonic() - t < 30
    assert m.shutdown() == "crashed"
    assert "Kernel panic - not syncing: sysrq triggered crash" in m.console_tail(60)
    assert not qemu_pids(str(m.run_dir))


def test_silent_hang_during_boot_is_detected(artifacts, tmp_path: Path) -> None:
    """A guest that never prints (vCPUs stopped with -S) ends the launch by
    the silence timeout, with the argv in the error, and leaves no QEMU."""
    from orchestrator.machine.vm import Machine

    prof = profiles.load_profile("e1000e")
    prof = profiles.Profile(**{**prof.__dict__, "extra_args": ("-S",)})
    m = Machine(prof, artifacts.kernel, artifacts.image, run_dir=tmp_path / "run",
                silence_timeout=5, boot_timeout=60)
    t = time.monotonic()
    with pytest.raises(BootError, match="no console output for 5s") as exc:
        m.launch()
    assert time.monotonic() - t < 30
    assert exc.value.argv and "-S" in exc.value.argv
    assert m.ended in ("quit", "kill")
    assert not qemu_pids(str(tmp_path / "run"))


def test_qemu_dying_after_the_console_connects_names_its_error(artifacts,
                                                                tmp_path: Path) -> None:
    """QEMU exits after the console socket is connected (here a device
    that cannot realize; Debian's QEMU 7.2 without its TCG module does the
    same): the launch fails with QEMU's own last line, not a QMP traceback."""
    from orchestrator.machine.vm import Machine

    prof = profiles.load_profile("e1000e")
    prof = profiles.Profile(**{**prof.__dict__,
                               "extra_args": ("-device", "e1000,romfile=/no/such.rom")})
    m = Machine(prof, artifacts.kernel, artifacts.image, run_dir=tmp_path / "run")
    with pytest.raises(BootError, match='QEMU exited at start: .*failed to find romfile'):
        m.launch()
    m.shutdown()
    assert not qemu_pids(str(tmp_path / "run"))


def test_probe_reaches_init_under_tcg(artifacts) -> None:
    ok, reason, seconds = accel.boots_under("tcg", artifacts.kernel.bzimage)
    assert ok, reason


def _start_boot(runs_dir: Path) -> tuple[subprocess.Popen[str], Path]:
    env = {**os.environ, "KTEST_CACHE": os.environ.get("KTEST_CACHE", "")}
    env = {k: v for k, v in env.items() if v}
    # as from a terminal: a test run started in the background of a
    # non-interactive shell has SIGINT ignored, and a child would inherit that
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "boot"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None
    run_dir = None
    deadline = time.monotonic() + 300
    try:
        for line in proc.stdout:
            if "run directory" in line:
                run_dir = Path(line.rsplit("run directory", 1)[1].strip())
            if "Ctrl-C stops it" in line or time.monotonic() > deadline:
                break
        assert run_dir is not None, "ktest boot did not come up"
        assert runs_dir in run_dir.parents, run_dir
    except BaseException:
        proc.terminate()  # ktest boot takes its QEMU down with it
        proc.wait(timeout=60)
        raise
    return proc, run_dir


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_signals_to_ktest_boot_leave_no_qemu(runs_dir: Path, artifacts, sig: int) -> None:
    proc, run_dir = _start_boot(runs_dir)
    try:
        assert qemu_pids(str(run_dir)), "QEMU not running while ktest boot is up"
        if sig != signal.SIGKILL:
            # ktest ssh reaches the guest while it is up
            r = subprocess.run([sys.executable, "-m", "orchestrator.cli", "ssh", "--run",
                                str(run_dir), "--", "echo", "hi"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0 and r.stdout.strip() == "hi", r.stderr
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 10
    while qemu_pids(str(run_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not qemu_pids(str(run_dir))
    assert (run_dir / "console.log").stat().st_size > 0  # logs stay on disk


def _exec(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", "exec", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_exec_loads_modules_and_returns_the_command_status(artifacts) -> None:
    # an in-tree module by name, then a module built from a source directory
    hello = ROOT / "tests" / "modules" / "hello"
    r = _exec("--load", f"e1000e,{hello}", "--",
              "sh -c 'lsmod | grep -c ^e1000e; lsmod | grep -c ^ktest_hello; "
              "dmesg | grep ktest_hello: ; exit 7'")
    assert r.returncode == 7, r.stderr
    assert r.stdout.split()[:2] == ["1", "1"], r.stdout
    assert "ktest_hello: loaded" in r.stdout


def test_exec_crash_has_distinct_status(artifacts) -> None:
    r = _exec("--", "echo c > /proc/sysrq-trigger")
    assert r.returncode == 125, (r.returncode, r.stderr[-2000:])
    assert "sysrq triggered crash" in r.stderr


def test_exec_lost_channel_is_not_a_status(artifacts) -> None:
    # the session's sshd goes: no exit status, no panic; ktest exec once
    # returned 255 as if the command had said so
    r = _exec("--", "kill -9 $PPID")
    assert r.returncode == 124, (r.returncode, r.stderr[-2000:])
    assert "the SSH channel ended before the command did" in r.stderr


def test_smoke_check_passes(artifacts) -> None:
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli", "smoke"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "verdict: PASS" in r.stdout
    for step in ("load e1000e, netdev appears", "link up", "unload e1000e", "no kernel reports",
                 "power off, no kernel reports"):
        assert f"PASS  {step}" in r.stdout, r.stdout


def test_smoke_fails_a_power_off_that_hangs(machine_factory, artifacts) -> None:
    """The smoke check judges the guest's power-off too. Here a reboot
    notifier blocks it for good (ktest_bug_warn hang_at_shutdown=1), as a
    driver's shutdown callback could: the check fails, named by the guest's
    own hung-task report. It used to pass with "guest stopped: quit"."""
    ko = module.build_module(ROOT / "tests/modules/bugs/warn", artifacts.kernel).ko
    m = machine_factory("e1000e")
    m.launch()
    result = smoke.run_smoke(m)
    assert result.passed, result.steps
    g = m.ssh()
    g.put(ko, "/tmp/warn.ko")
    g.cmd("insmod /tmp/warn.ko hang_at_shutdown=1")
    how = m.shutdown()
    smoke.judge_power_off(result, m, how)
    assert how == POWEROFF_HUNG
    assert [r.title for r in result.reports] == ["INFO: task hung in ktest_bug_warn_stall"]
    assert not result.passed and not result.steps[-1].passed, result.steps
    assert not qemu_pids(str(m.run_dir))
