"""The plugin's command-line options (pytest --ktest-*) and what they mean."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from orchestrator.builds.kernel import DEFAULT_VERSION, SOURCES, KernelRequest

DEFAULT_PAIR = "e1000e:ktest_nic"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("ktest", "ktest: NIC driver tests in QEMU guests")
    g.addoption("--ktest-pair", action="append", default=[], metavar="PROFILE:DRIVER",
                help="a machine profile and the driver under test (repeatable; "
                     f"default {DEFAULT_PAIR})")
    g.addoption("--ktest-machine", action="append", default=[], metavar="PROFILE",
                help="machine profile name or YAML path (repeatable); with --ktest-driver, "
                     "every combination that can run")
    g.addoption("--ktest-driver", action="append", default=[], metavar="DRIVER",
                help="ktest_nic, an in-tree driver (e1000e, virtio_net, igb, igbvf), a module "
                     "source directory or a .ko (repeatable)")
    g.addoption("--ktest-driver-params", default="", metavar="PARAMS",
                help="module parameters for every load of the driver under test "
                     "(e.g. 'bugs=tx_unmap_missing' for ktest_nic's bug injections)")
    g.addoption("--ktest-viommu", choices=("profile", "on", "off"), default="profile",
                help="force the Intel vIOMMU on or off for every profile")
    g.addoption("--ktest-accel", choices=("auto", "tcg", "kvm"), default=None,
                help="override the profiles' accelerator")
    g.addoption("--ktest-qemu", default=None, metavar="PATH",
                help="the QEMU binary (default: $KTEST_QEMU or qemu-system-x86_64)")
    g.addoption("--ktest-kernel", default=DEFAULT_VERSION, choices=list(SOURCES),
                help=f"guest kernel version from Debian's linux-source (default "
                     f"{DEFAULT_VERSION})")
    g.addoption("--ktest-kernel-src", default=None, metavar="DIR",
                help="build the guest kernel from this tree instead")
    g.addoption("--ktest-kernel-config", action="append", default=[], metavar="FRAG",
                help="extra kernel config fragment (repeatable)")
    g.addoption("--ktest-kernel-variant", default="debug", choices=("debug", "fast"))
    g.addoption("--ktest-out", default=None, metavar="DIR",
                help="output directory: results.jsonl, run.json, guest run directories, pcaps")
    g.addoption("--ktest-pcap", action="store_true",
                help="save every test's DUT frames as a pcap")
    g.addoption("--ktest-fresh-guest", default="after-crash",
                choices=("after-crash", "per-test"),
                help="when a test gets a fresh guest besides the start of each pair: "
                     "after a crash or a wedged DUT (default), or for every test. Fresh "
                     "guests are restored from a snapshot of a booted guest (saved at the "
                     "first boot, cached)")
    g.addoption("--ktest-coverage", action="store_true",
                help="build the driver under test for gcov and write its line and branch "
                     "coverage (lcov tracefiles under OUT/coverage/)")
    g.addoption("--ktest-no-snapshots", action="store_true",
                help="always cold-boot guests (no snapshot is restored or saved)")
    g.addoption("--ktest-tests", default=None, metavar="FILE",
                help="run only the tests whose ids are listed in FILE, one a line (a shard, "
                     "`ktest run --test`)")
    g.addoption("--ktest-reruns", type=int, default=0, metavar="N",
                help="run a failed test again, up to N more times; one that then passes is "
                     "flaky (a failure decided by a kernel report is never run again)")


def kernel_request(config: pytest.Config) -> KernelRequest:
    src = config.getoption("--ktest-kernel-src")
    return KernelRequest(
        src=Path(src) if src else None,
        variant=config.getoption("--ktest-kernel-variant"),
        version=config.getoption("--ktest-kernel"),
        extra_fragments=tuple(Path(f) for f in config.getoption("--ktest-kernel-config")),
    )


def apply_qemu(config: pytest.Config) -> None:
    """--ktest-qemu PATH is $KTEST_QEMU for everything this session starts."""
    path = config.getoption("--ktest-qemu", None)
    if path:
        os.environ["KTEST_QEMU"] = path


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def opt(config: pytest.Config, name: str) -> Any:
    return config.getoption(name, None)
