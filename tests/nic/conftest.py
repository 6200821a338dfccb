"""Fixtures of the NIC conformance suite (the ktest pytest plugin provides
machine, dut, traffic, guest and cleanup); shared steps are in steps.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.scenario import traffic as traffic_mod


@pytest.fixture
def agent(dut: Any) -> Iterator[Any]:
    a = traffic_mod.GuestAgent(dut.guest)
    yield a
    a.stop()
