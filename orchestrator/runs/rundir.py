"""A finished (or interrupted) run directory, read back: its run.json, its
records with the known issues it was judged with, and where its guests'
files are. What compare, merge, the HTML report and the KCIDB export start
from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.plugin.record import (
    MANIFEST,
    RESULTS,
    ConsoleSpan,
    Record,
    read_manifest,
    read_records,
)
from orchestrator.runs import known as known_mod


class RunDirError(Exception):
    """Not a run directory (one line says why)."""


@dataclass
class Run:
    path: Path
    manifest: dict[str, Any]
    records: list[Record]
    issues: list[known_mod.KnownIssue] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def pairs(self) -> list[str]:
        """Pair labels: the plan's order, then any other pair a record names."""
        plan = self.manifest.get("plan") or {}
        labels = [str(p) for p in plan.get("pairs") or []]
        for r in self.records:
            if r.pair and r.pair not in labels:
                labels.append(r.pair)
        return labels

    @property
    def versions(self) -> known_mod.Versions:
        return known_mod.Versions.of_manifest(self.manifest)

    def guest_dir(self, span: ConsoleSpan) -> Path:
        """A console span's guest run directory: where it was written, or,
        for a run directory that was moved or downloaded, the folder of the
        same name inside this one."""
        p = Path(span.run_dir)
        if p.is_dir():
            return p
        return self.path / p.name


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / RESULTS).exists() or (path / MANIFEST).exists())


def load_run(path: Path, extra_issues: Sequence[known_mod.KnownIssue] = ()) -> Run:
    """The run in `path`, failures explained by the known issues it was run
    with (its snapshot, or ktest's own list for a run without one) and
    `extra_issues`. RunDirError if it is not a run; ConfigError for a bad
    snapshot."""
    if not path.is_dir():
        raise RunDirError(f"{path}: no such run directory")
    if not is_run_dir(path):
        raise RunDirError(f"{path}: not a run directory (no {RESULTS} or {MANIFEST})")
    manifest = read_manifest(path)
    records = read_records(path)
    issues = known_mod.load_snapshot(path)
    if issues is None:
        issues = known_mod.load()
    issues = [*issues, *extra_issues]
    known_mod.annotate(records, issues, known_mod.Versions.of_manifest(manifest))
    return Run(path, manifest, records, issues)
