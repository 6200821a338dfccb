"""Judging a test on the guest console, in every phase.

Each ktest test is bracketed by marker lines written into the guest's kernel
log. After setup, call and teardown alike, the console since the last judged
byte is parsed (orchestrator.report): a kernel report the test does not allow
fails the test with the report's title, whatever the phase, so a panic while
a driver unloads in teardown fails a test whose body passed. When the guest
is dead, the judge waits for QEMU to close the console (the end of the
panic output) instead of sleeping; when it is alive, for the end marker.

Every byte of every guest's console is judged once: the pool keeps a ledger
of how far each guest was read. What a guest said outside any test (its
boot, the time between two tests, the shutdown of a guest discarded before
the next test began) is judged when the next test begins and fails that
test's setup, its report saying where it came from; what came after a test
ended is judged with that test's allowed reports. The pair's guest is shut
down in its last test's teardown and judged to its last byte there; a guest
whose power-off hung without a failing kernel report saying why fails as
vm.POWEROFF_HUNG_TITLE.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from typing import Any, Literal

import pytest

from orchestrator import report
from orchestrator.builds import module
from orchestrator.machine.vm import POWEROFF_HUNG, Machine, poweroff_hung_report
from orchestrator.plugin.pool import Judged, Pool
from orchestrator.plugin.record import ConsoleSpan, ReportRef
from orchestrator.plugin.results import STOPPED_IN, error_lines

MARK_BEGIN = "ktest: test begin"
MARK_END = "ktest: test end"
CLOSE_TIMEOUT = 30.0  # QEMU exits right after a panic (panic=-1, -no-reboot)
CONSOLE_LINES = 30  # console lines shown with a failure
XPASS_STRICT = "[XPASS(strict)] "  # pytest's longrepr of a strict xfail that passed


@dataclasses.dataclass
class TestState:
    pool: Pool
    machine: Machine | None
    allow: list[str]
    spans: list[ConsoleSpan] = dataclasses.field(default_factory=list)
    failing: list[Any] = dataclasses.field(default_factory=list)
    allowed: list[Any] = dataclasses.field(default_factory=list)
    decided: str = ""  # the phase whose kernel report failed the test
    baseline: dict[str, Any] | None = None  # DUT counters when the test started
    faults: Any = None  # the test's Faults, if it injects any
    carried: list[Any] = dataclasses.field(default_factory=list)  # for the next phase
    # id() of a failing report that came after another test ended: that test
    came_after: dict[int, str] = dataclasses.field(default_factory=dict)


STATE = pytest.StashKey[TestState]()
# in the config: the test phase running now, and whether the run was
# interrupted (Ctrl-C, SIGTERM: pytest then tears its fixtures down at once)
Phase = Literal["setup", "call", "teardown"]
RUNNING = pytest.StashKey[tuple[pytest.Item, Phase]]()
INTERRUPTED = pytest.StashKey[bool]()


def begin(item: pytest.Item, pool: Pool, machine: Machine) -> TestState:
    """Start judging `item` on `machine` from now on."""
    allow = [p for mk in item.iter_markers("allow_reports") for p in mk.args]
    st = TestState(pool, machine, allow)
    item.stash[STATE] = st
    attach(st, machine, item.nodeid)
    return st


def attach(st: TestState, machine: Machine, nodeid: str, note: str = "") -> None:
    """From now on the test runs on `machine` (its first guest, or a fresh
    one that replaced a wedged guest). What the pool's guests said before is
    judged first; its reports fail the test's setup."""
    assert machine.console is not None
    st.carried += _catch_up(st, [*st.pool.retired, machine]).failing
    st.machine = machine
    start = _ledger(st, machine).offset
    machine.mark(f"{MARK_BEGIN} {nodeid}{note}")
    st.pool.judged[str(machine.run_dir)] = Judged(start, nodeid, st.allow, st)
    last = st.spans[-1] if st.spans else None
    if last is None or last.run_dir != str(machine.run_dir) or last.end != start:
        st.spans.append(ConsoleSpan(str(machine.run_dir), start, start))


