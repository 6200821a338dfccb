"""`ktest run` end to end without a guest: the build step is stubbed, the
plan's suite is the fake one of test_execute (its tests get the Pair, not a
booted guest). Progress lines, summary, verdict, report, exit status and
--baseline; the live status block on a terminal."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from test_execute import SUITE

from orchestrator import cli
from orchestrator.cli import progress as progress_mod
from orchestrator.runs import prepare
from orchestrator.runs.execute import PairRun
from orchestrator.scenario.drivers import Pair


@pytest.fixture
def fake_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_fake.py").write_text(SUITE)
    (tmp_path / "tries").mkdir()
    monkeypatch.setenv("KTEST_FAKE_TRIES", str(tmp_path / "tries"))
    monkeypatch.setattr(prepare, "build", lambda *a, **kw: prepare.Built("k-0123"))
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"suites: [{suite}]\npcap: false\npairs:\n"
                    "  - {profile: e1000e, driver: ktest_nic}\n"
                    "  - {profile: virtio-net, driver: virtio_net}\n")
    return plan


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["run", *args])
    got = capsys.readouterr()
    return code, got.out, got.err


def test_ktest_run_without_a_guest(fake_plan: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, "--plan", str(fake_plan), "--out", str(out), "-j", "2",
                               "--accel", "tcg")
    assert code == 1  # virtio refuses: a failure no known issue explains
    assert "(2 pairs, 2 at a time)" in stdout
    assert "   FAIL  test_refused_on_virtio [virtio-net/virtio_net]" in stdout
    assert "verdict: FAIL" in stdout and f"report: {out / 'report.html'}" in stdout
    # not a terminal: a status line per pair as it starts and ends, on stderr
    status = [ln for ln in stderr.splitlines() if ln.startswith(("e1000e/", "virtio-net/"))]
    assert any("running  0/5 tests, 0 failing" in ln for ln in status)
    assert any(ln.startswith("virtio-net/virtio_net  done") and "5/5 tests, 2 failing" in ln
               for ln in status), status
    m = json.loads((out / "run.json").read_text())
    assert m["choices"]["accel"] == "tcg" and m["jobs"] == 2
    # the same run again, against the first, with the refusal explained
    known = tmp_path / "known.yaml"
    known.write_text("- {title: virtio says no, reason: on purpose}\n")
    code, stdout, _ = run(capsys, "--plan", str(fake_plan), "--out", str(tmp_path / "again"),
                          "--reruns", "1", "--known", str(known), "--baseline", str(out))
    assert code == 0, stdout
    assert "verdict: PASS" in stdout and "KNOWN" in stdout
    assert f"against {out}: 0 new failures" in stdout
    html = (tmp_path / "again" / "report.html").read_text()
    assert 'id="compare"' in html and "on purpose" in html


def test_bad_baseline_stops_before_anything(fake_plan: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        run(capsys, "--plan", str(fake_plan), "--out", str(tmp_path / "out"),
            "--baseline", str(tmp_path / "nope"))
    assert e.value.code == 2 and not (tmp_path / "out").exists()
    assert capsys.readouterr().err.strip() == \
        f"ktest: error: {tmp_path / 'nope'}: no such run directory"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_live_status_lines_on_a_terminal() -> None:
    a, b = PairRun(Pair("e1000e", "ktest_nic"), total=27), PairRun(Pair("igb", "igb"))
    stream = Tty()
    p = progress_mod.RunProgress([a.pair, b.pair], stream)
    a.started, a.done, a.failures = 0.0, 3, 1
    p.tick([a, b])
    first = stream.getvalue()
    assert len(first.splitlines()) == 2
    assert "e1000e/ktest_nic  running  3/27 tests, 1 failing" in first
    assert "igb/igb           queued   0/? tests, 0 failing, 0s" in first
    p.record(a, _rec())
    after = stream.getvalue()[len(first):]
    # the block is erased (2 lines up, clear), the test's line printed, the block drawn again
    assert after.startswith("\033[2F\033[J   FAIL  test_x [e1000e/ktest_nic]")
    assert after.count("e1000e/ktest_nic  running") == 1


def _rec() -> Any:
    from orchestrator.plugin.record import Record

    return Record(test="tests/nic/t.py::test_x[e1000e/ktest_nic]", pair="e1000e/ktest_nic",
                  outcome="failed", message="boom")
