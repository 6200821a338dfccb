"""``ktest parse [--json] [--fail-on KIND[,KIND]] LOG...``: list the kernel reports
found in console logs.

Exit status: 0 when no report that counts was found, 1 when one was (by default
any bug; ``--fail-on`` names the kinds that count), 2 on bad input (an unknown
kind, or a file that cannot be read: every readable file is still reported, and
each unreadable one gets one line on stderr). Output cut short by the reader
(``ktest parse LOG | head``) ends the run quietly with the status so far.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from .model import Kind, Report, bugs_and_events
from .parser import parse_log

ANY_BUG = "bug"
EXIT_FOUND = 1
EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class FailOn:
    """Which reports make ``ktest parse`` exit 1: every bug (``any_bug``) and/or
    every report, bug or event, of one of ``kinds``."""

    any_bug: bool = True
    kinds: frozenset[Kind] = frozenset()

    def counts(self, r: Report) -> bool:
        return (self.any_bug and r.is_bug) or r.kind in self.kinds


def parse_fail_on(spec: str) -> FailOn:
    """``"bug"``, ``"KASAN,LINK_CHANGE"``, ``"bug,LINK_CHANGE"`` (case-insensitive).
    Raises ValueError naming an unknown kind."""
    any_bug = False
    kinds: set[Kind] = set()
    for word in filter(None, (w.strip() for w in spec.split(","))):
        if word.lower() == ANY_BUG:
            any_bug = True
            continue
        try:
            kinds.add(Kind[word.upper()])
        except KeyError:
            known = ", ".join([ANY_BUG, *(k.name for k in Kind)])
            raise ValueError(f"unknown report kind {word!r} (known: {known})") from None
    if not any_bug and not kinds:
        raise ValueError("--fail-on needs a kind")
    return FailOn(any_bug, frozenset(kinds))


def _entry(r: Report) -> dict[str, Any]:
    d = r.to_dict()
    del d["text"]
    return d


def file_result(path: str, reports: Sequence[Report]) -> dict[str, Any]:
    """The JSON object of one log: its bugs and its events, each in log order."""
    bugs, events = bugs_and_events(reports)
    return {
        "path": path,
        "bugs": [_entry(r) for r in bugs],
        "events": [_entry(r) for r in events],
    }


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _summary_line(r: Report) -> str:
    flags = [r.kind.value]
    if r.count > 1:
        flags.append(f"count={r.count}")
    if r.corrupted:
        flags.append("corrupted")
    if r.modules:
        flags.append("modules=" + ",".join(r.modules))
    return f"  {r.severity:<5} [{r.start}:{r.end}] {r.title}  ({'; '.join(flags)})"


def text_lines(path: str, reports: Sequence[Report]) -> Iterable[str]:
    """The text output of one log: a count line, then its bugs, then its events."""
    bugs, events = bugs_and_events(reports)
    yield f"{path}: {_plural(len(bugs), 'bug')}, {_plural(len(events), 'event')}"
    for r in (*bugs, *events):
        yield _summary_line(r)


def read_and_parse(path: str) -> list[Report]:
    """Parse one log file (OSError if it cannot be read)."""
    with open(path, "rb") as f:
        data = f.read()
    return parse_log(data)


def _quiet_stdout() -> None:
    """After EPIPE on stdout: point it at /dev/null, so that the interpreter's
    final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def run_parse(
    paths: list[str],
    as_json: bool = False,
    out: TextIO | None = None,
    fail_on: str | FailOn = ANY_BUG,
) -> int:
    """Parse each log and print its reports (text or JSON) on ``out`` (stdout).

    Returns 0, 1 (a report counted by ``fail_on`` was found) or 2 (bad input);
    see the module docstring.
    """
    out = sys.stdout if out is None else out
    try:
        rule = fail_on if isinstance(fail_on, FailOn) else parse_fail_on(fail_on)
    except ValueError as e:
        print(f"ktest parse: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    status = 0
    results: list[dict[str, Any]] = []
    try:
        for path in paths:
            try:
                reports = read_and_parse(path)
            except OSError as e:
                print(f"ktest parse: cannot read {path}: {e.strerror or e}", file=sys.stderr)
                status = EXIT_BAD_INPUT
                continue
            if status == 0 and any(rule.counts(r) for r in reports):
                status = EXIT_FOUND
            if as_json:
                results.append(file_result(path, reports))
            else:
                for line in text_lines(path, reports):
                    out.write(line + "\n")
        if as_json:
            json.dump(results, out, indent=2)
            out.write("\n")
        out.flush()
    except BrokenPipeError:
        if out is sys.stdout:
            _quiet_stdout()
    return status
