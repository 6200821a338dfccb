"""`ktest validate`: what a patch changes, from the same plan run on its base
and on the patch.

The two sides are two directories (kernel trees or module sources, git work
trees or not: a kernel tree is built incrementally where it is, cached by its
path and its state; a module by its content), or two refs of one git tree,
each checked out in a slot of ktest's own (never in the user's work tree).
:class:`Side` is one of them; :func:`classify` compares the records of the
two runs, test by test (the test id without the pair, and the pair):

    introduced     fails with the patch, not on the base (or with a kernel
                   report the base's failure did not have)
    fixed          failed on the base, passes with the patch
    still_failing  fails on both, the same way
    not_run        ran on the base, skipped or absent with the patch
    known          fails with the patch, explained by a known issue
    flaky          failed with the patch, then passed when run again
    unchanged      passes (or skips) on both

Anything introduced makes `ktest validate` exit 1.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.plugin.record import Record
from orchestrator.runs.verdicts import is_bad, status, test_key

GROUPS = ("introduced", "fixed", "still_failing", "not_run", "known", "flaky", "unchanged")
TITLES = {"introduced": "introduced by the patch", "fixed": "fixed by the patch",
          "still_failing": "unchanged, failing on both", "not_run": "not run with the patch",
          "known": "known issues with the patch", "flaky": "flaky with the patch",
          "unchanged": "unchanged"}
SUMMARY = "validate.json"
SIDES = ("base", "patch")


@dataclass(frozen=True)
class Side:
    """One side of a patch: its name (base or patch), what the user named
    (a directory or a ref), the commit (for a ref) and the tree to build."""

    name: str
    given: str
    path: Path
    commit: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"given": self.given, "path": str(self.path), "commit": self.commit}


@dataclass(frozen=True)
class Row:
    test: str  # the test id without the pair
    pair: str
    before: str  # status on the base, "-" if it did not run there
    after: str  # status with the patch, "-" if it did not run there
    message: str = ""


@dataclass
class Verdict:
    groups: dict[str, list[Row]] = field(default_factory=lambda: {g: [] for g in GROUPS})

    @property
    def introduced(self) -> bool:
        return bool(self.groups["introduced"])

    def counts(self) -> dict[str, int]:
        return {g: len(rows) for g, rows in self.groups.items()}

    def to_json(self) -> dict[str, Any]:
        return {"counts": self.counts(),
                **{g: [asdict(r) for r in rows] for g, rows in self.groups.items()}}


def _group(before: Record | None, after: Record | None) -> str:
    ran_before = before is not None and before.outcome != "skipped"
    if after is None:
        return "not_run" if ran_before else "unchanged"
    if is_bad(after):
        if before is None or not is_bad(before):
            return "introduced"
        new_reports = set(after.titles) - set(before.titles)
        return "introduced" if new_reports else "still_failing"
    if after.known is not None:
        return "known"
    if after.outcome == "flaky":
        return "flaky"
    if after.outcome == "skipped" and ran_before:
        return "not_run"
    if before is not None and is_bad(before):
        return "fixed"
    return "unchanged"


def classify(base: Sequence[Record], patch: Sequence[Record]) -> Verdict:
    """Each test of either run in one group (see the module's doc)."""
    before = {test_key(r): r for r in base}
    after = {test_key(r): r for r in patch}
    v = Verdict()
    for key in [*after, *(k for k in before if k not in after)]:
        b, a = before.get(key), after.get(key)
        shown = a if a is not None and (is_bad(a) or b is None or not is_bad(b)) else b
        assert shown is not None
        message = shown.reports[0].title if shown.reports else \
            shown.message.strip().split("\n")[0]
        v.groups[_group(b, a)].append(Row(key[0], key[1], status(b) if b else "-",
                                          status(a) if a else "-", message[:200]))
    return v


def write_summary(out: Path, sides: Sequence[Side], verdict: Verdict | None,
                  **more: Any) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / SUMMARY
    data = {**{s.name: s.to_json() for s in sides}, **more,
            **(verdict.to_json() if verdict else {})}
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
