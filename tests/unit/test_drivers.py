"""Driver declarations and (profile, driver) pairs, without a VM."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.scenario import drivers, dut
from orchestrator.yamlconf import ConfigError


def test_every_capability_has_a_probe() -> None:
    assert set(drivers.CAPABILITIES) == set(dut.CAPS)


def test_shipped_declarations_load() -> None:
    names = drivers.known()
    assert {"ktest_nic", "e1000e", "virtio_net", "igb", "igbvf"} <= set(names)
    for n in names:
        info = drivers.info_for(n)
        assert info.name == n and info.drives and info.capabilities <= set(drivers.CAPABILITIES)
        assert set(info.faults) <= set(drivers.FAULTS)
    assert drivers.info_for("igbvf").function == "vf"
    assert drivers.info_for("virtio_net").load_first == ("virtio_pci",)
    assert drivers.info_for("virtio_net").expectation("aer_fatal").startswith("fails:")
    igbvf = drivers.info_for("igbvf")
    assert igbvf.expectation("aer_nonfatal").startswith("fails: igbvf asks for a slot reset")
    assert igbvf.fault_reports["aer_nonfatal"] == (
        "NETDEV WATCHDOG: transmit queue timed out in igb",)
    assert igbvf.fault_says["aer_fatal"] == (r"no traffic within \d+s after AER fatal",)
    for name in drivers.known():
        info = drivers.info_for(name)
        assert all(info.expectation(f).startswith("fails:") for f in info.fault_reports)
        assert all(info.expectation(f).startswith("fails:") for f in info.fault_says)
        # every built-in known failure says what it looks like, or it would
        # pass for any failure of its test
        assert all(info.fault_reports.get(f) or info.fault_says.get(f)
                   or drivers.FAILURE_REPORTS.get(f)
                   for f, e in info.faults.items() if e.startswith("fails:")), name


@pytest.mark.parametrize("text,needle", [
    ("drives: [e1000e]\n", ":1: name: missing"),
    ("name: x\ndrives: [rtl8139]\n", ":2: drives: unknown NIC model 'rtl8139'"),
    ("name: x\ncapabilities: [jumbo, warp]\n", ":2: capabilities: unknown capability 'warp'"),
    ("name: x\nfaults:\n  aer_fatal: maybe\n", ":3: faults.aer_fatal: expected 'recovers'"),
    ("name: x\nfaults:\n  meteor: recovers\n", ":3: faults.meteor: unknown fault"),
    ("name: x\nfunction: gpu\n", ":2: function: expected one of pf, vf"),
    ("name: x\nfaults:\n  flr:\n    reports: [x]\n", ":4: faults.flr.fails: missing"),
    ("name: x\nfaults:\n  flr:\n    fails: why\n    titles: [x]\n",
     ":5: faults.flr.titles: unknown key"),
    ("name: x\nfaults:\n  flr:\n    fails: why\n    says: ['no (traffic']\n",
     "faults.flr.says: 'no (traffic' is no regex"),
    ("name: x\nallocates_nothing_in: [mtu, xdp]\n",
     ":2: allocates_nothing_in: unknown operation 'xdp'"),
])
def test_bad_declarations_name_file_line_and_key(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "ktest.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        drivers.load_declaration(p)
    assert needle in str(e.value), str(e.value)


def test_a_users_driver_declaration_beside_its_ko(tmp_path: Path) -> None:
    ko = tmp_path / "mynic.ko"
    ko.write_bytes(b"\x7fELF")
    assert not drivers.info_for(str(ko)).declared  # no YAML: nothing declared
    (tmp_path / "mynic.ktest.yaml").write_text("name: mynic\ndrives: [e1000e]\n"
                                               "capabilities: [jumbo]\n")
    info = drivers.info_for(str(ko))
    assert info.declared and info.capabilities == {"jumbo"}
    assert drivers.Pair("e1000e", str(ko)).label == "e1000e/mynic"


def test_pairs() -> None:
    ok = drivers.check_pair(drivers.Pair("igb-vf", "igbvf"))
    assert ok.nic.vfs == 2 and ok.driver.function == "vf"
    with pytest.raises(drivers.PairError, match="drives SR-IOV VFs"):
        drivers.check_pair(drivers.Pair("igb", "igbvf"))
    assert drivers.pairs_for(["e1000e", "virtio-net"], []) == [
        drivers.Pair("e1000e", "e1000e"), drivers.Pair("virtio-net", "virtio_net")]
    assert drivers.pairs_for(["e1000e", "igb"], ["ktest_nic", "igb"]) == [
        drivers.Pair("e1000e", "ktest_nic"), drivers.Pair("igb", "igb")]
    assert drivers.claimants(drivers.info_for("ktest_nic"),
                             drivers.check_pair(drivers.Pair("e1000e", "ktest_nic")).nic) == [
        "e1000e"]


def test_module_text_size_counts_core_text_at_its_alignment(tmp_path: Path) -> None:
    """The size the allocation sweep's scope spans: the executable sections
    the loader keeps (.text, .text.unlikely, each aligned), not .init.text
    nor data."""
    import subprocess

    from orchestrator.scenario import faults

    # binutils: installed with the kernel build's prerequisites
    src = tmp_path / "m.s"
    src.write_text(
        '.section .text,"ax"\n.balign 1\n.fill 10,1,0x90\n'
        '.section .data,"aw"\n.fill 50,1,0\n'
        '.section .text.unlikely,"ax"\n.balign 16\n.fill 5,1,0x90\n'
        '.section .init.text,"ax"\n.fill 100,1,0x90\n')
    obj = tmp_path / "m.ko"
    subprocess.run(["as", "-o", str(obj), str(src)], check=True)
    assert faults.module_text_size(obj) == 16 + 5


def test_operations_a_driver_allocates_nothing_in() -> None:
    assert drivers.info_for("virtio_net").allocates_nothing_in == ("mtu",)
    assert drivers.info_for("ktest_nic").allocates_nothing_in == ()


@pytest.mark.parametrize("reason,outcome", [
    ("not declared: igbvf does not declare rss", "skipped"),
    ("nothing to test: virtio_net declares that mtu allocates nothing (x.yaml), and none "
     "failed", "skipped"),
    ("mtu: no allocation failed", "failed"),
])
def test_ci_takes_only_skips_for_what_a_driver_declares(
        monkeypatch: pytest.MonkeyPatch, reason: str, outcome: str) -> None:
    from types import SimpleNamespace

    from orchestrator.plugin import capabilities

    monkeypatch.setenv("CI", "true")
    rep = SimpleNamespace(skipped=True, outcome="skipped",
                          longrepr=("test_x.py", 3, f"Skipped: {reason}"))
    capabilities.strict_skip(rep)  # type: ignore[arg-type]
    assert rep.outcome == outcome
