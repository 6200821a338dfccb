"""Commands in the guest over SSH (paramiko), in the spirit of the kernel
selftests' ``cmd()``/``ip()``/``ethtool()`` helpers.

``guest.cmd("ip link show")`` returns a :class:`CmdResult` and raises
:class:`CmdError` on a non-zero exit unless ``check=False``;
``guest.ip("link show", json=True)`` returns the parsed ``ip -j`` output.
Every command and its outcome is logged with a host timestamp.

Commands run in a shell kept open on its own SSH channel (:class:`Shell`),
each in a subshell of it: under TCG a new SSH session (sshd's child, the
shell's start) costs 0.3-0.5 s, a subshell a few milliseconds. A command
that leaves a process in the background must redirect its output (it
would otherwise write into the next command's).
"""

from __future__ import annotations

import base64
import json as jsonlib
import logging
import re
import secrets
import select
import shlex
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from orchestrator.machine.console import host_stamp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CmdResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def json(self) -> Any:
        return jsonlib.loads(self.stdout) if self.stdout.strip() else None


class CmdError(Exception):
    def __init__(self, result: CmdResult) -> None:
        err = result.stderr.strip().splitlines()
        detail = f": {err[-1]}" if err else ""
        super().__init__(f"`{result.command}` exited {result.exit_status}{detail}")
        self.result = result


class CmdTimeout(Exception):
    pass


class SSHUnavailable(Exception):
    pass


class ShellLost(Exception):
    """The shell's channel closed before its command finished (the guest
    reset or died, or the connection dropped); what it printed until then."""

    def __init__(self, message: str, out: bytes = b"", err: bytes = b"") -> None:
        super().__init__(message)
        self.out, self.err = out, err


# bash like sshd's own `bash -c` for root; no profile or rc file
SHELL = "exec bash --noprofile --norc"
# a guest whose SSH server takes longer to answer a request to run a command
# is wedged (paramiko's exec_command itself waits for the answer unbounded)
EXEC_REPLY_S = 30.0


def exec_bounded(chan: Any, command: str, timeout: float = EXEC_REPLY_S) -> None:
    """chan.exec_command(command), but if the server has not answered
    within `timeout` the channel is closed, which ends the wait with
    ShellLost."""
    timer = threading.Timer(timeout, chan.close)
    timer.daemon = True
    timer.start()
    try:
        chan.exec_command(command)
    except (paramiko.SSHException, EOFError) as e:
        raise ShellLost(f"the guest's SSH server did not start `{command}`: {e}") from e
    finally:
        timer.cancel()


# bash builtins only; the file on stdin, its lines out as they are (a last
# line without a newline gets one); a file that cannot be opened is status 1
READ_FILE = ("{ mapfile -t __l && if ((${#__l[@]})); then printf '%s\\n' \"${__l[@]}\"; fi; } "
             "2>/dev/null")


class Shell:
    """A bash reading commands from one SSH channel. Each command runs in a
    subshell (its cd, variables and exit stay its own) with stdin from
    /dev/null; after it the shell prints a marker with a per-shell random
    tag to stderr and then to stdout, the exit status in the latter.

    `chan` is a paramiko Channel or anything with its methods."""

    def __init__(self, chan: Any) -> None:
        self.chan = chan
        self.tag = secrets.token_hex(8).encode()
        self._status = re.compile(rb"\n" + self.tag + rb" (\d+)\n")
        self._err_end = b"\n" + self.tag + b"\n"
        chan.settimeout(0.2)
        exec_bounded(chan, SHELL)

    def usable(self) -> bool:
        c = self.chan
        return not (c.closed or c.eof_received or c.exit_status_ready())

    def run(self, command: str, timeout: float) -> tuple[int, bytes, bytes]:
        """(exit status, stdout, stderr) of `command`; CmdTimeout after
        `timeout` seconds, ShellLost if the channel ends first. After either
        the shell is in an unknown state: close it."""
        tag = self.tag.decode()
        self.chan.sendall(f"( eval -- {shlex.quote(command)} ) </dev/null\n"
                          f"__ktest_s=$?; printf '\\n{tag}\\n' >&2; "
                          f"printf '\\n{tag} %d\\n' $__ktest_s\n".encode())
        deadline = time.monotonic() + timeout
        out, err = bytearray(), bytearray()
        status: re.Match[bytes] | None = None
        err_at = -1
        margin = len(self.tag) + 16  # a marker may straddle two reads
        while True:
            out_from, err_from = max(0, len(out) - margin), max(0, len(err) - margin)
            while self.chan.recv_ready():
                out += self.chan.recv(65536)
            while self.chan.recv_stderr_ready():
                err += self.chan.recv_stderr(65536)
            if status is None:
                status = self._status.search(out, out_from)
            if err_at < 0:
                err_at = err.find(self._err_end, err_from)
            if status is not None and err_at >= 0:
                return int(status.group(1)), bytes(out[:status.start()]), bytes(err[:err_at])
            if not self.usable() and not self.chan.recv_ready() \
                    and not self.chan.recv_stderr_ready():
                raise ShellLost(f"the shell's channel closed during `{command}`",
                                bytes(out), bytes(err))
            left = deadline - time.monotonic()
            if left <= 0:
                raise CmdTimeout(f"`{command}` did not finish within {timeout:.0f}s")
            select.select([self.chan], [], [], min(left, 1.0))

    def close(self) -> None:
        self.chan.close()


