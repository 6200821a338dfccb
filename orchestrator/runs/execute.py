"""`ktest run`: a plan's suites on its pairs, each pair in its own pytest
process (the ktest plugin with --ktest-pair), so one pair's crash cannot
take the others with it; with jobs > 1, that many pairs at once.

Everything goes into one run directory: run.json (what went into the run),
results.jsonl (one record per test, appended as each test ends, by every
pair process), junit.xml (merged from the pairs' files), each pair's pytest
output, the guests' run directories (console logs, QEMU command lines),
pcaps, the known issues the run was judged with and report.html.

Nothing here prints: a :class:`Watcher` hears of pairs starting and ending
and of each record as it lands, and the caller shows what it wants.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from orchestrator import paths
from orchestrator.builds import cache
from orchestrator.builds.common import die_with_parent
from orchestrator.plugin.record import (
    RESULTS,
    Record,
    read_manifest,
    read_records,
    update_manifest,
)
from orchestrator.runs import known as known_mod
from orchestrator.runs.plan import Plan, suite_path
from orchestrator.runs.verdicts import BAD_OUTCOMES, OUTCOME, is_bad, matrix, status, test_name
from orchestrator.scenario.drivers import Pair

__all__ = ["BAD_OUTCOMES", "OUTCOME", "test_name"]  # the vocabulary lives in runs.verdicts


@dataclass
class PairRun:
    pair: Pair
    status: int | None = None
    seconds: float = 0.0
    note: str = ""
    total: int | None = None  # tests selected for the pair, when known
    done: int = 0  # records so far
    failures: int = 0  # of which fail the run
    started: float | None = None  # time.monotonic() when its pytest started

    @property
    def state(self) -> str:
        return ("queued" if self.started is None else "running" if self.status is None
                else "done")

    def elapsed(self, now: float | None = None) -> float:
        if self.started is None:
            return 0.0
        if self.status is not None:
            return self.seconds
        return (now if now is not None else time.monotonic()) - self.started


@dataclass
class RunResult:
    out: Path
    pairs: list[PairRun] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: int = 0  # the exit status an interruption asks for (130, 143)
    selected: int | None = None  # tests selected, when known (0: an empty shard)
    notes: list[str] = field(default_factory=list)  # what went wrong after the tests
    report: Path | None = None  # report.html

    @property
    def failed(self) -> bool:
        bad = any(is_bad(r) for r in self.records)
        # pytest's 1 (tests failed) is judged by the records and known issues
        broken = any(p.status not in (0, None) and not (p.status == 1 and p.done)
                     for p in self.pairs)
        nothing = not self.records and self.selected != 0
        return bad or broken or bool(self.interrupted) or nothing


@dataclass(frozen=True)
class RunOptions:
    """How to run a plan, beyond its pairs and suites."""

    k: str | None = None
    extra: tuple[str, ...] = ()  # plugin options (Choices.plugin_args())
    jobs: int = 1  # pairs at once
    reruns: int = 0
    tests: Mapping[str, Sequence[str]] | None = None  # test ids per pair (a shard, --test)
    totals: Mapping[str, int] | None = None  # tests per pair, for progress
    issues: Sequence[known_mod.KnownIssue] | None = None  # None: ktest's own list
    baseline: Path | None = None  # a run to compare with in report.html
    manifest: Mapping[str, Any] = field(default_factory=dict)  # more for run.json
    env: Mapping[str, str] = field(default_factory=dict)  # more for the pairs' environment


# The environment of a run's pair processes that is not a suite knob: where
# this host keeps its cache, and the QEMU binary (a choice of its own).
HOST_ENV = ("KTEST_CACHE", "KTEST_QEMU")


def pair_env(opts: RunOptions) -> dict[str, str]:
    """The environment of the pair processes: ours and the options' `env`."""
    return {**os.environ, **opts.env}


def suite_knobs(env: Mapping[str, str]) -> dict[str, str]:
    """The suite's knobs in an environment (KTEST_CYCLES, KTEST_SWEEP, ...):
    what run.json records as `env` and `ktest repro` sets again."""
    return {k: v for k, v in sorted(env.items())
            if k.startswith("KTEST_") and k not in HOST_ENV}


