"""bench/plan.py's bookkeeping: how guests started, the table over sittings."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(REPO / "bench"))  # as when the script runs
    try:
        spec = importlib.util.spec_from_file_location("bench_plan", REPO / "bench" / "plan.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(REPO / "bench"))


def _guest(out: Path, name: str, *lines: str) -> None:
    (out / name).mkdir(parents=True)
    (out / name / "qemu-argv.txt").write_text("qemu-system-x86_64\n")
    if lines:
        (out / name / "console.log").write_text("".join(f"{ln}\n" for ln in lines))


def test_how_guests_started(bench: ModuleType, tmp_path: Path) -> None:
    _guest(tmp_path, "e1000e_ktest_nic-m1",
           "05:00:00.1 ktest: restoring snapshot abc (saved ...)", "05:00:04.0 ktest: snapshot "
           "loaded in 1.6s, SSH ready 4.2s after QEMU start")
    _guest(tmp_path, "e1000e_ktest_nic-m2", "05:01:00.0 [    0.000000] Linux version 6.12",
           "05:01:20.0 ktest: booted cold, SSH ready 20.5s after QEMU start",
           "05:01:24.0 ktest: saved this booted guest as snapshot abc (570 MiB in 4.1s)",
           "05:01:25.0 ktest: test begin t (booted cold, SSH ready 99s after QEMU start)")
    _guest(tmp_path, "e1000e_ktest_nic-m3", "05:02:00.0 [    0.000000] Linux version 6.12",
           "05:02:21.0 ktest: booted cold, SSH ready 21.0s after QEMU start")
    _guest(tmp_path, "e1000e_ktest_nic-m4")  # QEMU ended before its console was read
    (tmp_path / "pcap").mkdir()
    (tmp_path / "e1000e_ktest_nic-m5").mkdir()  # no QEMU started in it
    assert bench.guests(tmp_path) == {"restored": 1, "cold": 3, "saved": 1,
                                      "start_s": 4.2 + 20.5 + 4.1 + 21.0}


def _side(seconds: float, restored: int, cold: int, saved: int = 0,
          code: int = 0) -> dict[str, Any]:
    return {"seconds": seconds, "exit": code, "out": "/runs/x",
            "guests": {"restored": restored, "cold": cold, "saved": saved,
                       "start_s": 20.0 * cold + 3.0 * restored},
            "outcomes": {"passed": 3}}


def test_table_adds_up_the_pairs_measured(bench: ModuleType) -> None:
    data = {"pairs": {
        "e1000e:ktest_nic": {"before": _side(600, 0, 3), "after": _side(540, 3, 0),
                             "outcomes_differ": [], "commit": "abc", "host": "h"},
        "igb:igb": {"before": _side(1200, 1, 5), "after": _side(1080, 5, 1, saved=1, code=130),
                    "outcomes_differ": [{"test": "t", "before": "passed", "after": "failed: x"}],
                    "commit": "def", "host": "h"},
    }}
    text = bench.table(data, ["e1000e:ktest_nic", "virtio-net:virtio_net", "igb:igb"])
    assert ("| e1000e:ktest_nic | 10.0 min | 9.0 min | 0.900 | 3 cold: 60 s | 3 restored, "
            "0 cold: 9 s | 0 |") in text
    assert "| **total, 2 of 3 pairs** | **30.0 min** | **27.0 min** | **0.900** | 163 s | 44 s |" \
        in text
    assert "before - after: 3.0 min, of which the guests' starts (QEMU start to SSH ready, " \
        "snapshot saves): 2.0 min" in text
    assert "not measured yet: virtio-net:virtio_net" in text
    assert "igb:igb: the after run saved its snapshot" in text
    assert "igb:igb: the before run restored 1 guests: --cold did not take" in text
    assert "measured at more than one commit: abc; def" in text and "one host" not in text
    assert "igb:igb: the after run ended with exit 130" in text
    assert "igb:igb: outcome differs: t\n  before: passed\n  after: failed: x" in text


def _run(out: Path, seconds: float, outcomes: list[str], *consoles: str) -> None:
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"seconds": seconds}))
    (out / "results.jsonl").write_text("".join(
        json.dumps({"test": f"t{i}", "outcome": o, "pair": "e1000e/ktest_nic"}) + "\n"
        for i, o in enumerate(outcomes)))
    for i, line in enumerate(consoles):
        _guest(out, f"e1000e_ktest_nic-m{i + 1}", line)


def test_rescan_reads_the_kept_runs_again(bench: ModuleType, tmp_path: Path) -> None:
    cold = "05:01:20.0 ktest: booted cold, SSH ready 20.0s after QEMU start"
    warm = "05:00:00.1 ktest: restoring snapshot abc (saved ...)"
    _run(tmp_path / "b", 600.0, ["passed", "passed"], cold, cold)
    _run(tmp_path / "a", 540.0, ["passed", "failed"], warm)
    entry = {"pair": "e1000e:ktest_nic", "outcomes_differ": [],
             "before": {"seconds": 615.2, "exit": 0, "out": str(tmp_path / "b")},
             "after": {"seconds": 555.0, "exit": 1, "out": str(tmp_path / "a")}}
    assert bench.rescan(entry)
    assert entry["before"]["seconds"] == 600.0 and entry["before"]["process_s"] == 615.2
    assert entry["before"]["guests"] == {"restored": 0, "cold": 2, "saved": 0, "start_s": 40.0}
    assert entry["after"]["guests"]["restored"] == 1 and entry["after"]["exit"] == 1
    assert entry["after"]["outcomes"] == {"passed": 1, "failed": 1}
    assert [d["test"] for d in entry["outcomes_differ"]] == ["t1"]
    assert "records" not in entry["before"]
    (tmp_path / "a" / "run.json").unlink()
    assert not bench.rescan(entry)


def test_a_file_that_is_not_its_results_is_refused(bench: ModuleType, tmp_path: Path) -> None:
    f = tmp_path / "r.json"
    assert bench.load(f) == {"pairs": {}}
    f.write_text('{"cold": 1}')
    with pytest.raises(SystemExit, match="not a results file"):
        bench.load(f)


def _part(spec: str, part: str, before: float, after: float, commit: str = "abc",
          differ: list[Any] | None = None) -> dict[str, Any]:
    return {"pair": spec, "part": part, "before": _side(before, 0, 1),
            "after": _side(after, 1, 0), "outcomes_differ": differ or [], "commit": commit,
            "host": "h"}


def test_a_pair_measured_in_parts_counts_once_all_are_in(bench: ModuleType) -> None:
    plan = ["e1000e:ktest_nic", "igb:igb"]
    data = {"pairs": {"e1000e:ktest_nic": _part("e1000e:ktest_nic", "", 600, 540)}}
    data["pairs"][bench.key("igb:igb", "1/3")] = _part("igb:igb", "1/3", 1200, 1140)
    data["pairs"][bench.key("igb:igb", "3/3")] = _part("igb:igb", "3/3", 600, 660)
    data["pairs"][bench.key("igb:igb", "2/2")] = _part("igb:igb", "2/2", 900, 900)
    text = bench.table(data, plan)
    assert "not measured yet: igb:igb" in text
    assert "igb:igb: measured so far in parts 2/2, 1/3, 3/3;" in text
    assert "**total, 1 of 2 pairs** | **10.0 min** | **9.0 min**" in text
    data["pairs"][bench.key("igb:igb", "2/3")] = _part(
        "igb:igb", "2/3", 1800, 1800, commit="def",
        differ=[{"test": "t", "before": "passed", "after": "failed: x"}])
    text = bench.table(data, plan)
    assert ("| igb:igb (in 3 parts) | 60.0 min | 60.0 min | 1.000 | 3 cold: 60 s | "
            "3 restored, 0 cold: 9 s | 1 |") in text
    assert "**total, 2 of 2 pairs** | **70.0 min** | **69.0 min**" in text
    assert "not measured yet" not in text and "so far" not in text
    assert "measured at more than one commit: abc; def" in text
    assert "igb:igb: outcome differs: t" in text
    whole = bench.whole(data, "igb:igb")
    assert whole["before"]["outcomes"] == {"passed": 9} and whole["after"]["exit"] == 0
    data["pairs"]["igb:igb part 3/3"]["after"]["exit"] = 130
    assert bench.whole(data, "igb:igb")["after"]["exit"] == 130
    data["pairs"]["igb:igb"] = _part("igb:igb", "", 3000, 2900)  # measured whole: it wins
    assert "| igb:igb | 50.0 min | 48.3 min |" in bench.table(data, plan)
