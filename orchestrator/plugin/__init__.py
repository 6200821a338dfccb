"""pytest plugin `ktest` (entry point pytest11): NIC tests in booted guests.

A test asks for fixtures (see orchestrator.plugin.fixtures: machine, dut,
traffic, guest, cleanup) and runs once per (machine profile, driver) pair:
--ktest-pair PROFILE:DRIVER (repeatable), or every pair that can run out of
--ktest-machine and --ktest-driver. Every phase of every test is judged on
the guest console (orchestrator.plugin.verdict): a kernel report the test
does not allow (@pytest.mark.allow_reports("regex", ...)) fails it with the
report's title. @pytest.mark.requires("cap", ...) runs a test only on drivers
that declare the capability, and fails it if the driver declares it but does
not have it (orchestrator.plugin.capabilities). A test that a known emulator
limitation of this QEMU makes meaningless for a driver is marked xfail with
that reason (orchestrator.machine.qemu.LIMITATIONS).

With --ktest-out DIR: DIR/results.jsonl gets one record per test as it ends
(orchestrator.plugin.record), DIR/run.json what went into the run, and the
guests' run directories (console logs, QEMU command lines) and pcaps go
under DIR. With --ktest-reruns N a failed test runs again up to N times
(orchestrator.plugin.reruns); one that then passes is recorded as flaky.
A run interrupted (Ctrl-C, SIGTERM) tears its guests down at once, and the
test it stopped gets a record all the same, judged on its guest's console to
the last byte.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.machine import qemu
from orchestrator.plugin import capabilities, options, verdict
from orchestrator.plugin.fixtures import (  # noqa: F401 - fixtures and hooks pytest collects
    cleanup,
    dut,
    faults,
    guest,
    ktest_artifacts,
    ktest_out,
    ktest_pair,
    machine,
    pytest_generate_tests,
    traffic,
)
from orchestrator.plugin.options import pytest_addoption  # noqa: F401
from orchestrator.plugin.pool import pool_of
from orchestrator.plugin.record import RESULTS
from orchestrator.plugin.reruns import RerunHook
from orchestrator.plugin.results import ResultsHook
from orchestrator.scenario import drivers


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires(*caps): run only on drivers that declare "
                            "every capability; fail if a declared one is missing")
    config.addinivalue_line("markers", "allow_reports(*patterns): kernel reports whose "
                            "title matches a pattern do not fail the test")
    config.addinivalue_line("markers", "fault(name): a fault test; runs on drivers that "
                            "declare the fault, as a known failure where they say it fails")
    config.addinivalue_line("markers", "failure_reports(*patterns): kernel reports that are "
                            "the test's expected failure: one seen makes it XFAIL even if "
                            "its checks pass")
    config.addinivalue_line("markers", "failure_says(*regexes): what the test's expected "
                            "failure says: a failure that matches none of them, with none "
                            "of its failure_reports seen, is another failure")
    options.apply_qemu(config)
    out = config.getoption("--ktest-out", None)
    if out:
        config.pluginmanager.register(ResultsHook(Path(out) / RESULTS), "ktest-results")
    reruns = config.getoption("--ktest-reruns", 0) or 0
    if reruns > 0:
        config.pluginmanager.register(RerunHook(config, reruns), "ktest-reruns")
    if (signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
            and (out or config.getoption("--ktest-pair"))):
        # A terminated run tears its guests down like Ctrl-C does.
        signal.signal(signal.SIGTERM, _sigterm)


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """--ktest-tests FILE keeps the tests it lists; known emulator
    limitations of this QEMU become xfail with the reason; fault tests
    follow what the pair's driver declares."""
    listed = config.getoption("--ktest-tests", None)
    if listed:
        keep = set(Path(listed).read_text().splitlines())
        config.hook.pytest_deselected(items=[i for i in items if i.nodeid not in keep])
        items[:] = [i for i in items if i.nodeid in keep]
    try:
        v: qemu.QemuVersion | None = qemu.version()
    except qemu.QemuError:
        v = None
    for item in items:
        pair = _pair_of(item)
        if pair is None:
            continue
        capabilities.mark_fault(item, pair)
        lim = qemu.limitation_for(v, drivers.module_name(pair.driver), item.nodeid) \
            if v is not None else None
        if lim is not None:
            item.add_marker(pytest.mark.xfail(
                reason=f"known emulator limitation of QEMU {v}: {lim.reason}", strict=False))
            if lim.says:
                item.add_marker(pytest.mark.failure_says(*lim.says))


def _pair_of(item: pytest.Item) -> drivers.Pair | None:
    callspec = getattr(item, "callspec", None)
    pair = callspec.params.get("ktest_pair") if callspec is not None else None
    return pair if isinstance(pair, drivers.Pair) else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    item.config.stash[verdict.RUNNING] = (item, "setup")
    yield


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    item.config.stash[verdict.RUNNING] = (item, "call")
    capabilities.check(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After the pair's last test, its guest is shut down within that
    test's teardown (pytest would do it in the next pair's first setup, or
    after the session), so the guest's last words are that test's."""
    item.config.stash[verdict.RUNNING] = (item, "teardown")
    outcome: Any = yield
    if isinstance(outcome.exception, KeyboardInterrupt):
        return  # the run stops: the test is judged at the session's end
    pair = _pair_of(item)
    following = _pair_of(nextitem) if nextitem is not None else None
    if pair is not None and (following is None or following.label != pair.label):
        pool = pool_of(item.config, pair)
        if pool is not None:
            verdict.end_of_pair(item, pool)
    del item.config.stash[verdict.RUNNING]


@pytest.hookimpl(hookwrapper=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Iterator[None]:
    """An interrupted run (Ctrl-C, SIGTERM): pytest tears every fixture
    down now, the pairs' guests with them; the test that was running then
    gets its record, judged on what its guest said until it was off."""
    config = session.config
    stopped = exitstatus == pytest.ExitCode.INTERRUPTED
    if stopped:
        config.stash[verdict.INTERRUPTED] = True
    yield
    running = config.stash.get(verdict.RUNNING, None)
    pair = _pair_of(running[0]) if running is not None else None
    if not stopped or running is None or pair is None:
        return
    item, when = running
    rep = verdict.interrupted(item, when)
    rep.user_properties.append(("ktest_pair", pair.label))
    item.ihook.pytest_runtest_logreport(report=rep)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome: Any = yield
    rep: pytest.TestReport = outcome.get_result()
    pair = _pair_of(item)
    if pair is not None:
        rep.user_properties.append(("ktest_pair", pair.label))
    verdict.apply(item, rep)
    if verdict.STATE in item.stash:
        capabilities.strict_skip(rep)
