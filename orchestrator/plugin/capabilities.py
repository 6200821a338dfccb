"""`@pytest.mark.requires("cap", ...)`: capabilities are data.

Right before the test body runs: a capability the driver under test does not
declare (orchestrator.scenario.drivers) skips the test with the reason; one
it declares but the live probe in the guest cannot confirm fails the test
naming the capability, because that is a regression of the driver, not a
missing feature. In CI (CI=true) any other skip of a ktest test fails it:
a VM test that cannot run is a failure there.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from orchestrator.plugin import options
from orchestrator.scenario import drivers
from orchestrator.scenario.drivers import CAPABILITIES, FAILURE_REPORTS, FAULTS, KNOWN_FAILS

UNDECLARED = "not declared:"  # prefix of a skip reason CI accepts
# ... and of the other: what the driver declares it does not do, so a test
# of it has nothing to check (an operation it allocates nothing in)
NOTHING_TO_TEST = "nothing to test:"


def required(item: pytest.Item) -> list[str]:
    return [c for mk in item.iter_markers("requires") for c in mk.args]


def check(item: pytest.Item) -> None:
    caps = required(item)
    if not caps:
        return
    d: Any = getattr(item, "funcargs", {}).get("dut")
    if d is None:
        pytest.fail("@requires(...) needs the test to use the dut fixture", pytrace=False)
    info = d.driver.info
    for cap in caps:
        if cap not in CAPABILITIES:
            pytest.fail(f"unknown capability {cap!r} (known: {', '.join(CAPABILITIES)})",
                        pytrace=False)
        if cap not in info.capabilities:
            where = f" ({info.source})" if info.source else " (no ktest.yaml declares it)"
            pytest.skip(f"{UNDECLARED} {info.name} does not declare {cap}{where}")
    for cap in caps:
        if not d.has(cap):
            pytest.fail(f"capability {cap}: {info.name} declares it, but the live probe "
                        f"found otherwise ({CAPABILITIES[cap]})", pytrace=False)


def mark_fault(item: pytest.Item, pair: drivers.Pair) -> None:
    """@pytest.mark.fault(name): skip where the driver does not declare the
    fault; a strict xfail with the reason where it declares a known failure
    (the test still runs, and a surprise recovery is reported), with the
    kernel reports that are that failure allowed (FAILURE_REPORTS, and the
    titles the driver's declaration names): one of them seen is the
    declared failure, even where the test's own checks pass. Where such
    reports or what the failure says are known, a failure with neither is
    another one, and fails (verdict.not_the_known_failure)."""
    names = [n for mk in item.iter_markers("fault") for n in mk.args]
    if not names:
        return
    try:
        info = drivers.info_for(pair.driver)
    except Exception:  # a pair error is reported by the pair's own fixture
        return
    for name in names:
        if name not in FAULTS:
            raise pytest.UsageError(f"{item.nodeid}: unknown fault {name!r} "
                                    f"(known: {', '.join(FAULTS)})")
        exp = info.expectation(name)
        if exp is None:
            item.add_marker(pytest.mark.skip(
                reason=f"{UNDECLARED} {info.name} does not declare surviving {name}"))
        elif exp.startswith(KNOWN_FAILS):
            item.add_marker(pytest.mark.xfail(
                reason=f"known limitation of {info.name}: {exp[len(KNOWN_FAILS):].strip()}",
                strict=True))
            allow = [p.format(driver=re.escape(info.name)) for p in FAILURE_REPORTS.get(name, ())]
            allow += [f"^{re.escape(t)}$" for t in info.fault_reports.get(name, ())]
            if allow:
                item.add_marker(pytest.mark.allow_reports(*allow))
                item.add_marker(pytest.mark.failure_reports(*allow))
            if info.fault_says.get(name):
                item.add_marker(pytest.mark.failure_says(*info.fault_says[name]))


def strict_skip(rep: pytest.TestReport) -> None:
    """In CI, turn a skip other than for what the driver declares (a
    capability or fault it does not declare, an operation it declares it
    allocates nothing in) into a failure."""
    if not options.in_ci() or not rep.skipped or hasattr(rep, "wasxfail"):
        return
    reason = str(rep.longrepr[2]) if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
    reason = reason.removeprefix("Skipped: ")
    if reason.startswith((UNDECLARED, NOTHING_TO_TEST)):
        return
    rep.outcome = "failed"
    rep.longrepr = f"unexpected skip in CI (CI=true): {reason}"
