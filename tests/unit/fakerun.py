"""Run directories as `ktest run` leaves them, made without a guest: records
through Record(...).to_json(), guest run directories with console.raw and a
host-stamped console.log whose marker lines bracket each test, an optional
actions.log, pcaps, run.json and a junit.xml.

    run = FakeRun(tmp_path / "run")
    run.test("tests/nic/test_x.py::test_ping", "e1000e/ktest_nic", "passed")
    run.test(..., "failed", message="WARNING in ktnic_poll", console=b"...WARNING...")
    run.write()
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.plugin.record import (
    Attempt,
    ConsoleSpan,
    Record,
    ReportRef,
    pcap_path,
    write_manifest,
)
from orchestrator.runs import known

# The lab's own entry the fake runs are judged with, besides ktest's list.
LAB_ISSUE = known.KnownIssue(
    reason="virtio_net has no PCI error handlers (a lab entry of the fake runs)",
    title="recovery failed", pair="/virtio_net$",
    link="https://docs.kernel.org/PCI/pci-error-recovery.html", source="fakerun")

PAIRS = {"e1000e/ktest_nic": "e1000e:ktest_nic", "virtio-net/virtio_net":
         "virtio-net:virtio_net", "e1000e/e1000e": "e1000e:e1000e"}


def manifest(pairs: list[str], *, kernel: str = "6.12.117-ktest", qemu: str = "10.0.2",
             **extra: Any) -> dict[str, Any]:
    return {
        "ktest": {"version": "0.1.0", "git": "8f400e3"},
        "command": ["ktest", "run"],
        "host": {"name": "ci-1", "kernel": "6.1.0", "python": "3.11.2"},
        "started": "2026-12-02T06:00:00+00:00",
        "plan": {"name": "default", "path": None, "suites": ["tests/nic"], "pairs": pairs,
                 "specs": {p: PAIRS.get(p, p.replace("/", ":")) for p in pairs}, "k": None},
        "choices": {"kernel": "6.12", "kernel_src": None, "variant": "debug", "config": [],
                    "accel": "tcg", "qemu": None},
        "kernel": {"release": kernel, "key": "k-0123456789ab", "version": "6.12", "src": None},
        "image": {"key": "i-abcdef"},
        "qemu": {"binary": "qemu-system-x86_64", "version": qemu,
                 "text": f"QEMU emulator version {qemu}"},
        "ended": "2026-12-02T06:30:00+00:00", "seconds": 1800.0, **extra,
    }


@dataclass
class Guest:
    """One guest run directory; tests append console bytes to it."""

    path: Path
    raw: bytearray = field(default_factory=bytearray)
    log: list[str] = field(default_factory=list)
    clock: datetime = field(default_factory=lambda: datetime(2026, 12, 2, 6, 0, 1))
    uptime: float = 3.0

    def line(self, text: str, step: float = 0.25) -> None:
        self.clock += timedelta(seconds=step)
        self.uptime += step
        kernel_line = f"[{self.uptime:12.6f}][  T100] {text}"
        self.raw += (kernel_line + "\r\n").encode()
        self.log.append(f"{self.clock:%H:%M:%S.%f} {kernel_line}")

    def stamp(self) -> str:
        return f"{self.clock:%H:%M:%S.%f}"

    def write(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "console.raw").write_bytes(bytes(self.raw))
        (self.path / "console.log").write_text("\n".join(self.log) + "\n")
        (self.path / "qemu-argv.txt").write_text("qemu-system-x86_64 -machine q35\n")


class FakeRun:
    def __init__(self, path: Path, **manifest_extra: Any) -> None:
        self.path = path
        self.records: list[Record] = []
        self.guests: dict[str, Guest] = {}
        self.actions: dict[str, list[str]] = {}
        self.pcaps: list[str] = []
        self.manifest_extra = manifest_extra
        self.pairs: list[str] = []

    def guest(self, pair: str) -> Guest:
        if pair not in self.guests:
            slug = pair.replace("/", "_")
            self.guests[pair] = Guest(self.path / f"{slug}-m1")
        return self.guests[pair]

    def _bracket(self, g: Guest, test: str, console: bytes, action: str | None,
                 phase: str) -> ConsoleSpan:
        g.line(f"ktest: test begin {test}")
        start = len(g.raw)
        for ln in console.decode().splitlines():
            g.line(ln)
            if action and "ACTION" in ln:
                self.actions.setdefault(g.path.name, []).append(f"{g.stamp()} {action}")
        g.line(f"ktest: test end {test} {phase}")
        return ConsoleSpan(str(g.path), start, len(g.raw))

    def test(self, test: str, pair: str, outcome: str, *, message: str = "",
             console: bytes = b"", reports: list[ReportRef] | None = None,
             tries: list[tuple[str, str]] | None = None, action: str | None = None,
             pcap: bool = False, phase: str = "call") -> Record:
        """A record for `test` on `pair`; `tries` [(outcome, message)...]
        makes earlier attempts, each with its own console segment."""
        if pair not in self.pairs:
            self.pairs.append(pair)
        g = self.guest(pair)
        attempts = []
        for i, (o, m) in enumerate(tries or []):
            span = self._bracket(g, test, f"try {i + 1}: {m}".encode(), None, "call")
            attempts.append(Attempt(o, "call", m, 1.0, [span], "2026-12-02T06:01:00+00:00",
                                    "2026-12-02T06:01:01+00:00"))
        span = self._bracket(g, test, console, action, "teardown")
        rec = Record(test=test, pair=pair, outcome=outcome,
                     phase=phase if outcome != "passed" else "", duration=2.5,
                     message=message, reports=reports or [], console=[span],
                     started="2026-12-02T06:01:00+00:00", ended="2026-12-02T06:01:02+00:00")
        if attempts:
            rec.attempts = [*attempts, Attempt(outcome if outcome != "flaky" else "passed",
                                               "", "", 1.5, [span])]
        if pcap:
            self.pcaps.append(test)
        self.records.append(rec)
        return rec

    def write(self) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        for g in self.guests.values():
            g.write()
        for name, lines in self.actions.items():
            (self.path / name / "actions.log").write_text("\n".join(lines) + "\n")
        for test in self.pcaps:
            p = self.path / pcap_path(test)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\0" * 20)
        (self.path / "results.jsonl").write_text(
            "".join(r.to_json() + "\n" for r in self.records))
        write_manifest(self.path, manifest(self.pairs, **self.manifest_extra))
        (self.path / "plan.yaml").write_text("suites: [tests/nic]\npairs: []\n")
        known.save_snapshot(self.path, [*known.load(), LAB_ISSUE])
        suites = ET.Element("testsuites")
        for pair in self.pairs:
            s = ET.SubElement(suites, "testsuite", name=pair)
            for r in self.records:
                if r.pair == pair:
                    ET.SubElement(s, "testcase", name=r.test)
        ET.ElementTree(suites).write(self.path / "junit.xml")
        return self.path


def sample_run(path: Path, **manifest_extra: Any) -> FakeRun:
    """A small nightly: passes, a KASAN failure, an error, a skip, a known
    AER failure on virtio_net, a flaky test with a host action, an xfail."""
    run = FakeRun(path, **manifest_extra)
    e, v = "e1000e/ktest_nic", "virtio-net/virtio_net"
    for pair in (e, v):
        run.test(f"tests/nic/test_integrity.py::test_ping_v4_v6[{pair}]", pair, "passed")
    run.test(f"tests/nic/test_integrity.py::test_rx_integrity[{e}-v4-60]", e, "failed",
             message="KASAN: slab-use-after-free Read in ktnic_poll",
             console=b"BUG: KASAN: slab-use-after-free in ktnic_poll+0x1a/0x30\n"
                     b"Read of size 8 at addr ffff888004a1b2c0 by task ksoftirqd/0/15\n"
                     b"<script>alert(1)</script> & \x1b[31mred\x1b[0m",
             reports=[ReportRef("KASAN: slab-use-after-free Read in ktnic_poll", "KASAN",
                                "ktest_nic", "ktnic_poll",
                                "BUG: KASAN: slab-use-after-free in ktnic_poll+0x1a/0x30")],
             pcap=True)
    run.test(f"tests/nic/test_integrity.py::test_rx_integrity[{v}-v4-60]", v, "passed")
    run.test(f"tests/nic/test_mtu.py::test_jumbo_9000[{v}]", v, "skipped",
             message="driver virtio_net does not declare jumbo")
    run.test(f"tests/nic/test_mtu.py::test_jumbo_9000[{e}]", e, "error",
             message="DutError: eth1 has no carrier after 15s", phase="setup")
    run.test(f"tests/nic/test_faults.py::test_aer_uncorrectable[{v}]", v, "failed",
             message="AER: recovery failed",
             reports=[ReportRef("AER: recovery failed", "AER", "virtio-pci", None,
                                "virtio-pci 0000:02:00.0: AER: can't recover (no "
                                "error_detected callback)\npcieport 0000:00:05.0: AER: "
                                "device recovery failed")],
             console=b"ktest: fault: aer_fatal rp2\nACTION pcie_aer_inject_error\n"
                     b"pcieport 0000:00:05.0: AER: device recovery failed",
             action="pcie_aer_inject_error rp2 POISON_TLP OK id: rp2")
    run.test(f"tests/nic/test_lifecycle.py::test_admin_down_up_under_traffic[{e}]", e, "flaky",
             message="failed 1 of 2 tries, then passed: cycle 2 of 3: Rx stalled",
             tries=[("failed", "cycle 2 of 3: Rx stalled")],
             console=b"ACTION set_link nic0 off\nktnic 0000:01:00.0 eth1: NIC Link is Down",
             action="set_link nic0 off {}")
    run.test(f"tests/nic/test_lifecycle.py::test_link_down_up_under_traffic[{e}]", e,
             "xfailed", message="known emulator limitation")
    return run


def records_json(path: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in (path / "results.jsonl").read_text().splitlines()]
