"""The plugin's results.jsonl without a VM: one line per test as it ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from wire import run_inner as run_plugin

from orchestrator.plugin.record import Record
from orchestrator.runs import verdicts

INNER = '''
import pytest

def test_pass():
    pass

def test_fail():
    assert 1 == 2, "one is not two"

@pytest.mark.skip(reason="not today")
def test_skip():
    pass

@pytest.fixture
def broken():
    raise RuntimeError("setup broke")

def test_error(broken):
    pass

@pytest.mark.xfail(reason="known emulator limitation of QEMU 1.0: the model loses it")
def test_xfail():
    assert 1 == 2, "no carrier within 10s"

@pytest.mark.xfail(reason="known emulator limitation of QEMU 1.0: no link change arrives")
def test_xpass():
    pass

@pytest.mark.xfail(reason="the driver declares it cannot", strict=True)
def test_xpass_strict():
    pass
'''


def test_results_jsonl(tmp_path: Path) -> None:
    r, out = run_plugin(tmp_path, INNER)
    assert r.returncode == 1, r.stdout
    recs = {json.loads(ln)["test"].split("::")[1]: json.loads(ln)
            for ln in (out / "results.jsonl").read_text().splitlines()}
    assert {k: v["outcome"] for k, v in recs.items()} == {
        "test_pass": "passed", "test_fail": "failed", "test_skip": "skipped",
        "test_error": "error", "test_xfail": "xfailed", "test_xpass": "xpassed",
        "test_xpass_strict": "failed"}
    assert "one is not two" in recs["test_fail"]["message"]
    assert recs["test_skip"]["message"] == "not today"
    assert "setup broke" in recs["test_error"]["message"]
    # an expected failure says why it was expected, and what it got
    why = recs["test_xfail"]["message"]
    assert why.startswith("known emulator limitation of QEMU 1.0: the model loses it (got: ")
    assert "no carrier within 10s" in why
    # what fails the run: a limitation's XPASS does not (that QEMU cannot show
    # what the test checks); the unexpected pass of a driver's declared failure does
    bad = {k for k, v in recs.items() if verdicts.is_bad(Record.from_dict(v))}
    assert bad == {"test_fail", "test_error", "test_xpass_strict"}
    assert "XPASS(strict)" in recs["test_xpass_strict"]["message"]


def test_without_out_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text("def test_ok():\n    pass\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0 and not list(tmp_path.rglob("results.jsonl"))


RERUN = '''
import os
import pytest
from pathlib import Path

COUNT = Path(os.environ["KTEST_TRIES_DIR"])


def tries(name):
    f = COUNT / name
    n = int(f.read_text()) + 1 if f.exists() else 1
    f.write_text(str(n))
    return n


def test_flaky():
    assert tries("flaky") >= 2, "first try fails"


def test_always_fails():
    tries("always")
    assert False, "broken for good"


def test_passes():
    tries("passes")


def test_kernel_report():
    tries("report")
    assert False, "WARNING in ktnic_poll"


@pytest.mark.xfail(reason="known emulator limitation of QEMU 1.0")
def test_xpass():
    tries("xpass")
'''

# What the verdict hook does when a kernel report fails a test.
DECIDED_BY_REPORT = '''
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if item.name == "test_kernel_report" and rep.when == "call":
        rep.user_properties.append(("ktest_decided_by_report", "call"))
'''


def run_inner(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str],
                                                    dict[str, dict[str, Any]]]:
    (tmp_path / "test_inner.py").write_text(RERUN)
    (tmp_path / "conftest.py").write_text(DECIDED_BY_REPORT)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py"),
                        "--ktest-out", str(tmp_path / "out"), *args],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "KTEST_TRIES_DIR": str(tmp_path)})
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    return r, {json.loads(ln)["test"].split("::")[1]: json.loads(ln) for ln in lines}


def test_reruns_keep_every_try_and_call_it_flaky(tmp_path: Path) -> None:
    r, recs = run_inner(tmp_path, "--ktest-reruns", "2")
    assert len(recs) == 5, r.stdout
    flaky = recs["test_flaky"]
    assert flaky["outcome"] == "flaky", flaky
    assert [a["outcome"] for a in flaky["attempts"]] == ["failed", "passed"]
    assert "first try fails" in flaky["message"] and flaky["phase"] == "call"
    always = recs["test_always_fails"]
    assert always["outcome"] == "failed" and len(always["attempts"]) == 3
    assert (tmp_path / "always").read_text() == "3"
    assert recs["test_passes"]["outcome"] == "passed" and not recs["test_passes"]["attempts"]
    # a kernel report decided it: never run again
    assert recs["test_kernel_report"]["outcome"] == "failed"
    assert (tmp_path / "report").read_text() == "1" and not recs["test_kernel_report"]["attempts"]
    # a limitation's XPASS is not a failure to try again
    assert recs["test_xpass"]["outcome"] == "xpassed" and not recs["test_xpass"]["attempts"]
    assert (tmp_path / "xpass").read_text() == "1"
    # pytest saw only the last try of each test: 2 failed, 2 passed
    assert r.returncode == 1 and "2 failed, 2 passed, 1 xpassed" in r.stdout, r.stdout


def test_without_reruns_a_failure_is_final(tmp_path: Path) -> None:
    _, recs = run_inner(tmp_path)
    assert {k: v["outcome"] for k, v in recs.items()} == {
        "test_flaky": "failed", "test_always_fails": "failed", "test_passes": "passed",
        "test_kernel_report": "failed", "test_xpass": "xpassed"}
    assert (tmp_path / "always").read_text() == "1"


def test_appends_from_many_processes_stay_whole(tmp_path: Path) -> None:
    """Pair processes of `ktest run -j` append to one results.jsonl: lines
    longer than a stdio buffer must not interleave."""
    script = ("import sys\nfrom pathlib import Path\n"
              "from orchestrator.plugin.record import Record, append_record\n"
              "for i in range(40):\n"
              "    append_record(Path(sys.argv[1]), Record(test=f'{sys.argv[2]}-{i}', "
              "message=sys.argv[2] * 20000))\n")
    path = tmp_path / "results.jsonl"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), tag])
             for tag in "abcd"]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    lines = path.read_text().splitlines()
    assert len(lines) == 160
    for ln in lines:
        rec = json.loads(ln)
        assert rec["message"] == rec["test"][0] * 20000
