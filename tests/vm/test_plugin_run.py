"""The pytest plugin and `ktest run`, for real: per-test verdicts from the
guest's console, a crashed guest replaced before the next test, results
written as tests end, and a run killed halfway that keeps its results and
leaves no QEMU behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import yaml

from orchestrator.builds import module

ROOT = Path(__file__).resolve().parents[2]

INNER = '''
import os
from pathlib import Path

import pytest
from ktest_later import LATER

KO = Path(os.environ["KTEST_WARN_KO"])


def load_warn(guest):
    guest.put(KO, "/tmp/warn.ko")
    guest.cmd("insmod /tmp/warn.ko && rmmod ktest_bug_warn")


def test_a_warn_fails(machine, guest):
    load_warn(guest)


@pytest.mark.allow_reports(r"^WARNING in ktest_bug_warn")
def test_b_warn_allowed(machine, guest):
    load_warn(guest)


def test_c_panic(machine, guest):
    guest.cmd("echo c > /proc/sysrq-trigger", timeout=20, check=False)


def test_d_after_panic(machine, guest):
    assert guest.cmd("cat /proc/uptime").ok


def test_e_dut(dut, traffic):
    dut.sh(f"ping -c 2 -W 3 {traffic.ips[0]}")
    assert dut.driver.name == "e1000e"


def test_f_nic_removed(dut):
    # the guest stays healthy, but its NIC under test is gone for good
    dut.sh(f"echo 1 > /sys/bus/pci/devices/{dut.bdf}/remove")


def test_g_dut_after_removal(dut, traffic):
    dut.sh(f"ping -c 2 -W 3 {traffic.ips[0]}")


def test_h_cleanup_panics(machine, guest, cleanup):
    # the body passes; the guest dies in the test's own cleanup
    cleanup(guest.cmd, "echo c > /proc/sysrq-trigger", timeout=20, check=False)


def test_i_after_cleanup_panic(machine, guest):
    assert guest.cmd("cat /proc/uptime").ok


def test_j_passes_then_its_guest_warns(machine):
    LATER.append(machine)


def test_k_after_a_warning_between_tests(machine, guest):
    assert guest.cmd("cat /proc/uptime").ok


def test_l_warns_while_its_guest_shuts_down(machine, guest):
    guest.put(KO, "/tmp/warn.ko")
    guest.cmd("insmod /tmp/warn.ko at_shutdown=1")
'''

# once j's verdict is in (its teardown judged), its guest makes a real
# WARNING, before k begins: the console between two tests
CONFTEST = '''
import os
import sys
from pathlib import Path

LATER = []
sys.modules["ktest_later"] = sys.modules[__name__]


def pytest_runtest_logreport(report):
    if report.when == "teardown" and "test_j_" in report.nodeid and LATER:
        m = LATER.pop()
        start = m.console.size
        guest = m.ssh()
        guest.put(Path(os.environ["KTEST_WARN_KO"]), "/tmp/warn.ko")
        guest.cmd("insmod /tmp/warn.ko && rmmod ktest_bug_warn")
        m.console.wait_for(rb"end trace", timeout=30, start=start)
'''


HANG = '''
import os
from pathlib import Path


def test_power_off_hangs(machine, guest):
    guest.put(Path(os.environ["KTEST_WARN_KO"]), "/tmp/warn.ko")
    guest.cmd("insmod /tmp/warn.ko hang_at_shutdown=1")
'''


BLOCKED = '''
import os
from pathlib import Path


def test_a_leaves_a_task_blocked(machine, guest):
    guest.put(Path(os.environ["KTEST_WARN_KO"]), "/tmp/warn.ko")
    guest.cmd("insmod /tmp/warn.ko hang_in_work=1")


def test_b_next(machine, guest):
    assert guest.cmd("true").ok
'''


STOPPED = '''
import os
from pathlib import Path


def test_warns_then_hangs(machine, guest):
    guest.put(Path(os.environ["KTEST_WARN_KO"]), "/tmp/warn.ko")
    guest.cmd("insmod /tmp/warn.ko")
    guest.cmd("sleep 900", timeout=1000)  # stuck in the guest until the run is stopped


def test_never_runs(machine, guest):
    pass
'''


def records(out: Path) -> dict[str, dict]:
    lines = (out / "results.jsonl").read_text().splitlines()
    return {json.loads(ln)["test"].split("::")[-1]: json.loads(ln) for ln in lines}


def qemu_under(path: Path) -> list[str]:
    r = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True, text=True)
    return [ln for ln in r.stdout.splitlines() if str(path) in ln]


def test_plugin_verdicts_and_replacement(artifacts, tmp_path: Path) -> None:
    ko = module.build_module(ROOT / "tests/modules/bugs/warn", artifacts.kernel).ko
    (tmp_path / "test_inner.py").write_text(INNER)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    out = tmp_path / "out"
    env = {**os.environ, "KTEST_WARN_KO": str(ko)}
    r = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "test_inner.py"),
                        "-p", "no:cacheprovider", "-q", "--rootdir", str(tmp_path),
                        "--ktest-pair", "e1000e:e1000e", "--ktest-out", str(out),
                        "--ktest-pcap",
                        # a second pair, for l only: the first pair's guest goes
                        # down before the session ends (a short run directory
                        # name: its sockets' paths must fit)
                        "--ktest-pair", "e1000e:ktest_nic",
                        "-k", "e1000e and not ktest_nic or test_l_"],
                       capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    print(r.stdout[-4000:], r.stderr[-2000:])
    recs = records(out)
    a = recs["test_a_warn_fails[e1000e/e1000e]"]
    assert a["outcome"] == "failed" and a["message"].startswith("WARNING in ktest_bug_warn"), a
    assert a["reports"] and a["reports"][0]["title"] == a["message"]
    assert a["reports"][0]["driver"] == "ktest_bug_warn" and a["phase"] == "call"
    b = recs["test_b_warn_allowed[e1000e/e1000e]"]
    assert b["outcome"] == "passed" and b["allowed_reports"], b
    c = recs["test_c_panic[e1000e/e1000e]"]
    assert c["outcome"] == "failed" and "sysrq" in c["message"].lower(), c
    assert recs["test_d_after_panic[e1000e/e1000e]"]["outcome"] == "passed"
    assert recs["test_e_dut[e1000e/e1000e]"]["outcome"] == "passed"
    assert recs["test_f_nic_removed[e1000e/e1000e]"]["outcome"] == "passed"
    # the driver reload cannot bring the NIC back: a fresh guest can
    assert recs["test_g_dut_after_removal[e1000e/e1000e]"]["outcome"] == "passed"
    h = recs["test_h_cleanup_panics[e1000e/e1000e]"]
    assert (h["outcome"], h["phase"]) == ("failed", "teardown"), h
    assert "sysrq" in h["message"].lower() and h["reports"][0]["kind"] in ("PANIC", "BUG"), h
    assert recs["test_i_after_cleanup_panic[e1000e/e1000e]"]["outcome"] == "passed"
    assert recs["test_j_passes_then_its_guest_warns[e1000e/e1000e]"]["outcome"] == "passed"
    # the WARNING j's guest made after j ended fails k's setup
    k = recs["test_k_after_a_warning_between_tests[e1000e/e1000e]"]
    assert (k["outcome"], k["phase"]) == ("failed", "setup"), k
    assert k["message"].startswith("WARNING in ktest_bug_warn"), k
    assert "test_j_passes_then_its_guest_warns[e1000e/e1000e] ended, before this test began" \
        in k["reports"][0]["excerpt"], k
    assert k["reports"][0]["after"] == "test_inner.py::test_j_passes_then_its_guest_warns" \
        "[e1000e/e1000e]", k  # (a known issue scoped to j explains it)
    assert [Path(s["run_dir"]).name for s in k["console"]] == ["e1000e_e1000e-m6"], k
    # l is each pair's last test: its guest powers off in l's teardown, and
    # the WARNING its reboot notifier makes on the way down fails l
    for pair in ("e1000e/e1000e", "e1000e/ktest_nic"):
        last = recs[f"test_l_warns_while_its_guest_shuts_down[{pair}]"]
        assert (last["outcome"], last["phase"]) == ("failed", "teardown"), last
        assert last["message"].startswith("WARNING in ktest_bug_warn"), last
        assert "before this test began" not in last["reports"][0]["excerpt"], last
    assert len(recs) == 13, sorted(recs)
    assert r.returncode == 1
    # a fresh guest after every kernel report (a's WARNING, b's allowed one,
    # c's panic, the one k's setup found), after the removal (g) and after
    # h's cleanup panic (i): m1 a, m2 b, m3 c, m4 d..f, m5 g..h, m6 i..k, m7 l
    machines = sorted(p.name for p in out.iterdir() if p.is_dir() and "_e1000e-m" in p.name)
    assert machines == [f"e1000e_e1000e-m{i}" for i in range(1, 8)], machines
    assert (out / "e1000e_e1000e-m7" / "ended.txt").read_text().splitlines()[0] == "poweroff"
    last = {json.loads(ln)["test"].split("::")[-1]: json.loads(ln)["console"][-1]["run_dir"]
             for ln in (out / "results.jsonl").read_text().splitlines()
             if json.loads(ln).get("console")}
    assert [Path(last[f"test_{t}[e1000e/e1000e]"]).name.rsplit("-m", 1)[1]
            for t in ("a_warn_fails", "b_warn_allowed", "c_panic", "d_after_panic",
                      "g_dut_after_removal", "i_after_cleanup_panic")] == list("123456")
    assert (out / "e1000e_e1000e-m1" / "qemu-argv.txt").is_file()
    # g found the NIC's function gone: no driver reload, straight to m5
    ended = (out / "e1000e_e1000e-m4" / "ended.txt").read_text()
    assert "DUT unusable before" in ended and "is gone" in ended, ended
    assert "after a driver reload" not in ended, ended
    assert list((out / "pcap").glob("*test_e_dut*.pcap"))
    assert not qemu_under(out)


def _warn_ko_pytest(artifacts, tmp_path: Path, name: str, source: str,
                    out: Path) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of pytest on `source` (written to
    `name`) on one e1000e guest, with ktest_bug_warn built for the guest
    kernel (KTEST_WARN_KO)."""
    ko = module.build_module(ROOT / "tests/modules/bugs/warn", artifacts.kernel).ko
    (tmp_path / name).write_text(source)
    return ([sys.executable, "-m", "pytest", str(tmp_path / name),
             "-p", "no:cacheprovider", "-q", "--rootdir", str(tmp_path),
             "--ktest-pair", "e1000e:e1000e", "--ktest-out", str(out)],
            {**os.environ, "KTEST_WARN_KO": str(ko)})


