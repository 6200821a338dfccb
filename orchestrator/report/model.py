"""Data model of the kernel report parser: report kinds and the Report record."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["bug", "event"]


class Kind(enum.Enum):
    """Coarse class of a kernel report.

    The precise flavour (e.g. the KASAN access type or the lockdep problem) lives in
    the report title; the kind is what a verdict policy usually wants to match on.
    """

    KASAN = "KASAN"
    KFENCE = "KFENCE"
    KMSAN = "KMSAN"
    KCSAN = "KCSAN"
    UBSAN = "UBSAN"
    LOCKDEP = "LOCKDEP"
    SLEEP_IN_ATOMIC = "SLEEP_IN_ATOMIC"
    WARNING = "WARNING"
    REFCOUNT = "REFCOUNT"
    BUG = "BUG"
    GPF = "GPF"
    NULL_DEREF = "NULL_DEREF"
    PAGING_FAULT = "PAGING_FAULT"
    TRAP = "TRAP"  # divide error, invalid opcode, int3, stack segment, alignment trap
    PANIC = "PANIC"
    HUNG_TASK = "HUNG_TASK"
    RCU_STALL = "RCU_STALL"
    SOFT_LOCKUP = "SOFT_LOCKUP"
    HARD_LOCKUP = "HARD_LOCKUP"
    WQ_LOCKUP = "WQ_LOCKUP"
    MEMORY_LEAK = "MEMORY_LEAK"
    DMA_API = "DMA_API"
    IOMMU_FAULT = "IOMMU_FAULT"
    NETDEV_WATCHDOG = "NETDEV_WATCHDOG"
    UNREGISTER_NETDEVICE = "UNREGISTER_NETDEVICE"
    AER = "AER"
    LINK_CHANGE = "LINK_CHANGE"
    FAULT_INJECTION = "FAULT_INJECTION"
    INFO = "INFO"  # other "INFO:" reports
    REBOOT = "REBOOT"  # the machine rebooted in the middle of the log
    HARNESS = "HARNESS"  # failures printed by a user-space harness (syzkaller, Go runtime)
    OTHER = "OTHER"


@dataclass(frozen=True)
class Report:
    """One kernel report found in a console log.

    ``start``/``end`` are byte offsets into the parsed input (``start`` inclusive,
    ``end`` exclusive); ``start`` is the beginning of the report's first line.
    ``text`` is the report's lines from ``start`` to ``end`` decoded as UTF-8
    (invalid bytes replaced) with host timestamps, kernel timestamps and printk
    caller ids stripped from every line.

    ``count`` is how many times the log holds a report with this title: repeats
    are folded into the first one (whose offsets and text the record keeps).
    """

    title: str
    kind: Kind
    start: int
    end: int
    text: str
    frame: str | None = None
    modules: tuple[str, ...] = ()
    taint: str | None = None
    corrupted: bool = False
    corrupted_reason: str | None = None
    severity: Severity = "bug"
    count: int = 1

    @property
    def is_bug(self) -> bool:
        return self.severity == "bug"

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "kind": self.kind.value,
            "severity": self.severity,
            "start": self.start,
            "end": self.end,
            "frame": self.frame,
            "modules": list(self.modules),
            "taint": self.taint,
            "corrupted": self.corrupted,
            "corrupted_reason": self.corrupted_reason,
            "count": self.count,
            "text": self.text,
        }


def bugs_and_events(reports: Iterable[Report]) -> tuple[list[Report], list[Report]]:
    """The bug reports and the events, each list in the order given (``parse``
    gives log order): ``bugs_and_events(parse(log))[0][:1]`` is the first bug."""
    bugs: list[Report] = []
    events: list[Report] = []
    for r in reports:
        (bugs if r.is_bug else events).append(r)
    return bugs, events
