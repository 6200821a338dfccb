"""One guest's whole life: QEMU process, console, QMP, SSH, shutdown.

``Machine`` turns a profile plus built artifacts into a running guest:

* a private 0700 run directory holds the QMP and console sockets, the SSH
  key, ``console.raw`` / ``console.log`` (every byte, host-timestamped),
  ``qmp.log``, ``ssh.log``, ``qemu.log`` (QEMU's own output) and
  ``qemu-argv.txt``; only the sockets are removed at the end;
* QEMU runs in its own session and gets SIGKILL if the orchestrator dies
  (PR_SET_PDEATHSIG), so no orphan survives us;
* every NIC under test ends in a pair of connected UDP sockets on 127.0.0.1
  created here before QEMU starts (QEMU inherits its end as an fd), so no
  port is ever raced for;
* readiness = an SSH command succeeds; a panic, an init error, silence or a
  timeout during boot raises BootError carrying the argv, the exit status
  and the last console lines;
* ``shutdown()`` goes guest power-off -> QMP quit -> SIGTERM -> SIGKILL, is
  idempotent, and reports how it ended ("poweroff", "quit", "kill",
  "crashed" or "exited"; "poweroff-hung" when the guest began its power-off
  and never finished it: a shutdown callback that hangs is a driver bug).
  A power-off still running after a few seconds gets the guest's hung-task
  timeout lowered, so a task it is blocked in is reported by the kernel
  itself in time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from orchestrator import report
from orchestrator.builds import cache
from orchestrator.builds.common import die_with_parent
from orchestrator.builds.image import Image
from orchestrator.builds.kernel import Kernel
from orchestrator.machine import accel as accel_mod
from orchestrator.machine import qemu as qemu_mod
from orchestrator.machine import snapshot as snapshot_mod
from orchestrator.machine.console import (
    BOOT_FAIL_RE,
    Console,
    ConsoleClosed,
    ConsoleSilent,
    ConsoleTimeout,
    host_stamp,
)
from orchestrator.machine.guest import Guest, SSHUnavailable
from orchestrator.machine.profiles import Profile, Resources, qemu_argv
from orchestrator.machine.qmp import QMP, QMPError
from orchestrator.waiting import WaitTimeout, wait_until

log = logging.getLogger(__name__)

READY_RE = rb"KTEST-READY[^\n]*"
# A power-off takes about 0.3 s here. One still running after
# POWEROFF_PATIENCE gets the guest's hung-task timeout lowered to
# HUNG_TASK_SECS, so a task it is blocked in is reported before the wait for
# the power-off ends.
POWEROFF_PATIENCE = 3.0
HUNG_TASK_SECS = 2
HUNG_TASK_KNOB = "/proc/sys/kernel/hung_task_timeout_secs"
# A task still in uninterruptible sleep (D) when a test ends gets this long
# (the guest's hung-task timeout, lowered from 60 s for the wait) to leave it
# before the guest's own detector reports it, within the test.
BLOCKED_SECS = 30
BLOCKED_WAIT = 2 * BLOCKED_SECS + 15  # two detector rounds, and slack
HUNG_LINE = rb"blocked for more than \d+ seconds"
POWEROFF_HUNG = "poweroff-hung"  # how a guest ended that began its power-off and hung
POWEROFF_HUNG_TITLE = "poweroff hung: the guest began to power off and never finished"
RUN_INIT_RE = rb"Run /init as init process"


def blocked_in(status: str) -> dict[int, int]:
    """From grep -E '^(State|voluntary_ctxt_switches|nonvoluntary_ctxt_switches):'
    over /proc/PID/status files: the pids in state D, with their context
    switches (both kinds, summed)."""
    state: dict[int, str] = {}
    switches: dict[int, int] = {}
    for m in re.finditer(r"^/proc/(\d+)/status:(\w+):\s*(\S+)", status, re.M):
        pid, key, value = int(m.group(1)), m.group(2), m.group(3)
        if key == "State":
            state[pid] = value
        elif value.isdigit():
            switches[pid] = switches.get(pid, 0) + int(value)
    return {pid: switches.get(pid, 0) for pid, s in state.items() if s == "D"}


def still_blocked(first: dict[int, int], now: dict[int, int]) -> list[int]:
    """The tasks of `first` (blocked_in) that are in D now and have not
    been scheduled since."""
    return [pid for pid, n in first.items() if now.get(pid) == n]


def poweroff_hung_report(console: Console, start: int, end: int | None = None,
                         lines: int = 30) -> report.Report:
    """A guest that began its power-off and never finished (ended
    POWEROFF_HUNG), with no failing kernel report to say why (a task
    sleeping in a loop rather than blocked, or a report the caller allows),
    as a report of its own: a failure all the same, its text the last
    `lines` of the console of `start:end` from the power-off on."""
    data = console.data(start, end)
    at = data.rfind(b"sysrq: Power Off")
    at = data.rfind(b"\n", 0, at) + 1 if at >= 0 else 0
    text = [report.strip_prefixes(ln) for ln in data[at:].splitlines()]
    return report.Report(POWEROFF_HUNG_TITLE, report.Kind.OTHER, start + at,
                         start + len(data), "\n".join(text[-lines:]))


@dataclass(frozen=True)
class HangSignature:
    """A known boot hang: the console stops for `after` seconds right after
    a line matching `last_line`. The boot error names it instead of saying
    only that the console went quiet."""

    name: str
    last_line: re.Pattern[bytes]
    after: float
    explanation: str


HANG_SIGNATURES = (
    HangSignature(
        "rcu-tasks boot deadlock",
        re.compile(rb"Running RCU-tasks wait API self tests"),
        15.0,  # good boots pass this line within 6 s, also with a second guest running
        "the Linux 6.1 RCU-tasks boot deadlock with PROVE_RCU: PID 1 waits in "
        "synchronize_rcu_tasks_trace() for tasks_gp_mutex, which the rcu_tasks_trace kthread "
        "holds while it waits for callbacks. Fixed upstream in 6.6 by 9d0cce2bc387 "
        "(\"rcu-tasks: Fix boot-time RCU tasks debug-only deadlock\"); ktest applies the fix "
        "to linux-source-6.1, and your tree needs it too: "
        "guest-images/kernel/patches/6.1/0001-rcu-tasks-drop-tasks_gp_mutex-while-waiting-"
        "for-callbacks.patch",
    ),
)


# TCG (not the guest) loses the timer of a halted vCPU now and then: that CPU
# never wakes again and, a minute later, RCU says so. Seen in about one cold
# boot in fifty here (6.12 and 6.1, QEMU 10). During a TCG boot it means
# "boot again"; under KVM it is the guest's own failure.
TCG_LOST_TIMER = re.compile(
    rb"rcu: rcu_\w+ kthread timer wakeup didn't happen for \d+ jiffies")
TCG_LOST_TIMER_RETRIES = 2


class BootHangTcg(Exception):
    """The TCG lost-timer hang during boot (TCG_LOST_TIMER)."""


@dataclass(frozen=True)
class QemuAbort:
    """A known QEMU crash that is no fault of the guest: the boot is tried
    again (up to `retries` times), each retry written into console.log."""

    pattern: re.Pattern[str]
    explanation: str
    retries: int = 2


QEMU_ABORTS = (
    QemuAbort(re.compile(r"iotlb_to_section: Assertion .section_index < d->map.sections_nb"),
              "QEMU's multi-threaded TCG raced with a memory map change (iotlb_to_section "
              "assertion, seen while the guest programs PCI BARs)"),
)


def known_abort(qemu_log: str) -> QemuAbort | None:
    for a in QEMU_ABORTS:
        if a.pattern.search(qemu_log):
            return a
    return None


def known_hang(tail: bytes, silent_for: float) -> HangSignature | None:
    """The known hang whose signature the console's last line shows."""
    lines = [ln for ln in tail.replace(b"\r", b"").split(b"\n") if ln.strip()]
    last = lines[-1] if lines else b""
    for sig in HANG_SIGNATURES:
        if silent_for >= sig.after and sig.last_line.search(last):
            return sig
    return None