def run_with_warn_ko(artifacts, tmp_path: Path, name: str, source: str,
                     out: Path) -> subprocess.CompletedProcess[str]:
    argv, env = _warn_ko_pytest(artifacts, tmp_path, name, source, out)
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600,
                          cwd=tmp_path)


def test_a_power_off_that_hangs_fails_the_test(artifacts, tmp_path: Path) -> None:
    """A guest whose power-off blocks (in a reboot notifier here, as in a
    driver's shutdown callback): its own hung-task detector names the
    culprit before ktest gives up waiting, and the test that shut it down
    fails."""
    out = tmp_path / "out"
    r = run_with_warn_ko(artifacts, tmp_path, "test_hang.py", HANG, out)
    (rec,) = records(out).values()
    assert (rec["outcome"], rec["phase"], rec["message"]) == \
        ("failed", "teardown", "INFO: task hung in ktest_bug_warn_stall"), (rec, r.stdout[-3000:])
    assert (out / "e1000e_e1000e-m1" / "ended.txt").read_text().splitlines()[0] == "poweroff-hung"
    assert r.returncode == 1
    assert not qemu_under(out)


def test_a_task_left_blocked_fails_its_test(artifacts, tmp_path: Path) -> None:
    """A test that leaves a task blocked for good (a work item waiting for
    an event that never comes) while the power-off still works: the guest's
    hung-task detector names it within that test's teardown, not 60 s
    later, and the next test runs on a fresh guest."""
    out = tmp_path / "out"
    r = run_with_warn_ko(artifacts, tmp_path, "test_blocked.py", BLOCKED, out)
    recs = records(out)
    a = recs["test_a_leaves_a_task_blocked[e1000e/e1000e]"]
    assert (a["outcome"], a["phase"], a["message"]) == \
        ("failed", "teardown", "INFO: task hung in ktest_bug_warn_stall"), (a, r.stdout[-3000:])
    assert recs["test_b_next[e1000e/e1000e]"]["outcome"] == "passed", r.stdout[-3000:]
    assert (out / "e1000e_e1000e-m2").is_dir()  # b's guest is a fresh one
    assert r.returncode == 1
    assert not qemu_under(out)


