"""The fixtures a NIC test asks for.

  machine   the pair's booted guest (shared while healthy, replaced after a
            crash; a pair that cannot boot errors every test at once)
  dut       the NIC under test (orchestrator.scenario.dut.Dut): driver
            loaded, interface up with the test addresses, carrier on
  traffic   the host's traffic peer on the NIC's frame socket
            (orchestrator.scenario.traffic.Peer); a pcap with --ktest-pcap
  guest     the command API (cmd / ip / ethtool, json=True)
  cleanup   a LIFO queue: cleanup(fn, *args) runs after the test
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.machine import qemu, session
from orchestrator.plugin import options, verdict
from orchestrator.plugin.pool import PairBroken, Pool
from orchestrator.plugin.record import pcap_path, update_manifest
from orchestrator.scenario import drivers
from orchestrator.scenario import dut as dut_mod
from orchestrator.scenario import faults as faults_mod
from orchestrator.scenario import traffic as traffic_mod


def pairs_of(config: pytest.Config) -> list[drivers.Pair]:
    try:
        pairs = [drivers.Pair.parse(s) for s in config.getoption("--ktest-pair")]
        machines = config.getoption("--ktest-machine")
        drivers_ = config.getoption("--ktest-driver")
        if machines or drivers_:
            pairs += drivers.pairs_for(machines or [options.DEFAULT_PAIR.split(":")[0]],
                                       drivers_)
    except drivers.PairError as e:
        raise pytest.UsageError(str(e)) from None
    # a pair named twice runs once, where it was first named (one pool per label)
    unique: dict[str, drivers.Pair] = {}
    for p in pairs:
        unique.setdefault(p.label, p)
    return list(unique.values()) or [drivers.Pair.parse(options.DEFAULT_PAIR)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "ktest_pair" in metafunc.fixturenames:
        pairs = pairs_of(metafunc.config)
        metafunc.parametrize("ktest_pair", pairs, indirect=True, scope="session",
                             ids=[p.label for p in pairs])


@pytest.fixture(scope="session")
def ktest_out(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = pytestconfig.getoption("--ktest-out")
    path = Path(out) if out else tmp_path_factory.mktemp("ktest")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def ktest_artifacts(pytestconfig: pytest.Config, ktest_out: Path) -> Any:
    req = options.kernel_request(pytestconfig)
    arts = session.artifacts(req)
    with contextlib.suppress(qemu.QemuError):
        v = qemu.version()
        update_manifest(ktest_out, qemu={"binary": qemu.binary(), "version": str(v),
                                         "text": v.text})
    update_manifest(ktest_out, kernel={"release": arts.kernel.release, "key": arts.kernel.key,
                                       "version": req.version if req.src is None else None,
                                       "src": str(req.src) if req.src else None,
                                       "tree_id": arts.kernel.info.get("tree_id")},
                    image={"key": arts.image.key})
    return arts


@pytest.fixture(scope="session")
def ktest_pair(request: pytest.FixtureRequest, ktest_artifacts: Any,
               ktest_out: Path) -> Iterator[Pool]:
    pair = getattr(request, "param", None) or pairs_of(request.config)[0]
    pool = Pool(pair, request.config, ktest_artifacts, ktest_out)
    if pool.driver is not None and pool.driver.ko is not None:
        update_manifest(ktest_out, modules={pool.driver.name: str(pool.driver.ko)})
    params = request.config.getoption("--ktest-driver-params")
    if params:
        update_manifest(ktest_out, driver_params=params)
    yield pool
    pool.close()


def _get(pool: Pool) -> Any:
    """The pool's guest, or the test fails at once with the pair's first boot
    error (raised outside the except block: no chained traceback)."""
    try:
        return pool.get()
    except PairBroken as e:
        broken = str(e)
    pytest.fail(broken, pytrace=False)


@pytest.fixture
def machine(request: pytest.FixtureRequest, ktest_pair: Pool) -> Iterator[Any]:
    m = _get(ktest_pair)
    # what the guest said before this test began fails its setup (its body
    # does not run) and taints the guest: the next test gets a fresh one
    verdict.begin(request.node, ktest_pair, m)
    yield m
    now = ktest_pair.machine
    if now is not None and not request.config.stash.get(verdict.INTERRUPTED, False):
        # a task the test left blocked is reported now, within this test,
        # not by the 60 s detector after its guest is gone or in another test
        # (an interrupted run judges what its guest said, and stops now)
        with contextlib.suppress(Exception):  # a wedged guest: judged as it is
            now.report_blocked_tasks()
    if request.config.getoption("--ktest-fresh-guest") == "per-test":
        ktest_pair.discard(f"per-test guests: after {request.node.nodeid}")
    elif not ktest_pair.healthy():
        ktest_pair.discard(f"after {request.node.nodeid}")


@pytest.fixture
def guest(machine: Any) -> Any:
    return machine.ssh()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def _ready_dut(request: pytest.FixtureRequest, pool: Pool) -> dut_mod.Dut:
    """The pool's DUT set up for a test. A NIC an earlier test left unusable
    (no carrier, no interface, a failing `ip`) gets its driver reloaded; if
    that does not help, the guest is replaced, so one wedged NIC fails one
    test and not every test after it."""
    from orchestrator.machine.guest import CmdError, CmdTimeout

    recoverable = (CmdError, CmdTimeout, dut_mod.DutError)
    d = pool.dut
    assert d is not None
    try:
        d.setup()
        return d
    except recoverable as first:
        why = _first_line(first)
    gone = False
    with contextlib.suppress(*recoverable):
        gone = d.function_gone()
    if gone:
        why = f"{why}; its PCI function {d.bdf} is gone (a driver reload cannot bring it back)"
    else:
        try:
            if d.loaded():
                d.unload(check_leaks=False)
            d.ifname = ""
            d.setup()
            return d
        except recoverable as e:
            why = f"{why}; after a driver reload: {_first_line(e)}"
    replace_guest(request, pool, f"DUT unusable before {request.node.nodeid}: {why}")
    assert pool.dut is not None
    pool.dut.setup()
    return pool.dut


def replace_guest(request: pytest.FixtureRequest, pool: Pool, why: str) -> Any:
    """A fresh guest for the test from now on; the verdict still reads the
    old guest's console to its last byte."""
    pool.discard(why)
    m = _get(pool)
    st = request.node.stash.get(verdict.STATE, None)
    if st is not None:
        verdict.attach(st, m, request.node.nodeid, " (fresh guest)")
    return m