class MachineError(Exception):
    """Launch or control failure; carries what a person needs to debug it."""

    def __init__(self, message: str, *, argv: list[str] | None = None,
                 exit_status: int | None = None, console_tail: str = "",
                 run_dir: Path | None = None) -> None:
        super().__init__(message)
        self.argv = argv or []
        self.exit_status = exit_status
        self.console_tail = console_tail
        self.run_dir = run_dir

    def details(self) -> str:
        parts = []
        if self.run_dir:
            parts.append(f"run directory: {self.run_dir}")
        if self.exit_status is not None:
            parts.append(f"QEMU exit status: {self.exit_status}")
        if self.argv:
            parts.append("QEMU command line: " + shlex.join(self.argv))
        if self.console_tail:
            parts.append("last console lines:\n" + self.console_tail)
        return "\n".join(parts)


class BootError(MachineError):
    pass


class GuestCrashed(MachineError):
    pass


@dataclass(frozen=True)
class BootTimes:
    run_init: float | None  # QEMU start -> "Run /init as init process" (seconds)
    ready: float  # QEMU start -> first successful SSH command


def default_runs_dir() -> Path:
    return cache.runs_root()


def initrd_path(image_key: str, kernel_key: str, extra_keys: tuple[str, ...] = ()) -> Path:
    """Where the guest's initramfs (image + kernel modules + extra cpio
    archives, each named by its cache key) lives; a pure function of the
    keys."""
    h = cache.Hasher("initrd").add("image", image_key).add("kernel", kernel_key)
    for i, k in enumerate(extra_keys):
        h.add(f"extra{i}", k)
    return cache.cache_root() / "initrd" / f"{h.hexdigest()}.cpio"


