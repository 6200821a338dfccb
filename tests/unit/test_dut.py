"""Pure helpers of the DUT layer."""

from __future__ import annotations

from orchestrator.scenario.dut import ip_batch_failures

LINES = ("link set eth2 mtu 1500", "addr flush dev eth2", "addr add 10.99.0.2/24 dev eth2",
         "link set eth2 up")


def test_each_failed_line_gets_its_own_message() -> None:
    err = ("RTNETLINK answers: Invalid argument\nCommand failed -:1\n"
           "RTNETLINK answers: Operation not permitted\nCommand failed -:4\n")
    assert ip_batch_failures(LINES, err) == [
        "`ip link set eth2 mtu 1500`: RTNETLINK answers: Invalid argument",
        "`ip link set eth2 up`: RTNETLINK answers: Operation not permitted"]


def test_a_line_without_message_or_out_of_range() -> None:
    assert ip_batch_failures(LINES, "Command failed -:2\nCommand failed -:9\n") == [
        "`ip addr flush dev eth2`: failed", "`ip line 9`: failed"]
    assert ip_batch_failures(LINES, "") == []
