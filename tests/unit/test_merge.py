"""`ktest merge`: two shards of a fake run become one run that equals the
unsharded one: records, junit, run.json, known issues, consoles, pcaps,
report.html, and compare works on it."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fakerun import FakeRun, records_json, sample_run

from orchestrator import cli
from orchestrator.runs import compare, html, merge, select
from orchestrator.runs.rundir import load_run
from orchestrator.runs.select import Shard


def shards_of(full: FakeRun, tmp_path: Path, n: int = 2) -> list[FakeRun]:
    """The same tests as `full`, split as `ktest run --shard K/n` would."""
    sel: select.Selection = {}
    for r in full.records:
        sel.setdefault(r.pair or "", []).append(r.test)
    parts = []
    for k in range(1, n + 1):
        mine = {t for ids in select.shard(sel, Shard(k, n)).values() for t in ids}
        part = FakeRun(tmp_path / f"shard{k}", shard=f"{k}/{n}")
        for r in full.records:
            if r.test in mine:
                part.test(r.test, r.pair or "", r.outcome, message=r.message,
                          reports=r.reports, pcap=r.test in full.pcaps,
                          console=f"console of {r.test}".encode(),
                          tries=[(a.outcome, a.message) for a in r.attempts[:-1]] or None)
        part.write()
        parts.append(part)
    return parts


def key(rec: dict) -> tuple:  # type: ignore[type-arg]
    return (rec["test"], rec["pair"], rec["outcome"], rec["message"],
            [a["outcome"] for a in rec["attempts"]])


def test_merge_equals_the_union(tmp_path: Path) -> None:
    full = sample_run(tmp_path / "full")
    full.write()
    a, b = shards_of(full, tmp_path)
    assert a.records and b.records  # two pairs: one each
    out = tmp_path / "merged"
    m = merge.merge([a.path, b.path], out)
    assert not m.warnings
    merged = records_json(out)
    assert sorted(map(key, merged)) == sorted(map(key, records_json(full.path)))
    # the known issue each shard's run gave is kept in the merged records
    aer = next(r for r in merged if "test_aer" in r["test"])
    assert aer["known"]["reason"].startswith("virtio_net has no PCI error handlers")
    # consoles and pcaps were copied in; the records point at the copies
    for r in load_run(out).records:
        for span in r.console:
            assert Path(span.run_dir).parent == out.resolve()
            raw = (Path(span.run_dir) / "console.raw").read_bytes()[span.start:span.end]
            assert f"console of {r.test}".encode() in raw
    assert sorted(p.name for p in (out / "pcap").iterdir()) == \
        sorted(p.name for p in (full.path / "pcap").iterdir())
    # junit, run.json
    suites = ET.parse(out / "junit.xml").getroot()
    assert sum(len(list(s)) for s in suites) == len(full.records)
    manifest = json.loads((out / "run.json").read_text())
    assert sorted(manifest["plan"]["pairs"]) == sorted(full.pairs)
    assert [x["shard"] for x in manifest["merged"]] == ["1/2", "2/2"] and "shard" not in manifest
    assert (out / "report.html").exists() and m.report == out / "report.html"
    # the shards are untouched
    assert sorted(map(key, records_json(a.path) + records_json(b.path))) == \
        sorted(map(key, merged))


def test_compare_works_on_a_merged_run(tmp_path: Path) -> None:
    full = sample_run(tmp_path / "full")
    full.write()
    a, b = shards_of(full, tmp_path)
    out = tmp_path / "merged"
    merge.merge([a.path, b.path], out)
    c = compare.compare(load_run(full.path), load_run(out))
    assert not c.anything_new and not c.groups["fixed"] and not c.groups["not_run"]
    assert len(c.groups["still_failing"]) == 2 and len(c.groups["known"]) == 1
    text = html.render(load_run(out))
    assert "console of tests/nic/test_integrity.py::test_rx_integrity" in text


def test_same_guest_names_in_two_shards(tmp_path: Path) -> None:
    """A pair split over shards boots guests of the same name in each."""
    e = "e1000e/ktest_nic"
    a, b = FakeRun(tmp_path / "a"), FakeRun(tmp_path / "b")
    a.test(f"t.py::test_one[{e}]", e, "failed", message="one", console=b"from shard a")
    b.test(f"t.py::test_two[{e}]", e, "failed", message="two", console=b"from shard b")
    a.write()
    b.write()
    out = tmp_path / "m"
    merge.merge([a.path, b.path], out)
    dirs = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert dirs == ["e1000e_ktest_nic-m1", "s2-e1000e_ktest_nic-m1"]
    run = load_run(out)
    texts = {r.message: html.console_segment(run, r.console[0])[0] for r in run.records}
    assert "from shard a" in texts["one"] and "from shard b" in texts["two"]


def test_merge_warns_of_a_test_in_two_shards_and_of_other_versions(tmp_path: Path) -> None:
    e = "e1000e/ktest_nic"
    a, b = FakeRun(tmp_path / "a"), FakeRun(tmp_path / "b", qemu="9.2.0")
    for run in (a, b):
        run.test(f"t.py::test_one[{e}]", e, "passed")
        run.write()
    m = merge.merge([a.path, b.path], tmp_path / "m")
    assert any("is in both" in w for w in m.warnings)
    assert any("different qemu versions: 10.0.2, 9.2.0" in w for w in m.warnings)


@pytest.mark.parametrize("case", ["not-empty", "is-input", "missing-input"])
def test_merge_refuses_with_one_line_and_loses_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    a = sample_run(tmp_path / "a")
    a.write()
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    args = {"not-empty": [str(a.path), "--out", str(out)],
            "is-input": [str(a.path), "--out", str(a.path)],
            "missing-input": [str(a.path), str(tmp_path / "nope"), "--out",
                              str(tmp_path / "new")]}[case]
    before = (a.path / "results.jsonl").read_text()
    with pytest.raises(SystemExit) as e:
        cli.main(["merge", *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ktest: error:"), err
    assert (out / "mine.txt").read_text() == "keep"
    assert (a.path / "results.jsonl").read_text() == before
    assert not (tmp_path / "new").exists()


def test_cli_merge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    full = sample_run(tmp_path / "full")
    full.write()
    a, b = shards_of(full, tmp_path)
    assert cli.main(["merge", str(a.path), str(b.path), "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "test_rx_integrity[v4-60]" in out and "merged 2 runs" in out
    assert cli.main(["compare", str(full.path), str(tmp_path / "m")]) == 0