def end_of_pair(item: pytest.Item, pool: Pool) -> None:
    """`item` is the pair's last test and its fixtures are torn down: the
    pair's guest goes now, so what it says until it is off (a driver's
    shutdown callback, a late timer) is judged in this test's teardown. A
    last test that never used the guest judges it as what came after the
    test before it."""
    pool.close()
    if STATE not in item.stash and pool.retired:
        item.stash[STATE] = TestState(pool, None, [])


def interrupted(item: pytest.Item, when: Phase) -> pytest.TestReport:
    """`item`, running its phase `when` as the run was interrupted, as a
    report of that phase, judged once its guests are down (so to their
    consoles' last bytes): a kernel report it made fails it with its title,
    as in any phase (a hang is often why a run is stopped); without one it
    is an error that says it was interrupted."""
    rep = pytest.TestReport(item.nodeid, item.location, {}, "failed",
                            f"interrupted: the run was stopped in this test's {when}", when,
                            user_properties=[(STOPPED_IN, when)])
    apply(item, rep)
    return rep


def judge_phase(st: TestState, nodeid: str, phase: str) -> report.Verdict | None:
    m = st.machine
    if m is None:
        if not st.pool.retired:
            return None
        verdict = _catch_up(st, list(st.pool.retired))
    elif m.console is None:
        return None
    else:
        if m.alive() and not m.crashed:
            m.mark(f"{MARK_END} {nodeid} {phase}")
        else:
            m.console.wait_closed(CLOSE_TIMEOUT)
        verdict = _catch_up(st, [*st.pool.retired, m])
    verdict.failing = st.carried + verdict.failing
    st.carried = []
    if verdict.failing and not st.decided:
        st.decided = phase
    return verdict


def _ledger(st: TestState, m: Machine) -> Judged:
    return st.pool.judged.setdefault(str(m.run_dir), Judged())


def _catch_up(st: TestState, machines: list[Machine]) -> report.Verdict:
    """Judge each guest's console from the ledger's offset to its end (a
    live guest's: to its last whole line, so no report is cut in two). The
    pool's retired guests are read to their last byte and forgotten."""
    failing: list[report.Report] = []
    mine: list[report.Report] = []  # reports the test itself allows
    seen = set()
    for m in machines:
        if m.console is None or str(m.run_dir) in seen:
            continue
        seen.add(str(m.run_dir))
        entry = _ledger(st, m)
        end = _judged_end(m, entry.offset)
        verdict = report.judge(m.console.data(entry.offset, end), allow=entry.allow)
        own = entry.owner is st  # else the bytes came before this test began
        found = verdict.failing
        if m.ended == POWEROFF_HUNG and end > entry.offset and not found:
            found = [*found, poweroff_hung_report(m.console, entry.offset, end, CONSOLE_LINES)]
        bad = _name_inlined(st, found)
        if not own:
            bad = [dataclasses.replace(r, text=f"{_origin(st, m, entry)}\n{r.text}") for r in bad]
            st.came_after.update((id(r), entry.after) for r in bad if entry.after)
        span = _span_of(st, m)
        if own and span is not None:
            span.end = end
        elif bad or verdict.allowed:
            st.spans.append(ConsoleSpan(str(m.run_dir), entry.offset, end))
        entry.offset = end
        failing += bad
        if own:
            mine += verdict.allowed
        if m is st.pool.machine and (bad or verdict.allowed):
            # a guest that reported a bug is no clean witness any more
            # (lockdep, for one, turns itself off after its first report)
            st.pool.tainted = (bad or verdict.allowed)[0].title
    st.pool.retired = [m for m in st.pool.retired if str(m.run_dir) not in seen]
    st.failing += failing
    st.allowed += mine
    return report.Verdict(not failing, failing, mine)


