"""Golden kernel-report logs (tests/report_golden/<series>/, one directory per
guest kernel series: 6.1, 6.12): the cases, how each is produced in a guest,
and the header format. The developer's tool: scripts/regen-report-golden.

Each case boots its machine profile (q35 + e1000e, debug kernel), loads a small
purpose-built module from tests/modules/bugs/<module>/ (built W=1 through the
cache), runs guest commands (and, for AER, an HMP command on the host), waits for
the report on the console and shuts down. The console log (host timestamps
included) is trimmed to the report plus some context, and written with a header
of `# key: value` lines:

  title / kind / severity / frame   what orchestrator.report must find (the
                                     report chosen by `pick`)
  pick                               "bug" (the first report with severity bug) or
                                     "kind=AER" (the first report of that kind)
  pick-text                          (optional) only reports whose text contains it
  profile / module / command / hmp   how the log was produced
  kernel / produced                  kernel release and date

tests/unit/test_report_golden.py checks every log against its header;
tests/vm/test_golden_in_guest.py re-runs cases in guests of the default kernel
and compares with that kernel's logs.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.paths import project_root

if TYPE_CHECKING:
    from orchestrator.machine.vm import Machine

ROOT = project_root()

GOLDEN_DIR = ROOT / "tests" / "report_golden"
SERIES = ("6.1", "6.12")  # the guest kernel series with a golden set
BUGS_DIR = ROOT / "tests" / "modules" / "bugs"
# The e1000e interface, whatever the guest named it.
NIC = "$(ls /sys/bus/pci/drivers/e1000e/*/net/ | head -n1)"


@dataclass(frozen=True)
class Case:
    name: str
    wait_for: bytes  # console regex: the report is complete once this appeared
    module: str | None = None  # directory under tests/modules/bugs/
    profile: str = "e1000e"
    cmdline: tuple[str, ...] = ()  # extra kernel command line
    pre: tuple[str, ...] = ()  # guest commands before the module is loaded
    commands: tuple[str, ...] = ("true",)
    hmp: tuple[str, ...] = ()  # HMP commands after the guest commands
    pick: str = "bug"
    pick_text: str | None = None
    keep: bytes | None = None  # also keep the first line matching this (context)
    before: int = 6  # context lines before the report
    after: int = 4  # and after it
    settle: float = 2.0  # seconds to wait after wait_for matched
    timeout: float = 60.0


CASES: tuple[Case, ...] = (
    # (6.4 and later say slab-use-after-free)
    Case("kasan_uaf", rb"BUG: KASAN: (?:slab-)?use-after-free", module="kasan_uaf"),
    Case("sleep_atomic", rb"BUG: sleeping function called", module="sleep_atomic"),
    Case("lockdep", rb"possible circular locking dependency", module="lockdep"),
    Case(
        "kmemleak",
        rb"unreferenced object 0x[0-9a-f]+ \(size 128\)",
        module="kmemleak",
        commands=(
            "echo 1 > /sys/module/kmemleak/parameters/verbose; sleep 6;"
            " echo scan > /sys/kernel/debug/kmemleak; sleep 1;"
            " echo scan > /sys/kernel/debug/kmemleak;"
            " grep -c unreferenced /sys/kernel/debug/kmemleak",
        ),
        pick_text="ktest_bug_leak_alloc",
        before=2,
    ),
    Case("dma_api", rb"failed to check map error", module="dma_api"),
    Case(
        "netdev_watchdog",
        rb"NETDEV WATCHDOG",
        module="netdev_watchdog",
        commands=(
            "ip link set ktbwd0 up; ip addr add 10.99.0.1/24 dev ktbwd0;"
            " ping -c 1 -W 1 10.99.0.2; sleep 5",
        ),
    ),
    Case(
        "ref_tracker",
        # 6.1 says "leaked reference."; 6.12 lists the holders at once
        rb"leaked reference|ref_tracker: \S+ has \d+/\d+ users at",
        module="ref_tracker",
        commands=("sleep 14",),
        settle=3.0,
        before=4,
    ),
    Case(
        "dmar_fault",
        rb"DMAR: \[DMA (?:Read|Write)",
        module="dmar_fault",
        profile="e1000e-viommu",
        pre=(f"modprobe e1000e; sleep 2; ip link set {NIC} up; sleep 3",),
        commands=(f"ping -c 3 -W 1 -I {NIC} ff02::1; sleep 1",),
        keep=rb"e1000e 0000:01:00\.0 \S+: \(PCI",
        pick="kind=IOMMU_FAULT",
    ),
    Case(
        "aer",
        rb"AER: device recovery",
        pre=(f"modprobe e1000e; sleep 2; ip link set {NIC} up; sleep 3",),
        hmp=("pcie_aer_inject_error rp-nic0 COMP_TIME",),
        # (the firmware does not hand AER to a kernel without PCIEASPM: take it)
        cmdline=("pcie_ports=native",),
        pick="kind=AER",
        keep=rb"e1000e 0000:01:00\.0 \S+: \(PCI",
        before=2,
        after=3,
    ),
    # The oopses (BUG_ON, bad accesses, divide error) kill insmod, the guest
    # lives on; "end trace" closes the report (the register summary follows).
    Case("warning", rb"---\[ end trace", module="warn"),
    Case("bug_on", rb"---\[ end trace", module="bug_on"),
    Case("null_deref", rb"---\[ end trace", module="null_deref"),
    Case("paging_fault", rb"---\[ end trace", module="paging_fault"),
    Case("gpf", rb"---\[ end trace", module="gpf"),
    Case("divide_error", rb"---\[ end trace", module="divide_error"),
    # (the modules below say when they are past the bug: the report is whole)
    Case("refcount", rb"ktest_bug_refcount: dropped the last reference twice",
         module="refcount"),
    Case("kfence_oob", rb"ktest_bug_kfence_oob: read past the end", module="kfence_oob"),
    Case("ubsan_bounds", rb"ktest_bug_ubsan_bounds: read slot", module="ubsan_bounds"),
    # Stalls: each module spins or blocks for a bounded time; `pre` lowers the
    # detector's threshold below it (the defaults stay above).
    Case(
        "soft_lockup",
        rb"ktest_bug_soft_lockup: spun for",
        module="soft_lockup",
        pre=("echo 3 > /proc/sys/kernel/watchdog_thresh",),
        pick="kind=SOFT_LOCKUP",
    ),
    Case(
        "hung_task",
        # the end of the lock list that closes the report
        rb"[^=]={45}\r?\n|INFO: lockdep is turned off",
        module="hung_task",
        pre=("echo 5 > /proc/sys/kernel/hung_task_timeout_secs",),
        pick="kind=HUNG_TASK",
    ),
    Case(
        "rcu_stall",
        rb"ktest_bug_rcu_stall: left a",
        module="rcu_stall",
        pre=("echo 5 > /sys/module/rcupdate/parameters/rcu_cpu_stall_timeout",),
        pick="kind=RCU_STALL",
    ),
    Case(
        "wq_lockup",
        rb"ktest_bug_wq_lockup: the work item queued behind it ran",
        module="wq_lockup",
        pre=("echo 3 > /sys/module/workqueue/parameters/watchdog_thresh",),
        pick="kind=WQ_LOCKUP",
    ),
    # The guest dies: QEMU exits, the command's SSH session with it.
    # (panic=-1: the kernel reboots, QEMU exits, before any "end Kernel panic")
    Case("panic", rb"Kernel panic - not syncing: sysrq triggered crash",
         commands=("echo c > /proc/sysrq-trigger",), pick="kind=PANIC", settle=0.5),
    Case(
        "fault_injection",
        rb"ktest_bug_failslab: kmalloc ",
        module="failslab",
        # only the allocation the module marks its task for fails (see the module)
        pre=(
            "cd /sys/kernel/debug/failslab && echo Y > task-filter && echo N > ignore-gfp-wait"
            " && echo 100 > probability && echo 1 > interval && echo 1 > times"
            " && echo 0 > space && echo 2 > verbose",
        ),
        pick="kind=FAULT_INJECTION",
    ),
    Case(
        "link_change",
        rb"e1000e \S+ \S+: NIC Link is Up",
        commands=(f"modprobe e1000e; sleep 2; ip link set {NIC} up; sleep 4",),
        # (the management NIC's e1000 says "Link is Up" at boot too)
        pick="kind=LINK_CHANGE",
        pick_text="e1000e",
        before=2,
        after=2,
    ),
)


# ---------------------------------------------------------------------------
# Golden files: header + log
# ---------------------------------------------------------------------------
def split_golden(data: bytes) -> tuple[dict[str, str], bytes]:
    """(header, log) of a golden file: the leading `# key: value` lines."""
    header: dict[str, str] = {}
    pos = 0
    while data.startswith(b"#", pos):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        line = data[pos:end].decode("utf-8", "replace")
        key, sep, value = line[1:].strip().partition(":")
        if sep:
            header[key.strip()] = value.strip()
        pos = end + 1
    return header, data[pos:]


def series_of(release: str) -> str:
    """The golden series of a kernel release ("6.12.57-ktest" -> "6.12")."""
    m = re.match(r"(\d+\.\d+)", release)
    if m is None:
        raise ValueError(f"not a kernel release: {release!r}")
    return m.group(1)


def golden_dir(series: str) -> Path:
    return GOLDEN_DIR / series


def golden_logs() -> list[Path]:
    """Every golden log of every series."""
    return sorted(GOLDEN_DIR.glob("*/*.log"))


def pick_report(reports: Any, pick: str, pick_text: str | None = None) -> Any:
    for r in reports:
        if pick_text and pick_text not in r.text:
            continue
        if pick == "bug" and r.severity == "bug":
            return r
        if pick.startswith("kind=") and r.kind.name == pick[5:]:
            return r
    return None


def expected_of(report: Any) -> dict[str, str]:
    return {
        "title": report.title,
        "kind": report.kind.name,
        "severity": report.severity,
        "frame": report.frame or "-",
    }


_ORDER = ("title", "kind", "severity", "frame", "pick", "pick-text", "profile", "module",
          "command", "hmp", "kernel", "produced")


def render(header: dict[str, str], log: bytes) -> bytes:
    keys = [k for k in _ORDER if k in header] + [k for k in header if k not in _ORDER]
    text = "".join(f"# {k}: {header[k]}\n" for k in keys) + "#\n"
    return text.encode() + log


def trim(log: bytes, start: int, end: int, case: Case) -> bytes:
    """The lines of log[start:end] plus context (and the first `keep` line)."""
    lines = log.splitlines(keepends=True)
    offs = [0]
    for ln in lines:
        offs.append(offs[-1] + len(ln))
    first = max(0, _line_of(offs, start) - case.before)
    last = min(len(lines), _line_of(offs, max(end - 1, start)) + 1 + case.after)
    out = lines[first:last]
    if case.keep is not None:
        rx = re.compile(case.keep)
        extra = [ln for ln in lines[:first] if rx.search(ln)][:1]
        if extra:
            out = extra + [b"...\n"] + out
    return b"".join(out)


def _line_of(offs: list[int], pos: int) -> int:
    from bisect import bisect_right

    return bisect_right(offs, pos) - 1


# ---------------------------------------------------------------------------
# Running a case
# ---------------------------------------------------------------------------
class CaseError(RuntimeError):
    """A case's guest run failed; `tail` is the end of its console."""

    def __init__(self, message: str, tail: str = "") -> None:
        super().__init__(message)
        self.tail = tail


