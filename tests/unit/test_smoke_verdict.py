"""`ktest smoke` judges the guest's power-off too: a power-off that hangs,
or a report made while the guest goes down, fails the check; a clean one
passes it."""

from __future__ import annotations

import types

from orchestrator.machine import profiles, vm
from orchestrator.scenario.smoke import SmokeResult, Step, judge_power_off, run_smoke

CHECK = b"[    9.000000][  T1] ktest: smoke end\n"
BEGAN = b"[   10.000000][  T91] sysrq: Power Off\n"
DONE = b"[   10.300000][  T10] reboot: Power down\n"
WARN = """\
------------[ cut here ]------------
WARNING: CPU: 0 PID: 91 at drivers/net/ktest_nic/ktnic_main.c:41 ktnic_shutdown+0x4/0x9 [ktest_nic]
Modules linked in: ktest_nic(O)
CPU: 0 PID: 91 Comm: kworker/0:1 Tainted: G           O       6.12.0 #1
RIP: 0010:ktnic_shutdown+0x40/0x90 [ktest_nic]
Call Trace:
 <TASK>
 pci_device_shutdown+0x34/0x70
 device_shutdown+0x15e/0x240
 </TASK>
---[ end trace 0000000000000000 ]---
"""
HUNG = """\
INFO: task kworker/0:1:91 blocked for more than 2 seconds.
      Tainted: G           O       6.12.0 #1
"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
task:kworker/0:1     state:D stack:0     pid:91    tgid:91    ppid:2      flags:0x00004000
Workqueue: events poweroff_work_func
Call Trace:
 <TASK>
 __schedule+0x3f0/0xb40
 schedule+0x27/0xf0
 schedule_timeout+0x9e/0x160
 wait_for_completion+0x86/0x170
 ktnic_shutdown+0x2e/0x60 [ktest_nic]
 pci_device_shutdown+0x34/0x70
 device_shutdown+0x15e/0x240
 kernel_power_off+0x31/0x70
 process_one_work+0x17a/0x3b0
 </TASK>
"""


def lines(text: str, t: float = 12.0) -> bytes:
    return b"".join(f"[{t:12.6f}][   T12] {ln}\n".encode() for ln in text.splitlines())


def judge(after: bytes, how: str) -> SmokeResult:
    m = vm.Machine.__new__(vm.Machine)
    console = CHECK + after
    m.console = types.SimpleNamespace(  # type: ignore[assignment]
        size=len(console), data=lambda start=0, end=None: console[start:end])
    result = SmokeResult("e1000e", "e1000e", [Step("no kernel reports", True, "none")],
                         judged_to=len(CHECK))
    judge_power_off(result, m, how)
    return result


def test_a_clean_power_off_passes() -> None:
    r = judge(BEGAN + DONE, "poweroff")
    assert r.passed and r.steps[-1].detail == "guest stopped: poweroff", r.steps
    assert not r.reports


def test_a_power_off_that_hangs_fails() -> None:
    r = judge(BEGAN, vm.POWEROFF_HUNG)
    assert not r.passed
    assert [x.title for x in r.reports] == [vm.POWEROFF_HUNG_TITLE]
    assert r.steps[-1].detail == vm.POWEROFF_HUNG_TITLE
    assert r.reports[0].text.startswith("sysrq: Power Off"), r.reports[0].text


def test_a_hung_power_off_is_named_by_the_kernel_when_it_says() -> None:
    r = judge(BEGAN + lines(HUNG), vm.POWEROFF_HUNG)
    assert [x.title for x in r.reports] == ["INFO: task hung in ktnic_shutdown"]
    assert not r.passed


def test_a_warning_while_going_down_fails_even_when_the_power_off_ends() -> None:
    r = judge(BEGAN + lines(WARN) + DONE, "poweroff")
    assert [x.title for x in r.reports] == ["WARNING in ktnic_shutdown"]
    assert not r.passed


def test_what_the_check_already_judged_is_not_judged_again() -> None:
    m = vm.Machine.__new__(vm.Machine)
    console = lines(WARN, 8.0) + CHECK + BEGAN + DONE
    m.console = types.SimpleNamespace(  # type: ignore[assignment]
        size=len(console), data=lambda start=0, end=None: console[start:end])
    r = SmokeResult("e1000e", "e1000e", judged_to=len(console) - len(BEGAN + DONE))
    judge_power_off(r, m, "poweroff")
    assert not r.reports and r.steps[-1].passed


def test_a_guest_that_did_not_power_off_when_asked_fails() -> None:
    r = judge(b"", "quit")
    assert not r.passed and r.steps[-1].detail == "guest stopped: quit", r.steps


def test_a_report_cut_by_the_end_of_the_check_is_judged_whole() -> None:
    """The check judges whole lines only; a report whose first line was
    still arriving is judged with the power-off, title and all."""
    warn = lines(WARN)
    buf = bytearray(CHECK)

    class Console:
        size = property(lambda self: len(buf))

        def data(self, start: int = 0, end: int | None = None) -> bytes:
            return bytes(buf[start:end])

    class Stand:  # a guest whose driver will not load, caught mid-report
        profile = profiles.load_profile("e1000e")
        console = Console()

        def mark(self, text: str) -> bool:
            buf.extend(warn[:warn.index(b"WARNING:") + 20])  # the check ends mid-line
            return True

        def ssh(self) -> None:
            raise OSError("no guest here")

    m = Stand()
    r = run_smoke(m)  # type: ignore[arg-type]
    assert not r.steps[0].passed and r.steps[-1].passed, r.steps
    buf += warn[warn.index(b"WARNING:") + 20:] + BEGAN + DONE
    judge_power_off(r, m, "poweroff")  # type: ignore[arg-type]
    assert [x.title for x in r.reports] == ["WARNING in ktnic_shutdown"]
