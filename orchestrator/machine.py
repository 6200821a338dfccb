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
  "crashed" or "exited").
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from . import accel as accel_mod
from . import cache
from .build.common import die_with_parent
from .build.image import Image
from .build.kernel import Kernel
from .console import (
    BOOT_FAIL_RE,
    Console,
    ConsoleClosed,
    ConsoleSilent,
    ConsoleTimeout,
    host_stamp,
)
from .guest import Guest, SSHUnavailable
from .profiles import Profile, Resources, qemu_argv
from .qmp import QMP, QMPError

log = logging.getLogger(__name__)

READY_RE = rb"KTEST-READY[^\n]*"
RUN_INIT_RE = rb"Run /init as init process"
# Observed here under TCG (QEMU 7.2, Linux 6.1.192 with PROVE_RCU and
# TASKS_TRACE_RCU): under host CPU contention up to four boots in ten stop for
# good right after "Running RCU-tasks wait API self tests" (the boot-time
# synchronize in rcu_tasks_initiate_self_tests), with jiffies advancing and
# every vCPU idle; -smp 1, idle=halt and lapic=notscdeadline do not avoid it.
# A kernel that goes silent before running /init is therefore booted again,
# up to BOOT_ATTEMPTS times; each retry is written into console.log.
EARLY_SILENCE = 10.0  # the longest quiet gap before init seen in good boots: 5.5 s
BOOT_ATTEMPTS = 5


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


class _EarlyHang(Exception):
    """The kernel stopped printing before it ran /init: boot again."""


class GuestCrashed(MachineError):
    pass


@dataclass(frozen=True)
class BootTimes:
    run_init: float | None  # QEMU start -> "Run /init as init process" (seconds)
    ready: float  # QEMU start -> first successful SSH command


def default_runs_dir() -> Path:
    return cache.cache_root() / "runs"


