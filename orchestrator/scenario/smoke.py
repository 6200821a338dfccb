"""`ktest smoke`: one quick look at a booted guest's first NIC.

Load the NIC's in-tree driver, check that its netdev appears (found by MAC
address), bring it up, wait for carrier, unload, and judge the console
segment of the check for kernel reports; then, once the guest is shut down,
judge its power-off the same way (a power-off that hangs fails the check).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator import report
from orchestrator.machine.vm import POWEROFF_HUNG, Machine, poweroff_hung_report
from orchestrator.scenario import drivers
from orchestrator.scenario.dut import Dut

MARK_END = "ktest: smoke end"


@dataclass
class Step:
    name: str
    passed: bool
    detail: str = ""
    seconds: float = 0.0


@dataclass
class SmokeResult:
    profile: str
    driver: str
    steps: list[Step] = field(default_factory=list)
    reports: list[report.Report] = field(default_factory=list)
    judged_to: int = 0  # the console offset the check's verdict read to

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(s.passed for s in self.steps)


def run_smoke(machine: Machine, link_timeout: float = 30.0) -> SmokeResult:
    if not machine.profile.nics:
        raise ValueError(f"profile {machine.profile.name} has no NIC under test")
    nic = machine.profile.nics[0]
    info = drivers.info_for(drivers.in_tree_driver(nic))
    dut = Dut(machine, nic, drivers.Driver(info))
    result = SmokeResult(machine.profile.name, info.name)
    assert machine.console is not None
    start_offset = machine.console.size

    def step(name: str, fn: Callable[[], str]) -> bool:
        t = time.monotonic()
        try:
            ok, detail = True, fn()
        except Exception as e:  # a failed step is a result, not a crash
            ok, detail = False, f"{type(e).__name__}: {e}"
        result.steps.append(Step(name, ok, detail, time.monotonic() - t))
        return ok

    def load() -> str:
        dut.load()
        return f"{dut.ifname} ({dut.mac})"

    def link_up() -> str:
        dut.sh(f"ip link set dev {dut.ifname} up")
        dut.wait_carrier(1, timeout=link_timeout)
        state = dut.guest.ip(f"link show dev {dut.ifname}", json=True)[0].get("operstate", "?")
        return f"carrier 1, operstate {state}"

    def unload() -> str:
        dut.unload(check_leaks=False)
        return f"{info.name} unloaded"

    if step(f"load {info.name}, netdev appears", load):
        step("link up", link_up)
        step(f"unload {info.name}", unload)
    machine.mark(MARK_END)
    data = machine.console.data(start_offset)
    data = data[:data.rfind(b"\n") + 1]  # whole lines: the rest is judged with the power-off
    result.judged_to = start_offset + len(data)
    verdict = report.judge(data)
    result.reports = list(verdict.failing)
    titles = "; ".join(r.title for r in verdict.failing)
    result.steps.append(Step("no kernel reports", verdict.passed, titles or "none"))
    return result


def judge_power_off(result: SmokeResult, machine: Machine, how: str) -> None:
    """After `machine.shutdown()` returned `how`: judge what the guest said
    from the end of the check to its last byte (the power-off, the drivers'
    shutdown callbacks) as one more step. A power-off that began and never
    finished fails it, named by the kernel's report when there is one; so
    does a guest that did not power off when asked (stopped any other way
    than "poweroff")."""
    assert machine.console is not None
    start = result.judged_to
    failing = list(report.judge(machine.console.data(start)).failing)
    if how == POWEROFF_HUNG and not failing:
        failing.append(poweroff_hung_report(machine.console, start))
    result.reports += failing
    ok = not failing and how == "poweroff"
    detail = "; ".join(r.title for r in failing) or f"guest stopped: {how}"
    result.steps.append(Step("power off, no kernel reports", ok, detail))
