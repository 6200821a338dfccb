"""Known issues: failures someone has already explained.

A known-issues file (each ``qemu-configs/known-issues/*.yaml``, plus ``ktest
run --known FILE``) is a YAML list; each entry says which failures it
explains and why::

    - title: "NETDEV WATCHDOG"        # regex searched in the failure's title
      test: "test_mtu"                # regex searched in the test id
      pair: "/e1000e$"                # regex searched in the pair label
      kernel: ">=6.12, <6.13"         # kernel version condition
      qemu: "<8.1"                    # QEMU version condition
      reason: why this failure is expected
      link: https://...

`reason` and at least one of title/test/pair are required. A version
condition is one or more clauses separated by commas, each an operator
(<, <=, >, >=, ==, !=; none means ==) and a version; a version compares by
as many numbers as it has, so "6.12" is every 6.12.y and "<8.1" is anything
before 8.1.0. A condition on a version the run did not record never holds.

An entry without `title` explains only failures that no kernel report
decided: a kernel report is a bug even where a test is known to fail. A
report that came after a test ended fails the next test's setup (its body
never runs); an entry whose `test` names the test it came after explains it
there too.

A matching failure keeps its outcome; :func:`annotate` sets
``Record.known``, and the summary, compare and the HTML report show it as
KNOWN and do not count it against the run. The emulator limitations of old
QEMU versions are read from their one table,
``orchestrator.machine.qemu.LIMITATIONS``, not written here again; the
faults a driver declares it does not survive stay in its declaration (the
plugin makes those tests strict xfail).
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import paths, yamlconf
from orchestrator.machine import qemu
from orchestrator.plugin.record import KnownMatch, Record, ReportRef
from orchestrator.yamlconf import ConfigError, Reader

SHIPPED = "known-issues"  # a folder of qemu-configs/ (its YAML files at the top are profiles)
SNAPSHOT = "known-issues.json"  # in a run directory: the issues the run was judged with
EXPLAINABLE = ("failed", "error")

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt,
    "==": operator.eq, "!=": operator.ne}
_CLAUSE = re.compile(r"^\s*(<=|>=|<|>|==|!=)?\s*(\d+(?:\.\d+)*)\s*$")
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")

Version = tuple[int, ...]


def parse_version(text: str | None) -> Version | None:
    """(6, 12, 117) from "6.12.117-ktest", (10, 0, 2) from "10.0.2"."""
    m = _VERSION.search(text or "")
    if not m:
        return None
    return tuple(int(g) for g in m.groups() if g is not None)


@dataclass(frozen=True)
class Condition:
    text: str
    clauses: tuple[tuple[str, Version], ...]

    @classmethod
    def parse(cls, text: str) -> Condition:
        clauses = []
        for part in text.split(","):
            m = _CLAUSE.match(part)
            if not m:
                raise ValueError(f"{part.strip()!r} is not a version condition "
                                 "(like <8.1, >=6.12, 6.12)")
            clauses.append((m.group(1) or "==", tuple(int(x) for x in m.group(2).split("."))))
        return cls(text, tuple(clauses))

    def holds(self, v: Version | None) -> bool:
        if v is None:
            return False
        return all(_OPS[op](v[:len(want)], want) for op, want in self.clauses)


@dataclass(frozen=True)
class Versions:
    """What a run ran on, from its run.json."""

    kernel: Version | None = None
    qemu: Version | None = None

    @classmethod
    def of_manifest(cls, manifest: dict[str, Any]) -> Versions:
        kernel = manifest.get("kernel") or {}
        qemu_ = manifest.get("qemu") or {}
        return cls(parse_version(kernel.get("release") or kernel.get("version")),
                   parse_version(qemu_.get("version")))


@dataclass(frozen=True)
class KnownIssue:
    reason: str
    title: str | None = None
    test: str | None = None
    pair: str | None = None
    kernel: str | None = None
    qemu: str | None = None
    link: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        for cond in (self.kernel, self.qemu):
            if cond is not None:
                Condition.parse(cond)
        for rx in (self.title, self.test, self.pair):
            if rx is not None:
                re.compile(rx)

    def explains(self, r: Record, versions: Versions) -> bool:
        """Whether this issue explains the failure `r`. A failure with kernel
        reports is explained only when every report's title matches: one
        known report (or a known harness message) must not hide another."""
        if not self.applies(r, versions):
            return False
        if r.reports:
            return all(self.covers(r, ref) for ref in r.reports)
        return self.in_test(r.test) and (self.title is None or self.names(r.message))

    def covers(self, r: Record, ref: ReportRef) -> bool:
        """Whether this issue names kernel report `ref` of failure `r`: its
        title, on `r`'s test or, when the report failed `r`'s setup (so its
        body, which could have failed on its own, never ran), on the test it
        came after."""
        came_after = bool(ref.after) and r.phase == "setup" and self.in_test(ref.after)
        return self.names(ref.title) and (self.in_test(r.test) or came_after)

    def applies(self, r: Record, versions: Versions) -> bool:
        """Whether `r` is a failure of this issue's pairs and versions (its
        tests: see in_test and covers)."""
        if r.outcome not in EXPLAINABLE:
            return False
        if self.pair is not None and not re.search(self.pair, r.pair or ""):
            return False
        return all(Condition.parse(c).holds(v) for c, v in
                   ((self.kernel, versions.kernel), (self.qemu, versions.qemu)) if c is not None)

    def in_test(self, test: str) -> bool:
        return self.test is None or re.search(self.test, test) is not None

    def names(self, title: str) -> bool:
        return self.title is not None and re.search(self.title, title) is not None

    def match(self) -> KnownMatch:
        return KnownMatch(self.reason, self.link, self.source)

    def to_dict(self) -> dict[str, str]:
        d = {"title": self.title, "test": self.test, "pair": self.pair,
             "kernel": self.kernel, "qemu": self.qemu, "reason": self.reason,
             "link": self.link, "source": self.source}
        return {k: v for k, v in d.items() if v}


def parse_issues(data: Any, where: str) -> list[KnownIssue]:
    """The entries of one known-issues file (ConfigError names file:line:key)."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise ConfigError(f"{where}:{yamlconf.line_of(data) or 1}: top level: expected a list "
                          f"of known issues, got {yamlconf.describe(data)}")
    return [_entry(item, where, f"[{i}]", yamlconf.line_of(data, i))
            for i, item in enumerate(data)]


