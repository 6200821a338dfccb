"""Shards and test selection, on the real plans' collected tests (`pytest
--collect-only` with the plugin's --ktest-pair needs no guest)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from orchestrator import cli
from orchestrator.runs import plan as plan_mod
from orchestrator.runs import select
from orchestrator.runs.select import Shard


@pytest.fixture(scope="module")
def default_tests() -> select.Selection:
    return select.collect(plan_mod.load_plan("default"))


def flat(sel: select.Selection) -> list[tuple[str, str]]:
    return [(lab, t) for lab, ids in sel.items() for t in ids]


def test_collection_groups_every_test_by_pair(default_tests: select.Selection) -> None:
    plan = plan_mod.load_plan("default")
    assert list(default_tests) == [p.label for p in plan.pairs]
    assert all(len(ids) > 10 for ids in default_tests.values())
    for label, ids in default_tests.items():
        assert all(f"[{label}" in t for t in ids), label
    # e1000e/e1000e and e1000e-viommu/e1000e do not steal each other's tests
    assert not set(default_tests["e1000e/e1000e"]) & set(default_tests["e1000e-viommu/e1000e"])


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 11, 40])
def test_shards_hold_exactly_the_plan(default_tests: select.Selection, n: int) -> None:
    shards = [select.shard(default_tests, Shard(k, n)) for k in range(1, n + 1)]
    union = [x for s in shards for x in flat(s)]
    assert sorted(union) == sorted(flat(default_tests))  # every test once, none twice
    pairs = len(default_tests)
    for s in shards:
        booted = [lab for lab, ids in s.items() if ids]
        # as few guests per shard as the split allows
        assert len(booted) <= -(-pairs // n), (n, booted)
        if n >= pairs:
            assert len(booted) == 1


def test_shards_are_balanced(default_tests: select.Selection) -> None:
    sizes = [select.total(select.shard(default_tests, Shard(k, 2))) for k in (1, 2)]
    assert abs(sizes[0] - sizes[1]) <= max(len(v) for v in default_tests.values())


def test_a_pair_split_over_shards_keeps_a_test_in_its_shard() -> None:
    """Within a pair, a test's shard depends on the test alone: adding tests
    does not move the others."""
    ids = [f"tests/nic/t.py::test_{i}[e1000e/e1000e]" for i in range(40)]
    before = {"e1000e/e1000e": ids}
    after = {"e1000e/e1000e": ids + [f"tests/nic/t.py::test_new{i}[e1000e/e1000e]"
                                     for i in range(5)]}
    for k in (1, 2, 3):
        old = set(select.shard(before, Shard(k, 3))["e1000e/e1000e"])
        new = set(select.shard(after, Shard(k, 3))["e1000e/e1000e"])
        assert old <= new
    sizes = [len(select.shard(before, Shard(k, 3))["e1000e/e1000e"]) for k in (1, 2, 3)]
    assert sum(sizes) == 40 and min(sizes) >= 5


def test_shares_follow_test_counts() -> None:
    sel = {"a/x": [f"t{i}[a/x]" for i in range(30)], "b/y": [f"t{i}[b/y]" for i in range(10)],
           "c/z": []}
    used = [[lab for lab, ids in select.shard(sel, Shard(k, 4)).items() if ids]
            for k in range(1, 5)]
    assert sorted(map(tuple, used)) == [("a/x",), ("a/x",), ("a/x",), ("b/y",)]
    assert select.shard({"c/z": []}, Shard(1, 2)) == {"c/z": []}


@pytest.mark.parametrize("text", ["0/2", "3/2", "2", "a/b", "1/0"])
def test_bad_shard(text: str) -> None:
    with pytest.raises(select.SelectError, match="expected K/N"):
        Shard.parse(text)


def test_by_ids(default_tests: select.Selection) -> None:
    one = default_tests["virtio-net/virtio_net"][3]
    got = select.by_ids(default_tests, [one])
    assert flat(got) == [("virtio-net/virtio_net", one)]
    with pytest.raises(select.SelectError, match="not a test of this plan"):
        select.by_ids(default_tests, [one.replace("virtio-net/virtio_net", "nope/nope")])


def dry(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    assert cli.main(["run", "--dry-run", "--out", "/tmp/ktest-dry", *args]) == 0
    return capsys.readouterr().out.splitlines()


def ids_in(lines: Sequence[str]) -> set[str]:
    """The test ids a dry run lists under each pair's command line."""
    return {ln.split()[1] for ln in lines if ln.startswith("#   ")}


def commands(lines: Sequence[str]) -> list[str]:
    return [ln for ln in lines if not ln.startswith("#")]


def test_cli_shards_cover_the_plan(capsys: pytest.CaptureFixture[str],
                                   default_tests: select.Selection) -> None:
    halves = [dry(capsys, "--shard", f"{k}/2") for k in (1, 2)]
    assert ids_in(halves[0]) | ids_in(halves[1]) == {t for _, t in flat(default_tests)}
    assert not ids_in(halves[0]) & ids_in(halves[1])
    # one pytest per pair, and a pair is in one half only
    assert len(commands(halves[0])) + len(commands(halves[1])) == len(default_tests)


def test_cli_test_option_runs_one_test(capsys: pytest.CaptureFixture[str]) -> None:
    one = "tests/nic/test_mtu.py::test_jumbo_9000[e1000e/ktest_nic]"
    lines = dry(capsys, "-m", "e1000e", "-d", "ktest_nic", "--test", one, "--reruns", "2")
    assert len(commands(lines)) == 1 and ids_in(lines) == {one}
    assert "--ktest-reruns 2" in lines[0] and "--ktest-tests /tmp/ktest-dry/tests-" in lines[0]


def test_cli_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--list", "--plan", "quick", "-k", "mtu"]) == 0
    out = capsys.readouterr().out.splitlines()
    listed: dict[str, list[str]] = {}
    for ln in out:
        if ln.startswith("  "):
            listed[list(listed)[-1]].append(ln.strip())
        else:
            label, count = ln.split(": ")
            listed[label] = []
            assert count.endswith(" tests")
    assert list(listed) == ["e1000e/ktest_nic", "e1000e/e1000e", "virtio-net/virtio_net"]
    for label, ids in listed.items():
        assert f"{label}: {len(ids)} tests" in out and ids
        assert all("mtu" in t.lower() and label in t for t in ids)


@pytest.mark.parametrize("args,needle", [
    (["--shard", "3/2"], "expected K/N"),
    (["--test", "tests/nic/test_mtu.py::test_nope[e1000e/ktest_nic]"], "not found"),
    (["--test", "tests/nic/test_mtu.py::test_jumbo_9000[igb/igb]", "--plan", "quick"],
     "not a test of this plan"),
])
def test_cli_bad_selection_is_one_line(capsys: pytest.CaptureFixture[str], args: list[str],
                                       needle: str) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--dry-run", *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