def not_the_known_failure(item: pytest.Item, st: TestState, rep: pytest.TestReport) -> None:
    """An expected failure whose declaration knows what it looks like (the
    kernel reports that are it, what its message says) is that failure only
    when one of those shows in the test's body or teardown; any other
    failure of the test fails it (one in its setup always: the fault comes
    in the body), or a declared limitation would hide every bug in the same
    test. `says` is searched in the first line of the exception's message,
    not in the traceback (which quotes the test's source) nor in pytest's
    explanation of a failed assert (which shows the values in it)."""
    reports = [p for mk in item.iter_markers("failure_reports") for p in mk.args]
    says = [p for mk in item.iter_markers("failure_says") for p in mk.args]
    if not (reports or says):
        return
    text = rep.longreprtext
    crash = getattr(getattr(rep.longrepr, "reprcrash", None), "message", None)
    errs = error_lines(text)
    message = (crash if isinstance(crash, str) else "\n".join(errs)).strip()
    message = message.splitlines()[0] if message else ""
    if rep.when != "setup":
        if reports and report.judge(st.allowed, allow=reports).allowed:
            return
        if any(re.search(p, message) for p in says):
            return
        shown = [*(f"report {p}" for p in reports), *(f"message /{p}/" for p in says)]
        why = f"which shows as {' or '.join(shown)}"
    else:
        why = "which comes only once the test's body runs"
    first = errs[0] if errs else (text.strip().splitlines() or ["(no message)"])[0]
    rep.outcome = "failed"
    rep.longrepr = f"{first}\n\nnot the declared known failure ({rep.wasxfail}), {why}\n\n{text}"
    del rep.wasxfail


def _span_of(st: TestState, m: Machine) -> ConsoleSpan | None:
    """The test's last stretch of `m`'s console."""
    return next((s for s in reversed(st.spans) if s.run_dir == str(m.run_dir)), None)


def _judged_end(m: Machine, start: int) -> int:
    """Where to stop reading `m`'s console: its end once QEMU closed it,
    else after the last whole line."""
    assert m.console is not None
    if m.console.closed or m.crashed or not m.alive():
        m.console.wait_closed(CLOSE_TIMEOUT)
        return m.console.size
    data = m.console.data(start)
    return start + data.rfind(b"\n") + 1


def _origin(st: TestState, m: Machine, entry: Judged) -> str:
    guest = m.run_dir.name
    if st.machine is None:  # the pair's last test, which had no guest of its own
        when = f"after {entry.after} ended" if entry.after else "while it booted"
        return f"ktest: reported on guest {guest} {when}, by the end of the pair " \
               "(this test did not use it)"
    if not entry.after:
        return f"ktest: reported while guest {guest} booted, before this test began"
    return f"ktest: reported on guest {guest} after {entry.after} ended, before this test began"


def _name_inlined(st: TestState, reports: list[report.Report]) -> list[report.Report]:
    """Reports whose guilty frame is in the driver ktest built, titled
    after the function inlined there (the module's debug information)."""
    # (the pool's driver: its DUT is gone once the pair's last test closed it)
    drv = st.pool.driver
    ko = drv.ko if drv is not None else None
    twin = module.debug_twin(ko) if ko is not None and reports else None
    if twin is None:
        return reports
    assert ko is not None
    return [report.name_inlined(r, ko.stem.replace("-", "_"),
                                lambda f, o: module.inlined_at(twin, f, o)) for r in reports]


def console_tail(st: TestState, lines: int = CONSOLE_LINES) -> str:
    m = st.machine
    if m is None or m.console is None:
        return ""
    span = _span_of(st, m)
    if span is None:
        return ""
    text = m.console.data(span.start, None).decode(errors="replace")
    return "\n".join(text.replace("\r", "").splitlines()[-lines:])


