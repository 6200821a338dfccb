#!/usr/bin/env python3
"""The default plan's wall time, before and after fresh guests from snapshots.

Runs each pair of a plan twice with `ktest run`, the command a user runs:
"before" boots every guest cold and saves no snapshot (`--cold`, what ktest
did before snapshots), "after" restores the cached snapshot of a ready guest
wherever a guest starts (the default). Which of the two goes first alternates
from pair to pair, so a host that slows down over the hours does not favour
one side. A pair at a time, as `ktest run` runs them on this machine (-j 1).

Per pair it records both wall times (each run's own, from its run.json: the
pair's tests, without the build check and the collection before them; and
the whole process's), how each guest started (restored, cold, saved a
snapshot) and what the starts cost (QEMU start to SSH ready, from the notes
ktest writes on each guest's console), and the tests whose outcome differs
between the two runs. The results go into a JSON file (default:
bench-plan.json in the current directory), one entry per pair, so the pairs
of a long plan can be measured in several sittings (--pair, --shard), and a
pair too long for one sitting in parts (--part K/N: `ktest run --shard K/N`
of that pair alone, both sides; the table counts the pair once all N parts
are in, as the sum of its parts, each of which starts its own guests); each
sitting prints the table of everything in the file: per pair and the plan's
total (the sum of its pairs' wall times: the plan's wall time at -j 1),
before, after and their ratio, and which of the plan's pairs the file does
not have yet. --rescan reads the kept run directories (--keep) again.

    .venv/bin/python bench/plan.py [--plan default] [--pair PROFILE:DRIVER ...]
        [--shard K/N] [--part K/N] [-k EXPR] [--results FILE] [--keep DIR]
        [--report | --rescan]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fresh import compare  # noqa: E402  (bench/ is this script's folder)

from orchestrator.plugin.record import git_revision, read_records  # noqa: E402
from orchestrator.runs.plan import load_plan  # noqa: E402
from orchestrator.runs.select import SelectError, Shard  # noqa: E402

SIDES = ("before", "after")
FLAGS = {"before": ["--cold"], "after": []}


READY = re.compile(r"ktest: (?:snapshot loaded in [\d.]+s|booted cold), SSH ready ([\d.]+)s "
                   "after QEMU start")
SAVED = re.compile(r"ktest: saved this booted guest as snapshot \S+ \(\d+ MiB in ([\d.]+)s\)")


def guests(out: Path) -> dict[str, Any]:
    """How the guests of a run directory started, and what their starts cost
    (QEMU start to SSH ready, and saving a snapshot), from the lines ktest
    writes on each guest's console."""
    n: dict[str, Any] = {"restored": 0, "cold": 0, "saved": 0, "start_s": 0.0}
    for guest in sorted(d for d in out.glob("*-m*") if (d / "qemu-argv.txt").exists()):
        console = guest / "console.log"
        if not console.exists():  # QEMU ended before its console was read
            n["cold"] += 1
            continue
        with console.open(errors="replace") as f:
            n["restored" if "ktest: restoring snapshot" in next(f, "") else "cold"] += 1
            f.seek(0)
            after_ready = None  # lines read since the ready line
            for ln in f:
                if after_ready is None:
                    if m := READY.search(ln):
                        n["start_s"] += float(m.group(1))
                        after_ready = 0
                    continue
                if m := SAVED.search(ln):  # right after the ready line, or never
                    n["saved"] += 1
                    n["start_s"] += float(m.group(1))
                after_ready += 1
                if m or after_ready > 50:
                    break
    n["start_s"] = round(n["start_s"], 1)
    return n


def run_pair(spec: str, side: str, out: Path, expr: str | None,
             part: str | None = None) -> dict[str, Any]:
    """One `ktest run` of one pair (of part K/N of its tests): its exit
    status and what it measured. Ctrl-C reaches ktest too (same process
    group), so we wait for it to stop; on SIGTERM we pass SIGTERM on, then
    wait."""
    profile, _, driver = spec.partition(":")
    argv = [sys.executable, "-m", "orchestrator.cli", "run", "-m", profile, "-d", driver,
            "--out", str(out), *FLAGS[side], *(["-k", expr] if expr else []),
            *(["--shard", part] if part else [])]
    t0 = time.monotonic()
    with (out.parent / f"{out.name}.log").open("w") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            proc.wait()
            raise
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait()
    return {"process_s": round(time.monotonic() - t0, 1), "exit": code, **scan(out)}


def scan(out: Path) -> dict[str, Any]:
    """What a kept run directory says: the run's own wall time (run.json:
    its pairs, without the builds and the collection before them), how its
    guests started, its records."""
    try:
        seconds = json.loads((out / "run.json").read_text())["seconds"]
    except (OSError, ValueError, KeyError):
        seconds = None  # the run did not end
    records = read_records(out)
    outcomes: dict[str, int] = {}
    for r in records:
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    return {"seconds": seconds, "out": str(out), "guests": guests(out), "outcomes": outcomes,
            "records": records}


