"""One failure again, exactly as its run ran it, until it shows again.

:func:`rerun` turns a record of a run directory into a :class:`Rerun`: the
same pair (profile and driver as the user named them), the same kernel and
QEMU choices, the same driver parameters and suite knobs (run.json), and
the fault a sweep was at when the test failed (its ``replay:`` hint, e.g.
``KTEST_SWEEP=probe:7``). :func:`command` is the same as a `ktest run`
command line, for people (report.html). :func:`read_console` finds in a
console log the first bug's title and the test that was running, for a
failure that comes without its run directory.

What counts as the same failure is a :class:`Signature`: the title of the
kernel report that decided the test, else the failure message's class (the
message with numbers and addresses normalised, as report titles are), or a
pattern of the user's. :func:`reproduce` runs a :class:`Replay` again and
again, each try a run directory of its own, until the signature shows or a
budget of tries and time runs out; `ktest bisect` judges each commit with
the same loop.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator.plugin.record import Record
from orchestrator.report.titles import normalize_title
from orchestrator.runs import execute
from orchestrator.runs.choices import Choices
from orchestrator.runs.execute import RunOptions, RunResult
from orchestrator.runs.plan import DEFAULT_SUITES, Plan, adhoc_plan
from orchestrator.runs.prepare import Job
from orchestrator.runs.rundir import Run
from orchestrator.runs.verdicts import BAD_OUTCOMES, OUTCOME, needs_a_look, strip_pair, test_name

SUMMARY = "repro.json"


class ReproError(Exception):
    """The input does not say enough to run the failure again (one line)."""


@dataclass(frozen=True)
class Rerun:
    profile: str
    driver: str
    test: str  # the full test id, pair parameter included
    choices: Choices
    env: tuple[tuple[str, str], ...] = ()  # suite knobs: KTEST_CYCLES, KTEST_SWEEP, ...
    driver_params: str = ""
    suites: tuple[str, ...] = DEFAULT_SUITES

    @property
    def pair_spec(self) -> str:
        return f"{self.profile}:{self.driver}"

    def argv(self) -> list[str]:
        params = ["--driver-params", self.driver_params] if self.driver_params else []
        return [*(f"{k}={v}" for k, v in self.env), "ktest", "run", "-m", self.profile,
                "-d", self.driver, "--test", self.test, *params, *self.choices.cli_args()]

    def with_env(self, env: dict[str, str]) -> Rerun:
        """The same with more (or other) suite knobs."""
        return replace(self, env=tuple(sorted({**dict(self.env), **env}.items())))

    def plan(self, base: Plan | None = None) -> Plan:
        """A plan of this one pair, with `base`'s suites (default: the
        suites the run ran)."""
        base = base or Plan("repro", None, "", self.suites, (), True, "")
        return adhoc_plan([self.profile], [self.driver], base)

    def job(self, plan: Plan) -> Job:
        """Just this test on `plan`'s one pair, with the run's choices,
        driver parameters and knobs."""
        (pair,) = plan.pairs
        return Job(plan, self.choices, tests={pair.label: [self.test]},
                   driver_params=self.driver_params, env=dict(self.env))

    def options(self, plan: Plan, **more: Any) -> RunOptions:
        """How run_plan runs just this test with the run's choices; `more`
        (reruns, issues, manifest, env...) as for RunOptions."""
        return self.job(plan).options(**more)

    def replay(self, **more: Any) -> Replay:
        plan = self.plan()
        return Replay(plan, self.options(plan, **more), frozenset([self.test]))


_REPLAY = re.compile(r"replay:\s*((?:KTEST_\w+=[^\s);,]+[\s,]*)+)")
_ASSIGN = re.compile(r"(KTEST_\w+)=([^\s);,]+)")


def replay_hints(*texts: str) -> dict[str, str]:
    """The suite's ``(replay: KTEST_SWEEP=probe:7)`` hints in a record's
    step or message: the knobs that put a test where it failed."""
    out: dict[str, str] = {}
    for text in texts:
        for m in _REPLAY.finditer(text or ""):
            out.update(_ASSIGN.findall(m.group(1)))
    return out


def rerun(run: Run, r: Record) -> Rerun:
    if not r.pair:
        raise ReproError(f"{r.test}: the record names no pair")
    plan = run.manifest.get("plan") or {}
    spec = (plan.get("specs") or {}).get(r.pair)
    if spec:
        profile, _, driver = str(spec).partition(":")
    else:  # a run from before pair specs were recorded: the label's names
        profile, _, driver = r.pair.partition("/")
    if not profile or not driver:
        raise ReproError(f"{r.test}: cannot tell profile and driver of pair {r.pair!r}")
    env = {str(k): str(v) for k, v in (run.manifest.get("env") or {}).items()}
    env.update(replay_hints(r.step, r.message, *(a.message for a in r.attempts)))
    return Rerun(profile, driver, r.test, Choices.from_dict(run.manifest.get("choices") or {}),
                 tuple(sorted(env.items())), str(run.manifest.get("driver_params") or ""),
                 tuple(str(s) for s in plan.get("suites") or DEFAULT_SUITES))


def command(run: Run, r: Record) -> str:
    """The `ktest run` command line that runs just this test again."""
    return shlex.join(rerun(run, r).argv())


def find_record(run: Run, test: str | None) -> Record:
    """The record a user names: its full id, its id without the pair, or its
    name as the summary shows it; without a name, the run's one failure."""
    if test is None:
        bad = [r for r in run.records if needs_a_look(r)]
        if len(bad) == 1:
            return bad[0]
        if not bad:
            raise ReproError(f"{run.path}: no failure to reproduce")
        raise ReproError(f"{run.path}: {len(bad)} failures; name one (e.g. {bad[0].test})")
    found = [r for r in run.records if test in (r.test, strip_pair(r.test, r.pair),
                                                   test_name(r))]
    if len(found) > 1:
        found = [r for r in found if needs_a_look(r)] or found
    if not found:
        raise ReproError(f"{test}: no such test in {run.path}")
    if len(found) > 1:
        raise ReproError(f"{test}: {len(found)} results in {run.path} "
                         f"({', '.join(r.pair or '?' for r in found)}): give the full test id")
    return found[0]


