"""Stand-ins for the guest, for the commands that run a job at other states of
a tree (`ktest bisect`, `ktest validate`): the test's verdict is a function of
the tree under test, written as the plugin would write it.

    runner = TreeRunner(lambda tree: FAIL if "bug" in (tree / "x.c").read_text() else PASS)
    runner(plan, out, options)   # out/results.jsonl: one record per test and pair
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from orchestrator import cli
from orchestrator.builds.common import BuildError
from orchestrator.plugin.record import Record, ReportRef, append_record, update_manifest
from orchestrator.runs import execute, prepare
from orchestrator.runs.execute import PairRun, RunOptions, RunResult
from orchestrator.runs.plan import Plan

# (outcome, message, kernel report titles), or None: pytest broke, no record
Outcome = tuple[str, str, tuple[str, ...]] | None
PASS: Outcome = ("passed", "", ())
DMA = "DMA-API: device driver has pending DMA allocations while released from device " \
      "[count=12] in ktest_nic"
FAIL: Outcome = ("failed", DMA, (DMA,))
WARN: Outcome = ("failed", "WARNING in ktnic_open", ("WARNING in ktnic_open",))
TEST = "tests/nic/test_lifecycle.py::test_load_unload_cycles_under_traffic"


def tree_of(plan: Plan, options: RunOptions) -> Path:
    """The tree under test: the kernel tree the options build, else the
    first pair's driver source."""
    extra = list(options.extra)
    if "--ktest-kernel-src" in extra:
        return Path(extra[extra.index("--ktest-kernel-src") + 1])
    return Path(plan.pairs[0].driver)


class TreeRunner:
    """Stands in for execute.run_plan: `verdict(tree)` is each test's outcome
    on each pair of the plan (`verdicts` may give one per test)."""

    def __init__(self, verdict: Callable[[Path], Outcome | Sequence[Outcome]],
                 tests: Sequence[str] = (TEST,)) -> None:
        self.verdict = verdict
        self.tests = tests
        self.calls: list[tuple[Plan, Path, RunOptions]] = []

    def __call__(self, plan: Plan, out: Path, options: RunOptions) -> RunResult:
        self.calls.append((plan, out, options))
        out.mkdir(parents=True, exist_ok=True)
        update_manifest(out, plan={"name": plan.name, "pairs": [p.label for p in plan.pairs]},
                        **dict(options.manifest))
        got = self.verdict(tree_of(plan, options))
        outcomes = list(got) if isinstance(got, list) else [got] * len(self.tests)
        result = RunResult(out, pairs=[PairRun(p, status=0) for p in plan.pairs])
        for pair in plan.pairs:
            for test, spec in zip(self.tests, outcomes, strict=True):
                if spec is None:
                    result.pairs[0].note = "pytest exited 3; see pytest-x.log: INTERNALERROR"
                    continue
                outcome, message, titles = spec
                rec = Record(test=f"{test}[{pair.label}]", pair=pair.label, outcome=outcome,
                             message=message, reports=[ReportRef(t, "DMA_API") for t in titles])
                append_record(out / "results.jsonl", rec)
                result.records.append(rec)
        return result


def build_unless(marker: str) -> Callable[..., object]:
    """Stands in for prepare.build: a BuildError for a tree (driver source or
    kernel) holding `marker` in a .c file."""
    def build(choices: object, specs: Sequence[str], *a: object, **kw: object) -> object:
        trees = [Path(s) for s in specs if Path(s).is_dir()]
        src = getattr(choices, "kernel_src", None)
        trees += [Path(src)] if src else []
        for tree in trees:
            for c in tree.rglob("*.c"):
                if marker in c.read_text():
                    raise BuildError(f"module build failed (make exit 2): {c.name}",
                                     [f"{c.name}:1: error: {marker}"])
        return None
    return build


def stand_in(monkeypatch: pytest.MonkeyPatch, runner: TreeRunner,
             build: Callable[..., object]) -> TreeRunner:
    """`runner` instead of execute.run_plan and `build` instead of
    prepare.build, for the commands."""
    monkeypatch.setattr(prepare, "build", lambda choices, specs, *a, **kw: build(choices, specs))
    monkeypatch.setattr(execute, "run_plan",
                        lambda plan, out, options, watcher=None: runner(plan, out, options))
    return runner


def command(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`ktest ARGV` in this process: its exit status, stdout and stderr."""
    try:
        code = cli.main(list(argv))
    except SystemExit as e:
        code = int(e.code or 0)
    got = capsys.readouterr()
    return code, got.out, got.err
