"""From a failure to its cause and its fix: `ktest repro` (the failure
again, until it shows), `ktest bisect` (the commit that brought it) and
`ktest validate` (what a patch fixes and what it breaks)."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
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


# ---- bisect and validate: a job at other states of a tree -------------------------------

def _repo(args: argparse.Namespace) -> tuple[str, Any] | None:
    """(kind, the git tree) of --tree or --driver-tree; None without either."""
    from orchestrator.builds import gittree
    from orchestrator.runs import prepare

    if args.tree and args.driver_tree:
        die("--tree and --driver-tree: give one (the history to take commits from)")
    given = args.tree or args.driver_tree
    if not given:
        return None
    try:
        repo = gittree.repo_of(Path(given))
    except gittree.GitError as e:
        die(str(e))
    kind = prepare.KERNEL if args.tree else prepare.DRIVER
    try:
        found = prepare.tree_kind(repo.path)
    except ValueError as e:
        die(str(e))
    if found != kind:
        other = "--driver-tree" if kind == prepare.KERNEL else "--tree"
        die(f"{repo.path} is a {found} tree, not a {kind} tree: {other} takes it")
    return kind, repo


def _commit(repo: Any, ref: str, what: str) -> str:
    from orchestrator.builds import gittree

    try:
        return str(repo.resolve(ref))
    except gittree.GitError as e:
        die(f"{what} {e}")


def _job(args: argparse.Namespace, kind: str, tree: Path, plan_name: str | None) -> Any:
    """The job both commands run: the plan (with a driver tree: its pairs of
    that driver, or -m PROFILE with it), the choices, the tests."""
    from orchestrator.cli.runs import choices_of
    from orchestrator.machine.profiles import DEFAULT_PROFILE
    from orchestrator.runs import plan as plan_mod
    from orchestrator.runs import prepare
    from orchestrator.runs.verdicts import pair_in

    machines = args.machine if isinstance(args.machine, list) else \
        [args.machine] if args.machine else []
    drivers = args.driver if isinstance(args.driver, list) else \
        [args.driver] if args.driver else []
    if kind == prepare.DRIVER and drivers:
        die(f"--driver: the driver under test is {tree} (give -m for the machines)")
    if kind == prepare.KERNEL and args.kernel_version:
        die(f"--kernel {args.kernel_version}: the kernel is built from the kernel tree")
    try:
        base = plan_mod.load_plan(plan_name or plan_mod.DEFAULT_PLAN)
        if kind == prepare.DRIVER:
            plan = plan_mod.adhoc_plan(machines or [DEFAULT_PROFILE], [str(tree)], base) \
                if machines or not plan_name else plan_mod.with_driver(base, str(tree))
        elif machines or drivers or not plan_name:
            plan = plan_mod.adhoc_plan(machines or [DEFAULT_PROFILE], drivers, base)
        else:
            plan = base
    except plan_mod.PlanError as e:
        die(str(e))
    tests: dict[str, list[str]] | None = None
    if args.test:
        labels = [p.label for p in plan.pairs]
        tests = {label: [] for label in labels}
        for t in args.test:
            label = pair_in(t, labels)
            if label is None:
                die(f"{t}: names none of the pairs {', '.join(labels)} (a test id as in "
                    "results.jsonl, its pair parameter included)")
            tests[label].append(t)
    return prepare.Job(plan, choices_of(args), args.k, tests, args.driver_params or "",
                       stress_env(args))


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "-"


def cmd_bisect(args: argparse.Namespace) -> int:
    from orchestrator.builds import gittree
    from orchestrator.runs import bisect, execute, repro

    if args.tries < 1:
        die(f"--tries {args.tries}: expected at least 1")
    if not (args.k or args.test):
        die("-k EXPR or --test ID: the test whose verdict judges each commit")
    found = _repo(args)
    if found is None:
        die("--tree DIR (a kernel tree) or --driver-tree DIR (a driver's source): the "
            "git history to bisect")
    kind, repo = found
    good, bad = _commit(repo, args.good, "--good"), _commit(repo, args.bad, "--bad")
    if good == bad:
        die(f"--good {args.good} and --bad {args.bad} are the same commit")
    try:
        sig = repro.match(args.match) if args.match else None
    except repro.ReproError as e:
        die(str(e))
    job = _job(args, kind, repo.path, None)
    try:
        between = int(gittree.git(repo.top, "rev-list", "--count", f"{good}..{bad}"))
    except gittree.GitError as e:
        die(str(e))
    out = Path(args.out) if args.out else execute.default_out("bisect")
    which = " and ".join([*([f"-k {args.k!r}"] if args.k else []),
                          *([f"{len(args.test)} test id(s)"] if args.test else [])])
    pairs = ", ".join(p.label for p in job.plan.pairs)
    steps = max(1, between.bit_length())
    print(f"ktest bisect: {which} on {pairs}, {kind} tree {repo.path}")
    print(f"  good {_short(good)} ({repo.subject(good)}), bad {_short(bad)} "
          f"({repo.subject(bad)}): {between} commit(s), about {steps} step(s) after the ends")
    print(f"  looking for {sig or 'the bad end first failure'}; results in {out}")
    progress = Progress()
    oracle = bisect.Oracle(job, kind, sig, args.tries,
                           build=lambda j: j.build(progress),
                           manifest={"tree": str(repo.path), "good": good, "bad": bad})

    def shown(s: Any) -> None:
        progress.done()
        label = f"{s.role} end" if s.role != "step" else f"step {s.n}"
        print(f"{label:<9} {_short(s.commit)}  {s.verdict:<4} {duration(s.seconds):>6}  "
              f"{s.subject[:50]}: {s.what[:150]}", flush=True)
        if s.role == "bad" and sig is None and oracle.signature is not None:
            print(f"          looking for {oracle.signature}")

    try:
        with gittree.claim(repo, [bad]) as slots:
            res = bisect.bisect(slots[bad], good, bad, oracle, out, on_step=shown,
                                looking_for=lambda: oracle.signature)
    except (bisect.BisectError, gittree.GitError) as e:
        progress.done()
        die(f"{e} (steps so far: {out / bisect.SUMMARY})")
    if res.interrupted:
        return res.interrupted
    judged = len([s for s in res.steps if s.role == "step"])
    took = f"{judged} step(s) after the ends, {duration(res.seconds)} in all"
    if res.first_bad:
        print(f"\nfirst bad commit: {res.first_bad} ({repo.subject(res.first_bad)})")
        print(f"  {took}; {out / bisect.SUMMARY}")
        return 0
    print("\nnot found: only skipped commits are left; the first bad commit is one of:")
    for sha in res.candidates:
        print(f"  {sha} ({repo.subject(sha)})")
    print(f"  {took}; {out / bisect.SUMMARY}")
    return EXIT_FAIL


def _sides(args: argparse.Namespace, found: tuple[str, Any] | None
           ) -> tuple[str, Path, Any, list[Any]]:
    """The kind of tree, the tree the job is made with, the git tree (None:
    two directories) and the two sides (their paths still to be set for
    refs)."""
    from orchestrator.runs import prepare
    from orchestrator.runs.validate import Side

    if found is not None:
        kind, repo = found
        base = _commit(repo, args.base, "--base")
        patch = _commit(repo, args.patch, "--patch")
        if base == patch:
            die(f"--base {args.base} and --patch {args.patch} are the same commit")
        return kind, repo.path, repo, [Side("base", args.base, repo.path, base),
                                       Side("patch", args.patch, repo.path, patch)]
    sides, kinds = [], set()
    for name, given in (("base", args.base), ("patch", args.patch)):
        path = Path(given).expanduser().resolve()
        if not path.is_dir():
            die(f"--{name} {given}: no such directory (refs of a git tree need --tree DIR or "
                "--driver-tree DIR)")
        try:
            kinds.add(prepare.tree_kind(path))
        except ValueError as e:
            die(f"--{name} {e}")
        sides.append(Side(name, given, path))
    if len(kinds) != 1:
        die(f"--base {args.base} and --patch {args.patch}: one is a kernel tree, the other "
            "a module source")
    if sides[0].path == sides[1].path:
        die(f"--base and --patch are the same directory ({sides[0].path})")
    kind = kinds.pop()
    if kind == prepare.DRIVER and sides[0].path.name != sides[1].path.name:
        die(f"--base {args.base} and --patch {args.patch}: a module source's folder is named "
            f"after the module, and these are not the same ({sides[0].path.name}, "
            f"{sides[1].path.name})")
    return kind, sides[0].path, None, sides


def cmd_validate(args: argparse.Namespace) -> int:
    import contextlib

    from orchestrator.builds import gittree
    from orchestrator.cli.progress import RunProgress
    from orchestrator.cli.runs import load_run
    from orchestrator.runs import execute, validate
    from orchestrator.runs.plan import PlanError

    kind, tree, repo, sides = _sides(args, _repo(args))
    job = _job(args, kind, tree, args.plan)
    out = Path(args.out) if args.out else execute.default_out("validate")
    pairs = ", ".join(p.label for p in job.plan.pairs)
    print(f"ktest validate: plan {job.plan.name} on {pairs}{f', -k {args.k!r}' if args.k else ''}")
    for s in sides:
        at = f" = {_short(s.commit)} ({repo.subject(s.commit)})" if s.commit else ""
        print(f"  {s.name:<5} {kind} {s.given}{at}")
    print(f"  results in {out}")
    progress = Progress()
    claimed: contextlib.AbstractContextManager[dict[str, Any]] = \
        gittree.claim(repo, [s.commit for s in sides]) if repo is not None else \
        contextlib.nullcontext({})
    try:
        with claimed as slots:
            sides = [dataclasses.replace(s, path=slots[s.commit].path) if s.commit else s
                     for s in sides]
            jobs = {}
            for s in sides:
                try:
                    jobs[s.name] = job.at(kind, s.path)
                except PlanError as e:
                    die(f"--{s.name} {s.given}: {e}")
                try:
                    jobs[s.name].build(progress)
                except Exception as e:  # noqa: BLE001 - BuildError, a missing directory
                    progress.done()
                    if s.name == "base":
                        for line in getattr(e, "details", []):
                            print(f"  {line}", file=sys.stderr)
                        die(f"the base does not build: {e}")
                    print(f"\nintroduced by the patch: it does not build: {e}")
                    for line in getattr(e, "details", []):
                        print(f"  {line}")
                    validate.write_summary(out, sides, None, build_failed="patch",
                                           error=str(e))
                    return EXIT_FAIL
            progress.done()
            results = {}
            for s in sides:
                print(f"\n== {s.name}: {s.given}")
                watch = RunProgress(jobs[s.name].plan.pairs)
                try:
                    results[s.name] = execute.run_plan(
                        jobs[s.name].plan, out / s.name, watcher=watch,
                        options=jobs[s.name].options(reruns=args.reruns, manifest={
                            "validate": {"side": s.name, **s.to_json()}}))
                finally:
                    watch.close()
                if results[s.name].interrupted:
                    return results[s.name].interrupted
    except gittree.GitError as e:
        progress.done()
        die(str(e))
    broken = [s.name for s in sides if not results[s.name].records]
    if "base" in broken:
        die(f"the base's run has no results: see {out / 'base'}")
    verdict = validate.classify(load_run(str(out / "base")).records,
                                load_run(str(out / "patch")).records)
    validate.write_summary(out, sides, verdict)
    print()
    for group in validate.GROUPS:
        rows = verdict.groups[group]
        if group == "unchanged":
            print(f"{validate.TITLES[group]}: {len(rows)} test(s)")
            continue
        if not rows:
            continue
        print(f"{validate.TITLES[group]}: {len(rows)}")
        for r in rows:
            msg = f": {r.message}" if r.message else ""
            print(f"  {r.before:>5} -> {r.after:<5} {r.pair}  {r.test}{msg}"[:300])
    if "patch" in broken:
        notes = [p.note for p in results["patch"].pairs if p.note]
        print(f"introduced by the patch: its run has no results"
              f"{f' ({notes[0]})' if notes else ''}")
    print(f"\nresults: {out / validate.SUMMARY}, {out}/base/, {out}/patch/")
    return EXIT_FAIL if verdict.introduced or broken else 0
