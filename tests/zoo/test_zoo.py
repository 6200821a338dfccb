"""Each bug injection of ktest_nic, in the scenario that exposes it, must fail
that scenario with the expected verdict (orchestrator/runs/zoo.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.runs import zoo
from orchestrator.runs.choices import Choices

FLAGS = ("--ktest-coverage", "--ktest-no-snapshots")  # also for each bug's run


def choices(config: pytest.Config) -> Choices:
    """The pair's kernel and QEMU, which each bug's own pytest must share."""
    return Choices.make(kernel=config.getoption("--ktest-kernel"),
                        kernel_src=config.getoption("--ktest-kernel-src"),
                        variant=config.getoption("--ktest-kernel-variant"),
                        config=tuple(config.getoption("--ktest-kernel-config")),
                        accel=config.getoption("--ktest-accel"),
                        qemu=config.getoption("--ktest-qemu"))


def test_bug_is_caught(zoo_bug: zoo.Bug, ktest_pair: Any, ktest_out: Path,
                       pytestconfig: pytest.Config) -> None:
    pair = ktest_pair.pair
    if pair.driver != "ktest_nic":
        pytest.fail(f"the zoo's bugs are ktest_nic's injections; the pair's driver is "
                    f"{pair.driver}", pytrace=False)
    c = choices(pytestconfig)
    extra = [*c.plugin_args(), *(f for f in FLAGS if pytestconfig.getoption(f))]
    res = zoo.run_bug(zoo_bug, pair.profile, ktest_out / "zoo", extra,
                      manifest={"choices": c.to_dict()})
    assert res.caught, (f"{zoo_bug.name} ({zoo_bug.klass}) was not caught by "
                        f"{zoo_bug.scenario.split('::')[-1]}: expected {res.expected}; got "
                        f"{res.got} (run: {ktest_out / 'zoo' / zoo_bug.name})")
