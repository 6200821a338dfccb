"""`ktest zoo`: prove that ktest turns each class of NIC driver bug into a
failing test with the right title.

qemu-configs/zoo/ktest_nic.yaml lists ktest_nic's bug injections (its ``bugs=``
module parameter), the test that exposes each, and the verdict expected: the
test fails with a kernel report of a given kind whose title matches a
pattern (the guilty ktest_nic function), or, for bugs the kernel does not
report, with a failure message that matches. Each bug runs in a pytest
process of its own on the zoo profile's guest; the table says what was
expected and what came out. The control is the clean driver over the whole
default and fault suites (``ktest run -m PROFILE -d ktest_nic``): no report.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import paths, yamlconf
from orchestrator.plugin.record import Record, read_records, update_manifest
from orchestrator.runs.plan import suite_path
from orchestrator.yamlconf import ConfigError, Reader

ZOO_FILE = "zoo/ktest_nic.yaml"


@dataclass(frozen=True)
class Bug:
    name: str
    klass: str
    scenario: str  # a pytest node id (file::test, parameters optional)
    kind: str | None = None  # expected report kind (None: no kernel report expected)
    title: str = ""  # regex searched in the report's title
    message: str = ""  # regex searched in the failure message of a failure with no report
    # (with a kind too: either is the bug's signature)
    env: tuple[tuple[str, str], ...] = ()  # suite knobs the scenario runs with (KTEST_SWEEP)


@dataclass(frozen=True)
class Unobservable:
    klass: str
    reason: str


@dataclass(frozen=True)
class Zoo:
    profile: str
    bugs: tuple[Bug, ...]
    unobservable: tuple[Unobservable, ...]


@dataclass
class BugResult:
    bug: Bug
    caught: bool = False
    got: str = ""  # what the verdict said
    seconds: float = 0.0
    records: list[dict[str, object]] = field(default_factory=list)

    @property
    def expected(self) -> str:
        if self.bug.kind:
            return f"FAIL, {self.bug.kind} /{self.bug.title}/" + \
                (f" or /{self.bug.message}/" if self.bug.message else "")
        return f"FAIL /{self.bug.message}/"


def zoo_path() -> Path:
    return paths.profiles_dir() / ZOO_FILE


def load_zoo(path: Path | None = None) -> Zoo:
    path = path or zoo_path()
    data, _ = yamlconf.load(path, "zoo")
    r = Reader(data, str(path))
    profile = r.get("profile", str, "e1000e-viommu", "a profile")
    bugs = []
    for _, raw, key, line in r.items("bugs"):
        b = Reader(raw, str(path), key, line)
        bug = Bug(
            name=b.required("name", str, "a bug injection name"),
            klass=b.required("class", str, "the bug class"),
            scenario=b.required("scenario", str, "a pytest node id"),
            kind=b.get("kind", str, None, "a report kind"),
            title=b.get("title", str, "", "a regex"),
            message=b.get("message", str, "", "a regex"),
            env=tuple(sorted((str(k), str(v)) for k, v in
                             b.get("env", dict, {}, "suite knobs (KTEST_NAME: value)").items())),
        )
        if any(not k.startswith("KTEST_") for k, _ in bug.env):
            raise b.error("env", "suite knobs are named KTEST_*")
        if not bug.kind and not bug.message:
            raise b.error("kind", "give a report kind (and title) or a failure message")
        if not suite_path(bug.scenario).exists():
            raise b.error("scenario", f"{bug.scenario.split('::')[0]} does not exist")
        for pat in (bug.title, bug.message):
            try:
                re.compile(pat)
            except re.error as e:
                raise b.error("title", f"bad regex {pat!r}: {e}") from None
        b.finish()
        bugs.append(bug)
    unobs = []
    for _, raw, key, line in r.items("not_observable"):
        u = Reader(raw, str(path), key, line)
        unobs.append(Unobservable(u.required("class", str, "the bug class"),
                                  u.required("reason", str, "why").replace("\n", " ")))
        u.finish()
    r.finish()
    return Zoo(profile, tuple(bugs), tuple(unobs))


def judge(bug: Bug, records: list[Record]) -> tuple[bool, str]:
    """Whether the scenario's records show the expected verdict, and what
    they show."""
    failed = [r for r in records if r.outcome in ("failed", "error")]
    if not records:
        return False, "no result (the scenario did not run)"
    if not failed:
        return False, f"PASS ({len(records)} test(s)): the bug went unnoticed"
    for r in failed:
        for rep in r.reports:
            if bug.kind and rep.kind == bug.kind and re.search(bug.title, rep.title):
                return True, f"FAIL, {rep.kind}: {rep.title}"
        if bug.message and not r.reports and re.search(bug.message, r.message):
            return True, f"FAIL: {r.message[:160]}"
    first = failed[0]
    what = f"{first.reports[0].kind}: {first.reports[0].title}" if first.reports else \
        first.message[:160]
    return False, f"{first.outcome.upper()}, but {what}"


def run_bug(bug: Bug, profile: str, out: Path, extra: list[str] | None = None,
            manifest: Mapping[str, Any] | None = None) -> BugResult:
    """The bug's scenario with ktest_nic loaded with bugs=NAME, in its own
    pytest process and output directory (a run directory: `manifest`, the
    choices `extra` carries, goes to its run.json, so `ktest repro` can
    replay it)."""
    bug_out = out / bug.name
    node = bug.scenario
    file_part, _, test_part = node.partition("::")
    # the pair is the first parameter of every suite test (name[pair-params]):
    # select the function, then its own parameters by their tail
    name, _, params = test_part.partition("[")
    target = str(suite_path(file_part)) + (f"::{name}" if name else "")
    select = ["-k", params] if params else []
    argv = [sys.executable, "-m", "pytest", target, *select, "-p", "no:cacheprovider", "-q",
            "--rootdir", str(paths.data_root()), "--ktest-pair", f"{profile}:ktest_nic",
            "--ktest-driver-params", f"bugs={bug.name}", "--ktest-out", str(bug_out),
            *(extra or [])]
    t0 = time.monotonic()
    bug_out.mkdir(parents=True, exist_ok=True)
    recorded = dict(manifest or {})
    knobs = {**dict(recorded.get("env") or {}), **dict(bug.env)}
    recorded["env"] = knobs
    update_manifest(bug_out, zoo_bug=bug.name, driver_params=f"bugs={bug.name}", **recorded)
    with open(bug_out / "pytest.log", "wb") as log:
        subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                       cwd=paths.data_root(), check=False, env={**os.environ, **knobs})
    records = read_records(bug_out)
    caught, got = judge(bug, records)
    return BugResult(bug, caught, got, time.monotonic() - t0,
                     [asdict(r) for r in records])


def run_zoo(zoo: Zoo, out: Path, names: list[str] | None = None, profile: str | None = None,
            extra: list[str] | None = None,
            echo: Callable[[BugResult], None] = lambda _: None,
            manifest: Mapping[str, Any] | None = None) -> list[BugResult]:
    unknown = sorted(set(names or ()) - {b.name for b in zoo.bugs})
    if unknown:
        raise ConfigError(f"{zoo_path()}: no bug named {', '.join(unknown)} "
                          f"(known: {', '.join(b.name for b in zoo.bugs)})")
    results = []
    for bug in zoo.bugs:
        if names and bug.name not in names:
            continue
        res = run_bug(bug, profile or zoo.profile, out, extra, manifest)
        results.append(res)
        echo(res)
        write_summary(out, zoo, results)
    return results


def write_summary(out: Path, zoo: Zoo, results: list[BugResult]) -> Path:
    path = out / "zoo.json"
    data = {
        "caught": sum(r.caught for r in results), "run": len(results),
        "bugs": [{"name": r.bug.name, "class": r.bug.klass, "scenario": r.bug.scenario,
                  "expected": r.expected, "got": r.got, "caught": r.caught,
                  "seconds": round(r.seconds, 1)} for r in results],
        "not_observable": [asdict(u) for u in zoo.unobservable],
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def table(zoo: Zoo, results: list[BugResult]) -> str:
    rows = [("bug", "class", "scenario", "expected", "got", "time")]
    for r in results:
        rows.append((r.bug.name, r.bug.klass, r.bug.scenario.split("::")[-1], r.expected,
                     ("ok  " if r.caught else "MISS ") + r.got, f"{r.seconds:.0f}s"))
    for u in zoo.unobservable:
        rows.append(("-", u.klass, "-", "not observable", u.reason, "-"))
    widths = [min(max(len(row[i]) for row in rows), cap)
              for i, cap in enumerate((24, 48, 40, 44, 90, 6))]
    lines = []
    for row in rows:
        lines.append("  ".join(cell[:w].ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip())
    return "\n".join(lines)
