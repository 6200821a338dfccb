"""The bug zoo as a suite (``ktest run --plan zoo``): one test per bug
injection of qemu-configs/zoo/, so nightly runs get the zoo's verdicts in
their results, junit and report, and `ktest compare` shows a bug that is no
longer caught as a new failure. `ktest zoo` runs the same bugs with a table.
"""

from __future__ import annotations

import pytest

from orchestrator.runs import zoo


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "zoo_bug" not in metafunc.fixturenames:
        return
    try:
        bugs = zoo.load_zoo().bugs
    except zoo.ConfigError as e:
        raise pytest.UsageError(str(e)) from None
    metafunc.parametrize("zoo_bug", bugs, ids=[b.name for b in bugs])
