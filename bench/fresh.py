#!/usr/bin/env python3
"""Fresh guests: a cold boot against a snapshot restore, side by side.

Boots the default profile cold and restores it from its snapshot (saved
once, first), N times each, interleaved, and prints the medians of QEMU
start -> SSH ready and their ratio (goal: restore / cold <= 0.25). With
--suite it also runs one pair's NIC suite twice, with a shared guest
(--ktest-fresh-guest after-crash) and with a fresh guest per test
(per-test), and prints the per-test overhead of the latter, the tests
that cost the most more, and any test whose outcome differs (with both
outcomes and messages). --keep DIR keeps every run directory there.

    .venv/bin/python bench/fresh.py [--runs 5] [--suite [--pair e1000e:ktest_nic] [-k EXPR]]
                                    [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.machine import profiles, session  # noqa: E402
from orchestrator.plugin.record import Record, read_records  # noqa: E402


def launch(arts: object, snapshots: bool, run_dir: Path, machine: str) -> tuple[float, bool]:
    m = session.make_machine(profiles.load_profile(machine), arts,  # type: ignore[arg-type]
                             run_dir=run_dir, snapshots=snapshots)
    try:
        t = m.launch()
        return t.ready, m.restored_from is not None
    finally:
        m.shutdown()


def suite(pair: str, mode: str, out: Path, expr: str | None) -> tuple[float, dict[str, Record]]:
    """Wall time of the NIC suite on `pair` and each test's record."""
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "tests" / "nic"), "-q",
                    "-p", "no:cacheprovider", "--rootdir", str(ROOT), "--ktest-pair", pair,
                    "--ktest-out", str(out), "--ktest-fresh-guest", mode,
                    *(["-k", expr] if expr else [])],
                   cwd=ROOT, capture_output=True, text=True, check=False)
    return time.monotonic() - t0, {r.test: r for r in read_records(out)}


def compare(shared: dict[str, Record], fresh: dict[str, Record],
            names: tuple[str, str] = ("shared", "per_test")) -> dict[str, object]:
    """Where two runs of the suite differ: outcomes (both sides, under
    `names`), and the five tests whose duration grew the most."""
    differ = []
    for t in sorted(shared.keys() | fresh.keys()):
        a, b = shared.get(t), fresh.get(t)
        if a is None or b is None or a.outcome != b.outcome:
            differ.append({"test": t,
                           names[0]: a and f"{a.outcome}: {a.message[:160]}".rstrip(": "),
                           names[1]: b and f"{b.outcome}: {b.message[:160]}".rstrip(": ")})
    both = shared.keys() & fresh.keys()
    grew = sorted(((fresh[t].duration - shared[t].duration, t) for t in both), reverse=True)[:5]
    return {"outcomes_differ": differ,
            "most_grown": [{"test": t, "more_s": round(d, 1)} for d, t in grew]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--machine", default=profiles.DEFAULT_PROFILE)
    ap.add_argument("--suite", action="store_true", help="also time the suite both ways")
    ap.add_argument("--pair", default="e1000e:ktest_nic")
    ap.add_argument("-k", dest="expr", help="only the suite's tests that match (pytest -k)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", type=Path, help="keep the run directories in this directory")
    args = ap.parse_args()
    arts = session.artifacts()
    cold: list[float] = []
    warm: list[float] = []
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            tmp = str(args.keep)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="ktest-fresh-"))
        launch(arts, True, Path(tmp) / "seed", args.machine)  # the snapshot exists now
        for i in range(args.runs):
            cold.append(launch(arts, False, Path(tmp) / f"cold-{i}", args.machine)[0])
            ready, restored = launch(arts, True, Path(tmp) / f"warm-{i}", args.machine)
            assert restored, "the snapshot was not used"
            warm.append(ready)
            print(f"[{i + 1}/{args.runs}] cold {cold[-1]:.1f}s, restore {warm[-1]:.1f}s",
                  file=sys.stderr)
        result: dict[str, object] = {
            "cold_ready_s": round(statistics.median(cold), 2),
            "restore_ready_s": round(statistics.median(warm), 2),
        }
        result["ratio"] = round(statistics.median(warm) / statistics.median(cold), 3)
        if args.suite:
            shared, o1 = suite(args.pair, "after-crash", Path(tmp) / "shared", args.expr)
            fresh, o2 = suite(args.pair, "per-test", Path(tmp) / "fresh", args.expr)
            ran = [t for t, r in o2.items() if r.outcome != "skipped"]
            result.update({"suite_pair": args.pair, "suite_k": args.expr,
                           "suite_shared_s": round(shared, 1), "suite_per_test_s": round(fresh, 1),
                           "tests": len(o2), "tests_run": len(ran),
                           "per_test_overhead_s": round((fresh - shared) / max(len(o2), 1), 2),
                           **compare(o1, o2)})
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.machine}: cold boot to SSH {result['cold_ready_s']}s, restore to SSH "
          f"{result['restore_ready_s']}s (medians of {args.runs}); restore/cold "
          f"{result['ratio']} (goal <= 0.25)")
    if args.suite:
        sel = f" -k {args.expr!r}" if args.expr else ""
        print(f"suite on {args.pair}{sel}: shared guest {result['suite_shared_s']}s, a fresh "
              f"guest per test {result['suite_per_test_s']}s; {result['tests_run']} of "
              f"{result['tests']} tests ran (not skipped); {result['per_test_overhead_s']}s "
              "more per test")
        for g in result["most_grown"]:  # type: ignore[attr-defined]
            print(f"  {g['more_s']:+.1f}s {g['test']}")
        for d in result["outcomes_differ"]:  # type: ignore[attr-defined]
            print(f"  outcome differs: {d['test']}\n    shared guest: {d['shared']}\n"
                  f"    fresh guest per test: {d['per_test']}")
        if args.keep:
            print(f"run directories: {args.keep}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
