"""`ktest run`: run a plan's suites against its (profile, driver) pairs.

A plan (qemu-configs/plans/NAME.yaml) names the pairs and the suites:

    description: every shipped pair that makes sense
    suites: [tests/nic]
    pairs:
      - {profile: e1000e, driver: ktest_nic}
      - {profile: virtio-net, driver: virtio_net}

Each pair runs in its own pytest process (the ktest plugin, with
--ktest-pair) so one pair's crash cannot take the others with it. Everything
goes into one run directory: results.jsonl (one line per test, appended as
each test ends), junit.xml (merged from the pairs' files), each pair's pytest
output, the machines' run directories (console logs, QEMU command lines) and
pcaps. The terminal gets one line per finished test and a summary table.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from . import cache, dut, profiles

PLAN_DIR = cache.project_root() / "qemu-configs" / "plans"
DEFAULT_PLAN = "default"


class PlanError(ValueError):
    """A plan that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class PlanPair:
    profile: str
    driver: str

    @property
    def label(self) -> str:
        return f"{self.profile}/{Path(self.driver).name}"

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.label)


@dataclass(frozen=True)
class Plan:
    name: str
    path: Path
    description: str
    suites: tuple[str, ...]
    pairs: tuple[PlanPair, ...]
    pcap: bool = True
    text: str = ""  # the YAML as read: copied into the run directory


def plan_path(name: str) -> Path:
    p = Path(name)
    if p.suffix in (".yaml", ".yml") or "/" in name:
        return p
    return PLAN_DIR / f"{name}.yaml"


def load_plan(name: str = DEFAULT_PLAN) -> Plan:
    path = plan_path(name)
    try:
        text = path.read_text()
        data = yaml.safe_load(text)
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in PLAN_DIR.glob("*.yaml")))
        raise PlanError(f"{path}: no such plan (shipped plans: {known})") from None
    except yaml.YAMLError as e:
        raise PlanError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise PlanError(f"{path}: expected a mapping at the top level")
    unknown = set(data) - {"description", "suites", "pairs", "pcap"}
    if unknown:
        raise PlanError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} "
                        "(expected description, suites, pairs, pcap)")
    suites = data.get("suites", ["tests/nic"])
    if not isinstance(suites, list) or not suites or not all(isinstance(s, str) for s in suites):
        raise PlanError(f"{path}: suites: expected a non-empty list of paths")
    for s in suites:
        target = s.split("::")[0]
        if not (cache.project_root() / target).exists() and not Path(target).exists():
            raise PlanError(f"{path}: suites: {s} does not exist")
    raw_pairs = data.get("pairs")
    if not isinstance(raw_pairs, list) or not raw_pairs:
        raise PlanError(f"{path}: pairs: expected a non-empty list of {{profile, driver}}")
    pairs = []
    for i, item in enumerate(raw_pairs):
        where = f"{path}: pairs[{i}]"
        if not isinstance(item, dict) or set(item) != {"profile", "driver"}:
            raise PlanError(f"{where}: expected a mapping with exactly profile and driver")
        prof, drv = item["profile"], item["driver"]
        if not isinstance(prof, str) or not isinstance(drv, str):
            raise PlanError(f"{where}: profile and driver must be strings")
        try:
            model = profiles.load_profile(prof).nics[0].model
        except (profiles.ProfileError, IndexError) as e:
            raise PlanError(f"{where}: profile {prof}: {e or 'no NIC under test'}") from None
        if not dut.Driver(Path(drv).name).can_drive(model):
            raise PlanError(f"{where}: driver {drv} cannot drive the {model} NIC of {prof}")
        pair = PlanPair(prof, drv)
        if pair in pairs:
            raise PlanError(f"{where}: duplicate pair {pair.label}")
        pairs.append(pair)
    pcap = data.get("pcap", True)
    if not isinstance(pcap, bool):
        raise PlanError(f"{path}: pcap: expected true or false")
    desc = data.get("description", "")
    return Plan(path.stem, path, str(desc), tuple(suites), tuple(pairs), pcap, text)


# ------------------------------------------------------------------ running


