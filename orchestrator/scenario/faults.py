"""Faults injected into a running guest's NIC, each on the run's one clock.

Every action writes a marker line into the guest's kernel log
(``ktest: fault: WHAT TARGET``) and a line into the guest run directory's
``actions.log`` (host wall clock, what, target, the reply), so a verdict can
say how long after a fault a report came. Undo steps go to the test's
cleanup queue.

* AER: uncorrectable errors injected at the NIC's root port through HMP
  ``pcie_aer_inject_error`` (the endpoint never delivers on e1000e or igb:
  its DevCtl error bits are read-only); correctable ones from inside the
  guest through the kernel's aer_inject. The outcome is read from the kernel
  log (``AER: device recovery successful/failed``) and sysfs counters.
* Function resets through sysfs: ``flr`` where the device has it, ``bus``
  (secondary bus reset) for every NIC behind a root port.
* Hot-unplug and re-plug through QMP (device_del, DEVICE_DELETED,
  device_add with the properties the profile produced).
* A device that stops answering MMIO (memory decoding turned off; under
  QEMU its registers then read as zeros): the stand-in for a surprise
  removal, which QEMU does not offer.
* SR-IOV: the PF's VF count.
* Allocation failures: one operation with the N-th injectable call of the
  task failing (``ktest-fault``, a guest tool), swept over N. Scoped to the
  driver under test where the kernel can (the stack-trace filter of 6.12's
  fault injection): a call counts only when the driver's code is among the
  SCOPE_DEPTH innermost frames of its call stack, so the sweep fails the
  driver's own allocations and those of the kernel APIs it calls (kmalloc,
  devm, dma_alloc_coherent, page_pool, request_irq, ...), not the ones deep
  inside other subsystems (ACPI's interpreter, sysfs, uevents), whose
  recovery is not the driver's to test. Calls a debug kernel's checkers
  make for themselves (kmemleak's objects, dma-debug's tracking, the stack
  depot) are taken back by a guest helper module, ktest_faultscope: under
  the debug kernel they are most of the calls (about 270 of 300 when
  ktest_nic opens), failing them tests the checkers, and dma-debug turns
  itself off when its tracking fails. So are the calls whose number
  depends on what the kernel did before (a slab cache's new slab, an IOVA
  or IOMMU page table behind a mapping, percpu chunks, vmalloc areas and
  kernel page tables, xarray and maple tree nodes): with them, point n was a different call
  from run to run. Instead, the helper makes each streaming DMA mapping of
  the task a point (dma_map_page_attrs fails with DMA_MAPPING_ERROR), so a
  driver's mapping error paths are swept with or without an IOMMU. The
  helper also says where each failure was injected.
* A window of page allocation failures in any context (softirq too): the
  next N injectable page allocations in scope fail whoever makes them,
  which is how an Rx refill under traffic meets them (fail-nth only counts
  a task's own calls).
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator import paths, waiting
from orchestrator.builds import module as module_mod
from orchestrator.builds.module import module_text_size
from orchestrator.machine import profiles, qemu
from orchestrator.machine.console import ConsoleClosed, ConsoleTimeout, host_stamp
from orchestrator.machine.qmp import QMPError
from orchestrator.machine.vm import Machine

AER_STATUS = {"nonfatal": "COMP_TIME", "fatal": "DLP"}
FAIL_ATTRS = ("/sys/kernel/debug/failslab", "/sys/kernel/debug/fail_page_alloc")
# frames of a failing call's stack searched for the driver's code: from the
# fault-injection hook up through the allocator (about 8 frames) and one or
# two API layers; ACPI's _PRT evaluation under pci_enable_device() sits
# deeper than this
SCOPE_DEPTH = 16
AER_OUTCOME_RE = re.compile(rb"AER: device recovery (successful|failed)")
# a correctable error: one "Correctable error message received" line
AER_CORRECTED_RE = re.compile(rb"AER: Correct(?:ed|able) error (?:message )?received")
# fail_page_alloc/failslab settings that make the task's GFP_KERNEL and
# order-0 allocations injectable (their defaults skip both)
FAIL_KNOBS = {
    "/sys/kernel/debug/failslab/ignore-gfp-wait": "N",
    "/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait": "N",
    "/sys/kernel/debug/fail_page_alloc/min-order": "0",
    "/sys/kernel/debug/failslab/verbose": "1",
    "/sys/kernel/debug/fail_page_alloc/verbose": "1",
}
_NTH_RE = re.compile(r"result=(-?\d+)(?: \(([^)]*)\))? injected=([01])")
SCOPE_DIR = "/sys/kernel/debug/ktest_faultscope"
MAP_ATTR = f"{SCOPE_DIR}/dma_map"  # its DMA mapping points' fault attributes


class FaultError(Exception):
    """A fault could not be injected (not the driver's verdict)."""


@dataclass(frozen=True)
class Action:
    at: float  # host wall clock (time.time())
    what: str
    target: str
    reply: str

    def line(self) -> str:
        return f"{host_stamp(self.at)} {self.what} {self.target} {self.reply}".rstrip()


@dataclass
class AerOutcome:
    severity: str
    recovered: bool | None  # None: no recovery line (correctable, or nothing came)
    lines: list[str] = field(default_factory=list)
    counters_before: dict[str, int] = field(default_factory=dict)
    counters_after: dict[str, int] = field(default_factory=dict)

    def grew(self, name: str) -> int:
        return self.counters_after.get(name, 0) - self.counters_before.get(name, 0)


@dataclass(frozen=True)
class NthResult:
    n: int
    errno: int  # 0: the operation succeeded
    message: str
    injected: bool  # the N-th call happened (and failed)
    site: str = ""  # where (ktest_faultscope): "innermost < ... < outer" frames


def parse_nth(text: str) -> NthResult | None:
    m = _NTH_RE.search(text)
    if m is None:
        return None
    code = int(m.group(1))
    return NthResult(0, -code if code < 0 else 0, m.group(2) or "", m.group(3) == "1")


def short_site(site: str, module: str, frames: int = 4) -> str:
    """A failure site cut after the first frame of `module` (or after
    `frames` frames when none is its): "kmalloc < ktnic_alloc_ring"."""
    parts = [p for p in site.split(" < ") if p]
    for i, part in enumerate(parts):
        if part.endswith(f"[{module}]"):
            return " < ".join(p.removesuffix(f" [{module}]") for p in parts[:i + 1])
    return " < ".join(parts[:frames])


def actions_log(run_dir: Path) -> list[tuple[str, str]]:
    """(host time, rest of the line) of a guest run directory's actions.log."""
    try:
        lines = (run_dir / "actions.log").read_text().splitlines()
    except OSError:
        return []
    return [(ln.split(" ", 1)[0], ln.split(" ", 1)[1] if " " in ln else "") for ln in lines]


class Faults:
    """Fault injection into one NIC of a running guest."""

    def __init__(self, machine: Machine, nic: profiles.NicSpec, bdf: str,
                 cleanup: Callable[..., None] | None = None) -> None:
        self.machine = machine
        self.nic = nic
        self.bdf = bdf
        self.cleanup = cleanup
        self.actions: list[Action] = []

    # ------------------------------------------------------------ bookkeeping
    @property
    def guest(self) -> Any:
        return self.machine.ssh()

    def record(self, what: str, target: str, do: Callable[[], str]) -> str:
        """Mark the kernel log, run `do`, write the action line; the reply."""
        self.machine.mark(f"ktest: fault: {what} {target}")
        at = time.time()
        try:
            reply = do()
        except Exception as e:
            reply = f"error: {type(e).__name__}: {e}"
            self._write(Action(at, what, target, reply))
            raise
        self._write(Action(at, what, target, reply))
        return reply

    def _write(self, action: Action) -> None:
        self.actions.append(action)
        with open(self.machine.run_dir / "actions.log", "a") as fh:
            fh.write(action.line().replace("\n", " | ") + "\n")

    def last(self) -> Action | None:
        return self.actions[-1] if self.actions else None

    def describe_last(self, now: float | None = None) -> str:
        a = self.last()
        if a is None:
            return ""
        when = datetime.fromtimestamp(a.at).strftime("%H:%M:%S")
        ago = (time.time() if now is None else now) - a.at
        return f"{ago:.1f}s after {a.what} at {a.target} ({when})"

    def _undo(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.cleanup is not None:
            self.cleanup(fn, *args)

    def _sh_quiet(self, command: str) -> None:
        """An undo step: a guest that is gone by then is no error."""
        if self.machine.alive() and not self.machine.crashed:
            self.guest.cmd(command, check=False)

    # ------------------------------------------------------------ AER
    def aer_counters(self) -> dict[str, int]:
        port = self.root_port_bdf()
        out = self.guest.cmd(
            f"cd /sys/bus/pci/devices; for f in {self.bdf}/aer_dev_correctable "
            f"{self.bdf}/aer_dev_nonfatal {self.bdf}/aer_dev_fatal "
            f"{port}/aer_rootport_total_err_cor {port}/aer_rootport_total_err_nonfatal "
            f"{port}/aer_rootport_total_err_fatal; do "
            f"[ -r $f ] && echo \"$f $(grep -i total $f 2>/dev/null || cat $f)\"; done",
            check=False).stdout
        counters: dict[str, int] = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2:
                name = parts[0].split("/")[-1]
                nums = [int(w) for w in parts[1:] if w.isdigit()]
                counters[name] = nums[-1] if nums else 0
        return counters

    def root_port_bdf(self) -> str:
        path = self.guest.cmd(f"readlink -f /sys/bus/pci/devices/{self.bdf}").stdout.strip()
        parts = [p for p in path.split("/") if p.count(":") == 2]
        if len(parts) < 2:
            raise FaultError(f"{self.bdf} has no parent port ({path})")
        return parts[-2]

    def aer(self, severity: str, status: str | None = None, timeout: float = 60.0) -> AerOutcome:
        """Inject one AER error and wait for the kernel's verdict on it."""
        assert self.machine.console is not None and self.machine.qmp is not None
        before = self.aer_counters()
        start = self.machine.console.size
        if severity in AER_STATUS:
            name = status or AER_STATUS[severity]
            port = self.nic.port_id

            def inject() -> str:
                assert self.machine.qmp is not None
                return self.machine.qmp.hmp(f"pcie_aer_inject_error {port} {name}").strip()

            reply = self.record(f"AER {severity} {name}", port, inject)
            if not reply.startswith("OK"):
                raise FaultError(f"pcie_aer_inject_error {port} {name}: {reply}")
            pattern = AER_OUTCOME_RE
        elif severity == "correctable":
            reply = self.record("AER correctable BAD_TLP", self.bdf, self._aer_inject_cor)
            pattern = AER_CORRECTED_RE
        else:
            raise ValueError(f"AER severity {severity!r} (nonfatal, fatal, correctable)")
        outcome = AerOutcome(severity, None, counters_before=before)
        try:
            m = self.machine.console.wait_for(pattern, timeout=timeout, start=start)
            if severity != "correctable":
                outcome.recovered = b"successful" in m.text.encode()
        except (ConsoleTimeout, ConsoleClosed):
            pass
        text = self.machine.console.data(start).decode(errors="replace")
        outcome.lines = [ln for ln in text.splitlines() if "AER" in ln or "pcieport" in ln]
        if self.machine.alive() and not self.machine.crashed:
            outcome.counters_after = self.aer_counters()
        return outcome

    def _aer_inject_cor(self) -> str:
        """A correctable BadTLP reported by the endpoint, through the
        kernel's aer_inject (struct aer_error_inj on /dev/aer_inject)."""
        bus, rest = self.bdf.split(":")[1:]
        dev, fn = rest.split(".")
        script = (
            "import os, struct; fd = os.open('/dev/aer_inject', os.O_WRONLY); "
            f"os.write(fd, struct.pack('BBBxIIIIIIi', {int(bus, 16)}, {int(dev, 16)}, "
            f"{int(fn, 16)}, 0, 0x40, 0, 0, 0, 0, 0)); print('OK')"
        )
        r = self.guest.cmd(f"modprobe aer_inject && python3 -c {shlex.quote(script)}",
                           check=False, timeout=60)
        if not r.ok:
            raise FaultError(f"aer_inject: {r.stderr.strip()[-300:]}")
        return r.stdout.strip()

    # ------------------------------------------------------------ resets
    def reset_methods(self) -> list[str]:
        return self.guest.read(f"/sys/bus/pci/devices/{self.bdf}/reset_method").split()

    def function_reset(self, method: str, bdf: str | None = None) -> str:
        """A reset through /sys/.../reset with one reset method ("flr" or
        "bus"); the device's reset_method is put back afterwards."""
        bdf = bdf or self.bdf
        path = f"/sys/bus/pci/devices/{bdf}"
        methods = self.guest.read(f"{path}/reset_method").split()
        if method not in methods:
            raise FaultError(f"{bdf} offers the reset methods {methods or 'none'}, not {method}")
        if method == "flr" and self.nic.model == "igb" and self.machine.qemu_version:
            qemu.require(self.machine.qemu_version, "igb-flr", f"FLR of {bdf}")
        self._undo(self._sh_quiet, f"echo default > {path}/reset_method")

        def do() -> str:
            r = self.guest.cmd(f"echo {method} > {path}/reset_method && echo 1 > {path}/reset",
                               check=False, timeout=120)
            if not r.ok:
                raise FaultError(f"{method} reset of {bdf}: {r.stderr.strip()}")
            return "done"

        return self.record(f"{method} reset", bdf, do)

    # ------------------------------------------------------------ hotplug
    def unplug(self, timeout: float = 60.0) -> str:
        """device_del, then DEVICE_DELETED (the guest let go of the device)."""
        qmp = self.machine.qmp
        assert qmp is not None

        def do() -> str:
            after = qmp.event_count()
            t0 = time.monotonic()
            qmp.execute("device_del", {"id": self.nic.id})
            try:
                qmp.wait_event("DEVICE_DELETED", timeout, after, data={"device": self.nic.id})
            except QMPError:
                raise FaultError(f"no DEVICE_DELETED for {self.nic.id} within {timeout:.0f}s: "
                                 "the guest did not release it") from None
            return f"DEVICE_DELETED after {time.monotonic() - t0:.1f}s"

        reply = self.record("hot-unplug", self.nic.id, do)
        self._undo(self._replug_if_gone)
        return reply

    def replug(self) -> str:
        """device_add with the very properties the profile's -device had."""
        qmp = self.machine.qmp
        assert qmp is not None
        args = profiles.qmp_device_args(self.nic)
        return self.record("hot-plug", self.nic.id,
                           lambda: str(qmp.execute("device_add", args)) or "ok")

    def _replug_if_gone(self) -> None:
        out = self.guest.cmd(f"test -e /sys/bus/pci/devices/{self.bdf} && echo present",
                             check=False).stdout
        if "present" not in out:
            self.replug()

    # ------------------------------------------------------------ dead device
    def mmio_off(self) -> str:
        """Memory decoding off: the BARs are gone from the address space, the
        closest QEMU comes to a surprise removal (measured here: reads then
        return zeros, not the all ones of real hardware; writes vanish).
        Undone (decoding back on) in cleanup."""
        self._undo(self.mmio_on)
        return self.record("MMIO off", self.bdf, lambda: self._setpci("COMMAND=0:2"))

    def mmio_on(self) -> str:
        return self.record("MMIO on", self.bdf, lambda: self._setpci("COMMAND=2:2"))

    def _setpci(self, expr: str) -> str:
        r = self.guest.cmd(f"setpci -s {self.bdf} {expr}", check=False)
        if not r.ok:
            raise FaultError(f"setpci -s {self.bdf} {expr}: {r.stderr.strip()}")
        return "done"

    # ------------------------------------------------------------ SR-IOV
    def set_vfs(self, pf_bdf: str, count: int) -> str:
        path = f"/sys/bus/pci/devices/{pf_bdf}/sriov_numvfs"

        def do() -> str:
            r = self.guest.cmd(f"echo 0 > {path} && echo {count} > {path}", check=False,
                               timeout=180)
            if not r.ok:
                raise FaultError(f"{count} VFs on {pf_bdf}: {r.stderr.strip()}")
            return "done"

        return self.record(f"sriov_numvfs={count}", pf_bdf, do)

    # ------------------------------------------------------------ allocation failures
    def arm_allocation_failures(self) -> None:
        """Make GFP_KERNEL and order-0 allocations injectable (per task, by
        fail-nth only: probability stays 0, nothing fails by itself)."""
        cmds = "; ".join(f"echo {v} > {k}" for k, v in FAIL_KNOBS.items())
        r = self.guest.cmd(cmds, check=False)
        if not r.ok:
            raise FaultError(f"fault injection knobs: {r.stderr.strip()}")

    def scope_to_module(self, module: str, ko: Path) -> str:
        """Count only calls with `module`'s code among the SCOPE_DEPTH
        innermost frames (its .ko on the host gives the text size). Returns
        what was set, or why the kernel cannot scope (then every call of the
        task counts). Undone by the test's cleanup."""
        if not self.guest.cmd(f"test -e {FAIL_ATTRS[0]}/require-start", check=False).ok:
            return "unscoped: this kernel has no fault-injection stack-trace filter"
        # ktest_faultscope's mapping points, when it is loaded, take the same scope
        attrs = FAIL_ATTRS + ((MAP_ATTR,) if self.guest.cmd(f"test -d {MAP_ATTR}",
                                                            check=False).ok else ())
        size = module_text_size(ko)
        line = self.guest.cmd(f"grep '^{module} ' /proc/modules", check=False).stdout.split()
        if len(line) < 6 or not size:
            raise FaultError(f"cannot find the text of module {module} ({line}, {size} bytes)")
        start = int(line[5], 16)
        if not start:
            raise FaultError(f"/proc/modules hides the address of {module}")
        knobs = {"require-start": start, "require-end": start + size,
                 "stacktrace-depth": SCOPE_DEPTH}

        def do() -> str:
            self.guest.cmd("; ".join(f"echo {v} > {a}/{k}" for a in attrs
                                     for k, v in knobs.items()))
            return f"{module} text {start:#x}+{size:#x}, {SCOPE_DEPTH} frames" + \
                (", DMA mappings too" if len(attrs) > len(FAIL_ATTRS) else "")

        defaults = {"require-start": 0, "require-end": (1 << 64) - 1, "stacktrace-depth": 32}
        self._undo(self._sh_quiet, "; ".join(f"echo {v} > {a}/{k}" for a in attrs
                                             for k, v in defaults.items()))
        return self.record("scope allocation failures", module, do)

    def fail_page_allocations(self, times: int, quiet_s: float = 3.0,
                              timeout: float = 30.0) -> int:
        """A window of failures: the next `times` injectable page
        allocations in scope fail, in whatever context they come (an Rx
        refill runs in softirq). Slab allocations are left alone, and so
        are the pages the slab allocator takes for itself (allocate_slab in
        the call stack): a failed skb allocation drops the frame, and its
        buffer goes straight back to the ring. The window closes when the failures are used up, or
        when none came for `quiet_s` (the driver stopped asking, or no
        traffic reaches it), or after `timeout`. Returns how many failures
        were injected; the knobs go back in cleanup, and at once when the
        window closes."""
        attr = FAIL_ATTRS[1]
        old = self.guest.read(f"{attr}/times", check=True).strip()
        # allocate_slab's text: up to the next higher address (the kernel's
        # own symbols are listed in address order)
        out = self.guest.cmd("grep -A4 -m1 ' allocate_slab$' /proc/kallsyms", check=False)
        addrs = [int(ln.split()[0], 16) for ln in out.stdout.splitlines() if ln.strip()]
        if not addrs or not any(a > addrs[0] for a in addrs):
            raise FaultError(f"cannot find allocate_slab's text in /proc/kallsyms: {out.stdout}")
        slab_start, slab_end = addrs[0], min(a for a in addrs if a > addrs[0])
        restore = (f"echo 0 > {attr}/probability; echo {old} > {attr}/times; "
                   f"echo 0 > {attr}/reject-start; echo 0 > {attr}/reject-end")
        self._undo(self._sh_quiet, restore)
        state = {"left": times, "at": time.monotonic()}

        def closed() -> bool:
            left = max(int(self.guest.read(f"{attr}/times", check=True)), 0)
            now = time.monotonic()
            if left != state["left"]:
                state["left"], state["at"] = left, now
            return left == 0 or now - state["at"] >= quiet_s

        def do() -> str:
            self.guest.cmd(f"echo {slab_start} > {attr}/reject-start; "
                           f"echo {slab_end} > {attr}/reject-end; "
                           f"echo {times} > {attr}/times; echo 1 > {attr}/interval; "
                           f"echo 100 > {attr}/probability")
            state["at"] = time.monotonic()
            try:
                waiting.wait_until(closed, timeout, "allocation failure window",
                                   interval=0.2, max_interval=0.5)
            except waiting.WaitTimeout:
                pass  # traffic kept the driver asking: a window of `timeout` is enough
            finally:
                self.guest.cmd(restore)
            return f"{times - state['left']} injected"

        reply = self.record(f"page allocation failures (up to {times})", "in scope", do)
        return int(reply.split()[0])

    def keep_checkers_out(self, kernel: Any) -> str:
        """Load ktest_faultscope (built against `kernel`, cached): from now
        on the calls the kernel's checkers make, and those whose number
        depends on history, are neither failed nor counted by fail-nth, each DMA mapping is a
        point, and nth() says where each failure went. Load it before
        scope_to_module(), which scopes the mapping points too. Unloaded by
        the test's cleanup."""
        ko = module_mod.build_module(paths.faultscope_dir(), kernel).ko
        remote = f"/tmp/{ko.name}"

        def do() -> str:
            self.guest.put_once(ko, remote)
            r = self.guest.cmd(f"insmod {remote}", check=False)
            if not r.ok:
                raise FaultError(f"insmod {ko.name}: {r.stderr.strip()}")
            return ("kmemleak, dma-debug, KASAN, the stack depot and history-bound calls "
                    "exempt; DMA mappings are points")

        reply = self.record("keep checkers out of fail-nth", ko.stem, do)
        self._undo(self._sh_quiet, f"rmmod {ko.stem}")
        return reply

    def exempted(self) -> int:
        """Calls ktest_faultscope took back so far (0 when not loaded)."""
        out = self.guest.read(f"{SCOPE_DIR}/exempted")
        return int(out.strip() or 0)

    def nth(self, n: int, op: str, *args: str, timeout: float = 120.0) -> NthResult:
        """Run one operation (see guest-images/tools/ktest-fault.c) with its
        n-th injectable call failing (n = 0: no injection)."""
        argv = shlex.join(["ktest-fault", str(n), op, *args])
        res: list[NthResult] = []

        def do() -> str:
            r = self.guest.cmd(argv, check=False, timeout=timeout)
            parsed = parse_nth(r.stdout)
            if r.exit_status != 0 or parsed is None:
                raise FaultError(f"{argv}: exit {r.exit_status}: {(r.stderr or r.stdout).strip()}")
            site = ""
            if parsed.injected:
                site = self.guest.read(f"{SCOPE_DIR}/site").strip()
            res.append(NthResult(n, parsed.errno, parsed.message, parsed.injected, site))
            return r.stdout.strip() + (f" at {site}" if site else "")

        self.record(f"fail-nth {n}", f"{op} {' '.join(args)}", do)
        return res[0]
