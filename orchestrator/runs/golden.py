"""Golden kernel-report logs (tests/report_golden/): the cases, how each is
produced in a guest, and the header format. CLI: scripts/regen-report-golden.

Regenerate the golden kernel-report logs in tests/report_golden/.

Usage:
  scripts/regen-report-golden [CASE...]        re-run the guests (all cases by default)
  scripts/regen-report-golden --update-expected [CASE...]
                                              keep the logs, rewrite the expected
                                              title/kind/severity/frame headers from
                                              the current parser (no guest)
  scripts/regen-report-golden --list           list the cases

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

tests/unit/test_report_golden.py checks every log against its header. Guests run
one at a time; a full run takes a few minutes under TCG.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.paths import project_root

if TYPE_CHECKING:
    from orchestrator.machine.vm import Machine

ROOT = project_root()

GOLDEN_DIR = ROOT / "tests" / "report_golden"
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
    Case("kasan_uaf", rb"BUG: KASAN: use-after-free", module="kasan_uaf"),
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
        rb"leaked reference",
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
def run_case(case: Case, arts: Any, make: Any = None) -> bytes:
    """Boot, load, run; the whole console.log of the run (its run directory is
    kept under ~/.cache/ktest/runs/). ``make(profile)`` creates the Machine
    (default: orchestrator.session.make_machine)."""
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
    print(f"   run directory {m.run_dir}", flush=True)
    try:
        m.launch()
        assert m.console is not None and m.qmp is not None
        start = m.console.size
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
                raise RuntimeError(f"{case.name}: HMP {line!r}: {reply.strip()}")
        m.console.wait_for(case.wait_for, timeout=case.timeout, start=start)
        time.sleep(case.settle)
    except Exception:
        print(m.console_tail(30), file=sys.stderr)
        raise
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
    header["produced"] = f"{datetime.date.today()} by scripts/regen-report-golden {case.name}"
    return render(header, trim(log, report.start, report.end, case))


def update_expected(path: Path) -> bool:
    """Rewrite the expected fields of one golden file from the current parser."""
    from orchestrator.report import parse

    header, log = split_golden(path.read_bytes())
    report = pick_report(parse(log), header.get("pick", "bug"), header.get("pick-text"))
    if report is None:
        print(f"{path.name}: no {header.get('pick', 'bug')} report any more", file=sys.stderr)
        return False
    new = {**header, **expected_of(report)}
    if new != header:
        print(f"{path.name}: {header.get('title')!r} -> {new['title']!r}")
        path.write_bytes(render(new, log))
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="*", help="case names (default: all)")
    ap.add_argument("--update-expected", action="store_true",
                    help="only rewrite the headers from the current parser (no guest)")
    ap.add_argument("--list", action="store_true", help="list the cases")
    args = ap.parse_args(argv)
    by_name = {c.name: c for c in CASES}
    if args.list:
        for c in CASES:
            print(f"{c.name:16} profile={c.profile} module={c.module or '-'}")
        return 0
    unknown = [n for n in args.cases if n not in by_name]
    if unknown:
        ap.error(f"unknown case(s): {', '.join(unknown)} (see --list)")
    chosen = [by_name[n] for n in args.cases] or list(CASES)
    if args.update_expected:
        ok = all([update_expected(GOLDEN_DIR / f"{c.name}.log") for c in chosen])
        return 0 if ok else 1

    from orchestrator.machine import session

    arts = session.artifacts()
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    failed = []
    for case in chosen:
        print(f"== {case.name} ({case.profile})", flush=True)
        try:
            data = produce(case, run_case(case, arts), arts.kernel.release)
        except Exception as e:  # one broken case must not stop the others
            print(f"   FAILED: {e}", file=sys.stderr)
            failed.append(case.name)
            continue
        out = GOLDEN_DIR / f"{case.name}.log"
        out.write_bytes(data)
        header, _ = split_golden(data)
        print(f"   {out.relative_to(ROOT)}: {header['title']!r} ({len(data)} bytes)")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
