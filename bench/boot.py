#!/usr/bin/env python3
"""Boot benchmark: how much of a guest's start-up is ours.

For the default machine profile, boots the guest N times and prints the
median of (a) QEMU start -> the kernel's "Run /init" line and (b) QEMU start
-> the first successful SSH command, and their ratio (b/a): everything after
the kernel hands over to our /init (mounts, management NIC, sshd, the SSH
handshake, readiness polling) is our own overhead. Target: ratio <= 1.3.

    .venv/bin/python bench/boot.py [--runs 5] [--machine e1000e] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.machine import session  # noqa: E402

TARGET = 1.3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--machine", default="e1000e")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    arts = session.artifacts()
    rows = []
    with tempfile.TemporaryDirectory(prefix="ktest-bench-") as tmp:
        for i in range(args.runs):
            m = session.make_machine(args.machine, arts, run_dir=Path(tmp) / f"run{i}")
            try:
                t = m.launch()
                assert t.run_init is not None, "no 'Run /init' line seen"
                rows.append((t.run_init, t.ready))
            finally:
                m.shutdown()
            print(f"boot {i + 1}/{args.runs}: run /init {rows[-1][0]:.2f}s, "
                  f"SSH ready {rows[-1][1]:.2f}s", file=sys.stderr)
            time.sleep(0.5)
    init_med = statistics.median(r[0] for r in rows)
    ready_med = statistics.median(r[1] for r in rows)
    ratio = ready_med / init_med
    result = {
        "machine": args.machine, "runs": args.runs, "accel": m.argv[m.argv.index("-accel") + 1],
        "run_init_median_s": round(init_med, 2), "ssh_ready_median_s": round(ready_med, 2),
        "ratio": round(ratio, 3), "target": TARGET, "met": ratio <= TARGET,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"machine {args.machine} ({result['accel']}), {args.runs} boots")
        print(f"  QEMU start -> Run /init : {init_med:6.2f} s (median)")
        print(f"  QEMU start -> SSH ready : {ready_med:6.2f} s (median)")
        print(f"  ratio (ours/kernel)     : {ratio:6.3f}  (target <= {TARGET}: "
              f"{'met' if ratio <= TARGET else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
