"""The result record of one test, and the run manifest: one owner.

The plugin writes one :class:`Record` per test to ``results.jsonl`` as the
test ends (appended and fsynced, so an interrupted run keeps what it did);
``ktest run``, the summary, junit and later consumers read them back with
:func:`read_records`. ``run.json`` (:func:`write_manifest`) says what went
into a run: ktest's version and git revision, the kernel, image and module
keys, the QEMU version, the plan, the command line and the host.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orchestrator
from orchestrator import paths
from orchestrator.builds import cache

# "flaky": failed, then passed when run again (--ktest-reruns); every try is
# in Record.attempts.
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "flaky")
# the outcomes that fail a run and get a test run again; not "xpassed": only a
# QEMU limitation's xfail is non-strict (see orchestrator.runs.verdicts)
BAD_OUTCOMES = ("failed", "error")
PHASES = ("setup", "call", "teardown")
RESULTS = "results.jsonl"
MANIFEST = "run.json"


class ResultsWriteError(Exception):
    """results.jsonl could not be written: the run must stop."""


@dataclass
class ReportRef:
    """A kernel report that decided (or was allowed in) a test."""

    title: str
    kind: str
    driver: str | None = None  # the first module named in its call trace
    frame: str | None = None
    excerpt: str = ""  # the report's first lines
    # the test after whose end the report came, when it came between two
    # tests (it fails the next test, whose record holds it)
    after: str = ""

    @classmethod
    def of(cls, report: Any, lines: int = 40, after: str = "") -> ReportRef:
        text = "\n".join(str(report.text).splitlines()[:lines])
        modules = getattr(report, "modules", ()) or ()
        return cls(report.title, report.kind.value, modules[0] if modules else None,
                   report.frame, text, after)


@dataclass
class ConsoleSpan:
    """Where a test's console lines are: a guest run directory and the byte
    range in its console.raw."""

    run_dir: str
    start: int
    end: int


@dataclass
class Attempt:
    """One try of a test that was run more than once (--ktest-reruns)."""

    outcome: str
    phase: str = ""
    message: str = ""
    duration: float = 0.0
    console: list[ConsoleSpan] = field(default_factory=list)
    started: str = ""
    ended: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Attempt:
        spans = [ConsoleSpan(**c) for c in d.get("console") or []]
        return cls(**{k: v for k, v in d.items() if k in _fields(cls) and k != "console"},
                   console=spans)


@dataclass
class KnownMatch:
    """The known issue a failure matched (orchestrator.runs.known sets it
    when a run is read; the plugin never does). The record's outcome stays
    what the test did."""

    reason: str
    link: str = ""
    source: str = ""  # where the entry is: file:line, or the table it came from


def _fields(cls: Any) -> set[str]:
    return set(cls.__dataclass_fields__)


@dataclass
class Record:
    test: str
    pair: str | None = None
    outcome: str = "passed"
    phase: str = ""  # the phase that decided a non-pass outcome
    duration: float = 0.0
    message: str = ""
    step: str = ""  # the test's last announced step when it failed ("cycle 3 of 5")
    reports: list[ReportRef] = field(default_factory=list)
    allowed_reports: list[str] = field(default_factory=list)
    console: list[ConsoleSpan] = field(default_factory=list)
    started: str = ""
    ended: str = ""
    attempts: list[Attempt] = field(default_factory=list)  # every try, when rerun
    known: KnownMatch | None = None
    part_of: str = ""  # a subtest's own result: the test id it is a part of

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=False)

    @property
    def titles(self) -> list[str]:
        return [r.title for r in self.reports]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        reports = []
        for r in d.get("reports") or []:
            # records of earlier ktest versions held plain titles
            # (and a later version's fields are not this one's to read)
            reports.append(ReportRef(r, "") if isinstance(r, str) else
                           ReportRef(**{k: v for k, v in r.items() if k in _fields(ReportRef)}))
        spans = [ConsoleSpan(**c) for c in d.get("console") or []]
        attempts = [Attempt.from_dict(a) for a in d.get("attempts") or []]
        known = KnownMatch(**d["known"]) if d.get("known") else None
        nested = {"reports", "console", "attempts", "known"}
        return cls(**{k: v for k, v in d.items() if k in _fields(cls) - nested},
                   reports=reports, console=spans, attempts=attempts, known=known)


def pcap_path(nodeid: str) -> str:
    """Where a test's frames go with --ktest-pcap, relative to the run
    directory."""
    return f"pcap/{re.sub(r'[^A-Za-z0-9_.-]+', '_', nodeid)[-120:]}.pcap"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def append_record(path: Path, record: Record) -> None:
    """Append one line with a single write(2) on an O_APPEND descriptor and
    fsync it; ResultsWriteError if that fails. Pair processes of one run
    (ktest run -j) append to the same file: one write per line keeps every
    line whole."""
    data = (record.to_json() + "\n").encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        raise ResultsWriteError(f"cannot write {path}: {e.strerror or e}") from e
    if written != len(data):
        raise ResultsWriteError(f"cannot write {path}: short write ({written} of "
                                f"{len(data)} bytes)")


def read_records(out: Path) -> list[Record]:
    """The records of a run directory; a line cut by a kill is skipped."""
    try:
        lines = (out / RESULTS).read_text().splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            records.append(Record.from_dict(json.loads(line)))
        except (ValueError, TypeError):
            continue
    return records


def git_revision() -> str | None:
    root = paths.data_root()
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty",
                              "--abbrev=12"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def manifest(**extra: Any) -> dict[str, Any]:
    """What every run records about itself, plus `extra` (plan, kernel...)."""
    return {
        "ktest": {"version": orchestrator.__version__, "git": git_revision()},
        "command": sys.argv,
        "host": {"name": platform.node(), "kernel": platform.release(),
                 "python": platform.python_version()},
        "started": now_iso(),
        **extra,
    }


def write_manifest(out: Path, data: dict[str, Any]) -> Path:
    path = out / MANIFEST
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        raise ResultsWriteError(f"cannot write {path}: {e.strerror or e}") from e
    return path


def read_manifest(out: Path) -> dict[str, Any]:
    try:
        data = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def update_manifest(out: Path, **extra: Any) -> None:
    """Merge keys into run.json (creating it with :func:`manifest` if absent);
    safe against other pair processes of the same run doing the same."""
    out.mkdir(parents=True, exist_ok=True)
    with cache.locked(out / ".run.json.lock"):
        data = read_manifest(out) or manifest()
        for k, v in extra.items():
            if isinstance(v, dict) and isinstance(data.get(k), dict):
                data[k] = {**data[k], **v}
            else:
                data[k] = v
        write_manifest(out, data)
