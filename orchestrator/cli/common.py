"""What every command shares: exit statuses, the progress line, errors."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

EXIT_FAIL, EXIT_ERROR, EXIT_HANG, EXIT_CRASH = 1, 2, 124, 125


class Progress:
    """One updating status line on a terminal; sparse lines otherwise."""

    def __init__(self, stream: Any = sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last = 0.0
        self._last_head = ""
        self._open = False

    def __call__(self, msg: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + msg[:200])
            self._open = True
        else:
            head = msg.split(":")[0]
            now = time.monotonic()
            if head != self._last_head or now - self._last >= 30:
                self.stream.write(msg + "\n")
                self._last, self._last_head = now, head
        self.stream.flush()

    def done(self) -> None:
        if self._open:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._open = False


class LiveLines:
    """A block of status lines kept at the bottom of a terminal and
    redrawn in place, with ordinary lines printed above it. Only for a
    terminal; callers print plain lines elsewhere."""

    def __init__(self, stream: Any = sys.stdout) -> None:
        self.stream = stream
        self.shown: list[str] = []

    def _erase(self) -> None:
        if self.shown:
            # to the start of the block's first line, then clear to the end
            self.stream.write(f"\033[{len(self.shown)}F\033[J")

    def _draw(self) -> None:
        width = shutil.get_terminal_size((120, 24)).columns - 1
        for line in self.shown:
            self.stream.write(line[:width] + "\n")
        self.stream.flush()

    def show(self, lines: list[str]) -> None:
        if lines == self.shown:
            return
        self._erase()
        self.shown = list(lines)
        self._draw()

    def log(self, line: str) -> None:
        self._erase()
        self.stream.write(line + "\n")
        self._draw()

    def close(self) -> None:
        """Leave the block's last state on the screen."""
        self.shown = []


def duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else \
        f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def die(msg: str, code: int = EXIT_ERROR) -> NoReturn:
    print(f"ktest: error: {msg}", file=sys.stderr)
    raise SystemExit(code)


def die_build(e: Any, progress: Progress) -> NoReturn:
    """A failed build: its detail lines (compiler errors) and log, then one
    line saying what failed."""
    progress.done()
    for line in getattr(e, "details", []):
        print(f"  {line}", file=sys.stderr)
    if getattr(e, "log", None):
        print(f"  log: {e.log}", file=sys.stderr)
    die(str(e))


def kernel_request(args: argparse.Namespace) -> Any:
    from orchestrator.builds.kernel import DEFAULT_VERSION, KernelRequest

    src = getattr(args, "kernel_src", None)
    return KernelRequest(
        src=Path(src) if src else None,
        variant=getattr(args, "variant", "debug"),
        version=getattr(args, "kernel_version", None) or DEFAULT_VERSION,
        extra_fragments=tuple(Path(f) for f in getattr(args, "config", None) or ()),
    )


def artifacts(args: argparse.Namespace, progress: Progress) -> Any:
    """Kernel and image for these options, built if needed (exits on failure)."""
    from orchestrator.builds.common import BuildError
    from orchestrator.machine import session

    try:
        arts = session.artifacts(kernel_request(args), progress)
    except BuildError as e:
        die_build(e, progress)
    progress.done()
    return arts


def elapsed(t0: float) -> str:
    return f"{time.monotonic() - t0:.1f}s"