class Watcher:
    """What a run tells its caller as it goes (all optional)."""

    def pair_started(self, pr: PairRun) -> None:
        pass

    def record(self, pr: PairRun | None, rec: Record) -> None:
        pass

    def pair_ended(self, pr: PairRun) -> None:
        pass

    def tick(self, pairs: Sequence[PairRun]) -> None:
        """About twice a second while pairs run."""


class EchoWatcher(Watcher):
    """Plain lines through `echo`: a pair's name, then one line per test."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo

    def pair_started(self, pr: PairRun) -> None:
        self.echo(f"== {pr.pair.label}")

    def record(self, pr: PairRun | None, rec: Record) -> None:
        self.echo(record_line(rec))

    def pair_ended(self, pr: PairRun) -> None:
        if pr.note:
            self.echo(f"   {pr.note}")


def default_jobs(pairs: int) -> int:
    """Pairs to run at once on this host: min(cores // 2, memory GiB // 3,
    pairs), at least 1 (each pair's guest wants about a core and 3 GiB)."""
    cores = os.cpu_count() or 1
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = 3.0
    return max(1, min(cores // 2, int(mem // 3), pairs))


def default_out(kind: str = "run") -> Path:
    """A new folder for a run (or a zoo, a repro...) under the runs root."""
    return cache.runs_root() / f"{kind}-{datetime.now():%Y%m%d-%H%M%S}"


def pytest_argv(plan: Plan, pair: Pair, out: Path, k: str | None,
                extra: Sequence[str], tests: Sequence[str] | None = None,
                reruns: int = 0) -> list[str]:
    """The pair's pytest command: the plan's suites, all of them or just
    `tests` (their ids go to out/tests-SLUG.txt, which the run writes)."""
    root = paths.data_root()
    suites = [str(suite_path(s)) + (f"::{s.split('::', 1)[1]}" if "::" in s else "")
              for s in plan.suites]
    argv = [sys.executable, "-m", "pytest", *suites, "-p", "no:cacheprovider", "-q",
            "--rootdir", str(root), "--ktest-pair", f"{pair.profile}:{pair.driver}",
            "--ktest-out", str(out), "--junitxml", str(out / f"junit-{pair.slug}.xml"),
            "-o", f"junit_suite_name={pair.label}", "-o", "junit_family=xunit2"]
    if plan.pcap:
        argv.append("--ktest-pcap")
    if tests is not None:
        argv += ["--ktest-tests", str(out / f"tests-{pair.slug}.txt")]
    if reruns:
        argv += ["--ktest-reruns", str(reruns)]
    if k:
        argv += ["-k", k]
    return argv + list(extra)


def _child_setup() -> None:
    os.setpgrp()  # Ctrl-C reaches the child through us, so we control its end
    # ...as SIGINT, which we ignore when a non-interactive shell started us
    # as a background job (`ktest run &` in a script): the child must not
    # inherit that, or each stop would wait out the SIGINT grace
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    die_with_parent()


def run_plan(plan: Plan, out: Path, *, k: str | None = None, extra: list[str] | None = None,
             echo: Callable[[str], None] = lambda _: None, options: RunOptions | None = None,
             watcher: Watcher | None = None) -> RunResult:
    """Run `plan` into `out`. `k` and `extra` are the short form of
    `options`; without a `watcher`, plain lines go to `echo`."""
    opts = options or RunOptions(k=k, extra=tuple(extra or ()))
    watch = watcher or EchoWatcher(echo)
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    (out / "plan.yaml").write_text(plan.text)
    issues = list(opts.issues) if opts.issues is not None else known_mod.load()
    known_mod.save_snapshot(out, issues)
    update_manifest(out, plan={"name": plan.name, "path": str(plan.path) if plan.path else None,
                               "suites": list(plan.suites),
                               "pairs": [p.label for p in plan.pairs],
                               "specs": {p.label: f"{p.profile}:{p.driver}" for p in plan.pairs},
                               "k": opts.k},
                    jobs=opts.jobs, reruns=opts.reruns, env=suite_knobs(pair_env(opts)),
                    **dict(opts.manifest))
    result = RunResult(out)
    if opts.tests is not None:
        result.selected = sum(len(v) for v in opts.tests.values())
    t0 = time.monotonic()
    try:
        _run_pairs(plan, out, opts, watch, result, issues)
    except KeyboardInterrupt:
        result.interrupted = 130
    except SystemExit as e:  # SIGTERM/SIGHUP from the CLI's handler
        result.interrupted = e.code if isinstance(e.code, int) else 143
    finally:
        result.seconds = time.monotonic() - t0
        finish(out, result, plan.pairs, issues, opts.baseline)
    return result


def finish(out: Path, result: RunResult, pairs: Sequence[Pair],
           issues: Sequence[known_mod.KnownIssue], baseline: Path | None = None) -> None:
    """After the pairs (or an interruption): the records as judged with the
    known issues, junit.xml, the end in run.json, and report.html."""
    result.records = read_records(out)
    known_mod.annotate(result.records, issues,
                       known_mod.Versions.of_manifest(read_manifest(out)))
    merge_junit(out, list(pairs))
    update_manifest(out, ended=datetime.now().astimezone().isoformat(timespec="seconds"),
                    seconds=round(result.seconds, 1))
    try:
        from orchestrator.runs import html

        result.report = html.write_report(out, baseline)
    except Exception as e:  # noqa: BLE001 - the run's results are on disk; say what failed
        result.notes.append(f"report.html not written: {type(e).__name__}: {e}")


@dataclass
class _Child:
    pr: PairRun
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    log_path: Path


def _run_pairs(plan: Plan, out: Path, opts: RunOptions, watch: Watcher,
               result: RunResult, issues: Sequence[known_mod.KnownIssue]) -> None:
    queue: list[PairRun] = []
    for pair in plan.pairs:
        tests = None if opts.tests is None else list(opts.tests.get(pair.label, ()))
        if tests == []:
            continue  # nothing of this pair is selected (a shard, --test)
        total = len(tests) if tests is not None else (opts.totals or {}).get(pair.label)
        queue.append(PairRun(pair, total=total))
    result.pairs = list(queue)
    by_label = {pr.pair.label: pr for pr in queue}
    tail = RecordTail(out / RESULTS)
    running: list[_Child] = []
    try:
        while queue or running:
            while queue and len(running) < max(1, opts.jobs):
                running.append(_start(plan, out, opts, queue.pop(0), watch))
            time.sleep(0.5)
            _deliver(tail, by_label, running, watch, issues)
            for child in [c for c in running if c.proc.poll() is not None]:
                _deliver(tail, by_label, running, watch, issues)
                running.remove(child)
                _ended(child, watch)
            watch.tick(result.pairs)
    except BaseException:
        _stop_children([c.proc for c in running])
        for child in running:
            child.log.close()
        raise


def _start(plan: Plan, out: Path, opts: RunOptions, pr: PairRun, watch: Watcher) -> _Child:
    pair = pr.pair
    tests = None if opts.tests is None else opts.tests.get(pair.label)
    argv = pytest_argv(plan, pair, out, opts.k, opts.extra, tests, opts.reruns)
    if tests is not None:
        (out / f"tests-{pair.slug}.txt").write_text("".join(f"{x}\n" for x in tests))
    (out / f"pytest-{pair.slug}.argv").write_text(" ".join(argv) + "\n")
    log_path = out / f"pytest-{pair.slug}.log"
    log = open(log_path, "wb")
    pr.started = time.monotonic()
    watch.pair_started(pr)
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=paths.data_root(),
                            env=pair_env(opts), preexec_fn=_child_setup)
    return _Child(pr, proc, log, log_path)


def _ended(child: _Child, watch: Watcher) -> None:
    child.log.close()
    pr, code = child.pr, child.proc.returncode
    pr.status, pr.seconds = code, time.monotonic() - (pr.started or time.monotonic())
    if code == 5:
        pr.status, pr.note = 0, "no tests selected"
    elif code not in (0, 1):
        pr.note = f"pytest exited {code}; see {child.log_path.name}: " + \
            _last_error(child.log_path)
    watch.pair_ended(pr)


def _deliver(tail: RecordTail, by_label: dict[str, PairRun], running: list[_Child],
             watch: Watcher, issues: Sequence[known_mod.KnownIssue]) -> None:
    records = tail.new()
    if records:  # judged as they land; the kernel and QEMU are in run.json by now
        versions = known_mod.Versions.of_manifest(read_manifest(tail.path.parent))
        known_mod.annotate(records, issues, versions)
    for rec in records:
        pr = by_label.get(rec.pair or "")
        if pr is None and len(running) == 1:
            pr = running[0].pr  # a test without the pair fixture
        if pr is not None and not rec.part_of:  # (a subtest's test counts for it)
            pr.done += 1
            pr.failures += is_bad(rec)
        watch.record(pr, rec)


class RecordTail:
    """The records appended to results.jsonl since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def new(self) -> list[Record]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # a line still being written waits
        self.offset += end
        records = []
        for line in data[:end].splitlines():
            try:
                records.append(Record.from_dict(json.loads(line)))
            except (ValueError, TypeError):
                continue
        return records


def _stop_children(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """Each child tears its guests down on SIGINT/SIGTERM (pytest
    finalizers); give them time together, then kill what is left."""
    for sig, wait in ((signal.SIGINT, 60), (signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        alive = [p for p in procs if p.poll() is None]
        if not alive:
            return
        for p in alive:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        for p in alive:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
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


def record_line(r: Record) -> str:
    msg = f"  {r.message}" if r.outcome != "passed" and r.message else ""
    pair = f" [{r.pair}]" if r.pair else ""
    return f"   {status(r):<5} {test_name(r)}{pair} ({r.duration:.1f}s){msg}"[:200]


def merge_junit(out: Path, pairs: list[Pair]) -> Path:
    """junit.xml of the run: each pair's file, its suite named after the pair."""
    return merge_junit_files(out / "junit.xml",
                             [(out / f"junit-{p.slug}.xml", p.label) for p in pairs])


def merge_junit_files(target: Path, files: Sequence[tuple[Path, str | None]]) -> Path:
    """One <testsuites> of the suites in `files` (renamed when a name is
    given); unreadable files are left out."""
    root = ET.Element("testsuites")
    for path, name in files:
        try:
            top = ET.parse(path).getroot()
        except (OSError, ET.ParseError):
            continue
        for suite in [top] if top.tag == "testsuite" else list(top):
            if name is not None:
                suite.set("name", name)
            root.append(suite)
    ET.ElementTree(root).write(target, encoding="utf-8", xml_declaration=True)
    return target


def summary_table(result: RunResult) -> str:
    labels = [p.pair.label for p in result.pairs]
    text = matrix_table(result.records, labels)
    notes = [f"  {p.pair.label}: {p.note}" for p in result.pairs if p.note]
    return "\n".join([text, *notes, *result.notes])


def matrix_table(records: Sequence[Record], labels: Sequence[str]) -> str:
    """Tests down, pairs across, a status in each cell; then the counts,
    and the failures, known failures and flakes one per line."""
    tests, cells = matrix(records)
    if not tests:
        return "no test results"
    labels = [lab for lab in labels if any((t, lab) in cells for t in tests)] or list(labels)
    w = max(len(t) for t in tests)
    widths = [max(len(lab), 5) for lab in labels]
    head = " " * w + "  " + "  ".join(lab.ljust(cw) for lab, cw in zip(labels, widths,
                                                                       strict=True))
    lines = [head]
    for t in tests:
        row = [(status(cells[(t, lab)]) if (t, lab) in cells else "-").ljust(cw)
               for lab, cw in zip(labels, widths, strict=True)]
        lines.append(t.ljust(w) + "  " + "  ".join(row))
    counts: dict[str, int] = {}
    for r in records:
        counts[status(r)] = counts.get(status(r), 0) + 1
    lines.append("")
    lines.append(", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    for head_, pick, why in (
            ("failures:", is_bad, lambda r: r.message or "(no message)"),
            ("known:", lambda r: r.known is not None,
             lambda r: f"{r.message or '(no message)'} [known: {r.known.reason}]"),
            ("flaky:", lambda r: r.outcome == "flaky", lambda r: r.message)):
        chosen = [r for r in records if pick(r)]
        if chosen:
            lines.append(head_)
            lines += [f"  {r.pair or '?'}  {test_name(r)}: {why(r)}"[:300] for r in chosen]
    return "\n".join(lines)
