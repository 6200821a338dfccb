"""Kernel console report parser.

A pure library: bytes in, reports out. ``parse`` finds every kernel report
(KASAN, lockdep, WARNING, oops, hangs, stalls, DMA-API, NETDEV WATCHDOG, AER,
link changes, ...) in a console log and gives each a stable, deduplicable title
(syzkaller's title format wherever syzkaller has one); ``judge`` turns the
reports of a log segment into a pass/fail verdict. ``parse`` lists reports in
log order, bugs and events mixed; ``bugs_and_events`` splits them.
"""

from .lines import split_prefix, strip_prefixes
from .model import Kind, Report, Severity, bugs_and_events
from .parser import parse_log as parse
from .policy import DEFAULT, Verdict, judge
from .stack import InlineLookup, name_inlined

__all__ = [
    "DEFAULT",
    "InlineLookup",
    "Kind",
    "Report",
    "Severity",
    "Verdict",
    "bugs_and_events",
    "judge",
    "name_inlined",
    "parse",
    "split_prefix",
    "strip_prefixes",
]
