"""The plugin's verdict paths with a stand-in machine (no VM): a kernel
report in setup, call or teardown fails the test with its title, a crash
after a passing body too, an allowed report does not, and a pair that
cannot boot errors every test at once with the first boot error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CONFTEST = r'''
import re
import time
from pathlib import Path

import pytest

from orchestrator.machine.vm import BootError
from orchestrator.plugin import pool as pool_mod

OOPS = """\
BUG: kernel NULL pointer dereference, address: 0000000000000010
#PF: supervisor read access in kernel mode
Oops: 0000 [#1] PREEMPT SMP NOPTI
CPU: 1 PID: 77 Comm: rmmod Tainted: G           O       6.12.0 #1
RIP: 0010:ktnic_remove+0x15/0x60 [ktest_nic]
Call Trace:
 <TASK>
 pci_device_remove+0x3e/0xb0
 device_release_driver_internal+0x19e/0x200
 </TASK>
Modules linked in: ktest_nic(O)
---[ end trace 0000000000000000 ]---
Kernel panic - not syncing: Fatal exception
---[ end Kernel panic - not syncing: Fatal exception ]---
"""
WARN = """\
------------[ cut here ]------------
WARNING: CPU: 0 PID: 55 at drivers/net/ktest_nic/ktnic_netdev.c:120 ktnic_open+0x40/0x90 [ktest_nic]
Modules linked in: ktest_nic(O)
CPU: 0 PID: 55 Comm: ip Tainted: G           O       6.12.0 #1
RIP: 0010:ktnic_open+0x40/0x90 [ktest_nic]
Call Trace:
 <TASK>
 __dev_open+0xe1/0x1a0
 </TASK>
---[ end trace 0000000000000000 ]---
"""
HUNG = """\
INFO: task kworker/0:1:12 blocked for more than 2 seconds.
      Not tainted 6.12.0 #1
"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
task:kworker/0:1     state:D stack:0     pid:12    tgid:12    ppid:2      flags:0x00004000
Workqueue: events poweroff_work_func
Call Trace:
 <TASK>
 __schedule+0x3f0/0xb40
 schedule+0x27/0xf0
 schedule_timeout+0x9e/0x160
 wait_for_completion+0x86/0x170
 ktnic_shutdown+0x2e/0x60 [ktest_nic]
 pci_device_shutdown+0x34/0x70
 device_shutdown+0x15e/0x240
 kernel_power_off+0x31/0x70
 process_one_work+0x17a/0x3b0
 </TASK>
"""
BOOTS = []


class Console:
    def __init__(self):
        self.buf = bytearray()
        self.closed = False

    @property
    def size(self):
        return len(self.buf)

    def data(self, start=0, end=None):
        return bytes(self.buf[start:end])

    def wait_closed(self, timeout):
        return self.closed

    def emit(self, text):
        t = 10.0 + len(self.buf) / 1e6
        for line in text.splitlines():
            self.buf += f"[{t:12.6f}][  T77] {line}\n".encode()


class Guest:
    def __init__(self, m):
        self.m = m

    def cmd(self, command, timeout=60, check=True):
        if not self.m.alive():
            raise OSError("guest gone")


class Machine:
    def __init__(self, run_dir, broken, boot=""):
        self.run_dir = run_dir
        self.console = Console()
        self.crashed = False
        self.stopped = False
        self.broken = broken
        self.boot = boot
        self.later = None  # (text, panics) said once the test has ended
        self.last_words = ""  # said while the guest shuts down
        self.hangs = None  # what it says when its power-off hangs
        self.ended = None
        self.armed = False
        self.blocked = False  # a task stays blocked: its report, once looked for

    def report_blocked_tasks(self):
        if self.blocked and self.alive():
            self.console.emit(HUNG)

    def launch(self):
        BOOTS.append(self.run_dir.name)
        if self.broken:
            raise BootError("guest hangs during boot: no console output for 90s after: x")
        self.console.emit(self.boot)

    def alive(self):
        return not self.crashed and not self.stopped

    def ssh(self):
        # the pool's health check before the next test comes after the
        # ended test's last judged byte
        if self.armed:
            text, panics = self.later
            self.armed, self.later = False, None
            self.console.emit(text)
            if panics:
                self.crashed = self.console.closed = True
        return Guest(self)

    def mark(self, text):
        if self.alive():
            self.console.emit(text)
            self.armed = self.later is not None and text.endswith(" teardown")
            return True
        return False

    def panic(self):
        self.console.emit(OOPS)
        self.crashed = True
        self.console.closed = True

    def shutdown(self, reason=""):
        if self.alive() and self.hangs is not None:
            self.console.emit("sysrq: Power Off\n" + self.hangs)
            self.stopped = self.console.closed = True
            self.ended = "poweroff-hung"
            return self.ended
        if self.alive():
            self.console.emit(self.last_words)
        self.stopped = True
        self.console.closed = True
        self.ended = "crashed" if self.crashed else "poweroff"
        return self.ended


@pytest.fixture(scope="session")
def ktest_artifacts():
    return None


@pytest.fixture(autouse=True, scope="session")
def _stand_in(tmp_path_factory):
    def make(profile, arts, run_dir, accel=None, **kw):
        return Machine(run_dir, broken=profile.name == "e1000e-viommu",
                       boot=WARN if profile.name == "igb" else "")
    from orchestrator.builds import module
    old = pool_mod.session.make_machine
    pool_mod.session.make_machine = make
    # a driver built with debug information (see `inlined` below), to the
    # end of this pytest process: the last test is judged after the session
    # fixtures are gone
    module.debug_twin = lambda ko: ko.with_suffix(".debug")
    module.inlined_at = lambda twin, func, off: [
        ("ktnic_open_locked", "/tmp/m/ktnic_netdev.c"), (func, "/tmp/m/ktnic_netdev.c")]
    yield
    pool_mod.session.make_machine = old


@pytest.fixture
def inlined(ktest_pair):
    """The pair's driver is a built module whose ktnic_open inlines
    ktnic_open_locked where its WARNING is."""
    import dataclasses
    ktest_pair.driver = dataclasses.replace(ktest_pair.driver, ko=Path("/tmp/m/ktest_nic.ko"))


@pytest.fixture
def panics_in_setup(machine):
    machine.panic()


@pytest.fixture
def panics_in_teardown(machine):
    yield
    machine.panic()


@pytest.fixture
def warns_in_setup(machine):
    machine.console.emit(WARN)


@pytest.fixture
def replaced_in_setup(request, ktest_pair, machine):
    from orchestrator.plugin import fixtures
    machine.console.emit(WARN)
    return fixtures.replace_guest(request, ktest_pair, "wedged")
'''

INNER = r'''
import pytest


def test_clean(machine):
    pass


def test_panic_in_call(machine):
    machine.panic()


def test_panic_in_setup(panics_in_setup):
    pass


def test_panic_in_teardown_after_passing_body(panics_in_teardown):
    pass


def test_warning_in_setup(warns_in_setup):
    pass


@pytest.mark.allow_reports("WARNING in ktnic_open")
def test_allowed_warning(warns_in_setup):
    pass


def test_after_crashes_a_fresh_guest(machine):
    pass


AER_FAILED = """\
pcieport 0000:00:04.0: AER: Uncorrectable (Non-Fatal) error message received from 0000:00:04.0
pcieport 0000:00:04.0:    [14] CmpltTO                (First)
virtio-pci 0000:01:00.0: AER: can't recover (no error_detected callback)
pcieport 0000:00:04.0: AER: device recovery failed
"""


@pytest.mark.fault("aer_nonfatal")
def test_declared_failure(machine):
    machine.console.emit(AER_FAILED)
    assert False, "traffic did not come back"


@pytest.mark.fault("aer_fatal")
def test_declared_fatal_failure(machine):
    machine.console.emit(AER_FAILED)
    machine.console.emit("virtio_net virtio0 eth1: NETDEV WATCHDOG: CPU: 0: transmit queue 0 "
                         "timed out 5120 ms")
    assert False, "traffic did not come back"


@pytest.mark.fault("aer_nonfatal")
def test_declared_failure_and_a_warning(machine, warns_in_setup):
    machine.console.emit(AER_FAILED)
    assert False, "traffic did not come back"


@pytest.mark.fault("aer_nonfatal")
def test_declared_report_of_another_driver(machine):
    machine.console.emit("igb 0000:01:00.0 eth1: NETDEV WATCHDOG: CPU: 0: transmit queue 0 "
                         "timed out 5632 ms")
    assert False, "no traffic within 60s"


@pytest.mark.fault("aer_nonfatal")
def test_declared_report_then_traffic_back(machine):
    machine.console.emit("igb 0000:01:00.0 eth1: NETDEV WATCHDOG: CPU: 0: transmit queue 0 "
                         "timed out 5632 ms")


@pytest.mark.fault("aer_nonfatal")
def test_declared_failure_that_did_not_happen(machine):
    pass


def test_link_down_up_as_the_emulator_limitation_says(machine):
    assert False, "eth2: carrier 0: not within 10s"


def test_link_down_up_with_another_failure(machine):
    assert False, "flow 7: {'received': 100, 'duplicated': 9}"


@pytest.mark.fault("aer_fatal")
def test_declared_failure_as_it_says(machine):
    assert False, "no traffic within 60s after AER fatal (no ping answered)"


@pytest.mark.fault("aer_fatal")
def test_another_failure_under_a_declared_one(machine):
    assert False, "flow 3: {'received': 300, 'lost': 0, 'corrupted': 12}"


@pytest.mark.fault("aer_fatal")
def test_another_failure_below_the_declared_words(machine):
    declared = "no traffic within 60s after AER fatal"  # the traceback quotes this line
    assert not declared, "settings lost in AER fatal: {'mtu': (2000, 1500)}"


@pytest.fixture
def breaks_in_setup(machine):
    raise RuntimeError("no traffic within 60s after AER fatal")


@pytest.mark.fault("aer_fatal")
def test_a_declared_fault_whose_setup_fails(breaks_in_setup):
    pass


@pytest.mark.fault("aer_nonfatal")
def test_declared_failure_and_another_watchdog(machine):
    machine.console.emit("igbvf 0000:01:10.0 eth2: NETDEV WATCHDOG: CPU: 0: transmit queue 0 "
                         "timed out 5632 ms")
    assert False, "no traffic within 60s"


def test_warns_after_its_end(machine):
    from conftest import WARN
    machine.later = (WARN, False)


def test_after_a_late_warning(machine):
    pass


def test_panics_after_its_end(machine):
    from conftest import OOPS
    machine.later = (OOPS, True)


def test_after_a_late_panic(machine):
    pass


def test_guest_replaced_in_setup(replaced_in_setup):
    pass


def test_warns_while_its_guest_shuts_down(machine):
    from conftest import WARN
    machine.last_words = WARN


def test_without_a_guest(ktest_pair):
    pass


def test_hangs_blocked_at_poweroff(machine):
    from conftest import HUNG
    machine.hangs = HUNG


@pytest.mark.allow_reports("^INFO: task hung")
def test_hangs_allowed_at_poweroff(machine):
    from conftest import HUNG
    machine.hangs = HUNG


def test_hangs_spinning_at_poweroff(machine):
    machine.hangs = "ktnic 0000:01:00.0: shutting down\n"


def test_warns_inlined_at_poweroff(inlined, machine):
    from conftest import WARN
    machine.last_words = WARN
'''


# a test that the run is interrupted in (as Ctrl-C would) stops the run:
# these are run alone, one per pytest process
STOPPED = r'''
import pytest


@pytest.fixture
def stopped_in_teardown(machine):
    yield
    raise KeyboardInterrupt


def test_warns_then_stopped(machine):
    from conftest import WARN
    machine.console.emit(WARN)
    raise KeyboardInterrupt


def test_stopped(machine):
    raise KeyboardInterrupt


def test_stopped_with_a_task_blocked(machine):
    machine.blocked = True
    raise KeyboardInterrupt


def test_stopped_in_teardown_then_warns_at_poweroff(stopped_in_teardown, machine):
    from conftest import WARN
    machine.last_words = WARN


def test_leaves_a_task_blocked(machine):
    machine.blocked = True


def test_after(machine):
    pass
'''


def run_inner(tmp_path: Path, pair: str, *extra: str,
              source: str = INNER) -> tuple[subprocess.CompletedProcess[str], dict[str, dict]]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_inner.py").write_text(source)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py"),
                        "--ktest-pair", pair, "--ktest-out", str(out), *extra],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    recs = {}
    for line in (out / "results.jsonl").read_text().splitlines():
        d = json.loads(line)
        recs[d["test"].split("::")[1].split("[")[0]] = d
    return r, recs


def test_every_phase_is_judged(tmp_path: Path) -> None:
    r, recs = run_inner(tmp_path, "e1000e:e1000e")
    assert r.returncode == 1, r.stdout + r.stderr
    oops = "BUG: unable to handle kernel NULL pointer dereference in ktnic_remove"
    got = {k: (v["outcome"], v["phase"], v["message"]) for k, v in recs.items()}
    assert got["test_clean"] == ("passed", "", "")
    assert got["test_panic_in_call"] == ("failed", "call", oops)
    assert got["test_panic_in_setup"] == ("failed", "setup", oops)
    assert got["test_panic_in_teardown_after_passing_body"] == ("failed", "teardown", oops)
    assert got["test_warning_in_setup"] == ("failed", "setup", "WARNING in ktnic_open")
    assert got["test_allowed_warning"][0] == "passed"
    assert recs["test_allowed_warning"]["allowed_reports"] == ["WARNING in ktnic_open"]
    assert got["test_after_crashes_a_fresh_guest"] == ("passed", "", "")
    rep = recs["test_panic_in_teardown_after_passing_body"]["reports"][0]
    assert rep["kind"] == "NULL_DEREF" and rep["driver"] == "ktest_nic"
    assert "ktnic_remove" in rep["excerpt"]
    # each crash, and each report (allowed ones too), gets a fresh guest:
    # m1 clean + call panic, m2 setup panic, m3 teardown panic, m4 warning,
    # m5 allowed warning, m6 the last test; the span names the guest
    spans = recs["test_after_crashes_a_fresh_guest"]["console"]
    assert len(spans) == 1 and spans[0]["run_dir"].endswith("-m6")
    assert spans[0]["end"] > spans[0]["start"]


def test_a_declared_failure_allows_its_own_report(tmp_path: Path) -> None:
    """virtio_net declares that AER recovery fails: the AER core's "recovery
    failed" is that failure (xfail, the report allowed); any other report
    still fails the test."""
    r, recs = run_inner(tmp_path, "virtio-net:virtio_net", "-k", "declared")
    assert r.returncode == 1, r.stdout + r.stderr
    assert recs["test_declared_failure"]["outcome"] == "xfailed", recs
    assert recs["test_declared_failure"]["allowed_reports"] == ["AER: recovery failed"]
    # after a fatal error the link was reset behind the driver's back
    fatal = recs["test_declared_fatal_failure"]
    assert fatal["outcome"] == "xfailed", fatal
    assert fatal["allowed_reports"] == ["AER: recovery failed",
                                        "NETDEV WATCHDOG: transmit queue timed out in virtio_net"]
    other = recs["test_declared_failure_and_a_warning"]
    assert (other["outcome"], other["message"]) == ("failed", "WARNING in ktnic_open")


def test_a_declaration_names_the_reports_of_its_failure(tmp_path: Path) -> None:
    """igbvf declares that a non-fatal AER error stalls the PF until igb's
    Tx watchdog fires: that report is the declared failure (xfail); the
    same report in another driver is not."""
    r, recs = run_inner(tmp_path, "igb-vf:igbvf", "-k", "declared_report or another_watchdog "
                        "or did_not_happen")
    assert r.returncode == 1, r.stdout + r.stderr
    ok = recs["test_declared_report_of_another_driver"]
    assert ok["outcome"] == "xfailed", ok
    assert ok["allowed_reports"] == ["NETDEV WATCHDOG: transmit queue timed out in igb"]
    # the checks passed (the watchdog's reset brought traffic back), but the
    # report is the declared failure: still the expected failure
    back = recs["test_declared_report_then_traffic_back"]
    assert back["outcome"] == "xfailed", back
    assert "(got: NETDEV WATCHDOG: transmit queue timed out in igb)" in back["message"], back
    # no report and the checks passed: a surprise recovery, reported
    surprise = recs["test_declared_failure_that_did_not_happen"]
    assert surprise["outcome"] == "failed", surprise
    assert surprise["message"].startswith("[XPASS(strict)] known limitation of igbvf"), surprise
    other = recs["test_declared_failure_and_another_watchdog"]
    assert (other["outcome"], other["message"]) == \
        ("failed", "NETDEV WATCHDOG: transmit queue timed out in igbvf")


def test_a_declared_failure_does_not_hide_another_failure(tmp_path: Path) -> None:
    """igbvf declares that traffic does not come back after a fatal AER
    error, and what the test then says: that failure is the expected one; a
    corrupted flow in the same test is another failure, and fails it."""
    r, recs = run_inner(tmp_path, "igb-vf:igbvf", "-k", "as_it_says or under_a_declared or "
                        "below_the_declared or setup_fails")
    assert r.returncode == 1, r.stdout + r.stderr
    said = recs["test_declared_failure_as_it_says"]
    assert said["outcome"] == "xfailed", said
    other = recs["test_another_failure_under_a_declared_one"]
    assert other["outcome"] == "failed", other
    assert other["message"].startswith("AssertionError: flow 3: "), other
    assert "not the declared known failure (known limitation of igbvf: the VF resets" in r.stdout
    assert "or message /no traffic within" in r.stdout
    # the declared words in the test's source, not in what it failed with
    below = recs["test_another_failure_below_the_declared_words"]
    assert (below["outcome"], below["message"]) == \
        ("failed", "AssertionError: settings lost in AER fatal: {'mtu': (2000, 1500)}"), below
    # a setup that fails: the fault has not even come yet
    setup = recs["test_a_declared_fault_whose_setup_fails"]
    assert (setup["outcome"], setup["phase"]) == ("error", "setup"), setup


def test_an_emulator_limitation_does_not_hide_another_failure(tmp_path: Path) -> None:
    """QEMU's igb keeps a VF's carrier up with the cable out (every QEMU so
    far): a link test of igbvf that fails waiting for carrier 0 is that
    limitation (xfail); one that fails otherwise fails."""
    r, recs = run_inner(tmp_path, "igb-vf:igbvf", "-k", "link_down_up")
    assert r.returncode == 1, r.stdout + r.stderr
    said = recs["test_link_down_up_as_the_emulator_limitation_says"]
    assert said["outcome"] == "xfailed", said
    assert said["message"].startswith("known emulator limitation of QEMU"), said
    other = recs["test_link_down_up_with_another_failure"]
    assert (other["outcome"], other["message"]) == \
        ("failed", "AssertionError: flow 7: {'received': 100, 'duplicated': 9}"), other


def test_what_a_guest_says_outside_tests_is_judged(tmp_path: Path) -> None:
    """A report that comes after a test ended, on a guest that lives on or
    one that panics before the next test, fails the next test's setup and
    says where it came from; so does what a guest said before its test
    moved to a fresh guest."""
    r, recs = run_inner(tmp_path, "e1000e:e1000e", "-k", "after_its_end or after_a_late "
                        "or replaced_in_setup")
    assert r.returncode == 1, r.stdout + r.stderr
    warn = "WARNING in ktnic_open"
    oops = "BUG: unable to handle kernel NULL pointer dereference in ktnic_remove"
    got = {k: (v["outcome"], v["phase"], v["message"]) for k, v in recs.items()}
    assert got == {
        "test_warns_after_its_end": ("passed", "", ""),
        "test_after_a_late_warning": ("failed", "setup", warn),
        "test_panics_after_its_end": ("passed", "", ""),
        "test_after_a_late_panic": ("failed", "setup", oops),
        "test_guest_replaced_in_setup": ("failed", "setup", warn),
    }
    for name, guests, before in (
            ("test_after_a_late_warning", ["m1"], "test_warns_after_its_end"),
            # the panicked guest's console, then the test on a fresh guest
            ("test_after_a_late_panic", ["m2", "m3"], "test_panics_after_its_end")):
        excerpt = recs[name]["reports"][0]["excerpt"]
        assert f"_e1000e-{guests[0]} after " in excerpt and f"{before}" in excerpt, excerpt
        # (a known issue scoped to that test explains it)
        assert recs[name]["reports"][0]["after"] == f"test_inner.py::{before}[e1000e/e1000e]"
        assert [s["run_dir"][-2:] for s in recs[name]["console"]] == guests, recs[name]
    replaced = recs["test_guest_replaced_in_setup"]
    assert [s["run_dir"][-2:] for s in replaced["console"]] == ["m3", "m4"], replaced
    assert "before this test began" not in replaced["reports"][0]["excerpt"]
    assert replaced["reports"][0]["after"] == ""


def test_a_pairs_last_guest_is_judged_until_it_is_off(tmp_path: Path) -> None:
    """The guest of a pair goes down in its last test's teardown: a report
    then (a driver's shutdown callback) fails that test, on every pair of
    the session, not only the last one."""
    r, _ = run_inner(tmp_path, "e1000e:e1000e", "--ktest-pair", "virtio-net:virtio_net",
                     "-k", "shuts_down")
    assert r.returncode == 1, r.stdout + r.stderr
    recs = [json.loads(ln) for ln in (tmp_path / "out/results.jsonl").read_text().splitlines()]
    got = [(v["pair"], v["outcome"], v["phase"], v["message"]) for v in recs]
    assert got == [(pair, "failed", "teardown", "WARNING in ktnic_open")
                   for pair in ("e1000e/e1000e", "virtio-net/virtio_net")], got
    for v in recs:
        assert "before this test began" not in v["reports"][0]["excerpt"]


def test_a_last_test_without_a_guest_judges_the_guest_before_it(tmp_path: Path) -> None:
    r, recs = run_inner(tmp_path, "e1000e:e1000e", "-k", "shuts_down or without_a_guest")
    assert r.returncode == 1, r.stdout + r.stderr
    got = {k: (v["outcome"], v["phase"], v["message"]) for k, v in recs.items()}
    assert got == {"test_warns_while_its_guest_shuts_down": ("passed", "", ""),
                   "test_without_a_guest": ("failed", "teardown", "WARNING in ktnic_open")}
    late = recs["test_without_a_guest"]["reports"]
    assert len(late) == 1, late
    assert "after test_inner.py::test_warns_while_its_guest_shuts_down[e1000e/e1000e] ended, " \
        "by the end of the pair (this test did not use it)" in late[0]["excerpt"], late
    assert late[0]["after"] == "test_inner.py::test_warns_while_its_guest_shuts_down" \
        "[e1000e/e1000e]"
    assert [s["run_dir"][-2:] for s in recs["test_without_a_guest"]["console"]] == ["m1"]


def test_a_last_tests_report_is_named_after_the_inlined_function(tmp_path: Path) -> None:
    r, recs = run_inner(tmp_path, "e1000e:e1000e", "-k", "inlined")
    got = recs["test_warns_inlined_at_poweroff"]
    assert (got["phase"], got["message"]) == ("teardown", "WARNING in ktnic_open_locked"), got


def test_a_power_off_that_hangs_fails_the_test_that_shut_the_guest_down(
        tmp_path: Path) -> None:
    """The guest's own hung-task report names the culprit (the driver's
    shutdown callback, not the "down" in its name mistaken for a
    semaphore's); with no report, the hang fails the test all the same."""
    got, excerpts = {}, {}
    for case in ("blocked", "spinning", "allowed"):
        (tmp_path / case).mkdir()
        r, recs = run_inner(tmp_path / case, "e1000e:e1000e", "-k", f"hangs_{case}")
        assert r.returncode == 1, r.stdout + r.stderr
        (rec,) = recs.values()
        got[case] = (rec["outcome"], rec["phase"], rec["message"])
        excerpts[case] = rec["reports"][0]["excerpt"]
    assert got == {
        "blocked": ("failed", "teardown", "INFO: task hung in ktnic_shutdown"),
        "spinning": ("failed", "teardown",
                     "poweroff hung: the guest began to power off and never finished"),
        # a hung-task report the test allows does not hide the hang
        "allowed": ("failed", "teardown",
                    "poweroff hung: the guest began to power off and never finished")}
    assert excerpts["spinning"].splitlines()[-2:] == ["sysrq: Power Off",
                                                      "ktnic 0000:01:00.0: shutting down"]


def test_a_pair_named_twice_runs_once(tmp_path: Path) -> None:
    r, _ = run_inner(tmp_path, "e1000e:e1000e", "--ktest-pair", "e1000e:e1000e",
                     "-k", "shuts_down")
    recs = (tmp_path / "out/results.jsonl").read_text().splitlines()
    assert len(recs) == 1 and r.returncode == 1, (recs, r.stdout)
    assert json.loads(recs[0])["phase"] == "teardown", recs


def test_a_pair_that_cannot_run_errors_without_a_teardown_error(tmp_path: Path) -> None:
    r, recs = run_inner(tmp_path, "virtio-net:ktest_nic", "-k", "test_clean")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "AttributeError" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert (recs["test_clean"]["outcome"], recs["test_clean"]["phase"]) == ("error", "setup")


def test_a_report_during_boot_fails_the_first_test(tmp_path: Path) -> None:
    r, recs = run_inner(tmp_path, "igb:igb", "-k", "test_clean")
    assert r.returncode == 1, r.stdout + r.stderr
    clean = recs["test_clean"]
    assert (clean["outcome"], clean["phase"], clean["message"]) == \
        ("failed", "setup", "WARNING in ktnic_open"), clean
    assert "while guest igb_igb-m1 booted" in clean["reports"][0]["excerpt"]


def test_a_pair_that_cannot_boot_errors_at_once(tmp_path: Path) -> None:
    r, recs = run_inner(tmp_path, "e1000e-viommu:e1000e", "-k", "clean or panic_in_call")
    assert r.returncode == 1, r.stdout + r.stderr
    assert {k: v["outcome"] for k, v in recs.items()} == {
        "test_clean": "error", "test_panic_in_call": "error"}
    for v in recs.values():
        assert "boot failed: guest hangs during boot" in v["message"]
    # one boot for the whole pair: both tests carry the first guest's error
    assert all(v["message"].endswith("e1000e-viommu_e1000e-m1)") for v in recs.values())


def test_an_interrupted_test_is_judged_on_what_its_guest_said(tmp_path: Path) -> None:
    """Ctrl-C or SIGTERM (pytest: KeyboardInterrupt) stops the run in a
    test: that test still gets a record, judged once its guest is off. A
    kernel report fails it with its title (a hang is often why a run is
    stopped); without one it is an error that says it was stopped. The
    tests after it do not run. A stopped run does not wait for a blocked
    task to be reported: the guest goes at once."""
    got = {}
    for case in ("warns_then_stopped", "stopped", "stopped_with_a_task_blocked",
                 "stopped_in_teardown_then_warns_at_poweroff", "leaves_a_task_blocked"):
        (tmp_path / case).mkdir()
        r, recs = run_inner(tmp_path / case, "e1000e:e1000e", "-k", f"test_{case} or after",
                            source=STOPPED)
        got[case] = r.returncode, {k: (v["outcome"], v["phase"], v["message"], v["pair"])
                                   for k, v in recs.items()}
    pair = "e1000e/e1000e"
    stopped = "interrupted: the run was stopped in this test's"
    assert got == {
        "warns_then_stopped": (2, {"test_warns_then_stopped": (
            "failed", "call", "WARNING in ktnic_open", pair)}),
        "stopped": (2, {"test_stopped": ("error", "call", f"{stopped} call", pair)}),
        "stopped_with_a_task_blocked": (2, {"test_stopped_with_a_task_blocked": (
            "error", "call", f"{stopped} call", pair)}),
        "stopped_in_teardown_then_warns_at_poweroff": (2, {
            "test_stopped_in_teardown_then_warns_at_poweroff": (
                "failed", "teardown", "WARNING in ktnic_open", pair)}),
        # not stopped: the blocked task is looked for, and fails the test
        "leaves_a_task_blocked": (1, {
            "test_leaves_a_task_blocked": ("failed", "teardown",
                                           "INFO: task hung in ktnic_shutdown", pair),
            "test_after": ("passed", "", "", pair)}),
    }, got