def _entry(item: Any, where: str, key: str, line: int) -> KnownIssue:
    r = Reader(item, where, key, line)
    fields: dict[str, str | None] = {}
    for k in ("title", "test", "pair"):
        fields[k] = r.get(k, str, None, "a regular expression")
        if fields[k] is not None:
            try:
                re.compile(str(fields[k]))
            except re.error as e:
                raise r.error(k, f"bad regular expression: {e}") from None
    for k in ("kernel", "qemu"):
        v = r.get(k, (str, int, float), None, "a version condition like <8.1")
        fields[k] = None if v is None else str(v)
        if v is not None:
            try:
                Condition.parse(str(v))
            except ValueError as e:
                raise r.error(k, str(e)) from None
    if not any(fields[k] for k in ("title", "test", "pair")):
        raise ConfigError(f"{where}:{line}: {key}: needs at least one of title, test, pair")
    reason = r.required("reason", str, "why these failures are expected")
    link = r.get("link", str, "", "a URL")
    source = r.get("source", str, "", "where the entry came from")  # set in snapshots
    r.finish()
    return KnownIssue(reason=reason, link=link, source=source or f"{where}:{line}", **fields)


def load_issues(path: Path) -> list[KnownIssue]:
    data, _ = yamlconf.load(path, "known-issues file")
    return parse_issues(data, str(path))


def from_limitations(lims: Iterable[qemu.Limitation] = qemu.LIMITATIONS) -> list[KnownIssue]:
    """The QEMU version table's emulator limitations, as known issues."""
    out = []
    for lim in lims:
        since = qemu.FEATURES[lim.feature].since if lim.feature else None
        out.append(KnownIssue(
            reason=lim.reason, test="|".join(lim.tests),
            pair="/(" + "|".join(re.escape(d) for d in lim.drivers) + ")$",
            qemu=f"<{since[0]}.{since[1]}" if since else None, link=lim.link,
            source=f"orchestrator/machine/qemu.py LIMITATIONS ({lim.label})"))
    return out


def shipped_files() -> list[Path]:
    return sorted((paths.profiles_dir() / SHIPPED).glob("*.yaml"))


def load(extra: Sequence[Path] = ()) -> list[KnownIssue]:
    """ktest's own known issues, then those of each `extra` file."""
    issues = from_limitations()
    for path in [*shipped_files(), *extra]:
        issues += load_issues(path)
    return issues


def save_snapshot(out: Path, issues: Sequence[KnownIssue]) -> Path:
    path = out / SNAPSHOT
    path.write_text(json.dumps([i.to_dict() for i in issues], indent=2) + "\n")
    return path


def load_snapshot(out: Path) -> list[KnownIssue] | None:
    """The issues a run was judged with (None if it kept none)."""
    path = out / SNAPSHOT
    if not path.exists():
        return None
    data, _ = yamlconf.load(path, "known-issues snapshot")
    return parse_issues(data, str(path))


def _each_report_known(r: Record, issues: Sequence[KnownIssue],
                       versions: Versions) -> KnownMatch | None:
    """A failure with several kernel reports that different issues name,
    one each: known, with every issue's reason."""
    if len(r.reports) < 2:
        return None
    found: list[KnownIssue] = []
    for ref in r.reports:
        issue = next((i for i in issues if i.applies(r, versions) and i.covers(r, ref)), None)
        if issue is None:
            return None
        if issue not in found:
            found.append(issue)
    return KnownMatch("; ".join(i.reason for i in found), found[0].link, found[0].source)


def annotate(records: Iterable[Record], issues: Sequence[KnownIssue],
             versions: Versions) -> int:
    """Set `known` on each failure an issue explains (the first that does);
    records that already carry one keep it. A test that has parts (an
    upstream program and its subtests) and failed with no kernel report of
    its own is known when every part that failed is. Returns how many were
    set."""
    records = list(records)
    n = 0
    for r in records:
        if r.known is not None:
            continue
        for issue in issues:
            if issue.explains(r, versions):
                r.known = issue.match()
                n += 1
                break
        else:
            together = _each_report_known(r, issues, versions)
            if together is not None:
                r.known = together
                n += 1
    parts: dict[str, list[Record]] = {}
    for r in records:
        if r.part_of:
            parts.setdefault(r.part_of, []).append(r)
    for r in records:
        failed = [p for p in parts.get(r.test, []) if p.outcome in EXPLAINABLE]
        if r.known is None and r.outcome in EXPLAINABLE and not r.reports and failed \
                and all(p.known is not None for p in failed):
            names = ", ".join(p.test.rsplit("/", 1)[-1] for p in failed)
            r.known = KnownMatch(f"every part that failed is a known issue: {names}",
                                 source="its parts")
            n += 1
    return n
