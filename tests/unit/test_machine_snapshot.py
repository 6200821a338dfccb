"""A booted guest becomes the snapshot every later guest of its kind is
restored from: one whose boot made a kernel report is not saved (its
restores would start with lockdep off or KASAN's report spent, and without
the report on their consoles)."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest

from orchestrator.machine import vm

WARN = b"""\
[    2.100000][    T1] ------------[ cut here ]------------
[    2.100001][    T1] WARNING: CPU: 0 PID: 1 at drivers/pci/quirks.c:120 quirk_x+0x4/0x9
[    2.100002][    T1] Modules linked in:
[    2.100003][    T1] Call Trace:
[    2.100004][    T1]  <TASK>
[    2.100005][    T1]  pci_fixup_device+0x1/0x2
[    2.100006][    T1]  </TASK>
[    2.100007][    T1] ---[ end trace 0000000000000000 ]---
"""
CLEAN = b"[    2.000000][    T1] Run /init as init process\n"


def booted(tmp_path: Path, console: bytes, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    saved: list[Any] = []

    def save(qmp: Any, key: str, *a: Any, **kw: Any) -> Any:
        saved.append(key)
        return types.SimpleNamespace(key=key, info={"bytes": 1 << 20, "save_seconds": 1.0})

    monkeypatch.setattr(vm.snapshot_mod, "save", save)
    m = vm.Machine.__new__(vm.Machine)
    m.run_dir = tmp_path
    m.qmp = object()
    m.qemu_version = object()
    m.profile = types.SimpleNamespace(name="e1000e")
    m.kernel = types.SimpleNamespace(key="k")
    m.console = types.SimpleNamespace(data=lambda start=0, end=None: console[start:end])
    m._save_snapshot("key1")
    return saved


def test_a_clean_boot_is_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert booted(tmp_path, CLEAN, monkeypatch) == ["key1"]
    assert "saved this booted guest as snapshot key1" in (tmp_path / "console.log").read_text()


def test_a_boot_with_a_report_is_not_saved(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert booted(tmp_path, CLEAN + WARN, monkeypatch) == []
    note = (tmp_path / "console.log").read_text()
    assert "snapshot not saved: the boot reported WARNING in " in note, note