def test_a_stopped_test_is_judged_on_what_its_guest_said(artifacts, tmp_path: Path) -> None:
    """Ctrl-C in a test stuck in its guest, after its driver warned: the
    run stops at once, and the test's record names the WARNING (judged once
    the guest is off), not "interrupted"."""
    out = tmp_path / "out"
    argv, env = _warn_ko_pytest(artifacts, tmp_path, "test_stopped.py", STOPPED, out)
    # it hears SIGINT even where this test's own runner ignores it (a
    # background job), as the pytest `ktest run` starts for a pair does
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 600
        while not any(b"end trace" in p.read_bytes() for p in out.glob("*/console.raw")):
            assert proc.poll() is None and time.monotonic() < deadline, \
                proc.stdout.read() if proc.stdout else "no WARNING within 600 s"
            time.sleep(1)
        proc.send_signal(signal.SIGINT)
        text, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    recs = records(out)
    assert list(recs) == ["test_warns_then_hangs[e1000e/e1000e]"], text[-3000:]
    (rec,) = recs.values()
    assert (rec["outcome"], rec["phase"]) == ("failed", "call"), (rec, text[-3000:])
    assert rec["message"].startswith("WARNING in ktest_bug_warn"), rec
    assert proc.returncode == 2  # pytest: interrupted
    assert not qemu_under(out)


