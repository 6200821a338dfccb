"""`ktest run`: a plan's suites on its (profile, driver) pairs."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from orchestrator.cli.common import EXIT_FAIL, Progress, artifacts, die, die_build


def _plan(args: argparse.Namespace) -> object:
    from orchestrator.runs import plan as plan_mod

    try:
        base = plan_mod.load_plan(args.plan)
        if args.machine or args.driver:
            from orchestrator.machine.profiles import DEFAULT_PROFILE

            return plan_mod.adhoc_plan(args.machine or [DEFAULT_PROFILE], args.driver or [],
                                       base)
        return base
    except plan_mod.PlanError as e:
        die(str(e))


def pytest_extra(args: argparse.Namespace) -> list[str]:
    """The plugin options that carry this command's kernel/QEMU choices."""
    extra: list[str] = []
    if args.kernel_src:
        extra += ["--ktest-kernel-src", args.kernel_src]
    if args.kernel_version:
        extra += ["--ktest-kernel", args.kernel_version]
    if args.variant != "debug":
        extra += ["--ktest-kernel-variant", args.variant]
    for frag in args.config or ():
        extra += ["--ktest-kernel-config", frag]
    if args.accel:
        extra += ["--ktest-accel", args.accel]
    if os.environ.get("KTEST_QEMU"):
        extra += ["--ktest-qemu", os.environ["KTEST_QEMU"]]
    return extra


def cmd_run(args: argparse.Namespace) -> int:
    from orchestrator.runs import execute
    from orchestrator.runs.plan import Plan
    from orchestrator.scenario import drivers

    plan = _plan(args)
    assert isinstance(plan, Plan)
    if args.no_pcap:
        plan = dataclasses.replace(plan, pcap=False)
    extra = pytest_extra(args)
    out = Path(args.out) if args.out else execute.default_out()
    if args.dry_run:
        for pair in plan.pairs:
            print(" ".join(execute.pytest_argv(plan, pair, out, args.k, extra)))
        return 0
    # Build once up front, with progress, so every pair starts from the cache
    # and a failed build is one clear error, not one per pair.
    progress = Progress()
    arts = artifacts(args, progress)
    try:
        for drv in sorted({p.driver for p in plan.pairs}):
            drivers.resolve_driver(drv, arts, progress)
    except Exception as e:  # BuildError, missing file
        die_build(e, progress)
    progress.done()
    print(f"ktest run: plan {plan.name} ({len(plan.pairs)} pairs), results in {out}")
    result = execute.run_plan(plan, out, k=args.k, extra=extra, echo=print)
    print()
    print(execute.summary_table(result))
    state = "interrupted" if result.interrupted else "FAIL" if result.failed else "PASS"
    print(f"\nverdict: {state} ({result.seconds / 60:.1f} min); results: "
          f"{out / 'results.jsonl'}, {out / 'junit.xml'}")
    if result.interrupted:
        return result.interrupted
    return EXIT_FAIL if result.failed else 0
