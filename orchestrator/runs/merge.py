"""`ktest merge DIR... --out DIR`: the shards of one run (ktest run --shard
K/N, often on several machines) joined into one run directory that reads
like any other: results.jsonl, junit.xml, run.json, known issues,
report.html, and `ktest compare` works on it.

The shards are left as they are. Their guests' run directories and pcaps
are copied in (hard links where the filesystem allows), and the records'
console spans are pointed at the copies; each record keeps the known-issue
match its own shard's run gave it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.plugin.record import (
    RESULTS,
    ConsoleSpan,
    Record,
    write_manifest,
)
from orchestrator.runs import known as known_mod
from orchestrator.runs.execute import merge_junit_files
from orchestrator.runs.rundir import Run, load_run
from orchestrator.runs.verdicts import test_key


class MergeError(Exception):
    """The shards cannot be merged there (one line says why)."""


@dataclass
class Merged:
    out: Path
    records: list[Record]
    warnings: list[str] = field(default_factory=list)
    report: Path | None = None


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, copy_function=_link_or_copy)


def _guest_dirs(run: Run) -> list[Path]:
    return sorted(p for p in run.path.iterdir() if p.is_dir() and (p / "console.raw").exists())


def merge(dirs: Sequence[Path], out: Path) -> Merged:
    """Merge run directories `dirs` into `out`, which must be new or empty."""
    if not dirs:
        raise MergeError("nothing to merge")
    resolved = [d.resolve() for d in dirs]
    if out.resolve() in resolved:
        raise MergeError(f"{out}: the output is one of the runs to merge")
    if out.exists() and any(out.iterdir()):
        raise MergeError(f"{out}: exists and is not empty; merge into a new directory")
    runs = [load_run(d) for d in dirs]
    out.mkdir(parents=True, exist_ok=True)
    merged = Merged(out, [])
    moved: dict[str, str] = {}  # guest run directory -> its copy
    for i, run in enumerate(runs, 1):
        for g in _guest_dirs(run):
            target = out / g.name
            if target.exists():
                target = out / f"s{i}-{g.name}"
            _copy_tree(g, target)
            moved[str(g.resolve())] = str(target.resolve())
        pcaps = run.path / "pcap"
        if pcaps.is_dir():
            (out / "pcap").mkdir(exist_ok=True)
            for f in pcaps.iterdir():
                if not (out / "pcap" / f.name).exists():
                    _link_or_copy(str(f), str(out / "pcap" / f.name))
    seen: dict[tuple[str, str], Path] = {}
    for run in runs:
        for r in run.records:
            _repoint(r, run, moved)
            key = test_key(r)
            if key in seen:
                merged.warnings.append(f"{r.pair} {key[0]} is in both {seen[key]} and "
                                       f"{run.path}")
            seen[key] = run.path
            merged.records.append(r)
    _write_records(out / RESULTS, merged.records)
    _write_known(out, runs)
    manifest, warnings = merged_manifest(runs)
    merged.warnings += warnings
    write_manifest(out, manifest)
    if (runs[0].path / "plan.yaml").exists():
        shutil.copy2(runs[0].path / "plan.yaml", out / "plan.yaml")
    merge_junit_files(out / "junit.xml", [(r.path / "junit.xml", None) for r in runs])
    from orchestrator.runs import html

    merged.report = html.write_report(out)
    return merged


def _repoint(r: Record, run: Run, moved: dict[str, str]) -> None:
    def fix(spans: list[ConsoleSpan]) -> list[ConsoleSpan]:
        return [ConsoleSpan(moved.get(str(run.guest_dir(s).resolve()), s.run_dir), s.start,
                            s.end) for s in spans]

    r.console = fix(r.console)
    for a in r.attempts:
        a.console = fix(a.console)


def _write_records(path: Path, records: Sequence[Record]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(r.to_json() + "\n" for r in records))
    os.replace(tmp, path)


def _write_known(out: Path, runs: Sequence[Run]) -> None:
    issues: dict[str, known_mod.KnownIssue] = {}
    for run in runs:
        for issue in run.issues:
            issues.setdefault(json.dumps(issue.to_dict(), sort_keys=True), issue)
    known_mod.save_snapshot(out, list(issues.values()))


def merged_manifest(runs: Sequence[Run]) -> tuple[dict[str, Any], list[str]]:
    """The first shard's run.json, with every shard's pairs, the earliest
    start, the latest end and a list of the shards; warnings where shards
    ran on different kernels or QEMUs."""
    first = runs[0].manifest
    data = json.loads(json.dumps(first, default=str))
    pairs: list[str] = []
    specs: dict[str, str] = {}
    for run in runs:
        plan = run.manifest.get("plan") or {}
        pairs += [p for p in plan.get("pairs") or [] if p not in pairs]
        specs.update(plan.get("specs") or {})
    data.setdefault("plan", {})
    data["plan"]["pairs"], data["plan"]["specs"] = pairs, specs
    starts = [str(r.manifest["started"]) for r in runs if r.manifest.get("started")]
    ends = [str(r.manifest["ended"]) for r in runs if r.manifest.get("ended")]
    if starts:
        data["started"] = min(starts)
    if ends:
        data["ended"] = max(ends)
    data["seconds"] = max(float(r.manifest.get("seconds") or 0) for r in runs)
    data.pop("shard", None)
    data["merged"] = [{"dir": str(r.path), "shard": r.manifest.get("shard"),
                       "seconds": r.manifest.get("seconds"),
                       "kernel": (r.manifest.get("kernel") or {}).get("release"),
                       "qemu": (r.manifest.get("qemu") or {}).get("version")} for r in runs]
    warnings = []
    for what in ("kernel", "qemu"):
        seen = {m[what] for m in data["merged"] if m[what]}
        if len(seen) > 1:
            warnings.append(f"the shards ran on different {what} versions: "
                            f"{', '.join(sorted(seen))}")
    return data, warnings
