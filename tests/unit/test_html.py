"""report.html of a fake run directory, parsed back: the matrix, one
section per failure with its report, console segment, timeline, pcap and
repro command, the baseline comparison, the manifest; everything escaped
and nothing fetched from anywhere."""

from __future__ import annotations

import json
import shlex
from html.parser import HTMLParser
from pathlib import Path

from fakerun import FakeRun, sample_run

from orchestrator.runs import html
from orchestrator.runs.rundir import load_run

E, V = "e1000e/ktest_nic", "virtio-net/virtio_net"


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.content: list[Node | str] = []  # elements and text, in document order

    @property
    def children(self) -> list[Node]:
        return [c for c in self.content if isinstance(c, Node)]

    def all_text(self) -> str:
        return "".join(c if isinstance(c, str) else c.all_text() for c in self.content)

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        found = []
        for c in self.children:
            if c.tag == tag and all(a in c.attrs.get(k, "").split() if k == "class"
                                    else c.attrs.get(k) == a for k, a in attrs.items()):
                found.append(c)
            found += c.find_all(tag, **attrs)
        return found

    def find(self, tag: str, **attrs: str) -> Node:
        got = self.find_all(tag, **attrs)
        assert got, f"no <{tag} {attrs}>"
        return got[0]


VOID = {"meta", "br", "hr", "img", "link", "input"}


