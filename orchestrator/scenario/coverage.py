"""Line and branch coverage of the driver under test (``--coverage``).

The module is built with GCOV_PROFILE=y (builds/module.py keeps its build
directory); the guest kernel has CONFIG_GCOV_KERNEL, which keeps the counts
of a module across unloads (gcov_persist) and shows them as .gcda files under
/sys/kernel/debug/gcov/<the build directory's path>/. Before a guest goes
away, :func:`collect` copies those files next to the .gcno files and turns
them into an lcov tracefile; :func:`report` adds up a run's tracefiles into
coverage.info, an HTML view (genhtml) and per-file figures.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GCOV_ROOT = "/sys/kernel/debug/gcov"
LCOV_RC = ("--rc", "lcov_branch_coverage=1")


class CoverageError(Exception):
    pass


def _gcov_tool() -> str:
    out = subprocess.run(["gcc", "-dumpversion"], capture_output=True, text=True, check=False)
    major = out.stdout.strip().split(".")[0]
    tool = f"gcov-{major}"
    return tool if shutil.which(tool) else "gcov"


def collect(guest: Any, gcov_dir: Path, out: Path, label: str) -> Path | None:
    """Copy the guest's gcov data for the module built in `gcov_dir` and
    write `out/<label>.info`; None when the guest has none (never loaded)."""
    remote = f"{GCOV_ROOT}{gcov_dir}"
    r = guest.cmd(f"cd {remote} 2>/dev/null && for f in *.gcda; do "
                  f"[ -e \"$f\" ] && echo \"$f $(base64 -w0 < $f)\"; done", check=False,
                  timeout=120)
    lines = [ln.split(" ", 1) for ln in r.stdout.splitlines() if " " in ln]
    if not lines:
        return None
    out.mkdir(parents=True, exist_ok=True)
    info = out / f"{label}.info"
    with tempfile.TemporaryDirectory(prefix="ktest-gcov-") as tmp:
        work = Path(tmp) / gcov_dir.name
        shutil.copytree(gcov_dir, work, ignore=shutil.ignore_patterns("*.gcda"))
        for name, data in lines:
            (work / name).write_bytes(base64.b64decode(data))
        res = subprocess.run(
            ["lcov", "--capture", "--directory", str(work), "--base-directory", str(gcov_dir),
             "--gcov-tool", _gcov_tool(), "--output-file", str(info), "--quiet", *LCOV_RC],
            capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise CoverageError(f"lcov --capture failed: {res.stderr.strip()[-300:]}")
    # the tracefile names the temporary copy; point it at the kept sources
    text = info.read_text().replace(str(work), str(gcov_dir))
    info.write_text(text)
    return info


@dataclass(frozen=True)
class FileCoverage:
    path: str
    lines: tuple[int, int]  # hit, found
    branches: tuple[int, int]
    functions: tuple[int, int]


def parse_tracefile(text: str) -> list[FileCoverage]:
    """Per source file: (hit, found) of lines, branches and functions."""
    out = []
    current: dict[str, Any] = {}
    for line in text.splitlines():
        if line.startswith("SF:"):
            current = {"path": line[3:], "LH": 0, "LF": 0, "BRH": 0, "BRF": 0, "FNH": 0,
                       "FNF": 0}
        elif m := re.match(r"^(LH|LF|BRH|BRF|FNH|FNF):(\d+)$", line):
            current[m.group(1)] = int(m.group(2))
        elif line == "end_of_record" and current:
            out.append(FileCoverage(current["path"], (current["LH"], current["LF"]),
                                    (current["BRH"], current["BRF"]),
                                    (current["FNH"], current["FNF"])))
            current = {}
    return out


def uncovered_functions(text: str) -> dict[str, list[str]]:
    """Per source file, the functions no test entered. lcov 1.x writes
    "FNDA:hits,name" (Debian 12), lcov 2.x "FNA:index,hits,name" (Debian 13)."""
    out: dict[str, list[str]] = {}
    path = ""
    for line in text.splitlines():
        if line.startswith("SF:"):
            path = line[3:]
        elif line.startswith("FNDA:0,"):
            out.setdefault(path, []).append(line.split(",", 1)[1])
        elif (m := re.match(r"^FNA:\d+,0,(.+)$", line)):
            out.setdefault(path, []).append(m.group(1))
    return out


def tracefiles_under(dirs: list[Path]) -> list[Path]:
    """The per-guest tracefiles of run directories, zoo directories (one
    run directory per bug) or any tree of them."""
    return sorted({t for d in dirs for t in d.glob("**/coverage/*.info")})


def report(tracefiles: list[Path], out: Path) -> dict[str, Any]:
    """Add up tracefiles into out/coverage.info, out/coverage-html/ and
    out/coverage.json (per file: lines and branches hit/found)."""
    files = [t for t in tracefiles if t.is_file() and t.stat().st_size]
    if not files:
        raise CoverageError("no coverage data was collected")
    out.mkdir(parents=True, exist_ok=True)
    total = out / "coverage.info"
    args = ["lcov", "--quiet", *LCOV_RC, "--output-file", str(total)]
    for t in files:
        args += ["--add-tracefile", str(t)]
    res = subprocess.run(args, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise CoverageError(f"lcov --add-tracefile failed: {res.stderr.strip()[-300:]}")
    html = out / "coverage-html"
    res = subprocess.run(["genhtml", "--quiet", "--branch-coverage", "--output-directory",
                          str(html), str(total)], capture_output=True, text=True, check=False)
    if res.returncode != 0:  # coverage.info stays: it is already written
        err = res.stderr.strip().splitlines()
        raise CoverageError(f"genhtml failed: {(err or ['no message'])[0][:300]} "
                            f"(the added-up data is in {total})")
    text = total.read_text()
    per_file = parse_tracefile(text)

    def pct(hit: int, found: int) -> float:
        return round(100.0 * hit / found, 1) if found else 0.0

    summary = {
        "files": [{"file": Path(f.path).name, "lines": list(f.lines),
                   "line_pct": pct(*f.lines), "branches": list(f.branches),
                   "branch_pct": pct(*f.branches)} for f in per_file],
        "lines_pct": pct(sum(f.lines[0] for f in per_file), sum(f.lines[1] for f in per_file)),
        "branches_pct": pct(sum(f.branches[0] for f in per_file),
                            sum(f.branches[1] for f in per_file)),
        "uncovered_functions": {Path(k).name: v for k, v in uncovered_functions(text).items()},
        "html": str(html / "index.html"),
        "tracefiles": len(files),
    }
    (out / "coverage.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
