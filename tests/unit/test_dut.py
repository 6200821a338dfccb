"""Pure helpers of the DUT layer."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.scenario.dut import (
    KMEMLEAK_CHECK,
    KMEMLEAK_CHECK_NO_STACKS,
    Dut,
    DutError,
    driver_records,
    ip_batch_failures,
)

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


def leak(addr: str, *frames: str) -> str:
    return (f"unreferenced object 0x{addr} (size 2048):\n  comm \"ethtool\", pid 235\n"
            "  backtrace (crc 355480af):\n"
            + "".join(f"    {f}\n" for f in ("kmemleak_alloc+0x24/0x30", *frames)))


OURS = leak("ffff888005144000", "igb_alloc_q_vector.constprop.0+0x827/0xd3a [igb]",
            "igb_reinit_queues+0xaf/0x153 [igb]", "ethnl_set_channels+0x568/0xba0")
GONE = leak("ffff888005147000", "0xffffffffc0a01234", "__dev_open+0x1ee/0x3c0")
OTHERS = leak("ffff888005150000", "__kmalloc_noprof+0x27b/0x4c0", "do_sys_poll+0x1a/0x400")
NEAR = leak("ffff888005158000", "igbvf_probe+0x10/0x900 [igbvf]")


def test_driver_records_keep_what_ran_through_the_driver() -> None:
    assert driver_records(OTHERS + OURS + NEAR + GONE, "igb") == OURS + GONE
    assert driver_records(OTHERS, "igb") == ""
    assert driver_records("", "igb") == ""


class StandIn(Dut):
    """A Dut whose guest answers the kmemleak checks from a table."""

    def __init__(self, answers: dict[str, str]) -> None:
        super().__init__(machine=None, nic=None, driver=SimpleNamespace(name="igb", ko=None))  # type: ignore[arg-type]
        self.answers, self.asked = answers, []  # type: list[str]

    def sh(self, command: str, timeout: float = 60.0, check: bool = True) -> str:
        self.asked.append(command)
        return self.answers.get(command, "")

    def dma_api_errors(self) -> int:
        return 0


def checked(answers: dict[str, str]) -> tuple[StandIn, Any]:
    dut = StandIn(answers)
    try:
        dut.check_leaks(0)
    except DutError as e:
        return dut, e
    return dut, None


def test_a_leak_hidden_by_a_stack_is_found_without_stacks() -> None:
    dut, err = checked({KMEMLEAK_CHECK_NO_STACKS: OTHERS + OURS})
    assert dut.asked[:2] == [KMEMLEAK_CHECK, KMEMLEAK_CHECK_NO_STACKS]
    assert err is not None and "1 unreferenced object(s) after unloading igb, with task " \
        "stacks left out of the scan" in str(err)
    assert "igb_alloc_q_vector" in str(err) and "do_sys_poll" not in str(err)


@pytest.mark.parametrize("first,second,fails", [
    (OTHERS, "", True),  # the first look counts every object
    ("", OTHERS, False),  # without stacks, only the driver's
    ("", "", False),
])
def test_which_look_counts_what(first: str, second: str, fails: bool) -> None:
    dut, err = checked({KMEMLEAK_CHECK: first, KMEMLEAK_CHECK_NO_STACKS: second})
    assert (err is not None) == fails
    assert (KMEMLEAK_CHECK_NO_STACKS in dut.asked) == (not first)
    after = KMEMLEAK_CHECK_NO_STACKS.rsplit("scan", 1)[1]
    assert "stack=on" in after  # stacks back on
    assert "echo $lvl > /proc/sys/kernel/printk" in after  # and the console's level


@pytest.mark.parametrize("text,want", [("1\n", 1), ("0\n", 0), ("", None)])
def test_a_carrier_that_cannot_be_read_is_not_carrier_off(text: str, want: int | None) -> None:
    """An interface that is down or gone cannot say its carrier (EINVAL, or
    no file): that is not "the driver noticed the link went away"."""
    guest = SimpleNamespace(read=lambda path: text)
    dut = Dut(machine=SimpleNamespace(ssh=lambda: guest), nic=None,  # type: ignore[arg-type]
              driver=SimpleNamespace(name="igb"))  # type: ignore[arg-type]
    dut.ifname = "eth1"
    assert dut.carrier() == want
    if want is None:
        with pytest.raises(DutError, match="eth1: carrier 0"):
            dut.wait_carrier(0, timeout=0.05)
    else:
        assert dut.wait_carrier(want, timeout=0.05) >= 0


def test_a_setting_that_cannot_be_put_back_is_an_error() -> None:
    """The ring_set probe changes the Rx ring and changes it back: a driver
    that takes the change and refuses the way back fails, rather than the
    test going on from rings it did not choose."""
    from orchestrator.scenario import dut as dut_mod

    rings = ("Ring parameters for eth1:\nPre-set maximums:\nRX:\t\t4096\nTX:\t\t4096\n"
             "Current hardware settings:\nRX:\t\t256\nTX:\t\t256\n")
    said: list[str] = []

    def cmd(command: str, check: bool = True) -> Any:
        said.append(command)
        refused = command.endswith("rx 256") and refuse_back
        return SimpleNamespace(exit_status=1 if refused else 0, stdout=rings,
                               stderr="netlink error: Invalid argument" if refused else "")

    guest = SimpleNamespace(cmd=cmd)
    dut = Dut(machine=SimpleNamespace(ssh=lambda: guest), nic=None,  # type: ignore[arg-type]
              driver=SimpleNamespace(name="igb"))  # type: ignore[arg-type]
    dut.ifname = "eth1"
    refuse_back = False
    assert dut_mod._try_set(dut, "-g", "-G", dut_mod._ring_change)
    assert said[1:] == ["ethtool -G eth1 rx 128", "ethtool -G eth1 rx 256"]
    refuse_back = True
    with pytest.raises(DutError, match="back to what it was after `rx 128` was taken, failed: "
                                       "netlink error: Invalid argument"):
        dut_mod._try_set(dut, "-g", "-G", dut_mod._ring_change)
