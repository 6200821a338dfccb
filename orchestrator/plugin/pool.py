"""The guest of one (profile, driver) pair: booted on first use, shared by
consecutive tests while healthy, replaced after a crash or a wedge, and
latched broken when it cannot boot (every later test of the pair then ends
at once as ERROR with the first boot error)."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from orchestrator.builds.common import BuildError
from orchestrator.machine import session
from orchestrator.machine.vm import Machine, MachineError
from orchestrator.scenario import coverage, drivers
from orchestrator.scenario.dut import Dut

log = logging.getLogger(__name__)


class PairBroken(Exception):
    """The pair's guest could not be booted (or its driver not built)."""


@dataclasses.dataclass
class Judged:
    """How far the verdict has read one guest's console, and for whom: the
    bytes after `offset` are the aftermath of test `after` ("" for the
    guest's boot; `owner` its verdict state), judged with that test's
    allowed reports."""

    offset: int = 0
    after: str = ""
    allow: list[str] = dataclasses.field(default_factory=list)
    owner: object = None


POOLS = pytest.StashKey[dict[str, "Pool"]]()  # in the config: every pair's pool, by label


def pool_of(config: pytest.Config, pair: drivers.Pair) -> Pool | None:
    """The pool of `pair` in this session, if it was ever made."""
    return config.stash.get(POOLS, {}).get(pair.label)


class Pool:
    def __init__(self, pair: drivers.Pair, config: pytest.Config, arts: Any,
                 out: Path) -> None:
        self.pair, self.config, self.arts, self.out = pair, config, arts, out
        try:
            checked = drivers.check_pair(pair)
        except drivers.PairError as e:
            raise pytest.UsageError(str(e)) from None
        prof = checked.profile
        viommu = config.getoption("--ktest-viommu")
        if viommu != "profile":
            prof = dataclasses.replace(prof, viommu="intel" if viommu == "on" else "off")
        self.profile = prof
        self.nic = checked.nic
        self.broken: str | None = None
        self.driver: drivers.Driver | None = None
        self.coverage = bool(config.getoption("--ktest-coverage"))
        try:
            self.driver = drivers.resolve_driver(pair.driver, arts, coverage=self.coverage)
        except (BuildError, FileNotFoundError) as e:
            self.broken = f"driver {pair.driver} could not be built: {e}"
        self.machine: Machine | None = None
        self.dut: Dut | None = None
        self.boots = 0
        self.replaced: list[str] = []
        self.tainted = ""  # the title of a kernel report the guest made
        # every guest's console is judged to its last byte: the verdict's
        # ledger, and the discarded guests whose last bytes it has yet to read
        self.judged: dict[str, Judged] = {}
        self.retired: list[Machine] = []
        config.stash.setdefault(POOLS, {})[pair.label] = self

    def get(self) -> Machine:
        """The pair's healthy guest, booted if needed; PairBroken if the pair
        could not boot before (or cannot now)."""
        if self.broken is not None:
            raise PairBroken(self.broken)
        if self.machine is not None and self.tainted:
            self.discard(f"after a kernel report: {self.tainted}")
        if self.machine is not None and not self.healthy():
            self.discard("unhealthy")
        if self.machine is None:
            self.boots += 1
            run_dir = self.out / f"{self.pair.slug}-m{self.boots}"
            m = session.make_machine(self.profile, self.arts, run_dir=run_dir,
                                     accel=self.config.getoption("--ktest-accel"),
                                     snapshots=not self.config.getoption("--ktest-no-snapshots"))
            try:
                m.launch()
            except MachineError as e:
                self.broken = f"{self.pair.label}: boot failed: {e} (run directory {run_dir})"
                raise PairBroken(self.broken) from e
            self.machine = m
            assert self.driver is not None
            self.dut = Dut(m, self.nic, self.driver,
                           params=self.config.getoption("--ktest-driver-params"))
        return self.machine

    def healthy(self) -> bool:
        m = self.machine
        if m is None or m.crashed or not m.alive():
            return False
        try:
            m.ssh().cmd("true", timeout=15)
        except Exception:
            return False
        return True

    def discard(self, why: str) -> None:
        if self.machine is not None:
            self.replaced.append(f"{self.machine.run_dir.name}: {why}")
            self.collect_coverage()
            self.machine.shutdown(reason=why)
            self.retired.append(self.machine)
        self.machine = self.dut = None
        self.tainted = ""

    def collect_coverage(self) -> None:
        """With --ktest-coverage: the driver's gcov counts of this guest into
        an lcov tracefile, before the guest goes (a crashed one has none to
        give)."""
        m, drv = self.machine, self.driver
        if not self.coverage or m is None or drv is None or drv.gcov_dir is None:
            return
        if m.crashed or not m.alive():
            return
        try:
            coverage.collect(m.ssh(), drv.gcov_dir, self.out / "coverage", m.run_dir.name)
        except Exception as e:  # coverage must never decide a verdict
            log.warning("%s: coverage not collected: %s", self.pair.label, e)

    def close(self) -> None:
        self.discard("end of pair")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)
