"""The upstream suite's pure parts without a VM: KTAP from run_kselftest.sh,
net.config, the frame relay between two NIC sockets, and subtests as results
of their own in results.jsonl."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from wire import run_inner, udp_pair

from orchestrator.scenario import selftests as st
from orchestrator.scenario.relay import Relay
from orchestrator.waiting import wait_until

# What run_kselftest.sh -t drivers/net:stats.py prints: the runner's own
# KTAP at depth 0, the program's (lib/py ksft) one level down.
STATS = """TAP version 13
1..1
# timeout set to 900
# selftests: drivers/net: stats.py
# KTAP version 1
# 1..4
# ok 1 stats.check_pause
# ok 2 stats.check_fec # SKIP FEC stats not supported
# # Check| At /opt/ktest-selftests/drivers/net/./stats.py, line 41, in pkt_byte_sum:
# # Check failed 0 < 1 rx_packets did not move
# not ok 3 stats.pkt_byte_sum
# ok 4 stats.qstat_by_ifindex # XFAIL qstats not supported by the device
# # Totals: pass:1 fail:1 xfail:1 xpass:0 skip:1 error:0
not ok 1 selftests: drivers/net: stats.py # exit=1
"""


def test_ktap_program_and_subtests() -> None:
    res = st.parse_ktap("drivers/net:stats.py", STATS)
    assert res.result is not None
    assert (res.result.name, res.result.outcome) == ("selftests: drivers/net: stats.py", "failed")
    assert res.result.reason.startswith("exit=1: ")
    assert "rx_packets did not move" in res.result.reason
    assert [(s.name, s.outcome) for s in res.subtests] == [
        ("stats.check_pause", "passed"), ("stats.check_fec", "skipped"),
        ("stats.pkt_byte_sum", "failed"), ("stats.qstat_by_ifindex", "xfailed")]
    fec, bytesum, qstat = res.subtests[1], res.subtests[2], res.subtests[3]
    assert fec.reason == "SKIP FEC stats not supported"
    assert "rx_packets did not move" in bytesum.reason and "line 41" in bytesum.reason
    assert qstat.reason == "XFAIL qstats not supported by the device"
    assert res.subtests[0].reason == ""  # a pass carries no diagnostics


def test_ktap_runner_verdicts() -> None:
    timeout = "# selftests: drivers/net: queues.py\n# KTAP version 1\n# 1..1\n" \
              "not ok 1 selftests: drivers/net: queues.py # TIMEOUT 900 seconds\n"
    r = st.parse_ktap("drivers/net:queues.py", timeout).result
    assert r is not None and (r.outcome, r.reason) == ("failed", "TIMEOUT 900 seconds")
    skip = "# selftests: drivers/net: netcons_basic.sh\n# SKIP: netdevsim missing\n" \
           "ok 1 selftests: drivers/net: netcons_basic.sh # SKIP\n"
    r = st.parse_ktap("drivers/net:netcons_basic.sh", skip).result
    assert r is not None and (r.outcome, r.reason) == ("skipped", "SKIP SKIP: netdevsim missing")
    ok = ("# selftests: drivers/net: ping.py\n# ok 1 ping.test_v4\n"
          "ok 1 selftests: drivers/net: ping.py\n")
    r = st.parse_ktap("drivers/net:ping.py", ok).result
    assert r is not None and (r.outcome, r.reason) == ("passed", "")


def test_ktap_no_result_line() -> None:
    res = st.parse_ktap("drivers/net:ping.py", "bash: ./run_kselftest.sh: No such file\n")
    assert res.result is None and res.subtests == []


def test_lib_sh_checks_are_subtests() -> None:
    text = ("# selftests: drivers/net/hw: ethtool.sh\n"
            "# TEST: force of same speed autoneg off                  [ OK ]\n"
            "# some diagnostics\n"
            "# TEST: advertise 1000baseT/Full                          [FAIL]\n"
            "not ok 1 selftests: drivers/net/hw: ethtool.sh # exit=1\n")
    res = st.parse_ktap("drivers/net/hw:ethtool.sh", text)
    assert [(s.name, s.outcome) for s in res.subtests] == [
        ("force of same speed autoneg off", "passed"), ("advertise 1000baseT/Full", "failed")]
    assert "some diagnostics" in res.subtests[1].reason


def test_net_config() -> None:
    lay = st.Layout("eth1", "52:54:00:00:f0:00", ("virtio_pci", "virtio_net"), "10.99.0.2",
                    "10.99.0.1", "fd99::2", "fd99::1", 24, 64)
    cfg = dict(ln.split("=", 1) for ln in st.net_config(lay).splitlines())
    assert cfg == {"NETIF": "eth1", "LOCAL_V4": "10.99.0.2", "REMOTE_V4": "10.99.0.1",
                   "LOCAL_V6": "fd99::2", "REMOTE_V6": "fd99::1", "REMOTE_TYPE": "netns",
                   "REMOTE_ARGS": st.REMOTE_NS}


def _nic_pair() -> tuple[socket.socket, socket.socket]:
    """(host end, QEMU end) of one NIC's frame socket, both on loopback."""
    host, qemu = udp_pair()
    qemu.settimeout(5)
    return host, qemu


