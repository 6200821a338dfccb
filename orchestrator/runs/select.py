"""Which tests a run runs: the plan's tests per pair (from `pytest
--collect-only`, which needs no guest), one shard of them, or the test ids
given on the command line.

Shards (`ktest run --shard K/N`) split a plan the same way on every machine
that asks, and each shard boots as few guests as it can:

- with at least N pairs that have tests, whole pairs go to shards, largest
  first, each to the shard with the fewest tests so far (ties: the lowest
  shard, then the pair's label);
- with fewer, every pair gets shards in proportion to its tests (at least
  one each), and a pair's tests go to its shards by a stable hash of
  (pair, test id), so each shard boots the guest of one pair only and a
  test keeps its shard when others are added.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator import paths
from orchestrator.runs.plan import Plan, suite_path
from orchestrator.runs.verdicts import pair_in
from orchestrator.scenario.drivers import Pair

Selection = dict[str, list[str]]  # pair label -> test ids, in collection order


class SelectError(Exception):
    """The tests could not be listed or chosen (one line says why)."""


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
            raise SelectError(f"--shard {text!r}: expected K/N with 1 <= K <= N, like 2/4")
        return cls(int(m.group(1)), int(m.group(2)))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def collect_argv(plan: Plan, k: str | None, extra: Sequence[str] = (),
                 targets: Sequence[str] | None = None) -> list[str]:
    """`pytest --collect-only` of the plan's suites (or of `targets`, test
    ids) on all its pairs at once."""
    suites = list(targets) if targets else [
        str(suite_path(s)) + (f"::{s.split('::', 1)[1]}" if "::" in s else "")
        for s in plan.suites]
    argv = [sys.executable, "-m", "pytest", "--collect-only", "-q", *suites,
            "-p", "no:cacheprovider", "--rootdir", str(paths.data_root())]
    for pair in plan.pairs:
        argv += ["--ktest-pair", f"{pair.profile}:{pair.driver}"]
    if k:
        argv += ["-k", k]
    return argv + list(extra)


def collect(plan: Plan, k: str | None = None, extra: Sequence[str] = (),
            targets: Sequence[str] | None = None, timeout: float = 300) -> Selection:
    """The plan's tests per pair label (every pair present, maybe empty)."""
    labels = [p.label for p in plan.pairs]
    for test in targets or ():
        if pair_in(test, labels) is None:
            raise SelectError(_not_ours(test, labels))
    argv = collect_argv(plan, k, extra, targets)
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                             cwd=paths.data_root(), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SelectError(f"listing the plan's tests failed: {e}") from None
    if out.returncode not in (0, 5):  # 5: nothing selected
        lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
        errs = [ln for ln in lines if re.match(r"^(E |ERROR)", ln)] or lines[-1:]
        raise SelectError(f"listing the plan's tests failed (pytest exit {out.returncode}): "
                          f"{errs[0][:200] if errs else 'no output'}")
    return group(out.stdout.splitlines(), labels)


def group(ids: Sequence[str], labels: Sequence[str]) -> Selection:
    """Test ids (one per line of `pytest --collect-only -q`) by pair label."""
    sel: Selection = {lab: [] for lab in labels}
    for line in ids:
        line = line.strip()
        if "::" not in line or line.startswith(("=", " ")):
            continue
        label = pair_in(line, list(labels))
        if label is not None:
            sel[label].append(line)
    return sel


def _hash(label: str, test: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{label}\0{test}".encode()).digest()[:8], "big")


def _split_pairs(sizes: Mapping[str, int], n: int) -> list[list[str]]:
    """Whole pairs to n shards, balanced by test count (deterministic)."""
    shards: list[list[str]] = [[] for _ in range(n)]
    load = [0] * n
    for label in sorted(sizes, key=lambda lab: (-sizes[lab], lab)):
        i = min(range(n), key=lambda j: (load[j], j))
        shards[i].append(label)
        load[i] += sizes[label]
    return shards


def _shares(sizes: Mapping[str, int], n: int) -> dict[str, int]:
    """How many of n shards each pair gets: one each, the rest in proportion
    to test counts (largest remainders first)."""
    labels = sorted(sizes)
    share = dict.fromkeys(labels, 1)
    spare = n - len(labels)
    total = sum(sizes.values())
    quota = {lab: spare * sizes[lab] / total for lab in labels}
    for lab in labels:
        share[lab] += int(quota[lab])
    left = n - sum(share.values())
    for lab in sorted(labels, key=lambda lab: (-(quota[lab] - int(quota[lab])), lab))[:left]:
        share[lab] += 1
    return share


def shard(sel: Mapping[str, Sequence[str]], which: Shard) -> Selection:
    """Shard `which` of a selection (pairs without tests drop out)."""
    sizes = {lab: len(ids) for lab, ids in sel.items() if ids}
    out: Selection = {lab: [] for lab in sel}
    if not sizes:
        return out
    n = which.count
    if len(sizes) >= n:
        for lab in _split_pairs(sizes, n)[which.index - 1]:
            out[lab] = list(sel[lab])
        return out
    first = 0  # shards are handed out to pairs in label order
    for lab, k in sorted(_shares(sizes, n).items()):
        if first <= which.index - 1 < first + k:
            mine = which.index - 1 - first
            out[lab] = [t for t in sel[lab] if _hash(lab, t) % k == mine]
        first += k
    return out


def by_ids(sel: Mapping[str, Sequence[str]], ids: Sequence[str]) -> Selection:
    """The given test ids, by pair; SelectError names an id that is not one
    of the plan's tests."""
    out: Selection = {lab: [] for lab in sel}
    for test in ids:
        lab = pair_in(test, list(sel))
        if lab is None or test not in sel[lab]:
            raise SelectError(_not_ours(test, list(sel)))
        out[lab].append(test)
    return out


def _not_ours(test: str, labels: Sequence[str]) -> str:
    return (f"--test {test}: not a test of this plan's pairs ({', '.join(labels) or 'none'}); "
            "`ktest run --list` shows them")


def total(sel: Mapping[str, Sequence[str]]) -> int:
    return sum(len(v) for v in sel.values())


def pairs_with_tests(pairs: Sequence[Pair], sel: Mapping[str, Sequence[str]]) -> list[Pair]:
    return [p for p in pairs if sel.get(p.label)]
