"""`ktest run` (a plan's suites on its (profile, driver) pairs) and what
reads runs back: `ktest compare`, `ktest merge`, `ktest report`, `ktest
export`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.cli.common import EXIT_FAIL, Progress, die, die_build


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


def choices_of(args: argparse.Namespace) -> Any:
    from orchestrator.runs.choices import Choices

    return Choices.make(kernel=args.kernel_version, kernel_src=args.kernel_src,
                        variant=args.variant, config=tuple(args.config or ()),
                        accel=args.accel, qemu=os.environ.get("KTEST_QEMU") or None)


def pytest_extra(args: argparse.Namespace) -> list[str]:
    """The plugin options that carry this command's kernel/QEMU choices."""
    extra = list(choices_of(args).plugin_args())
    if getattr(args, "driver_params", None):
        extra += ["--ktest-driver-params", args.driver_params]
    if getattr(args, "coverage", False):
        extra.append("--ktest-coverage")
    if getattr(args, "fresh_guest", None):
        extra += ["--ktest-fresh-guest", args.fresh_guest]
    if getattr(args, "cold", False):
        extra.append("--ktest-no-snapshots")
    return extra


def build(choices: Any, driver_specs: Sequence[str], progress: Progress,
          coverage: bool = False) -> Any:
    """Build what a run needs up front, with progress (exits on a failed
    build): every pair then starts from the cache."""
    from orchestrator.runs import prepare

    try:
        return prepare.build(choices, driver_specs, progress, coverage=coverage)
    except Exception as e:  # BuildError, a missing .ko or module directory
        die_build(e, progress)


def known_issues(files: Sequence[str] | None) -> list[Any]:
    """ktest's known issues and those of `files` (exits on a bad file)."""
    from orchestrator.runs import known
    from orchestrator.yamlconf import ConfigError

    try:
        return known.load([Path(f) for f in files or ()])
    except ConfigError as e:
        die(str(e))


def extra_issues(files: Sequence[str] | None) -> list[Any]:
    """The known issues of `files` alone (a run already has ktest's own)."""
    from orchestrator.runs import known
    from orchestrator.yamlconf import ConfigError

    try:
        return [i for f in files or () for i in known.load_issues(Path(f))]
    except ConfigError as e:
        die(str(e))


def load_run(path: str, extra: Sequence[Any] = ()) -> Any:
    """The run in `path` (exits with one line if it is not one)."""
    from orchestrator.runs.rundir import RunDirError
    from orchestrator.runs.rundir import load_run as load
    from orchestrator.yamlconf import ConfigError

    try:
        return load(Path(path), extra)
    except (RunDirError, ConfigError) as e:
        die(str(e))


def _selection(args: argparse.Namespace, plan: Any, extra: list[str]) -> Any:
    """The tests per pair this command selects (None: not listed). Listing
    needs no guest; a plain run goes on without it (and without totals in
    its progress) if it fails."""
    from orchestrator.runs import select

    exact = bool(args.shard or args.test)
    if not (exact or args.list) and args.dry_run:
        return None
    try:
        shard = select.Shard.parse(args.shard) if args.shard else None
        sel = select.collect(plan, args.k, extra, targets=args.test or None)
        if args.test:
            sel = select.by_ids(sel, args.test)
        if shard is not None:
            sel = select.shard(sel, shard)
    except select.SelectError as e:
        if exact or args.list:
            die(str(e))
        return None
    return sel


def cmd_run(args: argparse.Namespace) -> int:
    from orchestrator.runs import execute
    from orchestrator.runs.plan import Plan

    plan = _plan(args)
    assert isinstance(plan, Plan)
    if args.no_pcap:
        plan = dataclasses.replace(plan, pcap=False)
    choices = choices_of(args)
    extra = pytest_extra(args)
    out = Path(args.out) if args.out else execute.default_out()
    issues = known_issues(args.known)
    if args.baseline:
        load_run(args.baseline, issues)  # a bad baseline stops us before any guest boots
    sel = _selection(args, plan, extra)
    if args.list:
        for label, ids in (sel or {}).items():
            print(f"{label}: {len(ids)} tests")
            print("".join(f"  {t}\n" for t in ids), end="")
        return 0
    tests = sel if args.shard or args.test else None  # else: the plan's suites
    totals = {label: len(ids) for label, ids in sel.items()} if sel is not None else None
    pairs = [p for p in plan.pairs if tests is None or tests.get(p.label)]
    jobs = args.jobs or execute.default_jobs(len(pairs))
    if args.dry_run:
        for pair in pairs:
            selected = tests.get(pair.label) if tests else None
            print(shlex.join(execute.pytest_argv(plan, pair, out, args.k, extra, selected,
                                               args.reruns)))
            print("".join(f"#   {x}\n" for x in selected or ()), end="")
        return 0
    progress = Progress()
    if pairs:
        build(choices, [p.driver for p in pairs], progress, coverage=args.coverage)
    progress.done()
    shard = f", shard {args.shard}" if args.shard else ""
    print(f"ktest run: plan {plan.name} ({len(pairs)} pairs{shard}, {jobs} at a time), "
          f"results in {out}")
    options = execute.RunOptions(
        k=args.k, extra=tuple(extra), jobs=jobs, reruns=args.reruns, tests=tests,
        totals=totals, issues=issues, baseline=Path(args.baseline) if args.baseline else None,
        manifest={"choices": choices.to_dict(), "shard": args.shard,
                  "driver_params": args.driver_params,
                  "guests": {"fresh": args.fresh_guest or "after-crash",
                             "snapshots": not args.cold},
                  "known_files": [str(Path(f).resolve()) for f in args.known or ()],
                  "baseline": str(Path(args.baseline).resolve()) if args.baseline else None})
    from orchestrator.cli.progress import RunProgress

    watch = RunProgress(pairs)
    try:
        result = execute.run_plan(plan, out, options=options, watcher=watch)
    finally:
        watch.close()
    print()
    print(execute.summary_table(result))
    if args.coverage:
        _print_coverage([out], out)
    if args.baseline:
        from orchestrator.runs import compare

        c = compare.compare(load_run(args.baseline, issues), load_run(str(out), issues))
        print(f"\nagainst {args.baseline}: {compare.summary_line(c)}")
    state = "interrupted" if result.interrupted else "FAIL" if result.failed else "PASS"
    print(f"\nverdict: {state} ({result.seconds / 60:.1f} min); results: "
          f"{out / 'results.jsonl'}, {out / 'junit.xml'}")
    if result.report is not None:
        print(f"report: {result.report}")
    if result.interrupted:
        return result.interrupted
    return EXIT_FAIL if result.failed else 0


