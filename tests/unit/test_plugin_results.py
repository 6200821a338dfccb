"""The plugin's results.jsonl without a VM: one line per test as it ends."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
'''


def test_results_jsonl(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py"),
                        "--ktest-out", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout
    recs = {json.loads(ln)["test"].split("::")[1]: json.loads(ln)
            for ln in (out / "results.jsonl").read_text().splitlines()}
    assert {k: v["outcome"] for k, v in recs.items()} == {
        "test_pass": "passed", "test_fail": "failed", "test_skip": "skipped",
        "test_error": "error"}
    assert "one is not two" in recs["test_fail"]["message"]
    assert recs["test_skip"]["message"] == "not today"
    assert "setup broke" in recs["test_error"]["message"]


def test_without_out_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text("def test_ok():\n    pass\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0 and not list(tmp_path.rglob("results.jsonl"))
