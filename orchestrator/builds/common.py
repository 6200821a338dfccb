"""What the kernel, image and module builders share: errors, logged commands."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

Progress = Callable[[str], None]

# Lines of a compiler or kbuild log worth showing a person when a build fails.
_DIAG = re.compile(
    r"(: (fatal )?error: |: warning: |^ERROR: |^WARNING: modpost|\*\*\* |Error \d+|"
    r"undefined reference|No rule to make target)"
)


class BuildError(Exception):
    """A build that failed; `str()` is the one line to show, details follow."""

    def __init__(self, message: str, details: Sequence[str] = (), log: Path | None = None):
        super().__init__(message)
        self.details = list(details)
        self.log = log


def diagnostics(text: str, limit: int = 25) -> list[str]:
    """The error and warning lines of a build log, first ones first."""
    out = [line.rstrip() for line in text.splitlines() if _DIAG.search(line)]
    return out[:limit]


def run_logged(
    argv: Sequence[str | os.PathLike[str]],
    log: Path,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> int:
    """Run argv with stdout+stderr appended to `log`; return the exit status.

    `on_line` sees every output line (for progress counters). The child is
    killed if we are interrupted, so no build keeps running behind our back.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8", errors="replace") as fh:
        fh.write(f"\n$ {' '.join(str(a) for a in argv)}\n")
        fh.flush()
        proc = subprocess.Popen(
            [str(a) for a in argv],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                fh.write(line)
                if on_line is not None:
                    on_line(line)
            return proc.wait()
        finally:
            if proc.poll() is None:
                _kill_group(proc)


def die_with_parent() -> None:
    """In a child before exec: get SIGKILL when the orchestrator dies, so a
    killed ktest leaves no build or QEMU running behind it."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
        proc.wait()


class Counter:
    """Counts kbuild's "  CC  file.o" lines and reports at most every second."""

    _STEP = re.compile(r"^\s+(CC|AS|LD|AR|CC \[M\]|LD \[M\])\s")

    def __init__(self, progress: Progress | None, label: str, total: int | None = None):
        self.progress = progress
        self.label = label
        self.total = total
        self.count = 0
        self._last = 0.0
        self._start = time.monotonic()

    def __call__(self, line: str) -> None:
        if not self._STEP.match(line):
            return
        self.count += 1
        now = time.monotonic()
        if self.progress and now - self._last >= 1.0:
            self._last = now
            self.progress(self.status())

    def status(self) -> str:
        elapsed = time.monotonic() - self._start
        if self.total:
            pct = min(99, 100 * self.count // max(1, self.total))
            return f"{self.label}: {pct:3d}% ({self.count}/{self.total} steps, {elapsed:.0f}s)"
        return f"{self.label}: {self.count} steps ({elapsed:.0f}s)"


def jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)))
