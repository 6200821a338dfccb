"""Each bug injection of ktest_nic, in the scenario that exposes it, must fail
that scenario with the expected verdict (orchestrator/runs/zoo.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.runs import zoo

# the pair's choices that the bug's own pytest process must share
FORWARDED = ("--ktest-kernel", "--ktest-kernel-src", "--ktest-kernel-config",
             "--ktest-kernel-variant", "--ktest-accel", "--ktest-qemu")
FLAGS = ("--ktest-coverage", "--ktest-no-snapshots")


def forwarded(config: pytest.Config) -> list[str]:
    out: list[str] = []
    for name in FORWARDED:
        value = config.getoption(name)
        for v in value if isinstance(value, list) else [value]:
            if v:
                out += [name, str(v)]
    return out + [f for f in FLAGS if config.getoption(f)]


def test_bug_is_caught(zoo_bug: zoo.Bug, ktest_pair: Any, ktest_out: Path,
                       pytestconfig: pytest.Config) -> None:
    pair = ktest_pair.pair
    if pair.driver != "ktest_nic":
        pytest.fail(f"the zoo's bugs are ktest_nic's injections; the pair's driver is "
                    f"{pair.driver}", pytrace=False)
    res = zoo.run_bug(zoo_bug, pair.profile, ktest_out / "zoo", forwarded(pytestconfig))
    assert res.caught, (f"{zoo_bug.name} ({zoo_bug.klass}) was not caught by "
                        f"{zoo_bug.scenario.split('::')[-1]}: expected {res.expected}; got "
                        f"{res.got} (run: {ktest_out / 'zoo' / zoo_bug.name})")
