"""From a failure to its cause and its fix: `ktest repro` (the failure
again, until it shows)."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path
from typing import Any

from orchestrator.cli.common import EXIT_FAIL, Progress, die, duration
from orchestrator.cli.runs import build, load_run


def stress_env(args: argparse.Namespace) -> dict[str, str]:
    """The suite's knobs from --env NAME=VALUE, --cycles N and --traffic X."""
    env: dict[str, str] = {}
    for item in args.env or ():
        name, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"KTEST_\w+", name):
            die(f"--env {item!r}: expected KTEST_NAME=VALUE (the suite's knobs are KTEST_* "
                "variables)")
        env[name] = value
    if args.cycles is not None:
        if args.cycles < 1:
            die(f"--cycles {args.cycles}: expected at least 1")
        env["KTEST_CYCLES"] = str(args.cycles)
    if args.traffic is not None:
        if args.traffic <= 0:
            die(f"--traffic {args.traffic:g}: expected a factor above 0")
        env["KTEST_TRAFFIC"] = f"{args.traffic:g}"
    return env


def _given_choices(args: argparse.Namespace, base: Any) -> Any:
    """`base` (a run's choices) with what the command line gives instead."""
    from orchestrator.runs.choices import Choices

    given = Choices.make(kernel=args.kernel_version, kernel_src=args.kernel_src,
                         variant=args.variant or base.variant, config=tuple(args.config or ()),
                         accel=args.accel, qemu=args.qemu)
    changes = {f.name: getattr(given, f.name) for f in dataclasses.fields(given)
               if getattr(given, f.name) not in (None, ())}
    if args.kernel_version and not args.kernel_src:
        changes["kernel_src"] = None  # a Debian kernel instead of the run's tree
    return dataclasses.replace(base, **changes)


def _rerun_of(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any], Any]:
    """What `ktest repro TARGET [TEST]` replays: the rerun, the signature,
    where it comes from, and what the run was built with (if known)."""
    from orchestrator.runs import prepare, repro, rundir
    from orchestrator.runs.choices import Choices

    target = Path(args.target)
    try:
        if target.is_dir():
            run = load_run(args.target)
            rec = repro.find_record(run, args.test)
            again = repro.rerun(run, rec)
            sig = repro.match(args.match) if args.match else repro.signature_of(rec)
            return again, sig, {"run": str(run.path), "test": rec.test}, \
                prepare.Built.of_manifest(run.manifest)
        try:
            data = target.read_bytes()
        except OSError as e:
            die(f"{target}: no such run directory or console log ({e.strerror or e})")
        clue = repro.read_console(data)
        if args.match:
            sig = repro.match(args.match)
        elif clue.title is None:
            die(f"{target}: no kernel report in this console log (`ktest parse {target}`); "
                "--match REGEX looks for a failure message instead")
        else:
            sig = repro.Signature("title", clue.title)
        about: dict[str, Any] = {"console": str(target.resolve()), "test": clue.test}
        home = target.resolve().parent.parent  # a guest's folder in a run directory
        if rundir.is_run_dir(home) and not (args.machine or args.driver):
            run = load_run(str(home))
            rec = repro.find_record(run, args.test or clue.test)
            return repro.rerun(run, rec), sig, {**about, "run": str(home), "test": rec.test}, \
                prepare.Built.of_manifest(run.manifest)
        again = repro.rerun_of_console(clue, Choices.make(kernel=args.kernel_version),
                                       args.test, args.machine, args.driver)
        plan = again.plan()
        again = dataclasses.replace(again, test=repro.full_test_id(
            plan, again.test, again.choices.plugin_args()))
        return again, sig, {**about, "test": again.test}, None
    except repro.ReproError as e:
        die(str(e))


def cmd_repro(args: argparse.Namespace) -> int:
    from orchestrator.runs import execute, prepare, repro
    from orchestrator.runs.plan import PlanError

    if args.tries < 1:
        die(f"--tries {args.tries}: expected at least 1")
    if args.time is not None and args.time <= 0:
        die(f"--time {args.time}: expected a number of seconds above 0")
    env = stress_env(args)
    again, sig, about, recorded = _rerun_of(args)
    again = dataclasses.replace(again.with_env(env),
                                choices=_given_choices(args, again.choices))
    try:
        replay = again.replay(manifest={"repro": about})
    except PlanError as e:
        die(str(e))
    out = Path(args.out) if args.out else execute.default_out("repro")
    budget = repro.Budget(args.tries, args.time, args.keep_going)
    limit = f", at most {duration(args.time)}" if args.time else ""
    print(f"ktest repro: {again.test} on {again.pair_spec}, looking for {sig}")
    print(f"  up to {budget.tries} tries{limit}; results in {out}")
    if again.env:
        print("  with " + " ".join(f"{k}={v}" for k, v in again.env))
    progress = Progress()
    built = build(again.choices, [again.driver], progress)
    progress.done()
    for line in prepare.differences(recorded, built) if recorded else ():
        print(f"  note: not the run's own input: {line}")

    def shown(t: Any) -> None:
        print(f"try {t.n}/{budget.tries}: {'HIT  ' if t.verdict == repro.HIT else ''}"
              f"{t.what} ({duration(t.seconds)})", flush=True)

    res = repro.reproduce(replay, sig, out, budget, on_try=shown,
                          about={**about, "pair": again.pair_spec, "command": again.argv(),
                                 "budget": dataclasses.asdict(budget)})
    n, hits = len(res.tries), len(res.hits)
    counts = f"{hits} hit{'s' if hits != 1 else ''} in {n} tr{'ies' if n != 1 else 'y'} " \
             f"({res.rate:.0%})"
    first = res.first_hit
    if first is not None:
        print(f"\nreproduced: {counts}; first hit on try {first.n}, "
              f"{duration(first.elapsed)} after the first try started")
    else:
        print(f"\nnot reproduced: {counts}, {duration(res.tries[-1].elapsed if n else 0)}")
    print(f"results: {out / repro.SUMMARY}, {out}/try-N/")
    if res.interrupted:
        return res.interrupted
    return 0 if first is not None else EXIT_FAIL

