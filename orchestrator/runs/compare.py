"""`ktest compare RUN_A RUN_B`: what changed from a baseline run A to run B.

Tests are matched by (test id without the pair's parameter, pair). Each
test of B that is worth a look, and each failure of A that B did not
repeat, lands in one group:

    new             fails in B, did not fail in A (or was not in A)
    still_failing   fails in both
    fixed           failed in A, passes in B
    not_run         failed in A, absent from B
    skipped_now     ran in A (passed or failed), skipped in B: coverage lost
                    (a capability the driver no longer reports), or a
                    failure now hidden as a skip
    known           fails in B, explained by a known issue
    flaky           failed, then passed when run again, in B

"Fails" means a failure no known issue explains (runs.verdicts.is_bad).
Anything new, and any test that ran in A and skips in B, makes `ktest
compare` exit 1, for CI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator.plugin.record import Record
from orchestrator.runs.rundir import Run
from orchestrator.runs.verdicts import is_bad, status, test_key

RAN = ("passed", "failed", "error", "flaky")  # outcomes of a test that ran and counted
GROUPS = ("new", "still_failing", "fixed", "not_run", "skipped_now", "known", "flaky")
TITLES = {"new": "new failures", "still_failing": "still failing", "fixed": "fixed",
          "not_run": "failed before, not run now", "skipped_now": "ran before, skipped now",
          "known": "known issues", "flaky": "flaky"}


@dataclass(frozen=True)
class Row:
    test: str  # the test id without the pair
    pair: str
    before: str  # status in A, "-" if A did not run it
    after: str  # status in B, "-" if B did not run it
    message: str = ""
    reason: str = ""  # the known issue's reason


@dataclass
class Comparison:
    base: str  # run directory A
    run: str  # run directory B
    groups: dict[str, list[Row]] = field(default_factory=lambda: {g: [] for g in GROUPS})

    @property
    def anything_new(self) -> bool:
        return bool(self.groups["new"] or self.groups["skipped_now"])

    def to_json(self) -> dict[str, Any]:
        return {"base": self.base, "run": self.run,
                "counts": {g: len(rows) for g, rows in self.groups.items()},
                **{g: [asdict(r) for r in rows] for g, rows in self.groups.items()}}


def _group(before: Record | None, after: Record | None) -> str | None:
    was_bad = before is not None and is_bad(before)
    if after is None:
        return "not_run" if was_bad else None
    if is_bad(after):
        return "still_failing" if was_bad else "new"
    if after.known is not None:
        return "known"
    if after.outcome == "flaky":
        return "flaky"
    if after.outcome == "skipped" and before is not None and before.outcome in RAN:
        return "skipped_now"
    if was_bad:
        return "fixed" if after.outcome in ("passed", "xfailed", "xpassed") else "not_run"
    return None


def compare(a: Run, b: Run) -> Comparison:
    base = {test_key(r): r for r in a.records}
    now = {test_key(r): r for r in b.records}
    c = Comparison(str(a.path), str(b.path))
    for key in [*now, *(k for k in base if k not in now)]:
        before, after = base.get(key), now.get(key)
        group = _group(before, after)
        if group is None:
            continue
        shown = after if after is not None else before
        assert shown is not None
        c.groups[group].append(Row(
            key[0], key[1], status(before) if before else "-", status(after) if after else "-",
            shown.message, after.known.reason if after and after.known else ""))
    return c


def table(c: Comparison) -> str:
    lines = [f"baseline {c.base}", f"run      {c.run}", "", summary_line(c)]
    for g in GROUPS:
        rows = c.groups[g]
        if not rows:
            continue
        lines += ["", f"{TITLES[g]}:"]
        lines += [_row_line(r) for r in rows]
    return "\n".join(lines)


def _row_line(r: Row) -> str:
    why = f" [known: {r.reason}]" if r.reason else ""
    msg = f": {r.message}" if r.message else ""
    return f"  {r.before:>5} -> {r.after:<5} {r.pair}  {r.test}{msg}{why}"[:300]


def summary_line(c: Comparison) -> str:
    return ", ".join(f"{len(c.groups[g])} {TITLES[g]}" for g in GROUPS)