_DIGITS = re.compile(r"[0-9]+")


def message_class(message: str) -> str:
    """A failure message's first line without what changes from one
    occurrence to the next: addresses and numbers, as in report titles, and
    every other digit too ("after 15s", "eth1")."""
    lines = message.strip().splitlines()
    return _DIGITS.sub("N", normalize_title(lines[0])) if lines else ""


@dataclass(frozen=True)
class Signature:
    """What counts as the same failure."""

    kind: str  # "title" (of a kernel report), "message" (its class), "match" (a regex)
    text: str  # or "any": a failure the test itself saw, to be named by what it shows

    def matches(self, r: Record) -> bool:
        if r.outcome not in BAD_OUTCOMES:
            return False
        if self.kind == "any":  # not an ERROR without a kernel report: a boot that failed
            return r.outcome != "error" or bool(r.reports)
        if self.kind == "title":
            return self.text in r.titles
        if self.kind == "message":
            return not r.reports and message_class(r.message) == self.text
        return any(re.search(self.text, t) for t in [r.message, *r.titles])

    def __str__(self) -> str:
        if self.kind == "any":
            return "any test failure"
        what = {"title": "kernel report", "message": "failure", "match": "failure matching"}
        return f"{what[self.kind]} {self.text!r}"

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "text": self.text}


ANY = Signature("any", "")


def match(pattern: str) -> Signature:
    """A user's regex as a signature (ReproError if it is not one)."""
    try:
        re.compile(pattern)
    except re.error as e:
        raise ReproError(f"--match {pattern!r}: not a regular expression ({e})") from None
    return Signature("match", pattern)


def signature_of(r: Record) -> Signature:
    """The failure of a record: its kernel report's title, else its
    message's class (a flaky test: its first failed try's)."""
    if r.reports:
        return Signature("title", r.reports[0].title)
    if r.outcome == "flaky":
        failed = [a for a in r.attempts if a.outcome in BAD_OUTCOMES]
        if failed:
            return Signature("message", message_class(failed[0].message))
    if r.outcome in BAD_OUTCOMES:
        return Signature("message", message_class(r.message))
    raise ReproError(f"{r.test}: {OUTCOME.get(r.outcome, r.outcome).upper()} in its run: "
                     "nothing to reproduce (--match REGEX looks for something else)")