def _print_coverage(runs: list[Path], out: Path) -> bool:
    """The driver's coverage over the tracefiles of `runs`, added up into
    `out`; False when there is none."""
    from orchestrator.scenario import coverage

    try:
        summary = coverage.report(coverage.tracefiles_under(runs), out)
    except coverage.CoverageError as e:
        print(f"\ncoverage: {e}")
        return False
    print(f"\ncoverage of the driver under test: lines {summary['lines_pct']}%, branches "
          f"{summary['branches_pct']}% ({summary['html']})")
    for f in summary["files"]:
        print(f"  {f['file']:<22} lines {f['line_pct']:5.1f}% ({f['lines'][0]}/{f['lines'][1]})"
              f"  branches {f['branch_pct']:5.1f}% ({f['branches'][0]}/{f['branches'][1]})")
    return True


def cmd_coverage(args: argparse.Namespace) -> int:
    """Add up the driver coverage of several runs (a run, a zoo, shards)."""
    dirs = [Path(d) for d in args.dirs]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        die(f"{missing[0]}: no such directory")
    return 0 if _print_coverage(dirs, Path(args.out)) else EXIT_FAIL


def cmd_zoo(args: argparse.Namespace) -> int:
    """Each bug injection in the scenario that exposes it; non-zero on a miss."""
    from orchestrator.runs import execute, zoo

    try:
        z = zoo.load_zoo()
    except zoo.ConfigError as e:
        die(str(e))
    out = Path(args.out) if args.out else execute.default_out("zoo")
    progress = Progress()
    build(choices_of(args), ["ktest_nic"], progress, coverage=args.coverage)
    progress.done()
    chosen = [b for b in z.bugs if not args.bug or b.name in args.bug]
    print(f"ktest zoo: {len(chosen)} bug(s) on {args.machine or z.profile}, results in {out}")

    def echo(r: zoo.BugResult) -> None:
        print(f"  {'ok  ' if r.caught else 'MISS'} {r.bug.name:<26} {r.got[:110]} "
              f"({r.seconds:.0f}s)", flush=True)

    t0 = time.monotonic()
    try:
        results = zoo.run_zoo(z, out, args.bug, args.machine, pytest_extra(args), echo,
                              manifest={"choices": choices_of(args).to_dict()})
    except zoo.ConfigError as e:
        die(str(e))
    print()
    print(zoo.table(z, results))
    caught = sum(r.caught for r in results)
    print(f"\n{caught} of {len(results)} bugs caught with the expected verdict, "
          f"{len(z.unobservable)} classes not observable here ({(time.monotonic() - t0) / 60:.1f}"
          f" min); {out / 'zoo.json'}")
    if args.coverage:
        _print_coverage([out], out)
    return 0 if caught == len(results) else EXIT_FAIL


def cmd_compare(args: argparse.Namespace) -> int:
    from orchestrator.runs import compare

    issues = extra_issues(args.known)
    c = compare.compare(load_run(args.base, issues), load_run(args.run, issues))
    if args.json:
        print(json.dumps(c.to_json(), indent=2))
    else:
        print(compare.table(c))
    return EXIT_FAIL if c.anything_new else 0


def cmd_merge(args: argparse.Namespace) -> int:
    from orchestrator.runs import execute, merge
    from orchestrator.runs.rundir import RunDirError
    from orchestrator.yamlconf import ConfigError

    try:
        m = merge.merge([Path(d) for d in args.dirs], Path(args.out))
    except (merge.MergeError, RunDirError, ConfigError) as e:
        die(str(e))
    run = load_run(args.out)
    print(execute.matrix_table(run.records, run.pairs))
    for w in m.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"\nmerged {len(args.dirs)} runs into {args.out} ({len(m.records)} results); "
          f"report: {m.report}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from orchestrator.runs import html

    issues = extra_issues(args.known)
    load_run(args.run, issues)
    if args.baseline:
        load_run(args.baseline, issues)
    try:
        path = html.write_report(Path(args.run), Path(args.baseline) if args.baseline else None,
                                 issues)
    except OSError as e:
        die(f"{args.run}: cannot write the report: {e.strerror or e}")
    print(path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from orchestrator.runs import kcidb

    if not re.fullmatch(r"[a-z0-9_]+", args.origin):
        die(f"--origin {args.origin!r}: KCIDB origins are lower-case letters, digits and _")
    run = load_run(args.run, extra_issues(args.known))
    text = json.dumps(kcidb.export(run, origin=args.origin), indent=2) + "\n"
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as e:
            die(f"{args.output}: {e.strerror or e}")
    else:
        sys.stdout.write(text)
    return 0
