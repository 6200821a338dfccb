"""The kept-open shell of orchestrator.machine.guest, over a stand-in
channel: a local bash with the pipes a paramiko Channel would carry."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
from typing import Any

import pytest

from orchestrator.machine.guest import CmdTimeout, Shell, ShellLost


class LocalChannel:
    """Plays paramiko's Channel over a local process (exec_command starts it)."""

    def __init__(self) -> None:
        self.closed = False
        self.eof_received = False
        self.proc: subprocess.Popen[bytes] | None = None
        self._buf = {"out": bytearray(), "err": bytearray()}
        self._lock = threading.Lock()
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self.sent: list[bytes] = []
        self._pumps: list[threading.Thread] = []

    def settimeout(self, timeout: float) -> None:
        pass

    def exec_command(self, command: str) -> None:
        self.proc = subprocess.Popen(["bash", "-c", command], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        for name, pipe in (("out", self.proc.stdout), ("err", self.proc.stderr)):
            t = threading.Thread(target=self._pump, args=(name, pipe), daemon=True)
            t.start()
            self._pumps.append(t)

    def _pump(self, name: str, pipe: Any) -> None:
        while data := pipe.read1(4096):
            with self._lock:
                self._buf[name] += data
            os.write(self._w, b"x")
        if name == "out":
            self.eof_received = True
        os.write(self._w, b"x")

    def _take(self, name: str, n: int) -> bytes:
        with self._lock:
            data = bytes(self._buf[name][:n])
            del self._buf[name][:n]
        try:
            os.read(self._r, 65536)
        except BlockingIOError:
            pass
        return data

    def recv_ready(self) -> bool:
        return bool(self._buf["out"])

    def recv_stderr_ready(self) -> bool:
        return bool(self._buf["err"])

    def recv(self, n: int) -> bytes:
        return self._take("out", n)

    def recv_stderr(self, n: int) -> bytes:
        return self._take("err", n)

    def exit_status_ready(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def sendall(self, data: bytes) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.sent.append(data)
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def fileno(self) -> int:
        return self._r

    def close(self) -> None:
        self.closed = True
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):  # the shell and what it started
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for t in self._pumps:
            t.join()
        if self.proc is not None:
            for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if f is not None:
                    f.close()
        os.close(self._r)
        os.close(self._w)


@pytest.fixture
def shell() -> Any:
    sh = Shell(LocalChannel())
    yield sh
    sh.close()


def test_status_stdout_and_stderr_of_each_command(shell: Shell) -> None:
    assert shell.run("echo hi; echo oops >&2; exit 3", 10) == (3, b"hi\n", b"oops\n")
    assert shell.run("true", 10) == (0, b"", b"")
    assert shell.run("false", 10)[0] == 1


def test_output_without_a_final_newline_is_kept_as_it_is(shell: Shell) -> None:
    assert shell.run("printf abc; printf def >&2", 10) == (0, b"abc", b"def")
    assert shell.run("printf 'abc\\n\\n'", 10) == (0, b"abc\n\n", b"")


def test_a_command_cannot_change_the_next_ones_directory_or_variables(shell: Shell) -> None:
    before = shell.run("pwd", 10)[1]
    shell.run("cd /; X=1; export Y=2; set -e; trap 'echo bye' EXIT", 10)
    assert shell.run("pwd; echo ${X:-unset} ${Y:-unset}", 10) == (0, before + b"unset unset\n", b"")


def test_stdin_is_empty(shell: Shell) -> None:
    assert shell.run("cat; echo done", 10) == (0, b"done\n", b"")


def test_quotes_newlines_and_leading_dashes_reach_bash_as_written(shell: Shell) -> None:
    command = "echo 'a  b' \"c\" $'d\\te'\ncat <<EOF\nx $((1 + 2))\nEOF"
    assert shell.run(command, 10) == (0, b"a  b c d\te\nx 3\n", b"")
    assert shell.run("-n", 10)[0] == 127  # a command named -n, not an option of eval


def test_a_line_that_looks_like_a_marker_is_output(shell: Shell) -> None:
    fake = f"\n{shell.tag[:8].decode()} 0\n{shell.tag.decode()}x 0"
    assert shell.run(f"printf %s {shlex.quote(fake)}", 10) == (0, fake.encode(), b"")


def test_large_output_arrives_whole(shell: Shell) -> None:
    status, out, err = shell.run("head -c 300000 /dev/zero | tr '\\0' a; echo e >&2", 30)
    assert (status, len(out), set(out), err) == (0, 300000, {ord("a")}, b"e\n")


def test_a_command_past_its_timeout_raises(shell: Shell) -> None:
    with pytest.raises(CmdTimeout, match="did not finish within"):
        shell.run("sleep 5", 0.3)


def test_a_shell_that_dies_mid_command_is_lost_with_what_it_printed(shell: Shell) -> None:
    with pytest.raises(ShellLost) as lost:
        shell.run("echo partial; kill -9 $$", 10)
    assert lost.value.out == b"partial\n"
    assert not shell.usable()


class SilentServer:
    """A channel whose server never answers the request to run a command:
    exec_command waits, as paramiko's does, until the channel is closed."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()

    def exec_command(self, command: str) -> None:
        self.closed.wait()
        import paramiko

        raise paramiko.SSHException("Channel closed.")


def test_a_wedged_ssh_server_ends_the_wait_for_a_command() -> None:
    import time

    from orchestrator.machine.guest import exec_bounded

    chan = SilentServer()
    t0 = time.monotonic()
    with pytest.raises(ShellLost, match="did not start"):
        exec_bounded(chan, "bash", timeout=0.3)
    assert chan.closed.is_set() and time.monotonic() - t0 < 5


def test_read_file_by_builtins(shell: Shell, tmp_path: Any) -> None:
    """Guest.read's command: the lines as they are (a missing last newline
    added), nothing for an empty file, status 1 and no noise for a file that
    cannot be opened; and no program is run (it works with no PATH)."""
    from orchestrator.machine.guest import READ_FILE

    (tmp_path / "f").write_text("0x1f\n  two words \n\nlast")
    (tmp_path / "empty").write_text("")
    q = shlex.quote
    run = lambda p: shell.run(f"PATH=/nonexistent; {READ_FILE} < {q(str(p))}", 10)  # noqa: E731
    assert run(tmp_path / "f") == (0, b"0x1f\n  two words \n\nlast\n", b"")
    assert run(tmp_path / "empty") == (0, b"", b"")
    assert run(tmp_path / "missing") == (1, b"", b"")