# ---- a console log without its run directory ----------------------------------------

_LABEL = re.compile(r"\[([^\[\]/\s]+/\w+)(?=[-\]])")


def label_in(test: str) -> str | None:
    """The pair label a test id carries (its first parameter), if any."""
    m = _LABEL.search(test)
    return m.group(1) if m else None


@dataclass(frozen=True)
class Clue:
    """What a console log says: its first bug's title, and the test that was
    running then (the last ktest test marker before it)."""

    title: str | None
    test: str | None


def read_console(data: bytes) -> Clue:
    from orchestrator import report
    from orchestrator.plugin.verdict import MARK_BEGIN

    bugs, _ = report.bugs_and_events(report.parse(data))
    limit = bugs[0].start if bugs else len(data)
    marker = (MARK_BEGIN + " ").encode()
    at = data.rfind(marker, 0, limit)
    test = None
    if at >= 0:
        rest = data[at + len(marker):].split(b"\n", 1)[0].decode(errors="replace").strip()
        test = rest.split()[0] if rest else None
    return Clue(bugs[0].title if bugs else None, test)


def rerun_of_console(clue: Clue, choices: Choices, test: str | None = None,
                     machine: str | None = None, driver: str | None = None,
                     env: dict[str, str] | None = None) -> Rerun:
    """The test a console log names (or `test`) on the pair its id names
    (or `machine` and `driver`), with `choices`."""
    from orchestrator.machine.profiles import available_profiles
    from orchestrator.scenario import drivers

    test = test or clue.test
    if not test:
        raise ReproError("no ktest test marker before the report: give the test id, "
                         "--machine and --driver")
    label = label_in(test)
    profile, _, module = (label or "").partition("/")
    if label and (machine or driver):  # another pair: the id gets that pair's label
        test = strip_pair(test, label)
    if not machine and profile not in available_profiles():
        raise ReproError(f"{test}: cannot tell its machine profile: give --machine PROFILE")
    if not driver and module not in drivers.known():
        what = f"driver {module}, which ktest does not ship" if module else "no driver"
        raise ReproError(f"{test} names {what}: give --driver (ktest_nic, an in-tree "
                         "driver, a module source directory or a .ko)")
    return Rerun(machine or profile, driver or module, test, choices,
                 tuple(sorted((env or {}).items())))


def full_test_id(plan: Plan, test: str, extra: Sequence[str] = ()) -> str:
    """`test` as the plan's pair runs it: ids without the pair's parameter
    get it from the plan's test list (pytest --collect-only, no guest)."""
    from orchestrator.runs import select

    (pair,) = plan.pairs
    if label_in(test) == pair.label:
        return test
    try:
        ids = select.collect(plan, extra=extra).get(pair.label, [])
    except select.SelectError as e:
        raise ReproError(str(e)) from None
    found = [t for t in ids if test in (t, strip_pair(t, pair.label),
                                        strip_pair(t, pair.label).split("::")[-1])]
    if len(found) != 1:
        why = "not a test" if not found else f"{len(found)} tests"
        raise ReproError(f"{test}: {why} of {pair.label} (`ktest run --list -m {pair.profile} "
                         f"-d {pair.driver}` shows them)")
    return found[0]


# ---- the loop --------------------------------------------------------------------------

Runner = Callable[[Plan, Path, RunOptions], RunResult]


def quiet_run(plan: Plan, out: Path, options: RunOptions) -> RunResult:
    return execute.run_plan(plan, out, options=options, watcher=execute.Watcher())


@dataclass(frozen=True)
class Replay:
    """What one try runs, and the tests whose records count (None: all)."""

    plan: Plan
    options: RunOptions
    tests: frozenset[str] | None = None


