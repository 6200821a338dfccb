"""report.html in a real browser: headless Chromium loads a sample run's
page from disk (no network), its DOM has the matrix and the failure
sections, and a screenshot stays in the run directory for a person to look
at. Runs with the fast tests when Chromium is installed (scripts/bootstrap
installs it); in CI a missing Chromium is a failure, not a skip."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fakerun import sample_run
from test_html import parse

from orchestrator.runs import html

pytestmark = pytest.mark.browser


def chromium(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [exe, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={profile}", *args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=180,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def test_report_in_headless_chromium(tmp_path: Path, prerequisite: Any) -> None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    prerequisite(exe is not None, "chromium not installed (scripts/bootstrap installs it)")
    assert exe is not None
    run = sample_run(tmp_path / "run")
    run.write()
    page = html.write_report(run.path)
    url = page.resolve().as_uri()
    dom = parse(chromium(exe, tmp_path / "profile", "--dump-dom", url).stdout)
    matrix = dom.find("table", **{"class": "matrix"})
    assert [th.all_text() for th in matrix.find("thead").find_all("th")] == [
        "test", "e1000e/ktest_nic", "virtio-net/virtio_net"]
    assert len(matrix.find("tbody").find_all("tr")) == 6
    failures = dom.find("section", id="failures").find_all("section", **{"class": "failure"})
    assert [s.attrs["id"] for s in failures] == ["f1", "f2", "f3", "f4"]
    first = failures[0]
    assert "KASAN: slab-use-after-free Read in ktnic_poll" in first.find("h3").all_text() + \
        first.find("p", **{"class": "title"}).all_text()
    assert "Read of size 8" in first.find("details", **{"class": "console"}).all_text()
    assert not dom.find_all("script")
    shot = run.path / "report.png"
    chromium(exe, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1400,1000", url)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1400, 1000) and len(png) > 20_000
