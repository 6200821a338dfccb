"""Adding up the driver's coverage of several runs (lcov tracefiles as the
guests wrote them), without a VM; lcov itself is real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator import cli
from orchestrator.scenario import coverage


def tracefile(src: Path, hits: dict[int, int], branches: dict[int, tuple[int, int]]) -> str:
    """A tracefile of `src` (functions f at line 2, g at line 6): line
    counts, and per line a two-way branch's (taken, not taken) counts."""
    lines = [f"SF:{src}", "FN:2,f", "FN:6,g",
             f"FNDA:{hits.get(2, 0)},f", f"FNDA:{hits.get(6, 0)},g", "FNF:2",
             f"FNH:{sum(1 for n in (2, 6) if hits.get(n))}"]
    for line, (taken, not_taken) in branches.items():
        lines += [f"BRDA:{line},0,0,{taken or '-'}", f"BRDA:{line},0,1,{not_taken or '-'}"]
    lines += [f"BRF:{2 * len(branches)}",
              f"BRH:{sum(bool(t) + bool(n) for t, n in branches.values())}"]
    lines += [f"DA:{n},{c}" for n, c in sorted(hits.items())]
    lines += [f"LF:{len(hits)}", f"LH:{sum(1 for c in hits.values() if c)}", "end_of_record"]
    return "\n".join(lines) + "\n"


def guest(run: Path, label: str, text: str) -> None:
    (run / "coverage").mkdir(parents=True, exist_ok=True)
    (run / "coverage" / f"{label}.info").write_text(text)


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "drv" / "ktnic_main.c"
    src.parent.mkdir()
    src.write_text("".join(f"line {n}\n" for n in range(1, 9)))
    # a run reached f and took its branch one way; a zoo (a run directory
    # per bug) reached g, and f's branch the other way
    run, zoo_dir = tmp_path / "run", tmp_path / "zoo"
    guest(run, "e1000e-1", tracefile(src, {2: 5, 3: 5, 6: 0, 7: 0}, {3: (5, 0)}))
    guest(zoo_dir / "bug_a", "e1000e-viommu-1",
          tracefile(src, {2: 1, 3: 1, 6: 2, 7: 0}, {3: (0, 1)}))
    return run, zoo_dir


def test_tracefiles_of_runs_and_zoos_add_up(runs: tuple[Path, Path], tmp_path: Path) -> None:
    run, zoo_dir = runs
    files = coverage.tracefiles_under([run, zoo_dir])
    assert [f.name for f in files] == ["e1000e-1.info", "e1000e-viommu-1.info"]
    alone = coverage.report(coverage.tracefiles_under([run]), tmp_path / "alone")
    assert (alone["lines_pct"], alone["branches_pct"]) == (50.0, 50.0)
    assert alone["uncovered_functions"] == {"ktnic_main.c": ["g"]}
    both = coverage.report(files, tmp_path / "both")
    assert both["files"] == [{"file": "ktnic_main.c", "lines": [3, 4], "line_pct": 75.0,
                              "branches": [2, 2], "branch_pct": 100.0}]
    assert both["uncovered_functions"] == {} and both["tracefiles"] == 2
    assert json.loads((tmp_path / "both" / "coverage.json").read_text()) == both
    assert (tmp_path / "both" / "coverage-html" / "index.html").is_file()


def test_ktest_coverage_command(runs: tuple[Path, Path], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    run, zoo_dir = runs
    out = tmp_path / "total"
    assert cli.main(["coverage", str(run), str(zoo_dir), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "lines 75.0%, branches 100.0%" in text
    assert "ktnic_main.c" in text and "lines  75.0% (3/4)" in text
    assert (out / "coverage.info").is_file()
    # a directory without coverage data: a clear message and a failure
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["coverage", str(empty), "--out", str(tmp_path / "none")]) == 1
    assert "no coverage data was collected" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["coverage", str(tmp_path / "absent"), "--out", str(out)])
    assert "absent: no such directory" in capsys.readouterr().err


@pytest.mark.parametrize("records", [
    ["FN:1,f", "FN:5,g", "FNDA:3,f", "FNDA:0,g"],  # lcov 1.x (Debian 12)
    ["FNL:0,1,2", "FNA:0,3,f", "FNL:1,5,6", "FNA:1,0,g"],  # lcov 2.x (Debian 13)
])
def test_uncovered_functions_in_both_lcov_formats(records: list[str]) -> None:
    text = "\n".join(["TN:", "SF:/src/ktnic_main.c", *records, "FNF:2", "FNH:1",
                      "end_of_record"])
    assert coverage.uncovered_functions(text) == {"/src/ktnic_main.c": ["g"]}


def test_a_genhtml_failure_is_an_error_and_keeps_the_data(runs: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    out = tmp_path / "blocked"
    out.mkdir()
    (out / "coverage-html").write_text("a file where genhtml wants its directory")
    with pytest.raises(coverage.CoverageError, match="genhtml failed"):
        coverage.report(coverage.tracefiles_under([runs[0]]), out)
    assert (out / "coverage.info").stat().st_size
