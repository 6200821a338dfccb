"""`ktest bisect`: the commit that brought a failure, with the test's verdict
as git bisect's oracle.

The history is a user's kernel tree or an out-of-tree driver's source; ktest
bisects in a checkout of its own (a slot of :mod:`orchestrator.builds.gittree`),
never in the user's work tree. :func:`bisect` first judges the two ends (the
bad one must fail, the good one pass), then drives ``git bisect`` in the slot
step by step, as ``git bisect run`` would, with :class:`Oracle` as the
script: it builds the job with the tree at the commit (incrementally: the
slot keeps its path) and runs it (up to `tries` times, the loop of
`ktest repro`); :func:`verdict_of` maps the tries to git's words:

    bad    the same failure showed (the same kernel report title, or the same
           failure message class)                       (`git bisect run`: 1)
    good   every try passed                                           (0)
    skip   anything else: the build failed, the guest did not boot, another
           failure or report, no result                             (125)

The bad end's first failure is the failure looked for, unless the user names
one (--match): a FAIL, or an ERROR with a kernel report (an ERROR without
one, such as a boot that failed, cannot be the failure: the end is skipped).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.builds.gittree import GitError, Slot, git, run_git
from orchestrator.plugin.record import read_records
from orchestrator.runs import repro
from orchestrator.runs.prepare import Job
from orchestrator.runs.repro import ANY, PASS, Budget, ReproResult, Runner, Signature

GOOD, BAD, SKIP = "good", "bad", "skip"
EXIT_CODES = {GOOD: 0, BAD: 1, SKIP: 125}  # what `git bisect run` takes from its script
SUMMARY = "bisect.json"


class BisectError(Exception):
    """The bisection cannot go on: an end is not what it should be, or git
    failed (one line says why)."""


def verdict_of(res: ReproResult) -> tuple[str, str]:
    """The oracle: BAD when the failure showed in a try, GOOD when every try
    passed, SKIP otherwise; and what was seen."""
    if res.first_hit is not None:
        return BAD, res.first_hit.what
    if res.tries and all(t.verdict == PASS for t in res.tries):
        return GOOD, "PASS"
    other = next((t for t in res.tries if t.verdict != PASS), None)
    return SKIP, other.what if other else "not run"


@dataclass(frozen=True)
class Judged:
    verdict: str  # GOOD, BAD or SKIP
    what: str
    interrupted: int = 0  # the exit status an interruption asks for


Judge = Callable[[Path, Path], Judged]  # (the tree at the commit, an output folder)


class Oracle:
    """Judges a tree: `job` with the tree (`kind`: prepare.KERNEL or
    prepare.DRIVER) at `path`, built (a failed build: SKIP) and run up to
    `tries` times until `signature` shows. Without a signature, the first
    failure of the first tree judged becomes it (the bad end)."""

    def __init__(self, job: Job, kind: str, signature: Signature | None = None, tries: int = 1,
                 *, run: Runner = repro.quiet_run,
                 build: Callable[[Job], object] = lambda job: job.build(),
                 manifest: dict[str, Any] | None = None) -> None:
        self.job, self.kind, self.signature, self.tries = job, kind, signature, tries
        self.run, self.build = run, build
        self.manifest = manifest or {}

    def __call__(self, path: Path, out: Path) -> Judged:
        try:
            job = self.job.at(self.kind, path)
            self.build(job)
        except Exception as e:  # noqa: BLE001 - BuildError, a plan the tree breaks: skip it
            return Judged(SKIP, f"build failed: {e}"[:200])
        sig = self.signature or ANY
        replay = repro.Replay(job.plan, job.options(manifest={"bisect": self.manifest}))
        res = repro.reproduce(replay, sig, out, Budget(self.tries), run=self.run,
                              about={"tree": str(path), "signature": sig.to_json()})
        verdict, what = verdict_of(res)
        if self.signature is None and res.first_hit is not None:
            failed = [r for r in read_records(res.first_hit.out) if ANY.matches(r)]
            self.signature = repro.signature_of(failed[0])
        return Judged(verdict, what, res.interrupted)


@dataclass(frozen=True)
class Step:
    n: int  # 0: an end
    role: str  # "bad", "good" (the ends) or "step"
    commit: str
    subject: str
    verdict: str
    what: str
    seconds: float
    out: Path

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "role": self.role, "commit": self.commit, "subject": self.subject,
                "verdict": self.verdict, "what": self.what, "seconds": round(self.seconds, 1),
                "dir": str(self.out)}


@dataclass
class BisectResult:
    good: str
    bad: str
    steps: list[Step] = field(default_factory=list)
    first_bad: str | None = None
    candidates: list[str] = field(default_factory=list)  # only skipped commits were left
    signature: Signature | None = None
    seconds: float = 0.0
    interrupted: int = 0
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"good": self.good, "bad": self.bad, "first_bad": self.first_bad,
                "candidates": self.candidates,
                "signature": self.signature.to_json() if self.signature else None,
                "seconds": round(self.seconds, 1), "interrupted": self.interrupted,
                "error": self.error, "steps": [s.to_json() for s in self.steps]}


_FIRST_BAD = re.compile(r"^([0-9a-f]{40}) is the first bad commit", re.M)
_ONLY_SKIPPED = "There are only 'skip'ped commits left to test"
_SHA = re.compile(r"^[0-9a-f]{40}$")


def _state(output: str) -> tuple[str | None, list[str]] | None:
    """What git bisect said: (the first bad commit, []), (None, the commits
    it could be) when only skipped ones are left, or None: go on."""
    m = _FIRST_BAD.search(output)
    if m:
        return m.group(1), []
    if _ONLY_SKIPPED in output:
        after = output.split("could be any of:", 1)[-1].splitlines()
        return None, [ln.strip() for ln in after if _SHA.match(ln.strip())]
    return None


def _git_bisect(slot: Slot, *args: str) -> tuple[str | None, list[str]] | None:
    out = run_git(slot.top, "bisect", *args, check=False)
    text = out.stdout + out.stderr
    state = _state(text)
    if state is None and out.returncode != 0:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        raise BisectError(f"git bisect {args[0]} failed: {lines[0] if lines else out.returncode}")
    return state


def bisect(slot: Slot, good: str, bad: str, judge: Judge, out: Path, *,
           on_step: Callable[[Step], None] = lambda _: None,
           clock: Callable[[], float] = time.monotonic,
           looking_for: Callable[[], Signature | None] = lambda: None) -> BisectResult:
    """The first bad commit between the full commit ids `good` and `bad`,
    bisected in `slot` with `judge` as the oracle; out/SUMMARY says each
    step and `looking_for()` the failure looked for (an Oracle's signature).
    BisectError when an end is not what it should be (the steps so far are
    in the summary)."""
    res = BisectResult(good, bad)
    t0 = clock()

    def step(role: str, n: int) -> Step:
        sha = git(slot.top, "rev-parse", "HEAD")
        start = clock()
        where = out / (f"{role}-{sha[:12]}" if role != "step" else f"step-{n}-{sha[:12]}")
        j = judge(slot.path, where)
        s = Step(n, role, sha, git(slot.top, "log", "-1", "--format=%s", sha), j.verdict,
                 j.what, clock() - start, where)
        res.steps.append(s)
        res.interrupted = j.interrupted
        res.signature = looking_for()
        res.seconds = clock() - t0
        write_summary(out, res)
        on_step(s)
        return s

    try:
        for role, sha, want in (("bad", bad, BAD), ("good", good, GOOD)):
            slot.checkout(sha)
            s = step(role, 0)
            if res.interrupted:
                return res
            if s.verdict != want:
                why = {BAD: "fails too", GOOD: "does not fail", SKIP: "cannot be judged"}
                raise BisectError(f"the {role} end {sha[:12]} ({s.subject}) "
                                  f"{why[s.verdict]}: {s.what}")
        state = _git_bisect(slot, "start", bad, good)
        n = 0
        while state is None:
            n += 1
            s = step("step", n)
            if res.interrupted:
                return res
            state = _git_bisect(slot, s.verdict)
        res.first_bad, res.candidates = state
        return res
    except (BisectError, GitError) as e:
        res.error = str(e)
        raise BisectError(str(e)) from None
    finally:
        slot.end_bisect()
        res.seconds = clock() - t0
        write_summary(out, res)


def write_summary(out: Path, res: BisectResult) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / SUMMARY
    path.write_text(json.dumps(res.to_json(), indent=2) + "\n")
    return path
