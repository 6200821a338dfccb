"""`ktest repro`, `ktest validate` and `ktest bisect`, for real: a zoo bug
replayed until its report shows again; a ktest_nic patch that injects a bug,
validated against the clean driver; and a small git history of ktest_nic, one
commit of which injects the bug, bisected to that commit.

The bug is ktest_nic's tx_unmap_wrong_size (DMA-API "different size"), shown
by the ping test on e1000e-viommu, as the zoo has it. The patch makes it the
driver's default (bugs = "tx_unmap_wrong_size"), so no module parameter is
needed: only the source changes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.long  # whole ktest runs: tox -e vm-long, not CI

ROOT = Path(__file__).resolve().parents[2]
KTEST_NIC = ROOT / "drivers" / "ktest_nic"
BUG = "tx_unmap_wrong_size"
TITLE = "different size .*in ktnic_"
CLEAN = "static char *bugs;"
BUGGY = f'static char *bugs = "{BUG}";'
TEST = ["-m", "e1000e-viommu", "-k", "test_ping_v4_v6"]
GIT = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@t"}


def ktest(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], capture_output=True,
                       text=True, timeout=timeout, cwd=ROOT)
    print(r.stdout[-6000:], r.stderr[-3000:])
    return r


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True, env={**os.environ, **GIT}).stdout.strip()


def driver_history(repo: Path, changes: list[str]) -> list[str]:
    """ktest_nic (as shipped) in a new git repository, then a commit for
    each change: "bug" makes the bug the driver's default, anything else
    adds a comment."""
    src = repo / "ktest_nic"
    src.mkdir(parents=True)
    for p in KTEST_NIC.iterdir():
        if p.is_file():
            (src / p.name).write_text(p.read_text())
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ktest_nic as shipped")
    shas = [git(repo, "rev-parse", "HEAD")]
    for n, change in enumerate(changes, 1):
        if change == "bug":
            f = src / "ktnic_bugs.c"
            assert CLEAN in f.read_text()
            f.write_text(f.read_text().replace(CLEAN, BUGGY))
        else:
            f = src / "ktnic_txrx.c"
            f.write_text(f.read_text() + f"/* {change} */\n")
        git(repo, "commit", "-q", "-am", f"{n}: {change}")
        shas.append(git(repo, "rev-parse", "HEAD"))
    return shas


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory: the guests' sockets live in their run directories
    (108 bytes at most for a socket path), pytest's tmp_path is too deep."""
    d = Path(tempfile.mkdtemp(prefix="kt-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_repro_of_a_zoo_bug(artifacts, short_tmp: Path) -> None:
    zoo = short_tmp / "zoo"
    r = ktest("zoo", "--bug", BUG, "--out", str(zoo))
    assert r.returncode == 0, r.stdout[-3000:]
    out = short_tmp / "repro"
    r = ktest("repro", str(zoo / BUG), "--tries", "3", "--out", str(out))
    assert r.returncode == 0, r.stdout[-3000:]
    summary = json.loads((out / "repro.json").read_text())
    assert summary["signature"]["kind"] == "title"
    assert re.search(TITLE, summary["signature"]["text"]), summary["signature"]
    assert summary["first_hit"] is not None and summary["hits"] >= 1
    assert "reproduced: 1 hit in " in r.stdout and "first hit on try 1" in r.stdout
    assert "note: not the run's own input" not in r.stdout  # the same keys
    tried = json.loads((out / "try-1" / "run.json").read_text())
    assert tried["driver_params"] == f"bugs={BUG}"


def test_validate_a_patch_that_injects_a_bug(artifacts, short_tmp: Path) -> None:
    repo = short_tmp / "src"
    driver_history(repo, ["bug"])
    before = git(repo, "status", "--porcelain"), git(repo, "rev-parse", "HEAD")
    out = short_tmp / "validate"
    r = ktest("validate", "--driver-tree", str(repo / "ktest_nic"), "--base", "HEAD~1",
              "--patch", "HEAD", *TEST, "--out", str(out))
    assert r.returncode == 1, r.stdout[-3000:]
    assert "introduced by the patch: 1\n" in r.stdout
    summary = json.loads((out / "validate.json").read_text())
    (row,) = summary["introduced"]
    assert row["test"].startswith("tests/nic/test_integrity.py::test_ping_v4_v6")
    assert row["pair"] == "e1000e-viommu/ktest_nic" and re.search(TITLE, row["message"])
    assert summary["counts"]["fixed"] == 0
    assert (git(repo, "status", "--porcelain"), git(repo, "rev-parse", "HEAD")) == before
    # the other way round, the patch fixes it
    r = ktest("validate", "--driver-tree", str(repo / "ktest_nic"), "--base", "HEAD",
              "--patch", "HEAD~1", *TEST, "--out", str(short_tmp / "fix"))
    assert r.returncode == 0 and "fixed by the patch: 1\n" in r.stdout, r.stdout[-3000:]


def test_bisect_a_ktest_nic_history(artifacts, short_tmp: Path) -> None:
    repo = short_tmp / "src"
    shas = driver_history(repo, ["tidy", "bug", "tidy more", "tidy again"])
    before = git(repo, "status", "--porcelain"), git(repo, "rev-parse", "HEAD")
    out = short_tmp / "bisect"
    r = ktest("bisect", "--driver-tree", str(repo / "ktest_nic"), "--good", shas[0],
              "--bad", "main", *TEST, "--out", str(out))
    assert r.returncode == 0, r.stdout[-3000:]
    assert f"first bad commit: {shas[2]} (2: bug)" in r.stdout
    summary = json.loads((out / "bisect.json").read_text())
    assert summary["first_bad"] == shas[2] and re.search(TITLE, summary["signature"]["text"])
    verdicts = {s["commit"]: s["verdict"] for s in summary["steps"]}
    assert verdicts[shas[4]] == "bad" and verdicts[shas[0]] == "good"
    assert all(v == ("bad" if shas.index(c) >= 2 else "good") for c, v in verdicts.items())
    assert (git(repo, "status", "--porcelain"), git(repo, "rev-parse", "HEAD")) == before
