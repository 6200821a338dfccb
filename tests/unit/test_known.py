"""Known issues: the YAML list, version conditions, which failures an entry
explains, and that the QEMU table's limitations and the known issues agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.machine import qemu
from orchestrator.plugin.record import Record, ReportRef, read_records
from orchestrator.runs import known
from orchestrator.runs.known import Condition, Versions
from orchestrator.runs.rundir import load_run
from orchestrator.yamlconf import ConfigError

NEW = Versions(kernel=(6, 12, 117), qemu=(10, 0, 2))
OLD_QEMU = Versions(kernel=(6, 12, 117), qemu=(7, 2, 22))
LINK_TEST = "tests/nic/test_lifecycle.py::test_link_down_up_under_traffic[e1000e/e1000e]"


@pytest.mark.parametrize("cond,version,holds", [
    ("<8.1", (7, 2, 22), True),
    ("<8.1", (8, 0, 5), True),
    ("<8.1", (8, 1, 0), False),
    ("<8.1", (10, 0, 2), False),
    ("6.12", (6, 12, 117), True),
    ("6.12", (6, 1, 119), False),
    ("==6.12", (6, 12, 0), True),
    (">=6.12, <6.13", (6, 12, 5), True),
    (">=6.12, <6.13", (6, 13, 0), False),
    ("<=6.12", (6, 12, 117), True),
    (">6.12", (6, 12, 117), False),
    ("!=10", (10, 0, 2), False),
    ("<8.1", None, False),  # a version the run did not record never matches
])
def test_conditions(cond: str, version: tuple[int, ...] | None, holds: bool) -> None:
    assert Condition.parse(cond).holds(version) is holds


def test_versions_from_a_manifest() -> None:
    v = Versions.of_manifest({"kernel": {"release": "6.12.117-ktest"},
                              "qemu": {"version": "7.2.22"}})
    assert v == Versions((6, 12, 117), (7, 2, 22))
    assert Versions.of_manifest({}) == Versions(None, None)


def failed(test: str, pair: str, message: str, *, report: str | None = None,
           outcome: str = "failed") -> Record:
    reports = [ReportRef(report, "AER")] if report else []
    return Record(test=test, pair=pair, outcome=outcome, message=message, reports=reports)


def explained(r: Record, versions: Versions = NEW) -> str | None:
    known.annotate([r], known.load(), versions)
    return r.known.reason if r.known else None


def test_shipped_issues_explain_what_they_say() -> None:
    csum = failed("selftests/drivers/net/hw/csum.py::test_receive[e1000e/e1000e]",
                  "e1000e/e1000e", "AttributeError: 'NetDrvEpEnv' object has no attribute "
                  "'remote_ifname'", outcome="error")
    assert "remote_ifname" in (explained(csum) or "")
    on_61 = failed(csum.test, csum.pair or "", csum.message, outcome="error")
    assert explained(on_61, Versions((6, 1, 119), (10, 0, 2))) is None


def test_driver_fault_expectations_are_not_repeated() -> None:
    """virtio_net failing AER recovery is its declaration's (faults:), which
    the plugin turns into a strict xfail; the known issues leave it alone, so
    a surprise recovery (a strict XPASS, a failure) is not called known."""
    from orchestrator.scenario import drivers

    declared = drivers.info_for("virtio_net").expectation("aer_fatal") or ""
    assert declared.startswith("fails:") and "device recovery failed" in declared
    aer = failed("tests/nic/test_faults.py::test_aer_fatal_under_traffic[virtio-net/virtio_net]",
                 "virtio-net/virtio_net", "[XPASS(strict)] known limitation of virtio_net")
    assert explained(aer) is None


def test_qemu_limitation_is_a_known_issue_on_old_qemu_only() -> None:
    r = failed(LINK_TEST, "e1000e/e1000e", "cycle 1 of 5: cable in: no carrier after 15s")
    assert "QEMU < 8.1" in (explained(r, OLD_QEMU) or "")
    assert explained(failed(r.test, "e1000e/e1000e", r.message)) is None  # QEMU 10
    ktnic = LINK_TEST.replace("e1000e/e1000e", "e1000e/ktest_nic")
    assert explained(failed(ktnic, "e1000e/ktest_nic", r.message), OLD_QEMU) is None
    # the ethtool link-state test pulls the cable too (it failed on 7.2 for this)
    ethtool = LINK_TEST.replace("test_link_down_up_under_traffic",
                                "test_ethtool_reports_identity_and_link_state")
    assert "QEMU < 8.1" in (explained(failed(ethtool, "e1000e/e1000e", r.message),
                                      OLD_QEMU) or "")
    # the first ping after a load or a bind is lost to it too (on 7.2: 1 of
    # 8 loads; none of 30 loads and 30 binds on 10.0.2)
    for cycles in ("test_load_unload_cycles_under_traffic",
                   "test_bind_unbind_cycles_under_traffic"):
        lost = failed(LINK_TEST.replace("test_link_down_up_under_traffic", cycles),
                      "e1000e/e1000e", "cycle 6 of 8: load and ping: 0 of 1 replies received")
        assert "QEMU < 8.1" in (explained(lost, OLD_QEMU) or "")
        assert explained(failed(lost.test, lost.pair or "", lost.message)) is None  # QEMU 10
    # an entry without a title never hides a kernel report
    warned = failed(LINK_TEST, "e1000e/e1000e", "WARNING in e1000_watchdog",
                    report="WARNING in e1000_watchdog")
    assert explained(warned, OLD_QEMU) is None


VF_LINK = "tests/nic/test_lifecycle.py::test_link_down_up_under_traffic[igb-vf/igbvf]"


@pytest.mark.parametrize("version", [OLD_QEMU, NEW, Versions((6, 12, 117), (99, 0, 0))])
def test_an_unfixed_qemu_limitation_is_known_on_every_version(version: Versions) -> None:
    """igb's VF mailbox interrupt lands on the wrong vector in every QEMU so
    far: igbvf keeps carrier with the cable out on all of them."""
    r = failed(VF_LINK, "igb-vf/igbvf", "cable out: carrier 0: not within 10s")
    assert "mailbox_interrupt_to_vf" in (explained(r, version) or "")
    # the PF driver sees the cable, so it is not excused
    pf = VF_LINK.replace("igb-vf/igbvf", "igb/igb")
    assert explained(failed(pf, "igb/igb", r.message), version) is None
    # nor another test of the VF
    mtu = VF_LINK.replace("test_link_down_up_under_traffic", "test_mtu_change")
    assert explained(failed(mtu, "igb-vf/igbvf", r.message), version) is None


@pytest.mark.parametrize("version", [(7, 2, 22), (8, 0, 0), (8, 1, 0), (10, 0, 2)])
@pytest.mark.parametrize("driver,test", [
    ("e1000e", LINK_TEST),
    ("e1000e", "tests/nic/test_x.py::test_link_flap_storm[e1000e-viommu/e1000e]"),
    ("ktest_nic", LINK_TEST.replace("e1000e/e1000e", "e1000e/ktest_nic")),
    ("e1000e", "tests/nic/test_mtu.py::test_jumbo_9000[e1000e/e1000e]"),
    ("e1000e", LINK_TEST.replace("test_link_down_up_under_traffic",
                                 "test_ethtool_reports_identity_and_link_state")),
    ("igbvf", VF_LINK),
    ("igbvf", VF_LINK.replace("test_link_down_up_under_traffic",
                              "test_ethtool_reports_identity_and_link_state")),
    ("igb", VF_LINK.replace("igb-vf/igbvf", "igb/igb")),
])
def test_plugin_xfail_and_known_issues_agree(version: tuple[int, int, int], driver: str,
                                             test: str) -> None:
    """One owner: the QEMU table. Where the plugin marks a test xfail, the
    known issues explain its failure, and nowhere else."""
    v = qemu.QemuVersion(*version)
    pair = test.split("[")[1].rstrip("]").split("-v4")[0]
    r = failed(test, pair, "no carrier after 15s")
    known.annotate([r], known.from_limitations(), Versions(None, version))
    assert (qemu.limitation_for(v, driver, test) is not None) == (r.known is not None)


def test_annotate_keeps_outcome_and_only_explains_failures() -> None:
    r = failed(LINK_TEST, "e1000e/e1000e", "no carrier")
    passed = Record(test=LINK_TEST, pair="e1000e/e1000e", outcome="passed")
    xpassed = Record(test=LINK_TEST, pair="e1000e/e1000e", outcome="xpassed")
    assert known.annotate([r, passed, xpassed], known.load(), OLD_QEMU) == 1
    assert r.outcome == "failed" and r.known is not None
    assert passed.known is None and xpassed.known is None
    back = Record.from_dict(json.loads(r.to_json()))
    assert back == r and back.known is not None and back.known.source.startswith(
        "orchestrator/machine/qemu.py")


def test_a_program_is_known_when_every_failed_part_is() -> None:
    prog = "tests/upstream/test_selftests.py::test_upstream[drivers/net/hw:rss_ctx.py-p/d]"

    def part(name: str, outcome: str, message: str = "") -> Record:
        return Record(test=f"{prog}/rss_ctx.{name}", pair="p/d", outcome=outcome,
                      message=message, part_of=prog)

    def run(*parts: Record, report: str | None = None) -> Record:
        parent = failed(prog, "p/d", "rss_ctx.py failed (2 subtests failed)", report=report)
        known.annotate([parent, *parts], known.load(), NEW)
        return parent

    resize = part("test_rss_resize", "failed", "KeyError: 'combined-max'")
    hitless = part("test_hitless_key_update", "failed", "Check failed 0.39 >= 0.2")
    ok = part("test_rss_context", "skipped")
    parent = run(resize, hitless, ok)
    assert resize.known and hitless.known and parent.known is not None
    assert parent.known.reason.endswith("test_rss_resize, rss_ctx.test_hitless_key_update")
    # one unexplained part, or a kernel report of the program's own: not known
    new = part("test_rss_key_indir", "failed", "Check failed 1 != 2")
    assert run(part("test_rss_resize", "failed", "KeyError: 'combined-max'"), new).known is None
    assert run(part("test_rss_resize", "failed", "KeyError: 'combined-max'"),
               report="WARNING in ktnic_set_rxfh").known is None
    # no failed part at all: the program failed on its own
    assert run(ok).known is None


@pytest.mark.parametrize("text,needle", [
    ("title: x\n", ":1: top level: expected a list of known issues, got a mapping"),
    ("- {title: x}\n", ":1: [0].reason: missing"),
    ("- {reason: r}\n", ":1: [0]: needs at least one of title, test, pair"),
    ("- title: ok\n  reason: r\n- title: '('\n  reason: r\n", ":3: [1].title: bad regular"),
    ("- {test: t, qemu: 'before 8.1', reason: r}\n", ":1: [0].qemu: 'before 8.1' is not a"),
    ("- {test: t, reason: r, colour: red}\n", ":1: [0].colour: unknown key"),
    ("- {test: [a, b], reason: r}\n", ":1: [0].test: expected a regular expression"),
    ("- {test: t\n", ":2: malformed YAML"),
])
def test_bad_known_files_name_file_line_and_key(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "known.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        known.load_issues(path)
    assert str(e.value).startswith(str(path)) and needle in str(e.value), str(e.value)


def test_bad_known_file_stops_ktest_run_with_one_line(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator import cli

    bad = tmp_path / "known.yaml"
    bad.write_text("- {reason: r}\n")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--known", str(bad), "--out", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs at least one of title, test, pair" in err[0]
    assert not out.exists()


def test_a_run_is_judged_with_its_snapshot_and_extra_files(tmp_path: Path) -> None:
    from fakerun import FakeRun

    run = FakeRun(tmp_path / "run")
    rec = run.test("tests/nic/test_mtu.py::test_mtu_changes[e1000e/ktest_nic]",
                   "e1000e/ktest_nic", "failed", message="RTNETLINK answers: Invalid argument")
    run.write()
    assert load_run(run.path).records[0].known is None
    extra = tmp_path / "mine.yaml"
    extra.write_text("- test: test_mtu_changes\n  title: RTNETLINK\n  reason: ours\n")
    got = load_run(run.path, known.load_issues(extra)).records[0]
    assert got.known is not None and got.known.reason == "ours"
    assert got.known.source == f"{extra}:1" and got.outcome == rec.outcome
    # the run keeps the list it was judged with, whatever ktest ships later
    known.save_snapshot(run.path, known.load_issues(extra))
    assert load_run(run.path).records[0].known is not None
    assert read_records(run.path)[0].known is None  # results.jsonl is not rewritten


def test_a_known_report_does_not_hide_another() -> None:
    """An issue that names one report explains a failure only when every
    kernel report of it is known: a new KASAN report next to a known
    watchdog is a failure, not a known issue."""
    issues = known.parse_issues([
        {"title": "NETDEV WATCHDOG", "reason": "the Tx stall QEMU's e1000e shows"},
        {"title": "^WARNING in ktnic_open$", "reason": "the open race"},
    ], "extra.yaml")
    watchdog = ReportRef("NETDEV WATCHDOG: transmit queue timed out in ktest_nic", "WATCHDOG")
    kasan = ReportRef("KASAN: slab-use-after-free Read in ktnic_clean_tx", "KASAN")
    warn = ReportRef("WARNING in ktnic_open", "WARNING")

    def record(*reports: ReportRef) -> Record:
        return Record(test=LINK_TEST, pair="e1000e/ktest_nic", outcome="failed",
                      message=reports[0].title, reports=list(reports))

    alone, with_kasan, both = record(watchdog), record(watchdog, kasan), record(watchdog, warn)
    assert known.annotate([alone, with_kasan, both], issues, NEW) == 2
    assert alone.known is not None and alone.known.reason == "the Tx stall QEMU's e1000e shows"
    assert with_kasan.known is None
    # two reports, each named by its own issue: known, with both reasons
    assert both.known is not None
    assert both.known.reason == "the Tx stall QEMU's e1000e shows; the open race"
    # a known harness message does not hide a kernel report either
    harness = known.parse_issues([{"title": "no traffic within", "reason": "slow"}], "x.yaml")
    msg = Record(test=LINK_TEST, pair="e1000e/ktest_nic", outcome="failed",
                 message="no traffic within 60s", reports=[kasan])
    assert known.annotate([msg], harness, NEW) == 0 and msg.known is None


def test_a_report_after_a_test_is_known_on_that_test() -> None:
    """A report that came after test_a ended fails the next test, test_b;
    an issue scoped to test_a explains it there, and one scoped to another
    test does not, nor one scoped to test_a for a report test_b made."""
    issues = known.parse_issues([
        {"title": "^WARNING in ktnic_close", "test": "test_a", "reason": "the late close race"},
    ], "extra.yaml")
    late = ReportRef("WARNING in ktnic_close", "WARNING", after="tests/nic/t.py::test_a[x]")
    own = ReportRef("WARNING in ktnic_close", "WARNING")
    other = ReportRef("WARNING in ktnic_close", "WARNING", after="tests/nic/t.py::test_c[x]")

    def record(*reports: ReportRef) -> Record:
        return Record(test="tests/nic/t.py::test_b[x]", pair="e1000e/ktest_nic",
                      outcome="failed", phase="setup", message=reports[0].title,
                      reports=list(reports))

    after_a, in_b, after_c, both = record(late), record(own), record(other), record(late, own)
    # a report that came in teardown, after a body that ran (and could have
    # failed on its own): not known on test_a
    ran = record(late)
    ran.phase = "teardown"
    assert known.annotate([after_a, in_b, after_c, both, ran], issues, NEW) == 1
    assert after_a.known is not None and after_a.known.reason == "the late close race"
    assert in_b.known is None and after_c.known is None and both.known is None
    assert ran.known is None
    # what the records hold on disk carries where the report came from
    assert Record.from_dict(json.loads(after_a.to_json())).reports[0].after == late.after


def test_records_of_a_later_ktest_still_load() -> None:
    """A report field this version does not know is dropped, not fatal: a
    baseline from a newer ktest still compares."""
    d = json.loads(failed("t", "e1000e/e1000e", "WARNING in x", report="WARNING in x").to_json())
    d["reports"][0]["later_field"] = 1
    assert Record.from_dict(d).reports[0].title == "WARNING in x"