class Tree(HTMLParser):
    """A strict little DOM: every element closed in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.content.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_endtag(self, tag: str) -> None:
        assert self.cur.tag == tag, f"</{tag}> closes <{self.cur.tag}>"
        assert self.cur.parent is not None
        self.cur = self.cur.parent

    def handle_data(self, data: str) -> None:
        self.cur.content.append(data)


def parse(text: str) -> Node:
    t = Tree()
    t.feed(text)
    t.close()
    assert t.cur is t.root, f"<{t.cur.tag}> never closed"
    return t.root


def render(path: Path, baseline: Path | None = None) -> tuple[str, Node]:
    out = html.write_report(path, baseline)
    text = out.read_text()
    return text, parse(text)


def test_matrix(tmp_path: Path) -> None:
    run = sample_run(tmp_path / "run")
    run.write()
    _, doc = render(run.path)
    table = doc.find("table", **{"class": "matrix"})
    heads = [th.all_text() for th in table.find("thead").find_all("th")]
    assert heads == ["test", E, V]
    rows = {tr.find("th").all_text(): [td.all_text() for td in tr.find_all("td")]
            for tr in table.find("tbody").find_all("tr")}
    assert rows["test_ping_v4_v6"] == ["PASS", "PASS"]
    assert rows["test_rx_integrity[v4-60]"] == ["FAIL", "PASS"]
    assert rows["test_jumbo_9000"] == ["ERROR", "SKIP"]
    assert rows["test_aer_uncorrectable"] == ["-", "KNOWN"]
    assert rows["test_admin_down_up_under_traffic"] == ["FLAKY", "-"]
    assert rows["test_link_down_up_under_traffic"] == ["XFAIL", "-"]
    fail = table.find("td", **{"class": "FAIL"})
    assert fail.find("a").attrs["href"] == "#f1"
    counts = doc.find("p", id="counts").all_text()
    assert "FAIL 1" in counts and "KNOWN 1" in counts and "PASS 3" in counts


def test_failure_sections(tmp_path: Path) -> None:
    run = sample_run(tmp_path / "run")
    run.write()
    _, doc = render(run.path)
    sections = doc.find("section", id="failures").find_all("section", **{"class": "failure"})
    kinds = [s.attrs["class"].split()[1] for s in sections]
    assert kinds == ["FAIL", "ERROR", "KNOWN", "FLAKY"]
    kasan = doc.find("section", id="f1")
    assert kasan.find("p", **{"class": "title"}).all_text() == \
        "KASAN: slab-use-after-free Read in ktnic_poll"
    report = kasan.find("details").find("pre").all_text()
    assert report.startswith("BUG: KASAN: slab-use-after-free in ktnic_poll")
    console = kasan.find("details", **{"class": "console"}).find("pre").all_text()
    # exactly the bytes between the markers: no marker, no other test
    assert console.startswith("[") and "Read of size 8 at addr ffff888004a1b2c0" in console
    assert "ktest: test begin" not in console and "test_ping" not in console
    assert "<script>alert(1)</script> & red" in console  # escaped, escapes dropped
    times = [tr.find_all("td") for tr in kasan.find("table", **{"class": "timeline"})
             .find_all("tr")[1:]]
    assert [(t[1].all_text(), t[2].all_text().split()[2]) for t in times] == [
        ("guest", "begin"), ("guest", "end")]
    pcap = kasan.find("p", **{"class": "pcap"}).find("a").attrs["href"]
    assert pcap.startswith("pcap/") and (run.path / pcap).exists()
    repro = shlex.split(kasan.find("pre", **{"class": "repro"}).all_text())
    assert repro == ["ktest", "run", "-m", "e1000e", "-d", "ktest_nic", "--test",
                     f"tests/nic/test_integrity.py::test_rx_integrity[{E}-v4-60]",
                     "--kernel", "6.12", "--accel", "tcg"]


def test_known_and_flaky_sections(tmp_path: Path) -> None:
    run = sample_run(tmp_path / "run")
    run.write()
    # an action logged in the run directory, during the test
    g = run.guests[V]
    aer_begin = next(ln for ln in g.log if "begin tests/nic/test_faults.py" in ln)[:15]
    (run.path / "actions.log").write_text(f"{aer_begin[:-1]}9 device_del rp2 {{}}\n"
                                          "23:59:59.000000 outside any test\n")
    _, doc = render(run.path)
    aer = doc.find("section", **{"class": "KNOWN"})
    assert "virtio_net has no PCI error handlers" in aer.find("p", **{"class": "known"})\
        .all_text()
    assert aer.find("p", **{"class": "known"}).find("a").attrs["href"].startswith("https://")
    events = [[td.all_text() for td in tr.find_all("td")]
              for tr in aer.find("table", **{"class": "timeline"}).find_all("tr")[1:]]
    # the fault marker and the actions between the test's markers, on the host clock
    assert [e[1] for e in events] == ["guest", "host", "guest", "host", "guest"]
    assert [e[2] for e in events[1:4]] == ["device_del rp2 {}", "ktest: fault: aer_fatal rp2",
                                           "pcie_aer_inject_error rp2 POISON_TLP OK id: rp2"]
    assert [e[0] for e in events] == sorted(e[0] for e in events)
    flaky = doc.find("section", **{"class": "FLAKY"})
    tries = [[td.all_text() for td in tr.find_all("td")]
             for tr in flaky.find("table").find("tbody").find_all("tr")]
    assert [t[1] for t in tries] == ["failed", "passed"]
    consoles = flaky.find_all("details", **{"class": "console"})
    assert len(consoles) == 2 and "try 1: cycle 2 of 3: Rx stalled" in consoles[0].all_text()


def test_manifest_and_no_outside_resources(tmp_path: Path) -> None:
    run = sample_run(tmp_path / "run")
    run.write()
    text, doc = render(run.path)
    manifest = json.loads(doc.find("section", id="manifest").find("pre").all_text())
    assert manifest == json.loads((run.path / "run.json").read_text())
    assert not doc.find_all("script") and not doc.find_all("link") and not doc.find_all("img")
    assert "http://" not in text.split("<body>")[0] and "url(" not in text
    assert "<script>alert" not in text


def test_against_a_baseline(tmp_path: Path) -> None:
    base = FakeRun(tmp_path / "base")
    base.test(f"tests/nic/test_integrity.py::test_rx_integrity[{E}-v4-60]", E, "passed")
    base.test(f"tests/nic/test_mtu.py::test_jumbo_9000[{E}]", E, "error", message="no carrier")
    base.write()
    run = sample_run(tmp_path / "run")
    run.write()
    _, doc = render(run.path, base.path)
    sec = doc.find("section", id="compare")
    new = sec.find("h3", id="compare-new")
    assert new.all_text() == "new failures (1)"
    assert sec.find("h3", id="compare-still_failing").all_text() == "still failing (1)"
    cells = [td.all_text() for td in sec.find("table").find("tbody").find("tr").find_all("td")]
    assert cells[:4] == [E, "tests/nic/test_integrity.py::test_rx_integrity[v4-60]", "PASS",
                         "FAIL"]


def test_moved_run_and_missing_console(tmp_path: Path) -> None:
    run = sample_run(tmp_path / "run")
    run.write()
    moved = tmp_path / "downloaded"
    run.path.rename(moved)
    _, doc = render(moved)  # spans name the old place; the copy inside is found
    assert "Read of size 8" in doc.find("section", id="f1").all_text()
    for raw in moved.glob("*/console.raw"):
        raw.unlink()
    _, doc = render(moved)
    assert "console.raw: No such file or directory" in doc.find("section", id="f1").all_text()


def test_empty_run(tmp_path: Path) -> None:
    run = FakeRun(tmp_path / "run")
    run.write()
    _, doc = render(run.path)
    assert "No test results." in doc.find("section", id="results").all_text()
    assert load_run(run.path).records == []


def test_repro_for_code_and_for_people(tmp_path: Path) -> None:
    """What `ktest repro` will use: the plan and options that run one
    record's test again, with the run's choices."""
    from orchestrator.runs import execute, repro
    from orchestrator.runs import plan as plan_mod

    run = sample_run(tmp_path / "run")
    run.write()
    loaded = load_run(run.path)
    rec = next(r for r in loaded.records if r.outcome == "failed" and r.pair == E)
    again = repro.rerun(loaded, rec)
    plan = again.plan(plan_mod.load_plan("default"))
    assert [p.label for p in plan.pairs] == [E]
    opts = again.options(plan, reruns=2)
    assert opts.tests == {E: [rec.test]} and opts.reruns == 2
    assert opts.extra == ("--ktest-kernel", "6.12", "--ktest-accel", "tcg")
    argv = execute.pytest_argv(plan, plan.pairs[0], tmp_path / "again", None, opts.extra,
                               opts.tests[E] if opts.tests else None, opts.reruns)
    assert "--ktest-tests" in argv and "--ktest-pair" in argv
    assert repro.command(loaded, rec) == shlex.join(again.argv())
