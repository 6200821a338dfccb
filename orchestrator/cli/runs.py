"""`ktest run`: a plan's suites on its (profile, driver) pairs."""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
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
    if getattr(args, "coverage", False):
        extra.append("--ktest-coverage")
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
            drivers.resolve_driver(drv, arts, progress, coverage=args.coverage)
    except Exception as e:  # BuildError, missing file
        die_build(e, progress)
    progress.done()
    print(f"ktest run: plan {plan.name} ({len(plan.pairs)} pairs), results in {out}")
    result = execute.run_plan(plan, out, k=args.k, extra=extra, echo=print)
    print()
    print(execute.summary_table(result))
    if args.coverage:
        _print_coverage(out)
    state = "interrupted" if result.interrupted else "FAIL" if result.failed else "PASS"
    print(f"\nverdict: {state} ({result.seconds / 60:.1f} min); results: "
          f"{out / 'results.jsonl'}, {out / 'junit.xml'}")
    if result.interrupted:
        return result.interrupted
    return EXIT_FAIL if result.failed else 0


def _print_coverage(out: Path) -> None:
    from orchestrator.scenario import coverage

    try:
        summary = coverage.report(sorted((out / "coverage").glob("*.info")), out)
    except coverage.CoverageError as e:
        print(f"\ncoverage: {e}")
        return
    print(f"\ncoverage of the driver under test: lines {summary['lines_pct']}%, branches "
          f"{summary['branches_pct']}% ({summary['html']})")
    for f in summary["files"]:
        print(f"  {f['file']:<22} lines {f['line_pct']:5.1f}% ({f['lines'][0]}/{f['lines'][1]})"
              f"  branches {f['branch_pct']:5.1f}% ({f['branches'][0]}/{f['branches'][1]})")


def cmd_zoo(args: argparse.Namespace) -> int:
    """Each bug injection in the scenario that exposes it; non-zero on a miss."""
    from orchestrator.runs import execute, zoo
    from orchestrator.scenario import drivers

    try:
        z = zoo.load_zoo()
    except zoo.ConfigError as e:
        die(str(e))
    out = Path(args.out) if args.out else execute.default_out().with_name(
        execute.default_out().name.replace("run-", "zoo-"))
    progress = Progress()
    arts = artifacts(args, progress)
    try:
        drivers.resolve_driver("ktest_nic", arts, progress)
    except Exception as e:  # BuildError
        die_build(e, progress)
    progress.done()
    chosen = [b for b in z.bugs if not args.bug or b.name in args.bug]
    print(f"ktest zoo: {len(chosen)} bug(s) on {args.machine or z.profile}, results in {out}")

    def echo(r: zoo.BugResult) -> None:
        print(f"  {'ok  ' if r.caught else 'MISS'} {r.bug.name:<26} {r.got[:110]} "
              f"({r.seconds:.0f}s)", flush=True)

    t0 = time.monotonic()
    try:
        results = zoo.run_zoo(z, out, args.bug, args.machine, pytest_extra(args), echo)
    except zoo.ConfigError as e:
        die(str(e))
    print()
    print(zoo.table(z, results))
    caught = sum(r.caught for r in results)
    print(f"\n{caught} of {len(results)} bugs caught with the expected verdict, "
          f"{len(z.unobservable)} classes not observable here ({(time.monotonic() - t0) / 60:.1f}"
          f" min); {out / 'zoo.json'}")
    return 0 if caught == len(results) else EXIT_FAIL