def combined_initrd(image: Image, kernel: Kernel, extra: list[Path] | None = None) -> Path:
    """rootfs.cpio + the kernel's modules.cpio (+ extras), cached by content."""
    h = cache.Hasher("initrd").add("image", image.key).add("kernel", kernel.key)
    for p in extra or []:
        h.add_file(str(p), p)
    path = cache.cache_root() / "initrd" / f"{h.hexdigest()}.cpio"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with open(tmp, "wb") as out:
        for part in [image.cpio, kernel.modules_cpio, *(extra or [])]:
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
                 qemu: str = "qemu-system-x86_64") -> None:
        self.profile = profile
        self.kernel = kernel
        self.image = image
        self.qemu = qemu
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
        self.boot_attempts = 0
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
        initrd = combined_initrd(self.image, self.kernel)
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
        accel = accel_mod.resolve(self._accel_request, self.kernel.bzimage)
        return Resources(
            kernel=self.kernel.bzimage, initrd=initrd, qmp_socket=self.qmp_socket,
            console_socket=self.console_socket, ssh_port=self.ssh_port, nic_fds=fds,
            accel=accel,
        )

    def launch(self) -> BootTimes:
        if self.proc is not None:
            raise MachineError("machine already launched")
        self._qemu_ends: list[socket.socket] = []
        try:
            return self._launch()
        except BaseException:
            self.shutdown()
            raise

    def _launch(self) -> BootTimes:
        base = self._prepare()
        for attempt in range(1, BOOT_ATTEMPTS + 1):
            self._start_qemu(base)
            try:
                times = self._wait_ready(retry_early_hang=attempt < BOOT_ATTEMPTS)
            except _EarlyHang as e:
                log.warning("%s: %s; booting again (attempt %d)", self.profile.name, e,
                            attempt + 1)
                self._note_console(f"ktest: {e}; killing QEMU and booting again "
                                   f"(attempt {attempt + 1} of {BOOT_ATTEMPTS})")
                self._stop_for_retry()
                continue
            self.boot_attempts = attempt
            for s in self._qemu_ends:
                s.close()
            self._qemu_ends = []
            return times
        raise AssertionError("unreachable")

    def _start_qemu(self, base: Resources) -> None:
        for attempt in range(3):
            self.ssh_port = _free_tcp_port()
            res = dataclasses.replace(base, ssh_port=self.ssh_port)
            self.argv = qemu_argv(self.profile, res, self.qemu)
            (self.run_dir / "qemu-argv.txt").write_text(shlex.join(self.argv) + "\n")
            self._spawn()
            if self._connect_console():
                break
            # QEMU exited before the console connected: a lost port race is
            # the one failure worth retrying; anything else is reported.
            out = (self.run_dir / "qemu.log").read_text(errors="replace")
            if "host forwarding rule" not in out or attempt == 2:
                last = out.strip().splitlines()[-1] if out.strip() else "no output"
                raise self._error(BootError, f"QEMU failed to start: {last}")
            self._reap()
        self.qmp = QMP(self.qmp_socket, self.run_dir / "qmp.log", self.profile.name)
        try:
            self.qmp.connect(timeout=30, alive=self.alive)
        except QMPError as e:
            raise self._error(BootError, f"QMP: {e}") from e

    def _note_console(self, text: str) -> None:
        with open(self.run_dir / "console.log", "a") as fh:
            fh.write(f"{host_stamp()} {text}\n")

    def _stop_for_retry(self) -> None:
        """Kill this QEMU and forget its console and QMP; logs stay."""
        if self.qmp is not None:
            with contextlib.suppress(Exception):
                self.qmp.close()
            self.qmp = None
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self._reap(timeout=10)
        if self.console is not None:
            with contextlib.suppress(Exception):
                self.console.close()
            self.console = None
        for p in (self.qmp_socket, self.console_socket):
            with contextlib.suppress(OSError):
                p.unlink()
        self.proc = None

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

    def _wait_ready(self, retry_early_hang: bool = False) -> BootTimes:
        assert self.console is not None
        fail = [BOOT_FAIL_RE]
        if retry_early_hang:
            early = min(EARLY_SILENCE, self.silence_timeout)
            try:
                self.console.wait_for(RUN_INIT_RE, timeout=self.boot_timeout, fail=fail,
                                      silence=early)
            except ConsoleSilent:
                raise _EarlyHang(f"kernel silent for {early:.0f}s before init") from None
            except (ConsoleTimeout, ConsoleClosed):
                pass  # reported with full context by the wait below
        # Good boots print the readiness line 1.3-2.2 s after /init (40 boots
        # here); the same stall has also been seen there, a vCPU idling in HLT
        # whose timer never fires again (RCU: "kthread timer wakeup didn't
        # happen"): a retry too, on the same silence rule.
        silence = min(EARLY_SILENCE, self.silence_timeout) if retry_early_hang \
            else self.silence_timeout
        try:
            m = self.console.wait_for(READY_RE, timeout=self.boot_timeout, fail=fail,
                                      silence=silence)
        except ConsoleSilent:
            if retry_early_hang:
                raise _EarlyHang(f"guest silent for {silence:.0f}s between /init and "
                                 "readiness") from None
            raise self._error(BootError, f"guest hangs during boot: no console output for "
                                         f"{self.silence_timeout:.0f}s (boot attempts: "
                                         f"{BOOT_ATTEMPTS})") from None
        except ConsoleTimeout:
            raise self._error(BootError, f"guest not ready within {self.boot_timeout:.0f}s") \
                from None
        except ConsoleClosed:
            self._reap(timeout=5)
            what = "guest panicked during boot" if self.crashed else "QEMU exited during boot"
            raise self._error(BootError, what) from None
        if m.failed:
            raise self._error(BootError, f"boot failed: {m.text}")
        run_init = self._stamp_of(RUN_INIT_RE)
        self.guest = Guest("127.0.0.1", self.ssh_port, self.run_dir / "id_ed25519",
                           self.image.host_public_key, self.run_dir / "ssh.log")
        try:
            self.guest.wait_ready(timeout=60, alive=lambda: self.alive() and not self.crashed)
        except SSHUnavailable as e:
            raise self._error(BootError, f"guest booted but SSH failed: {e}") from None
        ready = time.monotonic() - self._started_at
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

    def shutdown(self, timeout: float = 10.0) -> str:
        """Stop the guest (orderly first); return how it ended. Idempotent."""
        if self.ended is not None:
            return self.ended
        how = "not started"
        try:
            if self.proc is not None:
                how = self._stop(timeout)
        finally:
            self._cleanup()
        self.ended = how
        (self.run_dir / "ended.txt").write_text(how + "\n") if self.run_dir.exists() else None
        return how

    def _stop(self, timeout: float) -> str:
        assert self.proc is not None
        if self.proc.poll() is not None:
            return "crashed" if self.crashed else "exited"
        if self.crashed:
            # panic=-1 with -no-reboot: QEMU exits on its own in a moment.
            if self._reap(timeout=5) is not None:
                return "crashed"
        elif self.guest is not None:
            with contextlib.suppress(Exception):
                self.guest.cmd("sync; echo o > /proc/sysrq-trigger", timeout=5, check=False)
            if self._reap(timeout=timeout) is not None:
                return "poweroff"
        if self.qmp is not None and self.qmp.connected:
            with contextlib.suppress(Exception):
                self.qmp.execute("quit", timeout=5)
            if self._reap(timeout=timeout) is not None:
                return "crashed" if self.crashed else "quit"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        if self._reap(timeout=5) is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self._reap(timeout=10)
        return "crashed" if self.crashed else "kill"

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