def combined_initrd(image: Image, kernel: Kernel,
                    extra: tuple[tuple[str, Path], ...] = ()) -> Path:
    """rootfs.cpio + the kernel's modules.cpio + extra (key, cpio) archives,
    concatenated once and cached."""
    path = initrd_path(image.key, kernel.key, tuple(k for k, _ in extra))
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with open(tmp, "wb") as out:
        for part in [image.cpio, kernel.modules_cpio, *(p for _, p in extra)]:
            with open(part, "rb") as src:
                while chunk := src.read(1 << 22):
                    out.write(chunk)
    os.replace(tmp, path)
    return path


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Machine:
    """A guest built from `profile`, `kernel` and `image`. Use as a context
    manager, or call launch() and shutdown() (safe to call twice)."""

    def __init__(self, profile: Profile, kernel: Kernel, image: Image, *,
                 run_dir: Path | None = None, accel: str | None = None,
                 boot_timeout: float = 300.0, silence_timeout: float = 90.0,
                 qemu: str | None = None,
                 extra_initrd: tuple[tuple[str, Path], ...] = (),
                 snapshots: bool = False) -> None:
        self.profile = profile
        self.extra_initrd = extra_initrd
        # restore from a cached snapshot when there is one; else boot and
        # save one for the next launch
        self.snapshots = snapshots
        self.restored_from: str | None = None
        self.boot_retries: list[str] = []  # known QEMU crashes booted through
        self.kernel = kernel
        self.image = image
        self.qemu = qemu or qemu_mod.binary()
        self.qemu_version: qemu_mod.QemuVersion | None = None
        self.boot_timeout = boot_timeout
        self.silence_timeout = silence_timeout
        self._accel_request = accel or profile.accel
        if run_dir is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            run_dir = default_runs_dir() / f"{stamp}-{profile.name}-{os.getpid()}"
        self.run_dir = run_dir
        self.argv: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.console: Console | None = None
        self.qmp: QMP | None = None
        self.guest: Guest | None = None
        self.nic_sockets: dict[str, socket.socket] = {}
        self.ssh_port = 0
        self.boot_times: BootTimes | None = None
        self.ended: str | None = None  # how shutdown ended, once it has
        self._started_at = 0.0

    # -- paths --
    @property
    def qmp_socket(self) -> Path:
        return self.run_dir / "qmp.sock"

    @property
    def console_socket(self) -> Path:
        return self.run_dir / "console.sock"

    def __enter__(self) -> Machine:
        self.launch()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- state --
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def crashed(self) -> bool:
        return self.console is not None and self.console.panic_offset is not None

    def console_tail(self, lines: int = 40) -> str:
        return self.console.tail(lines) if self.console else ""

    def _error(self, cls: type[MachineError], message: str) -> MachineError:
        status = self.proc.poll() if self.proc else None
        return cls(message, argv=self.argv, exit_status=status,
                   console_tail=self.console_tail(), run_dir=self.run_dir)

    # -- launch --
    def _prepare(self) -> Resources:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o700)
        if len(str(self.console_socket)) > 100:
            raise MachineError(f"run directory path too long for sockets: {self.run_dir}")
        key = self.run_dir / "id_ed25519"
        cache.write_atomic(key, self.image.client_key.read_bytes(), mode=0o600)
        initrd = combined_initrd(self.image, self.kernel, self.extra_initrd)
        fds: dict[str, int] = {}
        for nic in self.profile.nics:
            host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            guest = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            host.bind(("127.0.0.1", 0))
            guest.bind(("127.0.0.1", 0))
            guest.connect(host.getsockname())
            host.connect(guest.getsockname())
            for s in (host, guest):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            self.nic_sockets[nic.id] = host
            self._qemu_ends.append(guest)
            fds[nic.id] = guest.fileno()
        accel = accel_mod.resolve(self._accel_request, self.kernel.bzimage, self.qemu)
        (self.run_dir / "qemu-version.txt").write_text(
            f"{self.qemu}: {self.qemu_version.text if self.qemu_version else 'unknown'}\n")
        return Resources(
            kernel=accel_mod.boot_image(self.kernel, self.qemu), initrd=initrd,
            qmp_socket=self.qmp_socket,
            console_socket=self.console_socket, ssh_port=self.ssh_port, nic_fds=fds,
            accel=accel,
        )

    def check_qemu(self) -> qemu_mod.QemuVersion:
        """This QEMU's version, after checking it has what the profile needs;
        MachineError (one line: which version, and why) otherwise."""
        try:
            v = qemu_mod.version(self.qemu)
            for feature, needed_by in self.profile.qemu_needs():
                qemu_mod.require(v, feature, needed_by)
        except qemu_mod.QemuError as e:
            raise MachineError(str(e)) from None
        self.qemu_version = v
        return v

    def launch(self) -> BootTimes:
        if self.proc is not None:
            raise MachineError("machine already launched")
        self.check_qemu()
        self._qemu_ends: list[socket.socket] = []
        try:
            return self._launch()
        except BaseException:
            self.shutdown()
            raise

    def _launch(self) -> BootTimes:
        base = self._prepare()
        snap = None
        if self.snapshots:
            key = self._snapshot_key(base)
            snap = snapshot_mod.lookup(key)
        if snap is not None:
            times = self._restore(base, snap)
        else:
            times = self._boot(base)
            if self.snapshots:
                self._save_snapshot(key)
        for s in self._qemu_ends:
            s.close()
        self._qemu_ends = []
        return times

    def _boot(self, base: Resources) -> BootTimes:
        """A cold boot; booted again when QEMU itself crashes in a known way,
        or TCG loses a halted vCPU's timer during the boot."""
        tries = hangs = 0
        while True:
            self._start_qemu(base)
            try:
                return self._wait_ready(tcg=base.accel == "tcg",
                                        last_try=hangs >= TCG_LOST_TIMER_RETRIES)
            except BootHangTcg as e:
                hangs += 1
                log.warning("%s: %s; booting again", self.profile.name, e)
                self._note_console(f"ktest: {e}; booting again (retry {hangs} of "
                                   f"{TCG_LOST_TIMER_RETRIES})")
                self.boot_retries.append(str(e))
                if self.proc is not None:
                    self.proc.kill()
                self._reap(timeout=10)
                self._discard_qemu()
                continue
            except BootError:
                if self.alive():
                    raise
                self._reap(timeout=5)
                qlog = (self.run_dir / "qemu.log").read_text(errors="replace")
                abort = known_abort(qlog)
                if abort is None or tries >= abort.retries:
                    raise
                tries += 1
                log.warning("%s: %s; booting again", self.profile.name, abort.explanation)
                self._note_console(f"ktest: QEMU crashed: {abort.explanation}; booting again "
                                   f"(retry {tries} of {abort.retries})")
                self.boot_retries.append(abort.explanation)
                self._discard_qemu()

    def _discard_qemu(self) -> None:
        """Forget a dead QEMU's console and QMP before starting another."""
        for part in (self.qmp, self.console):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.close()
        self.qmp = None
        self.console = None
        self.proc = None
        for p in (self.qmp_socket, self.console_socket):
            with contextlib.suppress(OSError):
                p.unlink()

    def _snapshot_key(self, base: Resources) -> str:
        assert self.qemu_version is not None
        argv = qemu_argv(self.profile, base, self.qemu)
        return snapshot_mod.snapshot_key(argv, self.qemu_version, {
            "kernel": self.kernel.key, "image": self.image.key,
            "initrd": base.initrd.name, "accel": base.accel,
        })

    def _save_snapshot(self, key: str) -> None:
        """Save the freshly booted guest for later launches; a failure is
        logged, the guest runs on."""
        assert self.qmp is not None and self.qemu_version is not None
        assert self.console is not None
        bad = report.judge(self.console.data()).failing
        if bad:
            # every guest restored from it would start with lockdep off or
            # KASAN's one report spent, and without the report on its console
            log.warning("%s: snapshot not saved: the boot reported %s", self.profile.name,
                        bad[0].title)
            self._note_console(f"ktest: snapshot not saved: the boot reported {bad[0].title}")
            return
        try:
            snap = snapshot_mod.save(self.qmp, key, self.qemu_version,
                                     {"profile": self.profile.name, "kernel": self.kernel.key},
                                     self.run_dir / "console.log")
            self._note_console(f"ktest: saved this booted guest as snapshot {snap.key} "
                               f"({snap.info['bytes'] >> 20} MiB in {snap.info['save_seconds']}s)")
        except (snapshot_mod.SnapshotError, QMPError) as e:
            log.warning("%s: snapshot not saved: %s", self.profile.name, e)
            self._note_console(f"ktest: snapshot not saved: {e}")

    def _restore(self, base: Resources, snap: snapshot_mod.Snapshot) -> BootTimes:
        self._note_console(f"ktest: restoring snapshot {snap.key} (saved "
                           f"{snap.info.get('saved_at')}; its boot console: "
                           f"{snap.dir / 'boot-console.log'})")
        self._start_qemu(base, incoming=True)
        assert self.qmp is not None
        try:
            loaded = snapshot_mod.restore(self.qmp, snap)
        except (snapshot_mod.SnapshotError, QMPError) as e:
            raise self._error(BootError, f"restoring snapshot {snap.key} failed: {e}") from None
        self.restored_from = snap.key
        self.guest = Guest("127.0.0.1", self.ssh_port, self.run_dir / "id_ed25519",
                           self.image.host_public_key, self.run_dir / "ssh.log")
        try:
            self.guest.wait_ready(timeout=60, alive=lambda: self.alive() and not self.crashed)
        except SSHUnavailable as e:
            raise self._error(BootError, f"restored guest but SSH failed: {e}") from None
        # the guest's wall clock stopped at the save: set it, so its logs and
        # ours line up
        self.guest.cmd(f"date -s @{time.time():.3f} >/dev/null", check=False)
        ready = time.monotonic() - self._started_at
        self._note_console(f"ktest: snapshot loaded in {loaded:.1f}s, SSH ready {ready:.1f}s "
                           "after QEMU start")
        self.boot_times = BootTimes(None, ready)
        return self.boot_times

    def _start_qemu(self, base: Resources, incoming: bool = False) -> None:
        for attempt in range(3):
            self.ssh_port = _free_tcp_port()
            res = dataclasses.replace(base, ssh_port=self.ssh_port)
            self.argv = qemu_argv(self.profile, res, self.qemu)
            if incoming:
                self.argv += ["-incoming", "defer"]
            (self.run_dir / "qemu-argv.txt").write_text(shlex.join(self.argv) + "\n")
            self._spawn()
            if self._connect_console():
                break
            # QEMU exited before the console connected: a lost port race is
            # the one failure worth retrying; anything else is reported.
            out = (self.run_dir / "qemu.log").read_text(errors="replace")
            if "host forwarding rule" not in out or attempt == 2:
                raise self._error(BootError, f"QEMU failed to start: {self._qemu_last_line()}")
            self._reap()
        self.qmp = QMP(self.qmp_socket, self.run_dir / "qmp.log", self.profile.name)
        try:
            self.qmp.connect(timeout=30, alive=self.alive)
        except QMPError as e:
            # a QEMU that dies at start (a missing module, a bad option
            # after the console connected) resets the QMP socket first
            with contextlib.suppress(subprocess.TimeoutExpired):
                if self.proc is not None:
                    self.proc.wait(timeout=5)
            if not self.alive():
                raise self._error(BootError, f"QEMU exited at start: {self._qemu_last_line()}") \
                    from None
            raise self._error(BootError, f"QMP: {e}") from e

    def _qemu_last_line(self) -> str:
        out = (self.run_dir / "qemu.log").read_text(errors="replace").strip()
        return out.splitlines()[-1] if out else "no output"

    def _note_console(self, text: str) -> None:
        with open(self.run_dir / "console.log", "a") as fh:
            fh.write(f"{host_stamp()} {text}\n")

    def _spawn(self) -> None:
        with open(self.run_dir / "qemu.log", "ab") as qlog:
            self._started_at = time.monotonic()
            try:
                self.proc = subprocess.Popen(
                    self.argv, stdin=subprocess.DEVNULL, stdout=qlog, stderr=subprocess.STDOUT,
                    pass_fds=[s.fileno() for s in self._qemu_ends], start_new_session=True,
                    preexec_fn=die_with_parent,
                )
            except OSError as e:
                raise MachineError(f"cannot start {self.qemu}: {e.strerror}",
                                   argv=self.argv) from e
        log.info("started QEMU pid %d for %s", self.proc.pid, self.profile.name)

    def _connect_console(self) -> bool:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            if self.console_socket.exists():
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(str(self.console_socket))
                except OSError:
                    sock.close()
                    time.sleep(0.01)
                    continue
                self.console = Console(sock, self.run_dir / "console.raw",
                                       self.run_dir / "console.log")
                return True
            time.sleep(0.005)
        raise self._error(BootError, "QEMU never opened its console socket")

    def _boot_failure(self, offset: int) -> str:
        """What the console says at `offset`, where a boot failure matched
        (its line awaited a moment: the match may come before the line ends)."""
        assert self.console is not None
        with contextlib.suppress(ConsoleTimeout, ConsoleClosed, ConsoleSilent):
            self.console.wait_for(rb"\n", timeout=5, start=offset)
        data = self.console.data(offset)
        line = data.split(b"\n", 1)[0].decode(errors="replace").strip()
        if "Kernel panic" in line:
            return f"guest panicked during boot: {line}"
        return f"the guest kernel failed during boot: {line}"

    def _wait_ready(self, tcg: bool = False, last_try: bool = True) -> BootTimes:
        assert self.console is not None
        fail = [BOOT_FAIL_RE, *([TCG_LOST_TIMER] if tcg else [])]
        step = min(self.silence_timeout, *(sig.after for sig in HANG_SIGNATURES))
        while True:
            try:
                m = self.console.wait_for(READY_RE, timeout=self.boot_timeout, fail=fail,
                                          silence=step)
                break
            except ConsoleSilent:
                quiet = time.monotonic() - self.console.last_output
                sig = known_hang(self.console.data(max(0, self.console.size - 4096)), quiet)
                if sig is not None:
                    raise self._error(BootError, f"guest hangs during boot ({sig.name}): "
                                                 f"{sig.explanation}") from None
                if quiet >= self.silence_timeout:
                    last = self.console_tail(1).strip() or "nothing"
                    raise self._error(BootError, f"guest hangs during boot: no console output "
                                                 f"for {quiet:.0f}s after: {last}") from None
            except ConsoleTimeout:
                raise self._error(BootError, f"guest not ready within {self.boot_timeout:.0f}s") \
                    from None
            except ConsoleClosed:
                self._reap(timeout=5)
                if self.crashed:
                    what = "guest panicked during boot"
                else:
                    qlog = (self.run_dir / "qemu.log").read_text(errors="replace").strip()
                    what = "QEMU exited during boot" + (
                        f": {qlog.splitlines()[-1]}" if qlog else "")
                raise self._error(BootError, what) from None
        if m.failed and TCG_LOST_TIMER.search(m.text.encode()):
            why = ("TCG lost a halted vCPU's timer during boot (\"" + m.text[:80] + "\")")
            if not last_try:
                raise BootHangTcg(why)
            raise self._error(BootError, f"guest hangs during boot: {why}, "
                                         f"{TCG_LOST_TIMER_RETRIES + 1} boots in a row")
        if m.failed:
            raise self._error(BootError, self._boot_failure(m.offset))
        run_init = self._stamp_of(RUN_INIT_RE)
        self.guest = Guest("127.0.0.1", self.ssh_port, self.run_dir / "id_ed25519",
                           self.image.host_public_key, self.run_dir / "ssh.log")
        try:
            self.guest.wait_ready(timeout=60, alive=lambda: self.alive() and not self.crashed)
        except SSHUnavailable as e:
            raise self._error(BootError, f"guest booted but SSH failed: {e}") from None
        ready = time.monotonic() - self._started_at
        self._note_console(f"ktest: booted cold, SSH ready {ready:.1f}s after QEMU start")
        self.boot_times = BootTimes(run_init, ready)
        return self.boot_times

    def _stamp_of(self, pattern: bytes) -> float | None:
        """Seconds from QEMU start to the console line matching `pattern`."""
        if self.console is None:
            return None
        seen = self.console.first_seen(pattern)
        return None if seen is None else seen - self._started_at

    # -- control --
    def ssh(self) -> Guest:
        if self.guest is None:
            raise MachineError("guest not ready")
        return self.guest

    def mark(self, text: str, timeout: float = 10.0) -> bool:
        """Write `text` into the guest's kernel log and wait until the console
        shows it, so a console offset taken afterwards is past it. False if
        the guest could not be reached or the line never came."""
        if self.console is None or self.guest is None:
            return False
        start = self.console.size
        try:
            self.guest.kmsg(text)
            self.console.wait_for(re.escape(text.encode()) + rb"\r?\n", timeout=timeout,
                                  start=start)
        except Exception:  # a dead guest or console: the caller judges what is there
            return False
        return True

    def blocked_tasks(self) -> dict[int, int]:
        """The guest's tasks in uninterruptible sleep (D) now (an idle
        kernel thread is I, not D): pid -> its context switches so far."""
        if self.guest is None:
            return {}
        r = self.guest.cmd("grep -E '^(State|voluntary_ctxt_switches|nonvoluntary_ctxt_switches):'"
                           " /proc/[0-9]*/status 2>/dev/null", timeout=15, check=False)
        return blocked_in(r.stdout)

    def report_blocked_tasks(self) -> bool:
        """If a task is in D state now, give it BLOCKED_SECS to run again:
        the guest's hung-task timeout goes down to that for the wait, so a
        task that stays blocked is reported on the console now (by the
        guest's own detector, with its stack) instead of 60 s later, when a
        per-test guest is gone or another test runs. Returns once each task
        blocked at first has left D or been scheduled since (a worker in an
        msleep loop is D at most samples), or the report came; whether one
        was blocked."""
        if self.console is None or self.guest is None or self.crashed or not self.alive():
            return False
        first = self.blocked_tasks()
        if not first:
            return False
        start = self.console.size
        knob = HUNG_TASK_KNOB
        old = self.guest.cmd(f"cat {knob}", timeout=10, check=False).stdout.strip() or "60"
        self.guest.cmd(f"echo {BLOCKED_SECS} > {knob}", timeout=10, check=False)
        console = self.console
        try:
            with contextlib.suppress(WaitTimeout):
                wait_until(lambda: re.search(HUNG_LINE, console.data(start))
                           or not still_blocked(first, self.blocked_tasks()), BLOCKED_WAIT,
                           "blocked tasks to wake or be reported", interval=0.5)
        finally:
            self.guest.cmd(f"echo {shlex.quote(old)} > {knob}", timeout=10, check=False)
        return True

    def check_alive(self) -> None:
        """Raise GuestCrashed if the guest panicked or QEMU exited."""
        if self.crashed:
            raise self._error(GuestCrashed, "guest kernel panicked")
        if not self.alive():
            raise self._error(GuestCrashed, "QEMU exited")

    # -- shutdown --
    def _reap(self, timeout: float = 0.0) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def shutdown(self, timeout: float = 10.0, reason: str = "") -> str:
        """Stop the guest (orderly first); return how it ended. Idempotent.
        `how` and the `reason` it was stopped for go to ended.txt."""
        if self.ended is not None:
            return self.ended
        how = "not started"
        try:
            if self.proc is not None:
                how = self._stop(timeout)
        finally:
            self._cleanup()
        self.ended = how
        if self.run_dir.exists():
            (self.run_dir / "ended.txt").write_text(f"{how}\n{reason}\n" if reason else how + "\n")
        return how

    def _stop(self, timeout: float) -> str:
        assert self.proc is not None
        if self.proc.poll() is not None:
            return "crashed" if self.crashed else "exited"
        if self.crashed:
            # panic=-1 with -no-reboot: QEMU exits on its own in a moment.
            if self._reap(timeout=5) is not None:
                return "crashed"
        hung = False
        if not self.crashed and self.guest is not None and self.console is not None:
            start = self.console.size
            with contextlib.suppress(Exception):
                self.guest.cmd("sync; echo o > /proc/sysrq-trigger", timeout=5, check=False)
            if self._reap(timeout=POWEROFF_PATIENCE) is not None:
                return "poweroff"
            if self._powering_off(start):
                # slow: the guest's own hung-task detector names a task the
                # power-off is blocked in while the rest of the wait runs
                # (userspace and the management NIC live until the end)
                with contextlib.suppress(Exception):
                    self.guest.cmd(f"echo {HUNG_TASK_SECS} 2>/dev/null > {HUNG_TASK_KNOB}",
                                   timeout=3, check=False)
            if self._reap(timeout=max(timeout - POWEROFF_PATIENCE, 1.0)) is not None:
                return "poweroff"
            hung = self._powering_off(start)
        if self.qmp is not None and self.qmp.connected:
            with contextlib.suppress(Exception):
                self.qmp.execute("quit", timeout=5)
            if self._reap(timeout=timeout) is not None:
                return "crashed" if self.crashed else POWEROFF_HUNG if hung else "quit"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        if self._reap(timeout=5) is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self._reap(timeout=10)
        return "crashed" if self.crashed else POWEROFF_HUNG if hung else "kill"

    def _powering_off(self, start: int) -> bool:
        """The guest began to power off after console offset `start` and
        has not finished (the kernel's last line is "reboot: Power down")."""
        assert self.console is not None
        data = self.console.data(start)
        return b"sysrq: Power Off" in data and b"reboot: Power down" not in data

    def _cleanup(self) -> None:
        if self.guest is not None:
            with contextlib.suppress(Exception):
                self.guest.close()
        if self.qmp is not None:
            with contextlib.suppress(Exception):
                self.qmp.close()
        if self.console is not None:
            with contextlib.suppress(Exception):
                self.console.close()
        for s in [*self.nic_sockets.values(), *getattr(self, "_qemu_ends", [])]:
            s.close()
        self.nic_sockets = {}
        self._qemu_ends = []
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self._reap(timeout=10)
        for p in (self.qmp_socket, self.console_socket):
            with contextlib.suppress(OSError):
                p.unlink()
