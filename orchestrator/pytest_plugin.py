"""pytest plugin `ktest` (entry point pytest11): booted guests for NIC tests.

A test asks for fixtures and gets a guest with the driver under test loaded:

  machine   the booted Machine, shared by consecutive tests of one pair while
            it stays healthy; a guest that crashed or stopped answering is
            replaced before the next test
  dut       the NIC under test (orchestrator.dut.Dut): driver loaded,
            interface up with the test addresses, carrier on
  traffic   the host's traffic peer on the NIC's frame socket
            (orchestrator.traffic.Peer); its frames go to a pcap in the run
            directory with --ktest-pcap
  guest     the command API (cmd / ip / ethtool, json=True)
  cleanup   a LIFO queue: cleanup(fn, *args) runs after the test

Each test runs against one (machine profile, driver) pair; pairs come from
--ktest-pair PROFILE:DRIVER (repeatable) or from every compatible
combination of --ktest-machine and --ktest-driver. Before and after each test
a marker line goes into the guest's kernel log; the console between the two
is parsed (orchestrator.report) and a kernel report the test does not allow
(@pytest.mark.allow_reports("regex", ...)) fails it with the report's title.
@pytest.mark.requires("rss", ...) skips a test when the driver under test does
not advertise the feature (see orchestrator.dut.CAPS).

With --ktest-out DIR every test's outcome is appended to DIR/results.jsonl
as it ends (so an interrupted run keeps what it did) and the machines' run
directories (console logs, QEMU command lines, pcaps) go under DIR.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

DEFAULT_PAIR = ("e1000e", "ktest_nic")
MARK_BEGIN = "ktest: test begin"
MARK_END = "ktest: test end"
STATE = pytest.StashKey["_TestState"]()


@dataclasses.dataclass(frozen=True)
class Pair:
    profile: str
    driver: str

    @property
    def label(self) -> str:
        return f"{self.profile}/{Path(self.driver).name}"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("ktest", "ktest: NIC driver tests in QEMU guests")
    g.addoption("--ktest-pair", action="append", default=[], metavar="PROFILE:DRIVER",
                help="a machine profile and the driver under test (repeatable)")
    g.addoption("--ktest-machine", action="append", default=[], metavar="PROFILE",
                help="machine profile name or YAML path (repeatable)")
    g.addoption("--ktest-driver", action="append", default=[], metavar="DRIVER",
                help="ktest_nic, e1000e, virtio_net, a module source dir or a .ko "
                     "(repeatable)")
    g.addoption("--ktest-viommu", choices=("profile", "on", "off"), default="profile",
                help="force the Intel vIOMMU on or off for every profile")
    g.addoption("--ktest-accel", choices=("auto", "tcg", "kvm"), default=None,
                help="override the profiles' accelerator")
    g.addoption("--ktest-kernel-src", default=None, metavar="DIR",
                help="build the guest kernel from this tree (default: linux-source-6.1)")
    g.addoption("--ktest-kernel-config", action="append", default=[], metavar="FRAG",
                help="extra kernel config fragment (repeatable)")
    g.addoption("--ktest-kernel-variant", default="debug", choices=("debug", "fast"))
    g.addoption("--ktest-out", default=None, metavar="DIR",
                help="output directory: results.jsonl, run directories, pcaps")
    g.addoption("--ktest-pcap", action="store_true",
                help="save every test's DUT frames as a pcap")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires(*caps): skip unless the driver under test "
                            "advertises every capability (orchestrator.dut.CAPS)")
    config.addinivalue_line("markers", "allow_reports(*patterns): kernel reports whose "
                            "title matches a pattern do not fail the test")
    out = config.getoption("--ktest-out", None)
    if out:
        config.pluginmanager.register(_Results(Path(out) / "results.jsonl"), "ktest-results")
    if (signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
            and (config.getoption("--ktest-out") or config.getoption("--ktest-pair"))):
        # A terminated run tears its guests down like Ctrl-C does.
        signal.signal(signal.SIGTERM, _sigterm)


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pairs_of(config: pytest.Config) -> list[Pair]:
    from . import dut, profiles

    pairs = []
    for spec in config.getoption("--ktest-pair"):
        prof, sep, drv = spec.partition(":")
        if not sep or not prof or not drv:
            raise pytest.UsageError(f"--ktest-pair {spec!r}: expected PROFILE:DRIVER")
        pairs.append(Pair(prof, drv))
    machines = config.getoption("--ktest-machine")
    drivers = config.getoption("--ktest-driver")
    if machines or drivers:
        for prof in machines or [DEFAULT_PAIR[0]]:
            model = profiles.load_profile(prof).nics[0].model
            for drv in drivers or [profiles.load_profile(prof).nics[0].driver]:
                if dut.Driver(Path(drv).name).can_drive(model):
                    pairs.append(Pair(prof, drv))
        if not pairs:
            raise pytest.UsageError("no --ktest-machine can be driven by any --ktest-driver")
    return pairs or [Pair(*DEFAULT_PAIR)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "ktest_pair" in metafunc.fixturenames:
        pairs = pairs_of(metafunc.config)
        metafunc.parametrize("ktest_pair", pairs, indirect=True, scope="session",
                             ids=[p.label for p in pairs])


# ------------------------------------------------------------------ guests


class Pool:
    """The guest of one pair: booted on first use, replaced when unhealthy."""

    def __init__(self, pair: Pair, config: pytest.Config, arts: Any, out: Path) -> None:
        from . import dut, profiles

        self.pair, self.config, self.arts, self.out = pair, config, arts, out
        prof = profiles.load_profile(pair.profile)
        viommu = config.getoption("--ktest-viommu")
        if viommu != "profile":
            prof = dataclasses.replace(prof, viommu="intel" if viommu == "on" else "off")
        if not prof.nics:
            raise pytest.UsageError(f"profile {pair.profile} has no NIC under test")
        self.profile = prof
        self.driver = dut.resolve_driver(pair.driver, arts)
        if not self.driver.can_drive(prof.nics[0].model):
            raise pytest.UsageError(f"driver {pair.driver} cannot drive the "
                                    f"{prof.nics[0].model} NIC of profile {pair.profile}")
        self.machine: Any = None
        self.dut: Any = None
        self.boots = 0
        self.replaced: list[str] = []

    def get(self) -> Any:
        from . import dut, session

        if self.machine is not None and not self.healthy():
            self.discard("unhealthy")
        if self.machine is None:
            self.boots += 1
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.pair.label)
            run_dir = self.out / f"{slug}-m{self.boots}"
            m = session.make_machine(self.profile, self.arts, run_dir=run_dir,
                                     accel=self.config.getoption("--ktest-accel"))
            m.launch()
            self.machine = m
            self.dut = dut.Dut(m, self.profile.nics[0], self.driver)
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
            self.machine.shutdown()
        self.machine = self.dut = None

    def close(self) -> None:
        self.discard("end of pair")


@pytest.fixture(scope="session")
def ktest_artifacts(pytestconfig: pytest.Config) -> Any:
    from . import session
    from .build.kernel import KernelRequest

    src = pytestconfig.getoption("--ktest-kernel-src")
    req = KernelRequest(
        src=Path(src) if src else None,
        variant=pytestconfig.getoption("--ktest-kernel-variant"),
        extra_fragments=tuple(Path(f) for f in pytestconfig.getoption("--ktest-kernel-config")),
    )
    return session.artifacts(req)


@pytest.fixture(scope="session")
def ktest_out(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = pytestconfig.getoption("--ktest-out")
    path = Path(out) if out else tmp_path_factory.mktemp("ktest")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def ktest_pair(request: pytest.FixtureRequest, ktest_artifacts: Any,
               ktest_out: Path) -> Iterator[Pool]:
    pair = getattr(request, "param", None) or pairs_of(request.config)[0]
    pool = Pool(pair, request.config, ktest_artifacts, ktest_out)
    yield pool
    pool.close()


@dataclasses.dataclass
class _TestState:
    pool: Pool
    start: int
    allow: list[str]
    verdict: Any = None


def _mark(machine: Any, text: str) -> bool:
    """Write a marker into the guest's kernel log; wait until the console
    shows it, so the segment boundary is exact."""
    try:
        start = machine.console.size
        machine.ssh().kmsg(text)
        machine.console.wait_for(re.escape(text.encode()), timeout=10, start=start)
        return True
    except Exception:
        return False


@pytest.fixture
def machine(request: pytest.FixtureRequest, ktest_pair: Pool) -> Iterator[Any]:
    m = ktest_pair.get()
    start = m.console.size
    _mark(m, f"{MARK_BEGIN} {request.node.nodeid}")
    allow = [p for mk in request.node.iter_markers("allow_reports") for p in mk.args]
    request.node.stash[STATE] = _TestState(ktest_pair, start, allow)
    yield m
    if not ktest_pair.healthy():
        ktest_pair.discard(f"after {request.node.nodeid}")


@pytest.fixture
def guest(machine: Any) -> Any:
    return machine.ssh()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def _ready_dut(request: pytest.FixtureRequest, pool: Pool) -> Any:
    """The pool's DUT set up for a test. A NIC an earlier test left unusable
    (no carrier, no interface, a failing `ip`) gets its driver reloaded; if
    that does not help, the guest is replaced, so one wedged NIC fails one
    test and not every test after it."""
    from .dut import DutError
    from .guest import CmdError, CmdTimeout

    recoverable = (CmdError, CmdTimeout, DutError)
    d = pool.dut
    try:
        d.setup()
        return d
    except recoverable as first:
        why = _first_line(first)
    try:
        if d.loaded():
            d.unload(check_leaks=False)
        d.ifname = ""
        d.setup()
        return d
    except recoverable as e:
        why = f"{why}; after a driver reload: {_first_line(e)}"
    pool.discard(f"DUT unusable before {request.node.nodeid}: {why}")
    m = pool.get()
    st = request.node.stash.get(STATE, None)
    if st is not None:  # the verdict reads the new guest's console from here
        st.start = m.console.size
    _mark(m, f"{MARK_BEGIN} {request.node.nodeid} (fresh guest)")
    pool.dut.setup()
    return pool.dut


@pytest.fixture
def dut(request: pytest.FixtureRequest, machine: Any, ktest_pair: Pool) -> Any:
    d = _ready_dut(request, ktest_pair)
    missing = [c for mk in request.node.iter_markers("requires") for c in mk.args
               if not d.has(c)]
    if missing:
        pytest.skip(f"{d.driver.name} does not advertise {', '.join(missing)}")
    return d


@pytest.fixture
def traffic(request: pytest.FixtureRequest, dut: Any, ktest_out: Path) -> Iterator[Any]:
    from . import dut as dut_mod
    from . import traffic as traffic_mod

    pcap = None
    if request.config.getoption("--ktest-pcap"):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-120:]
        pcap = ktest_out / "pcap" / f"{name}.pcap"
        pcap.parent.mkdir(parents=True, exist_ok=True)
    sock = dut.machine.nic_sockets[dut.nic.id]
    peer = traffic_mod.Peer(sock, mac=dut_mod.PEER_MAC,
                            ips=(dut_mod.PEER_IP4, dut_mod.PEER_IP6),
                            subnet_v4=dut_mod.SUBNET4, subnet_v6=dut_mod.SUBNET6, pcap=pcap)
    try:
        yield peer
    finally:
        peer.close()


@pytest.fixture
def cleanup() -> Iterator[Callable[..., None]]:
    queue: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def add(fn: Callable[..., Any], *args: Any) -> None:
        queue.append((fn, args))

    yield add
    errors = []
    for fn, args in reversed(queue):
        try:
            fn(*args)
        except Exception as e:  # run every cleanup, report the first failure
            errors.append(e)
    if errors:
        raise errors[0]


# ------------------------------------------------------------------ verdicts


def _judge(item: pytest.Item, phase: str) -> Any:
    from . import report

    st = item.stash.get(STATE, None)
    if st is None or st.pool.machine is None:
        return None
    m = st.pool.machine
    if m.alive() and not m.crashed:
        _mark(m, f"{MARK_END} {item.nodeid} {phase}")
    else:
        time.sleep(1)  # let the console reader drain the last lines
    end = m.console.size
    segment = m.console.data(st.start, end)
    st.start = end
    return report.judge(segment, allow=st.allow)


def _describe(verdict: Any) -> str:
    parts = []
    for r in verdict.failing:
        text = r.text if len(r.text) < 6000 else r.text[:6000] + "\n[...]"
        parts.append(f"kernel report: {r.title}\n{text}")
    return "\n\n".join(parts)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome: Any = yield
    rep: pytest.TestReport = outcome.get_result()
    callspec = getattr(item, "callspec", None)
    if callspec is not None and isinstance(callspec.params.get("ktest_pair"), Pair):
        rep.user_properties.append(("ktest_pair", callspec.params["ktest_pair"].label))
    if rep.when not in ("call", "teardown") or STATE not in item.stash:
        return
    if rep.when == "call" and rep.skipped:
        return
    verdict = _judge(item, rep.when)
    if verdict is None:
        return
    st = item.stash[STATE]
    if st.verdict is None:
        st.verdict = verdict
    else:
        st.verdict.failing += verdict.failing
        st.verdict.allowed += verdict.allowed
        st.verdict.events += verdict.events
    titles = [r.title for r in verdict.failing]
    rep.user_properties.append(("kernel_reports", titles))
    rep.user_properties.append(("allowed_reports", [r.title for r in verdict.allowed]))
    if verdict.failing:
        text = _describe(verdict)
        if rep.passed:
            rep.outcome = "failed"
            rep.longrepr = f"{titles[0]}\n\n{text}"
        else:
            rep.sections.append(("kernel reports", text))
            rep.longrepr = f"{titles[0]}\n\n{rep.longreprtext}"


# ------------------------------------------------------------------ results.jsonl



class _Results:
    """One JSON line per test, appended (and fsynced) as each test ends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending: dict[str, dict[str, Any]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        rep = report
        rec = self.pending.setdefault(rep.nodeid, {
            "test": rep.nodeid, "outcome": "passed", "duration": 0.0, "message": "",
            "reports": [], "allowed_reports": [],
        })
        rec["duration"] = round(rec["duration"] + rep.duration, 3)
        for key, value in rep.user_properties:
            if key in ("kernel_reports", "allowed_reports"):
                rec[key.replace("kernel_", "")] += value
            elif key == "ktest_pair":
                rec["pair"] = value
        outcome = None
        if rep.when == "call":
            outcome = "failed" if rep.failed else "skipped" if rep.skipped else None
            if hasattr(rep, "wasxfail"):
                outcome = "xfailed" if rep.skipped else "xpassed"
        elif rep.failed:
            outcome = "error"
        elif rep.skipped and rep.when == "setup":
            outcome = "skipped"
        if outcome and rec["outcome"] in ("passed", "skipped"):
            rec["outcome"] = outcome
            rec["message"] = _message(rep)
        if rec["reports"] and rec["outcome"] in ("failed", "error"):
            rec["message"] = rec["reports"][0]  # the kernel report decided it

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        rec = self.pending.pop(nodeid, None)
        if rec is None:
            return
        rec.setdefault("pair", None)
        rec["ended"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError), open(self.path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _message(rep: pytest.TestReport) -> str:
    if rep.skipped and isinstance(rep.longrepr, tuple):
        return str(rep.longrepr[2]).removeprefix("Skipped: ")
    text = rep.longreprtext.strip()
    if not text:
        return ""
    # the assertion / error line, or the first line (a kernel report title)
    errs = [ln[2:].strip() for ln in text.splitlines() if ln.startswith("E ")]
    return (errs[0] if errs else text.splitlines()[0])[:300]

