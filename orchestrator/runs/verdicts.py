"""What a record's outcome means to a person (pure): the status words of
the summary, compare and the HTML report, which outcomes fail a run, and
the name of a test without its pair.

A record keeps what the test did (`outcome`); a known issue (`known`) or a
rerun (`outcome == "flaky"`) only changes how it is shown and counted:

    PASS FAIL ERROR SKIP XFAIL XPASS   the outcome as pytest saw it
    XPASS   passed although a limitation of this QEMU was expected to make
            it fail (a non-strict xfail, orchestrator.machine.qemu): shown,
            never bad, since that emulator cannot show what the test checks.
            A driver's declared known failure is a strict xfail, so its
            unexpected pass is a FAIL (update the declaration).
    FLAKY   failed, then passed when run again (--reruns); never a plain pass
    KNOWN   a failure that a known issue explains (orchestrator.runs.known)
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.plugin.record import BAD_OUTCOMES, Record

OUTCOME = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP",
           "xfailed": "XFAIL", "xpassed": "XPASS", "flaky": "FLAKY"}
STATUSES = ("FAIL", "ERROR", "XPASS", "KNOWN", "FLAKY", "XFAIL", "SKIP", "PASS")


def status(r: Record) -> str:
    return "KNOWN" if r.known is not None else OUTCOME.get(r.outcome, r.outcome.upper())


def is_bad(r: Record) -> bool:
    """Does this record fail the run (a failure no known issue explains)?"""
    return r.outcome in BAD_OUTCOMES and r.known is None


def needs_a_look(r: Record) -> bool:
    """Failures, known ones and flakes: what gets a section of its own."""
    return r.outcome in BAD_OUTCOMES or r.outcome == "flaky"


def strip_pair(test: str, label: str | None) -> str:
    """The test id without the pair's parameter: `f.py::t[e1000e/e1000e-v4]`
    is `f.py::t[v4]` and `f.py::t[e1000e/e1000e]` is `f.py::t`."""
    if not label:
        return test
    for old, new in ((f"[{label}]", ""), (f"[{label}-", "["), (f"-{label}]", "]"),
                     (f"-{label}-", "-")):
        if old in test:
            return test.replace(old, new, 1)
    return test


def pair_in(test: str, labels: list[str]) -> str | None:
    """The pair label that parametrises this test id (the longest that fits)."""
    found = [lab for lab in labels if strip_pair(test, lab) != test]
    return max(found, key=len) if found else None


def test_key(r: Record) -> tuple[str, str]:
    """(test id without the pair, pair): how two runs' records are matched."""
    return strip_pair(r.test, r.pair), r.pair or ""


def test_name(r: Record) -> str:
    """The test id without the file path and without the pair's parameter."""
    return strip_pair(r.test, r.pair).split("::", 1)[-1]


def matrix(records: Sequence[Record]) -> tuple[list[str], dict[tuple[str, str], Record]]:
    """Test names in the order they first ran, and each (name, pair) cell's
    record (the last one, if a test ran twice)."""
    tests: list[str] = []
    cells: dict[tuple[str, str], Record] = {}
    for r in records:
        name = test_name(r)
        if name not in tests:
            tests.append(name)
        cells[(name, r.pair or "?")] = r
    return tests, cells