def qemu_death(m: Machine | None) -> str:
    """"QEMU exited: <its last line>" when the guest's QEMU is gone without a
    kernel panic (an emulator crash is not the driver's verdict)."""
    if m is None or m.alive() or m.crashed or m.ended in ("poweroff", "quit", "kill",
                                                         POWEROFF_HUNG):
        return ""
    try:
        lines = (m.run_dir / "qemu.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    return f"QEMU exited: {lines[-1] if lines else 'no output'}"


def describe(reports: list[Any]) -> str:
    parts = []
    for r in reports:
        text = r.text if len(r.text) < 6000 else r.text[:6000] + "\n[...]"
        parts.append(f"kernel report: {r.title}\n{text}")
    return "\n\n".join(parts)


def dut_state(st: TestState) -> str:
    """The DUT as a driver engineer wants it at a failure: its step,
    carrier and operstate, and the counters that moved since the test began."""
    pool = st.pool
    d = pool.dut
    if d is None or st.machine is None or not st.machine.alive() or st.machine.crashed:
        return ""
    lines = []
    if d.current_step:
        lines.append(f"step: {d.current_step}")
    with contextlib.suppress(Exception):
        lines.append(d.link_summary())
    if st.baseline is not None:
        with contextlib.suppress(Exception):
            delta = d.counter_delta(st.baseline)
            if delta:
                lines.append("counters that moved during the test:")
                lines += [f"  {k}: {v:+d}" for k, v in sorted(delta.items())]
    return "\n".join(lines)


def apply(item: pytest.Item, rep: pytest.TestReport) -> None:
    """Judge the phase `rep` reports on and fold the verdict into it."""
    st = item.stash.get(STATE, None)
    if st is None:
        return
    verdict = judge_phase(st, item.nodeid, rep.when)
    if verdict is None:
        return
    refs = [ReportRef.of(r, after=st.came_after.get(id(r), "")) for r in verdict.failing]
    rep.user_properties.append(("ktest_reports", refs))
    rep.user_properties.append(("ktest_allowed", [r.title for r in verdict.allowed]))
    rep.user_properties.append(("ktest_console", list(st.spans)))
    failed_now = bool(verdict.failing)
    if failed_now:
        title = verdict.failing[0].title
        text = describe(verdict.failing)
        if rep.passed or rep.skipped:
            if hasattr(rep, "wasxfail"):
                del rep.wasxfail  # a kernel report is a bug even in an expected failure
            rep.outcome = "failed"
            rep.longrepr = f"{title}\n\n{text}"
        else:
            rep.sections.append(("kernel reports", text))
            rep.longrepr = f"{title}\n\n{rep.longreprtext}"
        rep.user_properties.append(("ktest_decided_by_report", rep.when))
    elif rep.skipped and hasattr(rep, "wasxfail"):
        not_the_known_failure(item, st, rep)
    elif rep.failed and isinstance(rep.longrepr, str) and rep.longrepr.startswith(XPASS_STRICT):
        # the test's checks passed, but a report that is its declared
        # failure came (a watchdog reset that brought traffic back): that is
        # the failure it declares, not a surprise recovery
        expected = [p for mk in item.iter_markers("failure_reports") for p in mk.args]
        seen = [r.title for r in report.judge(st.allowed, allow=expected).allowed]
        if seen:
            rep.outcome = "skipped"
            rep.wasxfail = f"{rep.longrepr[len(XPASS_STRICT):]} (got: {seen[0]})"
            rep.longrepr = None
    if rep.failed:
        d = st.pool.dut
        step = d.current_step if d is not None else ""
        last = st.faults.describe_last() if st.faults is not None else ""
        if last:
            step = f"{step}; {last}" if step else last
        died = qemu_death(st.machine)
        if died:
            step = f"{died}; {step}" if step else died
        if step:
            rep.user_properties.append(("ktest_step", step))
        state = dut_state(st)
        if state:
            rep.sections.append(("ktest: DUT state", state))
        tail = console_tail(st)
        if tail:
            rep.sections.append(("ktest: guest console (last lines of this test)", tail))
