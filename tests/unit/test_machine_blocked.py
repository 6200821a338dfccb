"""Tasks a test leaves in uninterruptible sleep (D): found at the test's
end from /proc, given the guest's hung-task timeout lowered to
BLOCKED_SECS so its own detector reports one that stays blocked within the
test, and the timeout restored. A worker that sleeps in D but runs between
samples (an msleep loop) is not waited for."""

from __future__ import annotations

import types
from typing import Any

import pytest

from orchestrator.machine import vm


def status(*tasks: tuple[int, str, int]) -> str:
    """grep's output over /proc/PID/status for (pid, state, switches)."""
    lines = []
    for pid, state, n in tasks:
        lines += [f"/proc/{pid}/status:State:\t{state} (whatever)",
                  f"/proc/{pid}/status:voluntary_ctxt_switches:\t{n}",
                  f"/proc/{pid}/status:nonvoluntary_ctxt_switches:\t1"]
    return "\n".join(lines) + "\n"


def test_blocked_in_keeps_only_d_tasks_with_their_switches() -> None:
    text = status((1, "S", 10), (25, "D", 7), (31, "I", 3), (40, "D", 0))
    assert vm.blocked_in(text) == {25: 8, 40: 1}
    assert vm.blocked_in("") == {}


def test_still_blocked_is_the_same_task_in_d_not_scheduled_since() -> None:
    first = {25: 8, 40: 1, 50: 3}
    # 25 unchanged; 40 ran in between (an msleep loop); 50 left D
    assert vm.still_blocked(first, {25: 8, 40: 2}) == [25]


def machine(samples: list[str], report_after: int | None,
            monkeypatch: pytest.MonkeyPatch) -> tuple[vm.Machine, list[str]]:
    """A live guest whose /proc shows `samples` in turn (the last one from
    then on); its console gets a hung-task report after `report_after`
    samples (None: never)."""
    m = vm.Machine.__new__(vm.Machine)
    said: list[str] = []
    buf = bytearray(b"[    1.0] booted\n")
    seen = [0]

    def cmd(command: str, **kw: Any) -> Any:
        said.append(command)
        out = ""
        if command.startswith("grep"):
            out = samples[min(seen[0], len(samples) - 1)]
            seen[0] += 1
            if report_after is not None and seen[0] > report_after:
                buf.extend(b"[   27.6] INFO: task kworker/1:0:25 blocked for more than "
                           b"10 seconds.\n")
        elif command.startswith("cat "):
            out = "60\n"
        return types.SimpleNamespace(stdout=out, ok=True)

    m.guest = types.SimpleNamespace(cmd=cmd)  # type: ignore[assignment]
    m.console = types.SimpleNamespace(  # type: ignore[assignment]
        size=len(buf), panic_offset=None, data=lambda start=0, end=None: bytes(buf[start:end]))
    monkeypatch.setattr(m, "alive", lambda: True)
    monkeypatch.setattr(vm, "BLOCKED_WAIT", 3.0)
    return m, said


KNOB = "/proc/sys/kernel/hung_task_timeout_secs"


def test_nothing_blocked_costs_one_look(monkeypatch: pytest.MonkeyPatch) -> None:
    m, said = machine([status((1, "S", 5))], None, monkeypatch)
    assert m.report_blocked_tasks() is False
    assert len(said) == 1 and not any(KNOB in c for c in said), said


def test_a_task_that_stays_blocked_is_waited_for_until_reported(
        monkeypatch: pytest.MonkeyPatch) -> None:
    stuck = status((25, "D", 7))
    m, said = machine([stuck], 3, monkeypatch)
    assert m.report_blocked_tasks() is True
    assert f"echo {vm.BLOCKED_SECS} > {KNOB}" in said, said
    assert said[-1] == f"echo 60 > {KNOB}", said  # restored after the report
    assert sum(c.startswith("grep") for c in said) >= 4, said


def test_a_task_that_runs_again_ends_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    m, said = machine([status((25, "D", 7)), status((25, "D", 9))], None, monkeypatch)
    assert m.report_blocked_tasks() is True
    assert sum(c.startswith("grep") for c in said) == 2, said
    assert said[-1] == f"echo 60 > {KNOB}", said


def test_the_timeout_is_restored_when_the_wait_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    m, said = machine([status((25, "D", 7))], None, monkeypatch)
    times = iter(range(0, 1000, 10))
    monkeypatch.setattr("orchestrator.waiting.time.monotonic", lambda: next(times))
    monkeypatch.setattr("orchestrator.waiting.time.sleep", lambda s: None)
    assert m.report_blocked_tasks() is True
    assert said[-1] == f"echo 60 > {KNOB}", said
