"""Config fragments: parsing, merging, the dropped-option check and its
explanation from a (small, synthetic) Kconfig tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.builds import kconfig


def test_parse_fragment_forms() -> None:
    opts = kconfig.parse_fragment(
        'CONFIG_A=y\n# comment\n\nCONFIG_B=m\nCONFIG_C="text"\n# CONFIG_D is not set\n'
        "CONFIG_E=n\nCONFIG_F=0x10\n",
        "frag",
    )
    assert {k: o.value for k, o in opts.items()} == {
        "A": "y", "B": "m", "C": '"text"', "D": "n", "E": "n", "F": "0x10"}
    assert opts["B"].origin == "frag:4"


def test_parse_fragment_rejects_garbage_with_location() -> None:
    with pytest.raises(kconfig.FragmentError, match=r"frag:2: not a config line"):
        kconfig.parse_fragment("CONFIG_A=y\nKASAN=y\n", "frag")
    with pytest.raises(kconfig.FragmentError, match="empty value"):
        kconfig.parse_fragment("CONFIG_A=\n", "frag")


def test_merge_later_wins_and_render_roundtrips() -> None:
    merged = kconfig.merge([("a", "CONFIG_X=y\nCONFIG_Y=y\n"), ("b", "CONFIG_X=n\n")])
    assert merged["X"].value == "n" and merged["X"].origin == "b:1"
    text = kconfig.render(merged)
    assert "# CONFIG_X is not set" in text and "CONFIG_Y=y" in text
    assert {k: o.value for k, o in kconfig.parse_fragment(text).items()} == {"X": "n", "Y": "y"}


def test_dropped_options() -> None:
    requested = kconfig.merge([("f", "CONFIG_A=y\nCONFIG_B=m\nCONFIG_C=n\nCONFIG_D=0x10\n"
                                     'CONFIG_E="x"\n')])
    final = kconfig.read_dotconfig('CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_D=16\n'
                                   'CONFIG_E="x"\n')
    dropped = kconfig.dropped_options(requested, final)
    assert [(d.option.name, d.got) for d in dropped] == [("B", "n")]


def test_an_optional_option_may_be_dropped() -> None:
    """'# ktest: optional' covers the next option only; the key's text
    (render) does not change with it."""
    text = "# ktest: optional\nCONFIG_A=y\n# plain comment\nCONFIG_B=y\n"
    requested = kconfig.merge([("f", text)])
    assert requested["A"].optional and not requested["B"].optional
    dropped = kconfig.dropped_options(requested, kconfig.read_dotconfig(""))
    assert [d.option.name for d in dropped] == ["B"]
    assert kconfig.render(requested) == "CONFIG_A=y\nCONFIG_B=y\n"


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("A", 2), ("!A", 0), ("B", 0), ("!B", 2), ("M", 1), ("A && M", 1), ("B || M", 1),
        ("A && (B || !B)", 2), ("N = 16", 2), ("N != 16", 0), ("N >= 8", 2), ("S = \"x\"", 2),
        ("A && !(M || B)", 1),
    ],
)
def test_evaluate(expr: str, value: int) -> None:
    final = {"A": "y", "B": "n", "M": "m", "N": "16", "S": "x"}
    assert kconfig.evaluate(expr, final) == value


def _tree(root: Path) -> Path:
    (root / "arch/x86").mkdir(parents=True)
    (root / "net").mkdir()
    (root / "Kconfig").write_text(
        'mainmenu "test"\nsource "arch/$(SRCARCH)/Kconfig"\nsource "net/Kconfig"\n')
    (root / "arch/x86/Kconfig").write_text("config X86_64\n\tdef_bool y\n")
    (root / "net/Kconfig").write_text(
        "menuconfig NET\n\tbool \"Networking\"\n\nif NET\n\n"
        "menu \"Core\"\n\tdepends on NET_CORE\n\n"
        "config VIRTIO_NET\n\ttristate \"virtio\"\n\tdepends on VIRTIO\n\thelp\n"
        "\t  if you say depends on FOO here it is only help text\n\n"
        "endmenu\n\n"
        "config FILTER\n\tbool \"filter\" if EXPERT\n\tdepends on !X86_64\n\n"
        "endif\n"
    )
    return root


def test_explain_names_the_unmet_dependency(tmp_path: Path) -> None:
    tree = kconfig.KconfigTree(_tree(tmp_path))
    final = {"NET": "y", "NET_CORE": "n", "VIRTIO": "m", "X86_64": "y", "EXPERT": "y"}
    (why,) = tree.explain("VIRTIO_NET", final)
    assert "depends on NET_CORE (NET_CORE=n)" in why and "net/Kconfig" in why
    assert "FOO" not in why
    (why,) = tree.explain("FILTER", final)
    assert "depends on !X86_64 (X86_64=y)" in why
    assert tree.explain("NOPE", final)[0].startswith("no such symbol")
    final["NET_CORE"] = "y"
    assert "dependencies are met" in tree.explain("VIRTIO_NET", final)[0]


def test_shipped_fragments_parse() -> None:
    from orchestrator.builds import kernel

    for variant in kernel.VARIANTS:
        merged = kernel.merged_config(kernel.KernelRequest(variant=variant))
        # The debug set the guest kernel promises.
        for name in ("PROVE_LOCKING", "DEBUG_ATOMIC_SLEEP", "KFENCE", "DMA_API_DEBUG",
                     "DEBUG_KMEMLEAK", "FAILSLAB", "FAIL_PAGE_ALLOC", "FAIL_FUNCTION",
                     "DETECT_HUNG_TASK", "SOFTLOCKUP_DETECTOR", "WQ_WATCHDOG", "UBSAN_BOUNDS",
                     "NET_DEV_REFCNT_TRACKER", "PAGE_POOL_STATS", "PCIEAER",
                     "HOTPLUG_PCI_PCIE", "INTEL_IOMMU", "IRQ_REMAP", "BPF_SYSCALL",
                     "ETHTOOL_NETLINK", "E1000"):
            assert merged[name].value == "y", name
        assert merged["DEBUG_KMEMLEAK_AUTO_SCAN"].value == "n"
        for mod in ("E1000E", "VIRTIO_NET", "NETDEVSIM", "PCIEAER_INJECT"):
            assert merged[mod].value == "m", mod
        assert merged["KASAN"].value == ("n" if variant == "fast" else "y")
