"""results.jsonl: one Record per test, written as each test ends.

The outcome folds the three phases: a kernel report in any phase makes it
"failed" (phase = where); a harness failure in setup or teardown without one
is "error"; otherwise the call phase decides. A test run more than once
(orchestrator.plugin.reruns) keeps every try in Record.attempts, and one
that failed and then passed is "flaky", never a plain pass. A write that
fails stops the run with a clear error (pytest.exit), so no result is ever
lost silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.plugin.record import (
    BAD_OUTCOMES,
    Attempt,
    ConsoleSpan,
    Record,
    ReportRef,
    ResultsWriteError,
    append_record,
    now_iso,
)

# user property: [(name, outcome, reason)] of a test's own subtests
SUBTESTS = "ktest_subtests"
# user property: the phase a test was in when the run was interrupted
STOPPED_IN = "ktest_stopped_in"
_RANK = {"passed": 0, "skipped": 1, "xfailed": 2, "xpassed": 3, "error": 4, "failed": 5}


def phase_outcome(rep: pytest.TestReport) -> str | None:
    """What this phase's report says about the test (None: nothing new)."""
    decided_by_report = any(k == "ktest_decided_by_report" for k, _ in rep.user_properties)
    if rep.failed and not decided_by_report and \
            any(k == STOPPED_IN for k, _ in rep.user_properties):
        return "error"  # stopped by the run, not failed by its own checks
    if rep.when == "call":
        if hasattr(rep, "wasxfail"):
            return "xfailed" if rep.skipped else "xpassed"
        return "failed" if rep.failed else "skipped" if rep.skipped else None
    if rep.failed:
        return "failed" if decided_by_report else "error"
    if rep.skipped and rep.when == "setup":
        return "skipped"
    return None


def message_of(rep: pytest.TestReport) -> str:
    got = _failure_line(rep)
    why = str(getattr(rep, "wasxfail", ""))
    if why and why not in got:
        # an expected failure says first why it was expected, then what failed
        return f"{why} (got: {got})"[:500] if got else why[:500]
    return got


def _failure_line(rep: pytest.TestReport) -> str:
    if rep.skipped and isinstance(rep.longrepr, tuple):
        return str(rep.longrepr[2]).removeprefix("Skipped: ")
    text = rep.longreprtext.strip()
    if not text:
        return ""
    # the assertion or error line, or the first line (a kernel report title)
    errs = error_lines(text)
    return (errs[0] if errs else text.splitlines()[0])[:500]


def error_lines(longrepr: str) -> list[str]:
    """The "E " lines of pytest's failure text: the exception's message and
    pytest's explanation of a failed assert."""
    return [ln[2:].strip() for ln in longrepr.splitlines() if ln.startswith("E ")]


class ResultsHook:
    """Registered by the plugin when --ktest-out is given."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending: dict[str, Record] = {}
        self.tries: dict[str, list[Attempt]] = {}  # earlier tries of a rerun test
        # results a test reports for parts of itself (an upstream program's
        # subtests): a record each, after the test's own
        self.subtests: dict[str, list[Record]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.fold(report)

    def attempt_done(self, nodeid: str, reports: list[pytest.TestReport]) -> None:
        """A try of `nodeid` that will be run again: keep what it did."""
        for rep in reports:
            self.fold(rep)
        rec = self.pending.pop(nodeid, None)
        if rec is not None:
            rec.ended = now_iso()
            self.tries.setdefault(nodeid, []).append(_attempt(rec))

    def fold(self, rep: pytest.TestReport) -> None:
        rec = self.pending.setdefault(rep.nodeid, Record(test=rep.nodeid, started=now_iso()))
        rec.duration = round(rec.duration + rep.duration, 3)
        props: dict[str, Any] = {}
        for key, value in rep.user_properties:
            props[key] = value
        if "ktest_pair" in props:
            rec.pair = props["ktest_pair"]
        rec.reports += [r for r in props.get("ktest_reports", []) if isinstance(r, ReportRef)]
        rec.allowed_reports += props.get("ktest_allowed", [])
        if props.get("ktest_console"):
            rec.console = [ConsoleSpan(s.run_dir, s.start, s.end)
                           for s in props["ktest_console"]]
        outcome = phase_outcome(rep)
        if outcome and _RANK[outcome] > _RANK[rec.outcome]:
            rec.outcome = outcome
            rec.phase = rep.when
            rec.message = message_of(rep)
            if props.get("ktest_step"):
                rec.step = props["ktest_step"]
                rec.message = f"{rec.step}: {rec.message}"
        if rec.reports and rec.outcome == "failed" and rec.message != rec.reports[0].title:
            rec.message = rec.reports[0].title  # the kernel report decided it
        if SUBTESTS in props:  # (every later phase's report carries them again)
            self.subtests[rep.nodeid] = [Record(
                test=f"{rep.nodeid}/{name}", part_of=rep.nodeid, pair=rec.pair,
                outcome=outcome, phase="call",
                message=reason, console=rec.console, started=rec.started, ended=now_iso())
                for name, outcome, reason in props[SUBTESTS]]

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        rec = self.pending.pop(nodeid, None)
        if rec is None:
            return
        rec.ended = now_iso()
        tries = self.tries.pop(nodeid, [])
        if tries:
            _fold_tries(rec, tries)
        try:
            append_record(self.path, rec)
            for sub in self.subtests.pop(nodeid, []):
                append_record(self.path, sub)
        except ResultsWriteError as e:
            pytest.exit(f"ktest: {e}; stopping the run", returncode=3)


def _attempt(rec: Record) -> Attempt:
    return Attempt(rec.outcome, rec.phase, rec.message, rec.duration, rec.console,
                   rec.started, rec.ended)


def _fold_tries(rec: Record, tries: list[Attempt]) -> None:
    """The final record of a test that ran len(tries) + 1 times."""
    rec.attempts = [*tries, _attempt(rec)]
    rec.started = tries[0].started
    rec.duration = round(sum(a.duration for a in rec.attempts), 3)
    failed = [a for a in tries if a.outcome in BAD_OUTCOMES]
    if rec.outcome == "passed" and failed:
        rec.outcome = "flaky"
        rec.phase = failed[0].phase
        rec.message = (f"failed {len(failed)} of {len(rec.attempts)} tries, then passed: "
                       f"{failed[0].message}")[:500]