def measure(position: int, spec: str, base: Path, expr: str | None,
            part: str | None = None) -> dict[str, Any]:
    order = SIDES if position % 2 == 0 else SIDES[::-1]
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    got = {}
    name = key(spec, part)
    for side in order:
        print(f"{name}: {side} ...", file=sys.stderr, flush=True)
        # short: the guests' sockets go in OUT/<pair>-mN/, and a socket's
        # path has at most 107 bytes
        got[side] = run_pair(spec, side, base / f"{side}-{stamp}", expr, part)
        if got[side]["seconds"] is None:
            raise SystemExit(f"{name}: the {side} run did not end (exit {got[side]['exit']}): "
                             f"{got[side]['out']}")
        if not any(got[side]["guests"][k] for k in ("restored", "cold")):
            raise SystemExit(f"{name}: the {side} run started no guest (exit "
                             f"{got[side]['exit']}): {got[side]['out']}.log")
        print(f"{name}: {side} {got[side]['seconds'] / 60:.1f} min, exit {got[side]['exit']}, "
              f"guests {got[side]['guests']}", file=sys.stderr, flush=True)
    return {"pair": spec, "part": part, "first": order[0], "k": expr,
            "commit": git_revision() or "unknown",
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "host": _host(), **got, "outcomes_differ": _differ(got)}


def _differ(got: dict[str, dict[str, Any]]) -> Any:
    """The tests whose outcome differs; takes the records out of `got`."""
    return compare({r.test: r for r in got["before"].pop("records")},
                   {r.test: r for r in got["after"].pop("records")},
                   names=SIDES)["outcomes_differ"]


def rescan(entry: dict[str, Any]) -> bool:
    """Read an entry's kept run directories again (after a change in what
    is read from them); False if one is gone."""
    if not all(Path(entry[side]["out"], "run.json").exists() for side in SIDES):
        return False
    for side in SIDES:
        old = entry[side]
        entry[side] = {"process_s": old.get("process_s", old["seconds"]), "exit": old["exit"],
                       **scan(Path(old["out"]))}
    entry["outcomes_differ"] = _differ(entry)
    return True


def _host() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{platform.node()}, {os.cpu_count()} cores, {model}"


def load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"pairs": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"{path}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("pairs"), dict):
        raise SystemExit(f"{path}: not a results file of bench/plan.py")
    return data