@pytest.fixture
def dut(request: pytest.FixtureRequest, machine: Any, ktest_pair: Pool) -> dut_mod.Dut:
    d = _ready_dut(request, ktest_pair)
    d.current_step = ""
    st = request.node.stash.get(verdict.STATE, None)
    if st is not None:
        with contextlib.suppress(Exception):
            st.baseline = d.snapshot()
    return d


@pytest.fixture
def traffic(request: pytest.FixtureRequest, dut: Any, ktest_out: Path) -> Iterator[Any]:
    pcap = None
    if request.config.getoption("--ktest-pcap"):
        pcap = ktest_out / pcap_path(request.node.nodeid)
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
def faults(request: pytest.FixtureRequest, dut: dut_mod.Dut,
           cleanup: Callable[..., None]) -> faults_mod.Faults:
    """Fault injection into the DUT (orchestrator.scenario.faults); a failure
    of the test names the last fault action and how long before it came."""
    f = faults_mod.Faults(dut.machine, dut.nic, dut.bdf, cleanup)
    st = request.node.stash.get(verdict.STATE, None)
    if st is not None:
        st.faults = f
    return f


@pytest.fixture
def cleanup() -> Iterator[Callable[..., None]]:
    queue: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []

    def add(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        queue.append((fn, args, kwargs))

    yield add
    errors = []
    for fn, args, kwargs in reversed(queue):
        try:
            fn(*args, **kwargs)
        except Exception as e:  # run every cleanup, report the first failure
            errors.append(e)
    if errors:
        raise errors[0]