class Guest:
    """One SSH connection to a guest, reconnectable (e.g. after a reset)."""

    def __init__(self, host: str, port: int, key_file: Path, host_key_line: str,
                 log_file: Path | None = None) -> None:
        self.host, self.port = host, port
        self._pkey = paramiko.Ed25519Key.from_private_key_file(str(key_file))
        kind, b64 = host_key_line.split()[:2]
        self._host_key = paramiko.PKey.from_type_string(kind, base64.b64decode(b64))
        self._client: paramiko.SSHClient | None = None
        self._log_file = log_file
        self._uploaded: dict[str, tuple[str, int, int]] = {}
        self._shells: list[Shell] = []  # idle ones; a busy one belongs to its caller
        self._lock = threading.Lock()

    def _note(self, text: str) -> None:
        log.debug(text)
        if self._log_file is not None:
            with open(self._log_file, "a") as fh:
                fh.write(f"{host_stamp()} {text}\n")

    def connect(self, timeout: float = 10.0) -> None:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        hostname = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        client.get_host_keys().add(hostname, self._host_key.get_name(), self._host_key)
        try:
            client.connect(
                self.host, self.port, username="root", pkey=self._pkey, timeout=timeout,
                banner_timeout=timeout, auth_timeout=timeout, look_for_keys=False,
                allow_agent=False,
            )
        except (OSError, paramiko.SSHException, EOFError) as e:
            client.close()
            raise SSHUnavailable(f"ssh root@{self.host}:{self.port}: {e}") from e
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(5)
        self.close()
        self._client = client

    def wait_ready(self, timeout: float, alive: Any = None) -> float:
        """Retry until an SSH command succeeds; return the seconds it took."""
        start = time.monotonic()
        deadline = start + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if alive is not None and not alive():
                raise SSHUnavailable(f"guest died before SSH was ready ({last})")
            try:
                self.connect(timeout=max(1.0, min(5.0, deadline - time.monotonic())))
                self.cmd("true", timeout=10)
                return time.monotonic() - start
            except (SSHUnavailable, CmdTimeout, paramiko.SSHException, OSError) as e:
                last = e
                time.sleep(0.05)
        raise SSHUnavailable(f"SSH not ready after {timeout:.0f}s: {last}")

    @property
    def client(self) -> paramiko.SSHClient:
        if self._client is None:
            self.connect()
        assert self._client is not None
        return self._client

    def _transport(self) -> paramiko.Transport:
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            self.connect()
            transport = self.client.get_transport()
        assert transport is not None
        return transport

    def _take_shell(self) -> Shell:
        transport = self._transport()
        with self._lock:
            while self._shells:
                shell = self._shells.pop()
                if shell.chan.get_transport() is transport and shell.usable():
                    return shell
                shell.close()
        return Shell(transport.open_session(timeout=10))

    def cmd(self, command: str, *, check: bool = True, timeout: float = 60.0,
            input: str | bytes | None = None) -> CmdResult:
        """Run a shell command in the guest; raise CmdError unless check=False.
        A channel that ends before the command does gives exit status -1."""
        start = time.monotonic()
        self._note(f"SSH> {command}")
        shell = None
        try:
            if input is not None:
                status, out, err = self._exec(command, input, start + timeout, timeout)
            else:
                shell = self._take_shell()
        except ShellLost as lost:
            # a wedged guest: exit status -1, as for a channel that ended
            self._note(f"SSH! {lost}")
            status, out, err = -1, lost.out, lost.err + str(lost).encode()
        if shell is not None:
            try:
                status, out, err = shell.run(command, timeout)
            except ShellLost as lost:
                status, out, err = -1, lost.out, lost.err
                shell.close()
            except BaseException:
                shell.close()
                raise
            else:
                with self._lock:
                    self._shells.append(shell)
        res = CmdResult(command, status, out.decode(errors="replace"),
                        err.decode(errors="replace"), time.monotonic() - start)
        self._note(f"SSH< exit={status} ({res.seconds:.2f}s)")
        if check and status != 0:
            raise CmdError(res)
        return res

    def _exec(self, command: str, input: str | bytes, deadline: float,
              timeout: float) -> tuple[int, bytes, bytes]:
        """A command with input of its own: a session of its own."""
        chan = self._transport().open_session(timeout=10)
        chan.settimeout(0.2)
        exec_bounded(chan, command)
        chan.sendall(input.encode() if isinstance(input, str) else input)
        chan.shutdown_write()
        out, err = bytearray(), bytearray()
        try:
            while True:
                got = False
                while chan.recv_ready():
                    out += chan.recv(65536)
                    got = True
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                    got = True
                if chan.exit_status_ready() and not chan.recv_ready() \
                        and not chan.recv_stderr_ready():
                    break
                if chan.closed and not got:
                    break
                if time.monotonic() > deadline:
                    raise CmdTimeout(f"`{command}` did not finish within {timeout:.0f}s")
                if not got:
                    try:
                        data = chan.recv(65536)
                        if data:
                            out += data
                    except TimeoutError:
                        pass
            status = chan.recv_exit_status()
        finally:
            chan.close()
        return status, bytes(out), bytes(err)

    def ip(self, args: str, *, json: bool = False, check: bool = True,
           timeout: float = 30.0) -> Any:
        res = self.cmd(f"ip {'-j ' if json else ''}{args}", check=check, timeout=timeout)
        return res.json() if json else res

    def ethtool(self, args: str, *, json: bool = False, check: bool = True,
                timeout: float = 30.0) -> Any:
        res = self.cmd(f"ethtool {'--json ' if json else ''}{args}", check=check, timeout=timeout)
        return res.json() if json else res

    def put(self, local: Path, remote: str, mode: int | None = None) -> None:
        self._note(f"SSH put {local} -> {remote}")
        with self.client.open_sftp() as sftp:
            sftp.put(str(local), remote)
            if mode is not None:
                sftp.chmod(remote, mode)

    def put_once(self, local: Path, remote: str) -> None:
        """put(), unless this very file (path, size, mtime) is already there
        from an earlier put_once on this guest."""
        st = local.stat()
        ident = (str(local), st.st_size, st.st_mtime_ns)
        if self._uploaded.get(remote) == ident:
            return
        self.put(local, remote)
        self._uploaded[remote] = ident

    def get(self, remote: str, local: Path) -> None:
        self._note(f"SSH get {remote} -> {local}")
        with self.client.open_sftp() as sftp:
            sftp.get(remote, str(local))

    def read(self, path: str, *, check: bool = False, timeout: float = 30.0) -> str:
        """A small text file's contents (sysfs, procfs, debugfs): "" when it
        cannot be read, or CmdError with ``check``. Read by bash builtins: a
        `cat` is an exec, a few hundred milliseconds under TCG, and tests
        poll files like these."""
        res = self.cmd(f"{READ_FILE} < {shlex.quote(path)}", check=check, timeout=timeout)
        return res.stdout if res.exit_status == 0 else ""

    def kmsg(self, text: str) -> None:
        """Write a line into the guest kernel log (test markers)."""
        self.cmd(f"echo {shlex.quote(text)} > /dev/kmsg", timeout=10)

    def close(self) -> None:
        with self._lock:
            shells, self._shells = self._shells, []
        for shell in shells:
            shell.close()
        if self._client is not None:
            self._client.close()
            self._client = None