@dataclass
class PairRun:
    pair: PlanPair
    status: int | None = None
    seconds: float = 0.0
    note: str = ""


@dataclass
class RunResult:
    out: Path
    pairs: list[PairRun] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def failed(self) -> bool:
        bad = any(r["outcome"] in ("failed", "error", "xpassed") for r in self.records)
        broken = any(p.status not in (0, None) for p in self.pairs)
        return bad or broken or self.interrupted or not self.records


def default_out() -> Path:
    return cache.cache_root() / "runs" / f"run-{datetime.now():%Y%m%d-%H%M%S}"


def _pytest_argv(plan: Plan, pair: PlanPair, out: Path, k: str | None,
                 extra: list[str]) -> list[str]:
    root = cache.project_root()
    suites = [s if Path(s).is_absolute() else str(root / s) for s in plan.suites]
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
    from .build.common import die_with_parent

    os.setpgrp()  # Ctrl-C reaches the child through us, so we control its end
    die_with_parent()


def read_results(out: Path) -> list[dict[str, Any]]:
    path = out / "results.jsonl"
    records = []
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a kill: the rest is still readable
    return records


def run_plan(plan: Plan, out: Path, *, k: str | None = None, extra: list[str] | None = None,
             echo: Callable[[str], None] = print) -> RunResult:
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    (out / "plan.yaml").write_text(plan.text)
    result = RunResult(out)
    t0 = time.monotonic()
    seen = 0
    try:
        for pair in plan.pairs:
            argv = _pytest_argv(plan, pair, out, k, extra or [])
            echo(f"== {pair.label}")
            (out / f"pytest-{pair.slug}.argv").write_text(" ".join(argv) + "\n")
            pr = PairRun(pair)
            result.pairs.append(pr)
            start = time.monotonic()
            with open(out / f"pytest-{pair.slug}.log", "wb") as log:
                proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=cache.project_root(),
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
                pr.note = f"pytest exited {proc.returncode}; see {log.name}: " + \
                    _last_error(out / f"pytest-{pair.slug}.log")
                echo(f"   {pr.note}")
    except (KeyboardInterrupt, SystemExit):
        result.interrupted = True
    finally:
        result.seconds = time.monotonic() - t0
        result.records = read_results(out)
        merge_junit(out, [p.pair for p in result.pairs])
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
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errs = [ln for ln in lines if re.match(r"^(E |ERROR|ktest|\w+Error)", ln)]
    return (errs[-1] if errs else lines[-1] if lines else "")[:200]


def _echo_new(out: Path, seen: int, echo: Callable[[str], None]) -> int:
    records = read_results(out)
    for r in records[seen:]:
        name = test_name(r)
        msg = f"  {r['message']}" if r["outcome"] != "passed" and r.get("message") else ""
        echo(f"   {OUTCOME[r['outcome']]:<5} {name} ({r['duration']:.1f}s){msg}"[:200])
    return len(records)


OUTCOME = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP",
           "xfailed": "XFAIL", "xpassed": "XPASS"}


def test_name(record: dict[str, Any]) -> str:
    """The test id without the file path and without the pair's parameter."""
    name = str(record["test"]).split("::", 1)[-1]
    pair = record.get("pair")
    if pair:
        name = name.replace(f"[{pair}]", "").replace(f"{pair}-", "").replace(f"-{pair}", "")
    return name


def merge_junit(out: Path, pairs: list[PlanPair]) -> Path:
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
        name, pair = test_name(r), r.get("pair") or "?"
        if name not in tests:
            tests.append(name)
        cells[(name, pair)] = OUTCOME[r["outcome"]]
        if r["outcome"] in ("failed", "error", "xpassed"):
            failures.append(f"  {pair}  {name}: {r.get('message') or '(no message)'}")
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
        counts[OUTCOME[r["outcome"]]] = counts.get(OUTCOME[r["outcome"]], 0) + 1
    lines.append("")
    lines.append(", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    if failures:
        lines.append("failures:")
        lines += [f[:300] for f in failures]
    for p in result.pairs:
        if p.note:
            lines.append(f"  {p.pair.label}: {p.note}")
    return "\n".join(lines)
