"""`ktest run`: a plan's suites on its pairs, each pair in its own pytest
process (the ktest plugin with --ktest-pair), so one pair's crash cannot
take the others with it.

Everything goes into one run directory: run.json (what went into the run),
results.jsonl (one record per test, appended as each test ends), junit.xml
(merged from the pairs' files), each pair's pytest output, the guests' run
directories (console logs, QEMU command lines) and pcaps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from orchestrator import paths
from orchestrator.builds import cache
from orchestrator.builds.common import die_with_parent
from orchestrator.plugin.record import Record, read_records, update_manifest
from orchestrator.runs.plan import Plan, suite_path
from orchestrator.scenario.drivers import Pair

BAD_OUTCOMES = ("failed", "error", "xpassed")


@dataclass
class PairRun:
    pair: Pair
    status: int | None = None
    seconds: float = 0.0
    note: str = ""


@dataclass
class RunResult:
    out: Path
    pairs: list[PairRun] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: int = 0  # the exit status an interruption asks for (130, 143)

    @property
    def failed(self) -> bool:
        bad = any(r.outcome in BAD_OUTCOMES for r in self.records)
        broken = any(p.status not in (0, None) for p in self.pairs)
        return bad or broken or bool(self.interrupted) or not self.records


def default_out() -> Path:
    return cache.cache_root() / "runs" / f"run-{datetime.now():%Y%m%d-%H%M%S}"


def pytest_argv(plan: Plan, pair: Pair, out: Path, k: str | None,
                extra: list[str]) -> list[str]:
    root = paths.data_root()
    suites = [str(suite_path(s)) + (f"::{s.split('::', 1)[1]}" if "::" in s else "")
              for s in plan.suites]
    argv = [sys.executable, "-m", "pytest", *suites, "-p", "no:cacheprovider", "-q",
            "--rootdir", str(root), "--ktest-pair", f"{pair.profile}:{pair.driver}",
            "--ktest-out", str(out), "--junitxml", str(out / f"junit-{pair.slug}.xml"),
            "-o", f"junit_suite_name={pair.label}", "-o", "junit_family=xunit2"]
    if plan.pcap:
        argv.append("--ktest-pcap")
    if k:
        argv += ["-k", k]
    return argv + extra


def _child_setup() -> None:
    os.setpgrp()  # Ctrl-C reaches the child through us, so we control its end
    die_with_parent()


def run_plan(plan: Plan, out: Path, *, k: str | None = None, extra: list[str] | None = None,
             echo: Callable[[str], None] = lambda _: None) -> RunResult:
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    (out / "plan.yaml").write_text(plan.text)
    update_manifest(out, plan={"name": plan.name, "path": str(plan.path) if plan.path else None,
                               "suites": list(plan.suites),
                               "pairs": [p.label for p in plan.pairs], "k": k})
    result = RunResult(out)
    t0 = time.monotonic()
    seen = 0
    try:
        for pair in plan.pairs:
            argv = pytest_argv(plan, pair, out, k, extra or [])
            echo(f"== {pair.label}")
            (out / f"pytest-{pair.slug}.argv").write_text(" ".join(argv) + "\n")
            pr = PairRun(pair)
            result.pairs.append(pr)
            start = time.monotonic()
            log_path = out / f"pytest-{pair.slug}.log"
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=paths.data_root(),
                                        preexec_fn=_child_setup)
                try:
                    while proc.poll() is None:
                        time.sleep(0.5)
                        seen = _echo_new(out, seen, echo)
                except BaseException:
                    _stop_child(proc)
                    raise
            seen = _echo_new(out, seen, echo)
            pr.status, pr.seconds = proc.returncode, time.monotonic() - start
            if proc.returncode == 5:
                pr.status, pr.note = 0, "no tests selected"
            elif proc.returncode not in (0, 1):
                pr.note = f"pytest exited {proc.returncode}; see {log_path.name}: " + \
                    _last_error(log_path)
                echo(f"   {pr.note}")
    except KeyboardInterrupt:
        result.interrupted = 130
    except SystemExit as e:  # SIGTERM/SIGHUP from the CLI's handler
        result.interrupted = e.code if isinstance(e.code, int) else 143
    finally:
        result.seconds = time.monotonic() - t0
        result.records = read_records(out)
        merge_junit(out, [p.pair for p in result.pairs])
        update_manifest(out, ended=datetime.now().astimezone().isoformat(timespec="seconds"),
                        seconds=round(result.seconds, 1))
    return result


def _stop_child(proc: subprocess.Popen[bytes]) -> None:
    """The child tears its guests down on SIGINT/SIGTERM (pytest finalizers);
    give it time, then kill what is left of its process group."""
    for sig, wait in ((signal.SIGINT, 60), (signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


def _last_error(log: Path) -> str:
    import re

    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errs = [ln for ln in lines if re.match(r"^(E |ERROR|ktest|\w+Error)", ln)]
    return (errs[-1] if errs else lines[-1] if lines else "")[:200]


OUTCOME = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP",
           "xfailed": "XFAIL", "xpassed": "XPASS"}


def test_name(record: Record) -> str:
    """The test id without the file path and without the pair's parameter."""
    name = record.test.split("::", 1)[-1]
    pair = record.pair
    if pair:
        name = name.replace(f"[{pair}]", "").replace(f"{pair}-", "").replace(f"-{pair}", "")
    return name


