"""The Toeplitz hash and the ethtool RSS parsers."""

from __future__ import annotations

import pytest

from orchestrator.scenario import rss

# the verification key and vectors of Microsoft's RSS specification
MS_KEY = bytes.fromhex("6d5a56da255b0ec24167253d43a38fb0d0ca2bcb"
                       "ae7b30b477cb2da38030f20c6a42b73bbeac01fa")
V4 = [  # src, sport, dst, dport, hash(addresses), hash(addresses+ports)
    ("66.9.149.187", 2794, "161.142.100.80", 1766, 0x323E8FC2, 0x51CCC178),
    ("199.92.111.2", 14230, "65.69.140.83", 4739, 0xD718262A, 0xC626B0EA),
    ("24.19.198.95", 12898, "12.22.207.184", 38024, 0xD2D0A5DE, 0x5C2B394A),
]
V6 = [
    ("3ffe:2501:200:1fff::7", 2794, "3ffe:2501:200:3::1", 1766, 0x2CC18CD5, 0x40207D3D),
]
IP = frozenset({"ip_src", "ip_dst"})
IP_L4 = IP | {"l4_src", "l4_dst"}


@pytest.mark.parametrize("src,sport,dst,dport,h_ip,h_l4", V4 + V6)
def test_toeplitz_matches_the_specification_vectors(src, sport, dst, dport, h_ip, h_l4):
    assert rss.toeplitz(MS_KEY, rss.hash_input(IP, src, dst)) == h_ip
    assert rss.toeplitz(MS_KEY, rss.hash_input(IP_L4, src, dst, sport, dport)) == h_l4


def test_toeplitz_refuses_input_longer_than_the_key():
    with pytest.raises(ValueError):
        rss.toeplitz(bytes(8), bytes(8))


ETHTOOL_X = """\
RX flow hash indirection table for enp1s0 with 2 RX ring(s):
    0:      0     1     0     1     0     1     0     1
    8:      1     1     1     1     1     1     1     1
RSS hash key:
6d:5a:56:da:25:5b:0e:c2:41:67:25:3d:43:a3:8f:b0:d0:ca:2b:cb:ae:7b:30:b4:77:cb:2d:a3:80:30:f2:0c:6a:42:b7:3b:be:ac:01:fa
RSS hash function:
    toeplitz: on
    xor: off
    crc32: off
"""


def test_parse_ethtool_x():
    cfg = rss.parse_ethtool_x(ETHTOOL_X)
    assert cfg is not None
    assert cfg.indir == (0, 1) * 4 + (1,) * 8
    assert cfg.key == MS_KEY and cfg.hfunc == "toeplitz"
    assert cfg.queues == {0, 1}
    assert cfg.queue_of(0x323E8FC2) == cfg.indir[0x323E8FC2 % 16]


def test_parse_ethtool_x_of_a_newer_ethtool():
    # ethtool 6.7+ adds the input transformation after the hash function
    text = ETHTOOL_X + "RSS input transformation:\n    symmetric-xor: on\n"
    cfg = rss.parse_ethtool_x(text)
    assert cfg is not None and cfg.hfunc == "toeplitz" and cfg.key == MS_KEY


def test_parse_ethtool_x_without_key_or_table():
    assert rss.parse_ethtool_x("Cannot get RX ring count: Operation not supported\n") is None
    cfg = rss.parse_ethtool_x(ETHTOOL_X.replace(ETHTOOL_X.splitlines()[4],
                                                "Operation not supported"))
    assert cfg is not None and cfg.key == b""
    assert not rss.predictable(cfg, IP)


def test_parse_ethtool_x_rejects_a_gapped_table():
    assert rss.parse_ethtool_x(ETHTOOL_X.replace("    8:", "   16:")) is None


def test_parse_flow_hash():
    text = ("UDP over IPV4 flows use these fields for computing Hash flow key:\n"
            "IP SA\nIP DA\n\n")
    assert rss.parse_flow_hash(text) == IP
    text4 = text.replace("IP DA\n", "IP DA\nL4 bytes 0 & 1 [TCP/UDP src port]\n"
                         "L4 bytes 2 & 3 [TCP/UDP dst port]\n")
    assert rss.parse_flow_hash(text4) == IP_L4
    assert rss.parse_flow_hash("Cannot get RX network flow hashing options: "
                               "Operation not supported\n") is None
    assert rss.parse_flow_hash(text + "Some new field\n") is None


def test_predictable_needs_toeplitz_a_key_and_known_fields():
    cfg = rss.parse_ethtool_x(ETHTOOL_X)
    assert rss.predictable(cfg, IP)
    assert not rss.predictable(cfg, IP | {"vlan"})
    assert not rss.predictable(cfg, None)
    assert not rss.predictable(cfg, frozenset())
    xor = rss.parse_ethtool_x(ETHTOOL_X.replace("toeplitz: on", "toeplitz: off")
                              .replace("xor: off", "xor: on"))
    assert not rss.predictable(xor, IP)


def test_balanced_takes_flows_from_every_queue_in_turn():
    pred = {10: 0, 11: 0, 12: 0, 13: 1, 14: 0, 15: 1}
    assert rss.balanced(pred, 4) == [10, 13, 11, 15]
    assert rss.balanced(pred, 10) == [10, 13, 11, 15, 12, 14]
    assert rss.balanced({1: 0, 2: 0}, 1) == [1]
    assert rss.balanced({}, 3) == []