def _plan(tmp_path: Path, pairs: list[tuple[str, str]], suites: list[str]) -> Path:
    plan = tmp_path / "plan.yaml"
    lines = ["description: test plan", f"suites: {json.dumps(suites)}", "pairs:"]
    lines += [f"  - {{profile: {p}, driver: {d}}}" for p, d in pairs]
    plan.write_text("\n".join(lines) + "\n")
    return plan


def test_ktest_run_plan(artifacts, tmp_path: Path) -> None:
    """Two pairs in parallel guests (-j 2), one run directory."""
    plan = _plan(tmp_path, [("e1000e", "ktest_nic"), ("virtio-net", "virtio_net")],
                 ["tests/nic/test_integrity.py", "tests/nic/test_mtu.py"])
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli", "run", "--plan", str(plan),
                        "-k", "ping or invalid_mtu", "-j", "2", "--out", str(out)],
                       capture_output=True, text=True, timeout=1500, cwd=ROOT)
    print(r.stdout[-5000:], r.stderr[-2000:])
    assert r.returncode == 0, r.stdout[-3000:]
    assert "2 at a time" in r.stdout, r.stdout[:500]
    table = r.stdout.split("\n\n")[-3] if "\n\n" in r.stdout else r.stdout
    assert "e1000e/ktest_nic" in r.stdout and "virtio-net/virtio_net" in r.stdout
    assert "test_ping_v4_v6" in table or "test_ping_v4_v6" in r.stdout
    recs = [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines()]
    assert {x["pair"] for x in recs} == {"e1000e/ktest_nic", "virtio-net/virtio_net"}
    assert all(x["outcome"] in ("passed", "skipped") for x in recs), recs
    junit = (out / "junit.xml").read_text()
    assert junit.count("<testsuite ") == 2
    assert list(out.glob("*/qemu-argv.txt")) and list((out / "pcap").glob("*.pcap"))
    assert not qemu_under(out)