def test_relay_joins_two_nics_and_records_the_wire(tmp_path: Path) -> None:
    a_host, a_qemu = _nic_pair()
    b_host, b_qemu = _nic_pair()
    frames_ab = [bytes([i]) * (60 + i) for i in range(20)]
    with Relay(a_host, b_host, tmp_path / "wire.pcap") as relay:
        for f in frames_ab:
            a_qemu.send(f)
        got = [b_qemu.recv(2048) for _ in frames_ab]
        b_qemu.send(b"\xff" * 1514)
        back = a_qemu.recv(2048)
        wait_until(lambda: relay.frames == {"a_to_b": 20, "b_to_a": 1}, 5, "relay counts")
    assert got == frames_ab and back == b"\xff" * 1514
    from scapy.utils import rdpcap

    assert [bytes(p) for p in rdpcap(str(tmp_path / "wire.pcap"))] == [*frames_ab, back]
    # the machine's sockets stay open for it to close
    a_qemu.send(b"x" * 60)
    assert a_host.recv(2048) == b"x" * 60
    for s in (a_host, a_qemu, b_host, b_qemu):
        s.close()


INNER = '''
from orchestrator.plugin.results import SUBTESTS


def test_prog(request):
    request.node.user_properties.append(
        (SUBTESTS, [("prog.a", "passed", ""), ("prog.b", "skipped", "SKIP no FEC"),
                    ("prog.c", "failed", "Check failed 0 < 1")]))
    assert False, "1 subtest failed"
'''


def test_subtests_become_results(tmp_path: Path) -> None:
    r, out = run_inner(tmp_path, INNER)
    assert r.returncode == 1, r.stdout
    recs = [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines()]
    assert [(x["test"].split("::")[1], x["outcome"]) for x in recs] == [
        ("test_prog", "failed"), ("test_prog/prog.a", "passed"),
        ("test_prog/prog.b", "skipped"), ("test_prog/prog.c", "failed")]
    assert recs[2]["message"] == "SKIP no FEC" and recs[3]["message"] == "Check failed 0 < 1"


def test_upstream_and_zoo_suites_are_collected_only_when_named() -> None:
    """A plain `pytest` (the project's tests) never collects them: collecting
    the upstream suite builds the kernel tree's selftests, and the zoo takes
    25 minutes."""
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                        "-p", "no:cacheprovider"], capture_output=True, text=True,
                       timeout=300, cwd=root)
    assert r.returncode == 0 and "tests/nic/test_integrity.py" in r.stdout, r.stdout[-2000:]
    assert "tests/upstream" not in r.stdout and "tests/zoo" not in r.stdout
    named = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                            "-p", "no:cacheprovider", "tests/zoo"], capture_output=True,
                           text=True, timeout=300, cwd=root)
    assert named.returncode == 0 and "test_bug_is_caught[" in named.stdout, named.stdout[-2000:]


def test_a_python_exception_is_the_reason() -> None:
    text = ("# selftests: drivers/net/hw: rss_ctx.py\n"
            "# # Exception| Traceback (most recent call last):\n"
            '# # Exception|   File "/opt/x/net/lib/py/ksft.py", line 213, in ksft_run\n'
            "# # Exception|     case(*args)\n"
            '# # Exception|   File "/opt/x/net/lib/py/utils.py", line 50, in process\n'
            "# # Exception|     raise CmdExitFailure(\"Command failed: %s\" %\n"
            "# # Exception|           ^^^^^^^^^^^^^^^^^^^^^^\n"
            "# # Exception| net.lib.py.utils.CmdExitFailure: Command failed: "
            "ethtool --json -c eth1\n"
            "# # Exception| STDOUT: b''\n"
            "# not ok 1 rss_ctx.test_rss_key_indir\n"
            "not ok 1 selftests: drivers/net/hw: rss_ctx.py # exit=1\n")
    res = st.parse_ktap("drivers/net/hw:rss_ctx.py", text)
    assert res.subtests[0].reason == ("net.lib.py.utils.CmdExitFailure: Command failed: "
                                      "ethtool --json -c eth1 | STDOUT: b''")


def test_an_exception_names_the_line_of_the_program() -> None:
    # the frame in the program itself, not in its lib/py: which of two calls
    # of the same check failed
    text = ("# selftests: drivers/net/hw: pp_alloc_fail.py\n"
            "# # Exception| Traceback (most recent call last):\n"
            '# # Exception|   File "/opt/x/net/lib/py/ksft.py", line 213, in ksft_run\n'
            "# # Exception|     case(*args)\n"
            '# # Exception|   File "/opt/x/drivers/net/hw/./pp_alloc_fail.py", line 77, '
            "in test_pp_alloc\n"
            "# # Exception|     check_traffic_flowing()\n"
            '# # Exception|   File "/opt/x/drivers/net/hw/./pp_alloc_fail.py", line 59, '
            "in check_traffic_flowing\n"
            '# # Exception|     raise KsftFailEx("Traffic seems low:", n)\n'
            "# # Exception| net.lib.py.ksft.KsftFailEx: ('Traffic seems low:', 995)\n"
            "# not ok 1 pp_alloc_fail.test_pp_alloc\n"
            "not ok 1 selftests: drivers/net/hw: pp_alloc_fail.py # exit=1\n")
    res = st.parse_ktap("drivers/net/hw:pp_alloc_fail.py", text)
    assert res.subtests[0].reason == ("pp_alloc_fail.py:77 in test_pp_alloc: "
                                      "net.lib.py.ksft.KsftFailEx: ('Traffic seems low:', 995)")
