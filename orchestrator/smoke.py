"""The smoke check `ktest run` performs until the test suites exist.

On a booted guest: load the in-tree driver for the first NIC under test,
check that its netdev appears (found by MAC address), bring it up, wait for
carrier, and judge the console segment of the check for kernel reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import report
from .machine import Machine


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

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(s.passed for s in self.steps)


def netdev_for_mac(machine: Machine, mac: str) -> str | None:
    for link in machine.ssh().ip("link show", json=True) or []:
        if str(link.get("address", "")).lower() == mac.lower():
            return str(link["ifname"])
    return None


def run_smoke(machine: Machine, link_timeout: float = 30.0) -> SmokeResult:
    if not machine.profile.nics:
        raise ValueError(f"profile {machine.profile.name} has no NIC under test")
    nic = machine.profile.nics[0]
    result = SmokeResult(machine.profile.name, nic.driver)
    g = machine.ssh()
    assert machine.console is not None
    g.kmsg("ktest: smoke start")
    start_offset = machine.console.size

    def step(name: str, fn: Callable[[], tuple[bool, str]]) -> bool:
        t = time.monotonic()
        try:
            ok, detail = fn()
        except Exception as e:  # a failed step is a result, not a crash
            ok, detail = False, f"{type(e).__name__}: {e}"
        result.steps.append(Step(name, ok, detail, time.monotonic() - t))
        return ok

    iface: list[str] = []

    def load() -> tuple[bool, str]:
        for mod in nic.modules:
            r = g.cmd(f"modprobe {mod}", check=False, timeout=120)
            if not r.ok:
                return False, r.stderr.strip() or f"modprobe {mod} exited {r.exit_status}"
        return True, "modprobe " + " ".join(nic.modules)

    def appears() -> tuple[bool, str]:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            name = netdev_for_mac(machine, nic.mac)
            if name:
                iface.append(name)
                return True, f"{name} ({nic.mac})"
            time.sleep(0.5)
        return False, f"no netdev with MAC {nic.mac}"

    def link_up() -> tuple[bool, str]:
        dev = iface[0]
        g.ip(f"link set dev {dev} up")
        deadline = time.monotonic() + link_timeout
        while time.monotonic() < deadline:
            carrier = g.cmd(f"cat /sys/class/net/{dev}/carrier", check=False).stdout.strip()
            if carrier == "1":
                state = g.ip(f"link show dev {dev}", json=True)[0].get("operstate", "?")
                return True, f"carrier 1, operstate {state}"
            time.sleep(0.5)
        return False, f"no carrier on {dev} within {link_timeout:.0f}s"

    def unload() -> tuple[bool, str]:
        for mod in reversed(nic.modules):
            r = g.cmd(f"modprobe -r {mod}", check=False, timeout=120)
            if not r.ok:
                return False, r.stderr.strip() or f"modprobe -r {mod} exited {r.exit_status}"
        return True, "modprobe -r " + " ".join(reversed(nic.modules))

    if step(f"load {nic.driver}", load) and step("netdev appears", appears):
        step("link up", link_up)
        step(f"unload {nic.driver}", unload)
    g.kmsg("ktest: smoke end")
    time.sleep(0.5)  # let the console catch up with the end marker
    segment = machine.console.data(start_offset)
    verdict = report.judge(segment)
    result.reports = list(verdict.failing)
    titles = "; ".join(r.title for r in verdict.failing)
    result.steps.append(Step("no kernel reports", verdict.passed, titles or "none"))
    return result