def run_case(case: Case, arts: Any, make: Any = None,
             on_boot: Any = None) -> bytes:
    """Boot, load, run; the whole console.log of the run (its run directory is
    kept). ``make(profile)`` creates the Machine (default:
    orchestrator.session.make_machine); ``on_boot(run_dir)`` is called before
    the guest starts. Raises CaseError (with the console's tail).

    A step (guest command, insmod, HMP command) may fail because of the bug it
    provokes: an oops kills insmod, a panic takes the guest and its SSH
    connection down. The steps after it are skipped and the console decides:
    the case fails only when ``wait_for`` does not appear either."""
    import time

    from orchestrator.builds import module as module_mod
    from orchestrator.machine import profiles, session
    from orchestrator.scenario import drivers

    ko = None
    if case.module:
        ko = module_mod.build_module(BUGS_DIR / case.module, arts.kernel).ko
    prof = profiles.load_profile(case.profile)
    if case.cmdline:
        prof = dataclasses.replace(prof, cmdline=(*prof.cmdline, *case.cmdline))
    m: Machine = make(prof) if make is not None else session.make_machine(prof, arts)
    if on_boot is not None:
        on_boot(m.run_dir)
    try:
        m.launch()
        assert m.console is not None and m.qmp is not None
        start = m.console.size
        failed: Exception | None = None
        try:
            g = m.ssh()
            for cmd in case.pre:
                g.cmd(cmd, check=False, timeout=case.timeout)
            if ko is not None:
                drivers.load_module(g, drivers.Driver(drivers.DriverInfo(ko.stem), ko))
            for cmd in case.commands:
                g.cmd(cmd, check=False, timeout=case.timeout)
            for line in case.hmp:
                reply = m.qmp.hmp(line)
                if "OK" not in reply:
                    raise RuntimeError(f"HMP {line!r}: {reply.strip()}")
        except Exception as e:  # (judged by the console below)
            failed = e
        try:
            m.console.wait_for(case.wait_for, timeout=case.timeout, start=start)
        except Exception as e:
            if failed is None:
                raise
            raise RuntimeError(f"{failed}; then {e}") from failed
        time.sleep(case.settle)  # the report's tail lines (not a verdict)
    except Exception as e:
        raise CaseError(f"{case.name}: {e} (run directory {m.run_dir})",
                        m.console_tail(30)) from e
    finally:
        m.shutdown()
    return (m.run_dir / "console.log").read_bytes()


