"""`ktest run`'s progress: a status line per pair, kept live on a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from orchestrator.cli.common import LiveLines, duration
from orchestrator.plugin.record import Record
from orchestrator.runs.execute import PairRun, Watcher, record_line


class RunProgress(Watcher):
    """One status line per pair (tests done of total, failures so far,
    time) under the per-test lines on a terminal; elsewhere the per-test
    lines and a status line per pair when it starts, ends, and every
    minute."""

    EVERY = 60.0

    def __init__(self, pairs: Sequence[Any], stream: Any = None) -> None:
        stream = stream or sys.stdout
        self.tty = stream.isatty()
        self.stream = stream
        self.live = LiveLines(stream) if self.tty else None
        self.last: dict[str, float] = {}
        self.width = max([len(p.label) for p in pairs] or [10])

    def line(self, pr: PairRun, now: float | None = None) -> str:
        total = "?" if pr.total is None else str(pr.total)
        return (f"{pr.pair.label:<{self.width}}  {pr.state:<7}  {pr.done}/{total} tests, "
                f"{pr.failures} failing, {duration(pr.elapsed(now))}")

    def _say(self, text: str) -> None:
        if self.live is not None:
            self.live.log(text)
        else:
            print(text, file=self.stream, flush=True)

    def _status(self, pr: PairRun) -> None:
        if self.live is None:
            print(self.line(pr), file=sys.stderr, flush=True)
            self.last[pr.pair.label] = time.monotonic()

    def pair_started(self, pr: PairRun) -> None:
        self._status(pr)

    def record(self, pr: PairRun | None, rec: Record) -> None:
        self._say(record_line(rec))

    def pair_ended(self, pr: PairRun) -> None:
        if pr.note:
            self._say(f"   {pr.pair.label}: {pr.note}")
        self._status(pr)

    def tick(self, pairs: Sequence[PairRun]) -> None:
        now = time.monotonic()
        if self.live is not None:
            self.live.show([self.line(pr, now) for pr in pairs])
            return
        for pr in pairs:
            if pr.state == "running" and now - self.last.get(pr.pair.label, 0) >= self.EVERY:
                self._status(pr)

    def close(self) -> None:
        if self.live is not None:
            self.live.close()