def save(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def key(spec: str, part: str | None) -> str:
    """Where the results file keeps a pair's entry, or one of its parts'."""
    return f"{spec} part {part}" if part else spec


def whole(data: dict[str, Any], spec: str) -> dict[str, Any] | None:
    """The pair's entry: measured whole, or added up from all N of its parts
    (the smallest N that has them all); None while neither is there."""
    if spec in data["pairs"]:
        return dict(data["pairs"][spec])
    parts = {k.rsplit(" part ", 1)[1]: e for k, e in data["pairs"].items()
             if k.startswith(f"{spec} part ")}
    for n in sorted({int(p.split("/")[1]) for p in parts}):
        got = [parts.get(f"{i}/{n}") for i in range(1, n + 1)]
        if all(got):
            return _add_up([e for e in got if e is not None])
    return None


def _add_up(parts: list[dict[str, Any]]) -> dict[str, Any]:
    entry: dict[str, Any] = {"pair": parts[0]["pair"], "parts": len(parts),
                             "outcomes_differ": [d for e in parts for d in e["outcomes_differ"]]}
    for what in ("commit", "host"):
        entry[what] = "; ".join(sorted({e[what] for e in parts}))
    for side in SIDES:
        sides = [e[side] for e in parts]
        exits = [s["exit"] for s in sides]
        guests = {k: sum(s["guests"][k] for s in sides) for k in ("restored", "cold", "saved")}
        outcomes: dict[str, int] = {}
        for s in sides:
            for outcome, count in s["outcomes"].items():
                outcomes[outcome] = outcomes.get(outcome, 0) + count
        entry[side] = {"seconds": sum(s["seconds"] for s in sides),
                       "exit": next((c for c in exits if c not in (0, 1)), max(exits)),
                       "out": "; ".join(s["out"] for s in sides), "outcomes": outcomes,
                       "guests": {**guests, "start_s": round(sum(s["guests"]["start_s"]
                                                                 for s in sides), 1)}}
    return entry


def table(data: dict[str, Any], plan_pairs: list[str]) -> str:
    entries = {spec: e for spec in plan_pairs if (e := whole(data, spec)) is not None}
    rows = ["| pair | before (cold) | after (snapshots) | after/before | guests before: "
            "starts | guests after: starts | outcomes differ |", "|---|---|---|---|---|---|---|"]
    tb = ta = sb = sa = 0.0
    for spec, e in entries.items():
        b, a = e["before"], e["after"]
        gb, ga = b["guests"], a["guests"]
        tb, ta = tb + b["seconds"], ta + a["seconds"]
        sb, sa = sb + gb["start_s"], sa + ga["start_s"]
        label = f"{spec} (in {e['parts']} parts)" if e.get("parts") else spec
        rows.append(f"| {label} | {b['seconds'] / 60:.1f} min | {a['seconds'] / 60:.1f} min | "
                    f"{a['seconds'] / b['seconds']:.3f} | {gb['cold']} cold: "
                    f"{gb['start_s']:.0f} s | {ga['restored']} restored, {ga['cold']} cold: "
                    f"{ga['start_s']:.0f} s | {len(e['outcomes_differ'])} |")
    have = list(entries)
    if have:
        rows.append(f"| **total, {len(have)} of {len(plan_pairs)} pairs** | **{tb / 60:.1f} min** "
                    f"| **{ta / 60:.1f} min** | **{ta / tb:.3f}** | {sb:.0f} s | {sa:.0f} s | |")
        rows.append(f"before - after: {(tb - ta) / 60:.1f} min, of which the guests' starts "
                    f"(QEMU start to SSH ready, snapshot saves): {(sb - sa) / 60:.1f} min")
    missing = [p for p in plan_pairs if p not in entries]
    lines = rows + ([f"not measured yet: {', '.join(missing)}"] if missing else [])
    for spec in missing:
        parts = sorted((k.rsplit(" part ", 1)[1] for k in data["pairs"]
                        if k.startswith(f"{spec} part ")),
                       key=lambda p: tuple(int(x) for x in p.split("/"))[::-1])
        if parts:
            lines.append(f"{spec}: measured so far in parts {', '.join(parts)}; it counts "
                         "once all parts of one split are in")
    for what in ("commit", "host"):
        values = sorted({v for p in have for v in entries[p][what].split("; ")})
        if len(values) > 1:
            lines.append(f"measured at more than one {what}: {'; '.join(values)}")
    for spec in have:
        e = entries[spec]
        if e["before"]["guests"]["restored"]:
            lines.append(f"{spec}: the before run restored {e['before']['guests']['restored']} "
                         "guests: --cold did not take")
        if e["after"]["guests"]["saved"]:
            lines.append(f"{spec}: the after run saved its snapshot (it was not cached): "
                         "its figure includes one cold boot and a save")
        for side in SIDES:
            if e[side]["exit"] not in (0, 1):
                lines.append(f"{spec}: the {side} run ended with exit {e[side]['exit']} "
                             f"(not a finished run): {e[side]['out']}")
    for spec in have:
        for d in entries[spec]["outcomes_differ"]:
            lines.append(f"{spec}: outcome differs: {d['test']}\n  before: {d['before']}\n"
                         f"  after: {d['after']}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plan", default="default")
    ap.add_argument("--pair", action="append", metavar="PROFILE:DRIVER",
                    help="only these pairs of the plan (repeatable)")
    ap.add_argument("--shard", metavar="K/N", help="only the plan's pairs K, K+N, K+2N, ...")
    ap.add_argument("--part", metavar="K/N",
                    help="only part K of N of each chosen pair's tests (ktest run --shard K/N): "
                         "a pair too long for one sitting; the table adds up its N parts")
    ap.add_argument("-k", dest="expr", help="only the tests that match (pytest -k); for "
                                            "trying the bench, not for the plan's figure")
    ap.add_argument("--results", type=Path, default=Path("bench-plan.json"))
    ap.add_argument("--keep", type=Path, help="keep the run directories in this directory")
    ap.add_argument("--report", action="store_true", help="print the table and stop")
    ap.add_argument("--rescan", action="store_true",
                    help="read the stored pairs' kept run directories again, then print the "
                         "table")
    args = ap.parse_args()
    # SIGTERM ends the bench like Ctrl-C: the running ktest is stopped and
    # the temporary run directories go
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    plan = load_plan(args.plan)
    specs = [f"{p.profile}:{p.driver}" for p in plan.pairs]
    data = load(args.results)
    if args.rescan:
        for spec, entry in data["pairs"].items():
            if not rescan(entry):
                print(f"{spec}: its run directories are gone; kept as it was", file=sys.stderr)
        save(args.results, data)
    if args.report or args.rescan:
        print(table(data, specs))
        return 0
    chosen = list(enumerate(specs))
    if args.pair:
        unknown = set(args.pair) - set(specs)
        if unknown:
            raise SystemExit(f"not pairs of plan {args.plan}: {', '.join(sorted(unknown))}")
        chosen = [(i, s) for i, s in chosen if s in args.pair]
    if args.shard:
        try:
            shard = Shard.parse(args.shard)
        except SelectError as e:
            raise SystemExit(str(e)) from None
        chosen = [(i, s) for i, s in chosen if i % shard.count == shard.index - 1]
    part = None
    if args.part:
        try:
            part = str(Shard.parse(args.part))
        except SelectError as e:
            raise SystemExit(str(e).replace("--shard", "--part")) from None
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            base = args.keep
        else:
            base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ktest-plan-")))
        for position, (_, spec) in enumerate(chosen):
            # a pair's parts alternate which side goes first, as the pairs do
            turn = position + (int(part.split("/")[0]) - 1 if part else 0)
            entry = measure(turn, spec, base, args.expr, part)
            if args.expr:
                print(f"{spec}: -k {args.expr!r} given: not stored", file=sys.stderr)
                print(json.dumps(entry, indent=2))
                continue
            data["pairs"][key(spec, part)] = entry
            save(args.results, data)
    print(table(data, specs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