def record_line(r: Record) -> str:
    msg = f"  {r.message}" if r.outcome != "passed" and r.message else ""
    return f"   {OUTCOME[r.outcome]:<5} {test_name(r)} ({r.duration:.1f}s){msg}"[:200]


def _echo_new(out: Path, seen: int, echo: Callable[[str], None]) -> int:
    records = read_records(out)
    for r in records[seen:]:
        echo(record_line(r))
    return len(records)


def merge_junit(out: Path, pairs: list[Pair]) -> Path:
    root = ET.Element("testsuites")
    for pair in pairs:
        path = out / f"junit-{pair.slug}.xml"
        try:
            tree = ET.parse(path)
        except (OSError, ET.ParseError):
            continue
        top = tree.getroot()
        for suite in [top] if top.tag == "testsuite" else list(top):
            suite.set("name", pair.label)
            root.append(suite)
    target = out / "junit.xml"
    ET.ElementTree(root).write(target, encoding="utf-8", xml_declaration=True)
    return target


def summary_table(result: RunResult) -> str:
    labels = [p.pair.label for p in result.pairs]
    tests: list[str] = []
    cells: dict[tuple[str, str], str] = {}
    failures = []
    for r in result.records:
        name, pair = test_name(r), r.pair or "?"
        if name not in tests:
            tests.append(name)
        cells[(name, pair)] = OUTCOME[r.outcome]
        if r.outcome in BAD_OUTCOMES:
            failures.append(f"  {pair}  {name}: {r.message or '(no message)'}")
    if not tests:
        return "no test results"
    w = max(len(t) for t in tests)
    widths = [max(len(lab), 5) for lab in labels]
    head = " " * w + "  " + "  ".join(lab.ljust(cw) for lab, cw in zip(labels, widths,
                                                                       strict=True))
    lines = [head]
    for t in tests:
        row = [cells.get((t, lab), "-").ljust(cw) for lab, cw in zip(labels, widths,
                                                                     strict=True)]
        lines.append(t.ljust(w) + "  " + "  ".join(row))
    counts: dict[str, int] = {}
    for r in result.records:
        counts[OUTCOME[r.outcome]] = counts.get(OUTCOME[r.outcome], 0) + 1
    lines.append("")
    lines.append(", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    if failures:
        lines.append("failures:")
        lines += [f[:300] for f in failures]
    for p in result.pairs:
        if p.note:
            lines.append(f"  {p.pair.label}: {p.note}")
    return "\n".join(lines)
