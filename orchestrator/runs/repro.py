"""One record's test again, exactly as its run ran it: same pair (profile
and driver as the user named them), same kernel and QEMU choices.

:func:`rerun` says what to run (a plan of that one pair, the test id,
the choices; ``Rerun.plan()`` and ``Rerun.options()`` are what
``execute.run_plan`` takes) for code that runs it (`ktest repro`);
:func:`command` is the same as a `ktest run` command line, for people
(report.html).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from orchestrator.plugin.record import Record
from orchestrator.runs.choices import Choices
from orchestrator.runs.execute import RunOptions
from orchestrator.runs.plan import Plan, adhoc_plan
from orchestrator.runs.rundir import Run


class ReproError(Exception):
    """The run does not say enough to run this record's test again."""


@dataclass(frozen=True)
class Rerun:
    profile: str
    driver: str
    test: str  # the full test id, pair parameter included
    choices: Choices

    @property
    def pair_spec(self) -> str:
        return f"{self.profile}:{self.driver}"

    def argv(self) -> list[str]:
        return ["ktest", "run", "-m", self.profile, "-d", self.driver, "--test", self.test,
                *self.choices.cli_args()]

    def plan(self, base: Plan) -> Plan:
        """A plan of this one pair (with `base`'s suites, where the test is)."""
        return adhoc_plan([self.profile], [self.driver], base)

    def options(self, plan: Plan, **more: Any) -> RunOptions:
        """How run_plan runs just this test with the run's choices; `more`
        (reruns, issues, manifest...) as for RunOptions."""
        (pair,) = plan.pairs
        manifest = {"choices": self.choices.to_dict(), **more.pop("manifest", {})}
        return RunOptions(extra=tuple(self.choices.plugin_args()),
                          tests={pair.label: [self.test]}, manifest=manifest, **more)


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
    return Rerun(profile, driver, r.test, Choices.from_dict(run.manifest.get("choices") or {}))


def command(run: Run, r: Record) -> str:
    """The `ktest run` command line that runs just this test again."""
    return shlex.join(rerun(run, r).argv())
