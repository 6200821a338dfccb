"""The upstream suite: the kernel's own drivers/net selftests against the
NIC under test (see orchestrator/scenario/selftests.py for the layout).

Every program the guest kernel's tree installs (kselftest-list.txt of
drivers/net and drivers/net/hw) is one test, parametrized at collection;
the selftests are built (cached) from the same tree as the guest kernel.
Needs a profile with a second NIC of id ``peer`` (qemu-configs/*-peer.yaml).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.builds import kernel as kernel_mod
from orchestrator.builds.common import BuildError
from orchestrator.builds.selftests import Selftests, build_selftests
from orchestrator.plugin import options
from orchestrator.plugin.record import pcap_path
from orchestrator.scenario import drivers
from orchestrator.scenario import dut as dut_mod
from orchestrator.scenario import selftests as st
from orchestrator.scenario.relay import Relay

PEER_ID = "peer"
_BUILT: dict[str, Selftests] = {}


def selftests_of(config: pytest.Config) -> Selftests:
    req = options.kernel_request(config)
    key = repr(req)
    if key not in _BUILT:
        src, source_id = kernel_mod.source_tree(req)
        _BUILT[key] = build_selftests(src, source_id)
    return _BUILT[key]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "upstream_test" not in metafunc.fixturenames:
        return
    try:
        tests = selftests_of(metafunc.config).tests
    except BuildError as e:
        raise pytest.UsageError(f"upstream selftests: {e}") from None
    if not tests:
        raise pytest.UsageError("upstream selftests: the kernel tree installs no drivers/net test")
    metafunc.parametrize("upstream_test", tests, ids=list(tests))


@pytest.fixture
def upstream(request: pytest.FixtureRequest, dut: Any, ktest_out: Path) -> Iterator[Any]:
    """The DUT and the peer NIC wired back to back through the host (a pcap
    of the wire with --ktest-pcap), the peer in ns-remote, the selftests
    unpacked with their net.config. Yields the guest."""
    m = dut.machine
    if PEER_ID not in m.nic_sockets:
        pytest.fail(f"profile {m.profile.name} has no NIC with id '{PEER_ID}': the upstream "
                    "suite needs a peer NIC (use an *-peer profile, e.g. e1000e-peer)",
                    pytrace=False)
    peer = next(n for n in m.profile.nics if n.id == PEER_ID)
    peer_info = drivers.info_for(drivers.in_tree_driver(peer))
    pcap = None
    if request.config.getoption("--ktest-pcap"):
        pcap = ktest_out / pcap_path(request.node.nodeid)
        pcap.parent.mkdir(parents=True, exist_ok=True)
    relay = Relay(m.nic_sockets[dut.nic.id], m.nic_sockets[PEER_ID], pcap)
    try:
        g = dut.guest
        st.install(g, selftests_of(request.config).tarball)
        st.place_peer(g, st.Layout(
            dut_ifname=dut.ifname, peer_mac=peer.mac,
            peer_modules=(*peer_info.load_first, peer_info.name),
            local4=dut_mod.GUEST_IP4, remote4=dut_mod.PEER_IP4,
            local6=dut_mod.GUEST_IP6, remote6=dut_mod.PEER_IP6,
            prefix4=dut_mod.PREFIX4, prefix6=dut_mod.PREFIX6))
        yield g
    finally:
        relay.close()
