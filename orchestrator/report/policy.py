"""Verdict policy: decide whether a log segment passes, given allow-lists."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .model import Kind, Report
from .parser import parse_log


class _Default:
    """Marker: fail on every report with severity "bug"."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT = _Default()

AllowItem = str | re.Pattern[str] | Kind


@dataclass
class Verdict:
    passed: bool
    failing: list[Report] = field(default_factory=list)
    allowed: list[Report] = field(default_factory=list)
    events: list[Report] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)

    def summary(self) -> str:
        if self.passed:
            return "passed" + (f" ({len(self.allowed)} allowed)" if self.allowed else "")
        return "failed: " + "; ".join(r.title for r in self.failing)


def _allowed(report: Report, allow: list[AllowItem]) -> bool:
    for item in allow:
        if isinstance(item, Kind):
            if report.kind is item:
                return True
        elif isinstance(item, re.Pattern):
            if item.search(report.title):
                return True
        elif re.search(item, report.title):
            return True
    return False


def judge(
    segment: bytes | str | Iterable[Report],
    allow: Iterable[AllowItem] = (),
    fail_kinds: Iterable[Kind] | _Default = DEFAULT,
) -> Verdict:
    """Judge a log segment (or already parsed reports).

    By default every report with severity "bug" fails the verdict and events
    never do. ``fail_kinds`` restricts failing to reports of those kinds (events
    of a listed kind then fail too, e.g. ``{Kind.LINK_CHANGE}`` to fail on link
    flaps). A report matching an ``allow`` item (a regex searched in the title,
    or a Kind) is allowed instead of failing.
    """
    if isinstance(segment, (bytes, bytearray, memoryview, str)):
        reports = parse_log(segment)
    else:
        reports = list(segment)
    allow_list = list(allow)
    kinds = None if isinstance(fail_kinds, _Default) else frozenset(fail_kinds)
    verdict = Verdict(passed=True, reports=reports)
    for r in reports:
        decisive = r.is_bug if kinds is None else r.kind in kinds
        if not decisive:
            if not r.is_bug:
                verdict.events.append(r)
            continue
        if _allowed(r, allow_list):
            verdict.allowed.append(r)
        else:
            verdict.failing.append(r)
    verdict.passed = not verdict.failing
    return verdict