def produce(case: Case, log: bytes, kernel: str) -> bytes:
    from orchestrator.report import parse

    report = pick_report(parse(log), case.pick, case.pick_text)
    if report is None:
        raise RuntimeError(f"{case.name}: the parser found no {case.pick} report in the log")
    header = expected_of(report)
    header["pick"] = case.pick
    if case.pick_text:
        header["pick-text"] = case.pick_text
    header["profile"] = case.profile + "".join(f" +cmdline {c}" for c in case.cmdline)
    if case.module:
        header["module"] = f"tests/modules/bugs/{case.module} (insmod)"
    header["command"] = " ; ".join((*case.pre, *case.commands))
    if case.hmp:
        header["hmp"] = " ; ".join(case.hmp)
    header["kernel"] = kernel
    header["produced"] = (f"{datetime.date.today()} by scripts/regen-report-golden "
                          f"--kernel {series_of(kernel)} {case.name}")
    return render(header, trim(log, report.start, report.end, case))


def update_expected(path: Path) -> str | None:
    """Rewrite the expected fields of one golden file from the current parser.
    Returns what changed ("" if nothing), None if the report is gone."""
    from orchestrator.report import parse

    header, log = split_golden(path.read_bytes())
    report = pick_report(parse(log), header.get("pick", "bug"), header.get("pick-text"))
    if report is None:
        return None
    new = {**header, **expected_of(report)}
    if new == header:
        return ""
    path.write_bytes(render(new, log))
    return f"{header.get('title')!r} -> {new['title']!r}"
