#!/usr/bin/env python3
"""Benchmark orchestrator.report against the syzkaller-derived report corpus.

Usage: python bench/report_corpus.py [--corpus PATH] [--verbose] [--reps N]

Figures:
  titles     entries with an expected title whose first "bug" report has exactly
             that title (strict; alt_titles are not counted). Events (link
             changes, fault injection, ...) are not reports in syzkaller's sense,
             so the first report with severity "bug" is compared.
  no-report  entries without expected title for which no "bug" report is found.
  corrupted  entries with an expected title whose first bug report's corrupted
             flag equals the expected one.
  speed      total input bytes / total parse time (best of --reps runs).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from orchestrator.report import Report, parse  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "report-corpus" / "syzkaller-linux-dev.jsonl"


@dataclass
class Entry:
    name: str
    data: bytes
    title: str | None
    corrupted: bool
    frame: str | None


@dataclass
class Results:
    titled: int = 0
    title_ok: int = 0
    untitled: int = 0
    none_ok: int = 0
    corrupted_ok: int = 0
    frames: int = 0
    frame_ok: int = 0
    misses: list[str] = field(default_factory=list)
    mb_per_s: float = 0.0
    total_bytes: int = 0

    @property
    def title_acc(self) -> float:
        return self.title_ok / self.titled if self.titled else 1.0

    @property
    def none_acc(self) -> float:
        return self.none_ok / self.untitled if self.untitled else 1.0

    @property
    def corrupted_acc(self) -> float:
        return self.corrupted_ok / self.titled if self.titled else 1.0


def load(path: Path) -> list[Entry]:
    entries = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            obj = json.loads(line)
            if obj.get("text_b64"):
                data = base64.b64decode(obj["text_b64"])
            else:
                data = obj["text"].encode("utf-8", "surrogateescape")
            entries.append(
                Entry(
                    str(obj["name"]),
                    data,
                    obj.get("title"),
                    bool(obj.get("corrupted")),
                    obj.get("frame"),
                )
            )
    return entries


def first_bug(reports: list[Report]) -> Report | None:
    return next((r for r in reports if r.severity == "bug"), None)


def evaluate(entries: list[Entry], reps: int = 3) -> Results:
    res = Results()
    for e in entries:
        first = first_bug(parse(e.data))
        if e.title is None:
            res.untitled += 1
            if first is None:
                res.none_ok += 1
            else:
                res.misses.append(f"{e.name}: expected no report, got {first.title!r}")
            continue
        res.titled += 1
        got = first.title if first else None
        if got == e.title:
            res.title_ok += 1
        else:
            res.misses.append(f"{e.name}: expected {e.title!r}, got {got!r}")
        got_corrupted = bool(first and first.corrupted)
        if got_corrupted == e.corrupted:
            res.corrupted_ok += 1
        else:
            reason = first.corrupted_reason if first else None
            res.misses.append(
                f"{e.name}: corrupted expected {e.corrupted}, got {got_corrupted} ({reason}) "
                f"[{e.title!r}]"
            )
        if e.frame:
            res.frames += 1
            if first is not None and (first.frame or "corrupted") == e.frame:
                res.frame_ok += 1
    res.total_bytes = sum(len(e.data) for e in entries)
    best = float("inf")
    for _ in range(max(1, reps)):
        t0 = time.perf_counter()
        for e in entries:
            parse(e.data)
        best = min(best, time.perf_counter() - t0)
    res.mb_per_s = res.total_bytes / best / 1e6 if best > 0 else float("inf")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--verbose", action="store_true", help="list every miss")
    ap.add_argument("--reps", type=int, default=5, help="timing repetitions (best-of)")
    args = ap.parse_args(argv)
    if not args.corpus.exists():
        print(f"corpus not found: {args.corpus}", file=sys.stderr)
        return 2
    entries = load(args.corpus)
    res = evaluate(entries, args.reps)
    if args.verbose:
        for miss in res.misses:
            print("MISS", miss)
        print()
    print(f"entries:    {len(entries)} ({res.total_bytes / 1e6:.2f} MB)")
    print(f"titles:     {res.title_ok}/{res.titled} = {100 * res.title_acc:.1f}% exact (strict)")
    print(f"no-report:  {res.none_ok}/{res.untitled} = {100 * res.none_acc:.1f}% correct")
    print(f"corrupted:  {res.corrupted_ok}/{res.titled} = {100 * res.corrupted_acc:.1f}% agree")
    if res.frames:
        print(f"frames:     {res.frame_ok}/{res.frames} agree (entries giving a frame)")
    print(f"speed:      {res.mb_per_s:.1f} MB/s (best of {max(1, args.reps)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
