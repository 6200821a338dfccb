"""`ktest compare`: two fake runs, every group, the table, JSON and the exit
status CI reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakerun import FakeRun

from orchestrator import cli
from orchestrator.runs import compare
from orchestrator.runs.rundir import load_run

E, V = "e1000e/ktest_nic", "virtio-net/virtio_net"


def t(name: str, pair: str = E) -> str:
    return f"tests/nic/test_x.py::{name}[{pair}]"


def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    a, b = FakeRun(tmp_path / "a"), FakeRun(tmp_path / "b")
    for run, outcomes in ((a, {"ping": "passed", "rx": "failed", "tx": "failed",
                               "mtu": "failed", "vlan": "passed", "gone": "failed",
                               "flap": "passed", "link": "failed", "storm": "passed"}),
                          (b, {"ping": "failed", "rx": "passed", "tx": "failed",
                               "mtu": "skipped", "vlan": "passed", "flap": "flaky",
                               "new_test": "error", "link": "xpassed",
                               "storm": "xpassed"})):
        for name, outcome in outcomes.items():
            run.test(t(f"test_{name}"), E, outcome, message=f"{name} {outcome}")
    # the same test on another pair is another test
    a.test(t("test_ping", V), V, "failed", message="ping failed")
    b.test(t("test_ping", V), V, "passed")
    # explained by a known issue in B (the AER entry)
    b.test(t("test_aer", V), V, "failed", message="AER: recovery failed")
    a.write()
    b.write()
    return a.path, b.path


def groups(c: compare.Comparison) -> dict[str, set[tuple[str, str]]]:
    return {g: {(r.test.split("::")[1], r.pair) for r in rows} for g, rows in c.groups.items()}


def test_every_group(tmp_path: Path) -> None:
    a, b = two_runs(tmp_path)
    c = compare.compare(load_run(a), load_run(b))
    assert groups(c) == {
        "new": {("test_ping", E), ("test_new_test", E)},
        "still_failing": {("test_tx", E)},
        # an XPASS (a QEMU limitation's xfail that passed) fails nothing
        "fixed": {("test_rx", E), ("test_ping", V), ("test_link", E)},
        "not_run": {("test_gone", E)},
        # a failure now hidden as a skip
        "skipped_now": {("test_mtu", E)},
        "known": {("test_aer", V)},
        "flaky": {("test_flap", E)},
    }
    new = {r.test.split("::")[1]: r for r in c.groups["new"]}
    assert (new["test_ping"].before, new["test_ping"].after) == ("PASS", "FAIL")
    assert (new["test_new_test"].before, new["test_new_test"].after) == ("-", "ERROR")
    assert c.groups["known"][0].reason.startswith("virtio_net has no PCI error handlers")
    assert c.anything_new


def test_a_run_against_itself_has_nothing_new(tmp_path: Path) -> None:
    a, _ = two_runs(tmp_path)
    c = compare.compare(load_run(a), load_run(a))
    assert not c.anything_new and not c.groups["fixed"]
    assert {r.test.split("::")[1] for r in c.groups["still_failing"]} == {
        "test_rx", "test_tx", "test_mtu", "test_gone", "test_ping", "test_link"}


def test_cli_table_json_and_exit_status(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    a, b = two_runs(tmp_path)
    assert cli.main(["compare", str(a), str(b)]) == 1
    text = capsys.readouterr().out
    assert "2 new failures, 1 still failing, 3 fixed" in text
    new_block = text.split("new failures:")[1].split("\n\n")[0]
    assert " PASS -> FAIL  e1000e/ktest_nic  tests/nic/test_x.py::test_ping: ping failed" \
        in new_block
    assert cli.main(["compare", "--json", str(a), str(b)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["counts"] == {"new": 2, "still_failing": 1, "fixed": 3, "not_run": 1,
                              "skipped_now": 1, "known": 1, "flaky": 1}
    assert {r["test"] for r in data["fixed"]} == {"tests/nic/test_x.py::test_rx",
                                                  "tests/nic/test_x.py::test_ping",
                                                  "tests/nic/test_x.py::test_link"}
    assert cli.main(["compare", str(b), str(b)]) == 0


def test_a_test_that_passed_and_now_skips_fails_the_comparison(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A test that passed in A and skips in B lost coverage (the driver
    stopped reporting a capability): shown, and `ktest compare` exits 1.
    A test that skipped in both, that A skipped and B passes, or that was an
    expected failure in A, is not."""
    a, b = FakeRun(tmp_path / "a"), FakeRun(tmp_path / "b")
    for run, outcomes in ((a, {"rss": "passed", "tso": "skipped", "gro": "skipped",
                               "aer": "xfailed"}),
                          (b, {"rss": "skipped", "tso": "skipped", "gro": "passed",
                               "aer": "skipped"})):
        for name, outcome in outcomes.items():
            run.test(t(f"test_{name}"), E, outcome, message=f"{name} {outcome}")
        run.write()
    c = compare.compare(load_run(a.path), load_run(b.path))
    assert {g: rows for g, rows in groups(c).items() if rows} == {
        "skipped_now": {("test_rss", E)}}
    assert c.anything_new
    assert cli.main(["compare", str(a.path), str(b.path)]) == 1
    text = capsys.readouterr().out
    assert "ran before, skipped now:\n   PASS -> SKIP  e1000e/ktest_nic  " \
        "tests/nic/test_x.py::test_rss: rss skipped" in text, text


def test_known_file_turns_a_new_failure_into_known(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    a, b = two_runs(tmp_path)
    mine = tmp_path / "known.yaml"
    mine.write_text("- {test: 'test_(ping|new_test)\\[e1000e', reason: lab switch down}\n")
    # still 1: test_mtu failed in A and skips in B
    assert cli.main(["compare", "--known", str(mine), str(a), str(b)]) == 1
    text = capsys.readouterr().out
    assert "[known: lab switch down]" in text
    assert "0 new failures" in text and "1 ran before, skipped now" in text, text


@pytest.mark.parametrize("which", ["missing", "not-a-run"])
def test_bad_run_dir_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 which: str) -> None:
    a, _ = two_runs(tmp_path)
    bad = tmp_path / which
    if which == "not-a-run":
        bad.mkdir()
        (bad / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit) as e:
        cli.main(["compare", str(a), str(bad)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0]
    if which == "not-a-run":
        assert (bad / "notes.txt").read_text() == "keep me"