def _ignored_signals(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no SigIgn for {pid}")


def _children(pid: int) -> list[int]:
    return [int(c) for t in Path(f"/proc/{pid}/task").iterdir()
            for c in (t / "children").read_text().split()]


def test_ktest_run_killed_halfway(artifacts, tmp_path: Path) -> None:
    # the plan gives the suite; -m/-d replace its pairs (an ad-hoc plan)
    plan = _plan(tmp_path, [("virtio-net", "virtio_net")], ["tests/nic/test_integrity.py"])
    out = tmp_path / "out"
    # started as a shell script's background job is (`ktest run &`, nohup):
    # with SIGINT ignored
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", "--plan",
                             str(plan), "-m", "e1000e", "-d", "e1000e", "--out", str(out)],
                            cwd=ROOT, preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                       signal.SIG_IGN),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            res = out / "results.jsonl"
            if res.exists() and len(res.read_text().splitlines()) >= 2:
                break
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            time.sleep(1)
        else:
            raise AssertionError("no results within 600 s")
        assert _ignored_signals(proc.pid) & (1 << (signal.SIGINT - 1))
        # ktest stops its pair's pytest with SIGINT first: that one must hear it
        (child,) = _children(proc.pid)
        assert not _ignored_signals(child) & (1 << (signal.SIGINT - 1)), \
            "the pair's pytest ignores SIGINT, so a stop waits out its grace"
        proc.send_signal(signal.SIGTERM)
        text, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:  # a failed check above: stop it as a user would
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=180)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(text[-3000:])
    assert proc.returncode != 0
    lines = (out / "results.jsonl").read_text().splitlines()
    recs = [json.loads(ln) for ln in lines]   # every line readable
    assert len(recs) >= 2 and all(x["pair"] == "e1000e/e1000e" for x in recs)
    assert not qemu_under(out), qemu_under(out)
    assert (out / "junit.xml").exists()
    assert yaml.safe_load((out / "plan.yaml").read_text())["pairs"] == \
        [{"profile": "e1000e", "driver": "e1000e"}]
    assert textwrap.dedent("interrupted") in text


def test_declared_capability_that_is_gone_fails(artifacts, tmp_path: Path) -> None:
    """ktest_nic rebuilt with set_ringparam returning -EOPNOTSUPP: the ring
    test fails naming the capability instead of skipping."""
    import shutil

    src = tmp_path / "ktest_nic"
    shutil.copytree(ROOT / "drivers" / "ktest_nic", src)
    eth = src / "ktnic_ethtool.c"
    text = eth.read_text()
    head = "static int ktnic_set_ringparam(struct net_device *netdev,"
    assert head in text
    body = text.index("{", text.index(head)) + 1
    eth.write_text(text[:body] + "\n\treturn -EOPNOTSUPP;" + text[body:])
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "tests/nic/test_config.py"),
                        "-p", "no:cacheprovider", "-q", "--rootdir", str(ROOT),
                        "-k", "test_ring_sizes", "--ktest-pair", f"e1000e:{src}",
                        "--ktest-out", str(out)],
                       capture_output=True, text=True, timeout=900, cwd=ROOT)
    print(r.stdout[-3000:], r.stderr[-2000:])
    (rec,) = records(out).values()
    assert rec["outcome"] == "failed" and "capability ring_set" in rec["message"], rec
    assert not qemu_under(out)


def test_a_pair_that_cannot_boot_ends_at_once(artifacts, tmp_path: Path) -> None:
    """A profile whose guest panics at boot: its tests end as ERROR with the
    boot error after one boot, well within one boot timeout."""
    prof = tmp_path / "broken.yaml"
    # no such init at all: the kernel panics ("Requested init ... failed")
    prof.write_text("name: broken\ncmdline: [rdinit=/no-such-init, init=/no-such-init]\n"
                    "nics:\n  - {model: e1000e, mac: '52:54:00:00:10:00'}\n")
    out = tmp_path / "out"
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "tests/nic/test_integrity.py"),
                        "-p", "no:cacheprovider", "-q", "--rootdir", str(ROOT),
                        "-k", "ping or vlan", "--ktest-pair", f"{prof}:e1000e",
                        "--ktest-out", str(out)],
                       capture_output=True, text=True, timeout=900, cwd=ROOT)
    took = time.monotonic() - t
    print(r.stdout[-3000:], r.stderr[-2000:])
    recs = records(out)
    assert len(recs) == 2 and all(x["outcome"] == "error" for x in recs.values()), recs
    assert all("boot failed: guest panicked during boot" in x["message"] for x in recs.values())
    assert len([p for p in out.iterdir() if p.is_dir() and "-m" in p.name]) == 1
    assert took < 300, took  # the Machine's boot timeout
    assert not qemu_under(out)