@dataclass(frozen=True)
class Budget:
    tries: int = 10
    seconds: float | None = None  # no try starts after this
    keep_going: bool = False  # all the tries, for a hit rate, not only to the first hit


HIT, PASS, OTHER, NONE = "hit", "pass", "other", "none"


def _describe(r: Record) -> str:
    what = r.reports[0].title if r.reports else r.message.strip().split("\n")[0]
    return f"{OUTCOME.get(r.outcome, r.outcome)}: {what}"[:200] if what else \
        OUTCOME.get(r.outcome, r.outcome)


def judge(sig: Signature, result: RunResult, tests: Collection[str] | None = None
          ) -> tuple[str, str]:
    """A try's verdict: HIT (the signature showed), PASS (nothing failed and
    something passed), OTHER (another failure, or nothing passed), NONE (no
    record: pytest broke, the run was interrupted); and what it saw."""
    mine = [r for r in result.records if tests is None or r.test in tests]
    for r in mine:
        if sig.matches(r):
            return HIT, _describe(r)
    bad = [r for r in mine if r.outcome in BAD_OUTCOMES]
    if bad:
        return OTHER, _describe(bad[0])
    if any(r.outcome == "passed" for r in mine):
        return PASS, "PASS"
    if mine:
        return OTHER, _describe(mine[0])
    notes = [p.note for p in result.pairs if p.note] + list(result.notes)
    return NONE, "no result" + (f" ({notes[0]})" if notes else "")


@dataclass(frozen=True)
class Try:
    n: int
    out: Path
    verdict: str
    what: str
    seconds: float
    elapsed: float  # since the first try started, at this one's end

    def to_json(self) -> dict[str, Any]:
        return {"try": self.n, "dir": str(self.out), "verdict": self.verdict,
                "what": self.what, "seconds": round(self.seconds, 1),
                "elapsed": round(self.elapsed, 1)}


@dataclass
class ReproResult:
    signature: Signature
    tries: list[Try] = field(default_factory=list)
    interrupted: int = 0

    @property
    def hits(self) -> list[Try]:
        return [t for t in self.tries if t.verdict == HIT]

    @property
    def first_hit(self) -> Try | None:
        return self.hits[0] if self.hits else None

    @property
    def rate(self) -> float:
        return len(self.hits) / len(self.tries) if self.tries else 0.0

    def to_json(self) -> dict[str, Any]:
        first = self.first_hit
        return {"signature": self.signature.to_json(), "tries": len(self.tries),
                "hits": len(self.hits), "rate": round(self.rate, 3),
                "first_hit": first.to_json() if first else None,
                "interrupted": self.interrupted, "each": [t.to_json() for t in self.tries]}


def reproduce(replay: Replay, sig: Signature, out: Path, budget: Budget, *,
              run: Runner = quiet_run, on_try: Callable[[Try], None] = lambda _: None,
              about: dict[str, Any] | None = None,
              clock: Callable[[], float] = time.monotonic) -> ReproResult:
    """Run `replay` into out/try-N until `sig` shows (all the tries with
    keep_going), the tries run out or no try may start any more; out/repro.json
    says what each try saw, and `about` what was replayed."""
    res = ReproResult(sig)
    t0 = clock()
    for n in range(1, budget.tries + 1):
        if n > 1 and budget.seconds is not None and clock() - t0 >= budget.seconds:
            break
        start = clock()
        tdir = out / f"try-{n}"
        result = run(replay.plan, tdir, replace(
            replay.options, manifest={**replay.options.manifest, "repro_try": n}))
        verdict, what = judge(sig, result, replay.tests)
        if result.interrupted:
            verdict, what = NONE, "interrupted"
        end = clock()
        t = Try(n, tdir, verdict, what, end - start, end - t0)
        res.tries.append(t)
        res.interrupted = result.interrupted
        write_summary(out, res, about)
        on_try(t)
        if result.interrupted or (verdict == HIT and not budget.keep_going):
            break
    write_summary(out, res, about)
    return res


def write_summary(out: Path, res: ReproResult, about: dict[str, Any] | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / SUMMARY
    path.write_text(json.dumps({**(about or {}), **res.to_json()}, indent=2) + "\n")
    return path
