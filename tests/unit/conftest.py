"""Fixtures shared by the unit tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from wire import udp_pair

from orchestrator.scenario.traffic import Peer

PEER_MAC = "52:54:00:99:00:01"


@pytest.fixture
def wire(tmp_path: Path) -> Iterator[tuple[Peer, socket.socket]]:
    """A Peer on the host end (its frames also in peer.pcap); the test plays
    the guest on the other end (2 s receive timeout)."""
    host, guest = udp_pair()
    guest.settimeout(2.0)
    peer = Peer(host, mac=PEER_MAC, pcap=tmp_path / "peer.pcap")
    try:
        yield peer, guest
    finally:
        peer.close()
        host.close()
        guest.close()
