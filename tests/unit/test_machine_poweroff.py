"""How a guest's power-off ends: a normal one is "poweroff"; one that began
("sysrq: Power Off") and never finished is "poweroff-hung", and gets the
guest's hung-task timeout lowered while ktest waits, so the kernel names
the task it is blocked in; one that finished in the kernel ("reboot: Power
down") but left QEMU running is no hang."""

from __future__ import annotations

import subprocess
import types
from typing import Any

import pytest

from orchestrator.machine import vm

BEGAN = b"[   30.000000][  T91] sysrq: Power Off\n"
DONE = b"[   30.300000][  T10] reboot: Power down\n"


class Proc:
    """QEMU: exits after `waits` waits, or once it is told to quit."""

    def __init__(self, waits: int | None) -> None:
        self.waits: int | None = waits
        self.code: int | None = None

    def poll(self) -> int | None:
        return self.code

    def wait(self, timeout: float | None = None) -> int:
        if self.code is None and self.waits is not None:
            self.waits -= 1
            if self.waits < 0:
                self.code = 0
        if self.code is None:
            raise subprocess.TimeoutExpired("qemu", timeout or 0)
        return self.code


def stop(console: bytes, waits: int | None, monkeypatch: pytest.MonkeyPatch) -> tuple[str, list]:
    m = vm.Machine.__new__(vm.Machine)
    m.proc = Proc(waits)  # type: ignore[assignment]
    said: list[str] = []
    buf = bytearray()

    def cmd(command: str, **kw: Any) -> None:
        said.append(command)
        if "sysrq-trigger" in command:
            buf.extend(console)

    m.guest = types.SimpleNamespace(cmd=cmd)  # type: ignore[assignment]
    m.console = types.SimpleNamespace(  # type: ignore[assignment]
        size=0, panic_offset=None, data=lambda start=0, end=None: bytes(buf[start:end]))

    def quit_(*a: Any, **kw: Any) -> None:
        m.proc.code = 0  # type: ignore[union-attr]

    m.qmp = types.SimpleNamespace(connected=True, execute=quit_)  # type: ignore[assignment]
    return m._stop(timeout=10.0), said


def test_a_power_off_that_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    how, said = stop(BEGAN + DONE, 0, monkeypatch)
    assert how == "poweroff" and len(said) == 1, said


def test_a_power_off_that_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    how, said = stop(BEGAN, None, monkeypatch)
    assert how == vm.POWEROFF_HUNG
    assert len(said) == 2 and "/proc/sys/kernel/hung_task_timeout_secs" in said[1], said


def test_a_slow_power_off_that_ends_in_the_kernel_is_no_hang(
        monkeypatch: pytest.MonkeyPatch) -> None:
    how, said = stop(BEGAN + DONE, None, monkeypatch)
    assert how == "quit" and len(said) == 1, said


def test_a_guest_that_never_began_to_power_off_is_no_hang(
        monkeypatch: pytest.MonkeyPatch) -> None:
    how, said = stop(b"", None, monkeypatch)
    assert how == "quit" and len(said) == 1, said
