#!/usr/bin/env python3
"""Boot benchmark: where a guest's start-up time goes.

Boots the default machine profile N times per variant, interleaved, and
prints medians of: QEMU start -> the kernel's first line ("pre-kernel":
firmware, loading and, for bzImage, decompression; ktest's kernels print it
on the early console, earlyprintk, as soon as setup_arch runs), -> "Run
/init", and -> the first successful SSH command. Variants (both from
SeaBIOS): `pvh` boots the uncompressed vmlinux through its PVH entry point
(what ktest does when the kernel has CONFIG_PVH), `bzimage` the compressed
kernel (what it did before).

    .venv/bin/python bench/boot.py [--runs 10] [--variant pvh --variant bzimage] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.builds.kernel import Kernel  # noqa: E402
from orchestrator.machine import profiles, session  # noqa: E402
from orchestrator.machine.vm import Machine  # noqa: E402

FIRST_LINE = rb"Linux version "


class BzImageKernel(Kernel):
    """The same kernel, booted from bzImage."""

    @property
    def has_pvh(self) -> bool:
        return False


VARIANTS = ("pvh", "bzimage")
NOW, BEFORE = VARIANTS


def boot(arts: Any, variant: str, run_dir: Path, machine: str) -> dict[str, float]:
    k = arts.kernel
    if variant == "bzimage":
        k = BzImageKernel(k.dir, k.key, k.release, k.info)
    m = Machine(profiles.load_profile(machine), k, arts.image, run_dir=run_dir,
                extra_initrd=arts.extra_initrd)
    try:
        t = m.launch()
        first = m.console.first_seen(FIRST_LINE) if m.console else None
        return {"pre_kernel": (first - m._started_at) if first else float("nan"),
                "run_init": t.run_init or float("nan"), "ready": t.ready}
    finally:
        m.shutdown()


def median(xs: list[float]) -> float:
    good = [x for x in xs if x == x]
    return round(statistics.median(good), 2) if good else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--variant", action="append", choices=VARIANTS)
    ap.add_argument("--machine", default=profiles.DEFAULT_PROFILE)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    variants = args.variant or list(VARIANTS)
    arts = session.artifacts()
    rows: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="ktest-bench-") as tmp:
        for i in range(args.runs):
            for v in variants:
                r = boot(arts, v, Path(tmp) / f"{v}-{i}", args.machine)
                rows[v].append(r)
                print(f"[{i + 1}/{args.runs}] {v:<7}: pre-kernel {r['pre_kernel']:.2f}s, "
                      f"/init {r['run_init']:.2f}s, SSH {r['ready']:.2f}s", file=sys.stderr)
    result = {v: {k: median([r[k] for r in rs]) for k in ("pre_kernel", "run_init", "ready")}
              for v, rs in rows.items()}
    if args.json:
        print(json.dumps({"machine": args.machine, "runs": args.runs, "medians": result},
                         indent=2))
        return 0
    print(f"machine {args.machine}, kernel {arts.kernel.release}, {args.runs} boots per "
          "variant (medians, seconds from QEMU start)")
    print(f"{'variant':<8} {'pre-kernel':>10} {'Run /init':>10} {'SSH ready':>10}")
    for v, r in result.items():
        print(f"{v:<8} {r['pre_kernel']:>10} {r['run_init']:>10} {r['ready']:>10}")
    if NOW in result and BEFORE in result:
        ratio = result[NOW]["pre_kernel"] / result[BEFORE]["pre_kernel"]
        print(f"pre-kernel time, {NOW} / {BEFORE}: {ratio:.2f} (goal: 0.5 or less)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
