"""Records shared by the stages of the report parser (parser.py drives them,
nic.py builds the NIC-oriented reports): the decoded log, the header hits, the
report window, the analysis of one hit, and where a report body ends.

Both parser.py and nic.py import this module; it imports neither.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from functools import cached_property
from itertools import compress
from operator import itemgetter

from .formats import Group
from .lines import (
    ascii_digits,
    caller_line_regex,
    context_line_regex,
    has_host_prefixes,
    split_prefix,
)
from .model import Kind
from .stack import FRAME_ANY

_NO_LINES: tuple[list[str], list[int]] = ([], [])
_NEWLINE = re.compile("\n")
_GROUP0 = itemgetter(0)
_GROUP1 = itemgetter(1)
_END = re.Match.end
ANY_CPU = "C*"  # (see Log.caller_lines)
BODY_GAP = 25  # a report body ends after this many lines that do not look like report text


def questionable(content: str) -> bool:
    """A frame line the unwinder is unsure of (`` ? foo+0x1/0x2``, ``(unreliable)``)."""
    return (" ? " in content or content.endswith(" (unreliable)")) and "<EOI>" not in content


class Log:
    """A console log with lazily computed line offsets and per-line prefix
    information."""

    def __init__(self, s: str) -> None:
        self.s = s
        self._info: dict[int, tuple[str, str]] = {}
        self.host = has_host_prefixes(s)
        self.has_cr = "\r" in s
        # context ("" or CONSOLE) -> (contents, line starts) of its lines whose newline
        # before is in [from, to), and (from, to)
        self._contexts: dict[str, tuple[list[str], list[int], list[int]]] = {}
        # caller id -> (contents, line starts) of that caller's lines from _callers_from on
        self._callers: dict[str, tuple[list[str], list[int]]] = {}
        self._callers_from = -1
        # results of whole-log look-ups, computed once per log (nic.driver_for_bdf)
        self.memo: dict[tuple[str, str], str | None] = {}
        # the callers whose lines caller_lines() is asked for (the callers of reports)
        self.report_callers: set[str] = set()

    @cached_property
    def starts(self) -> list[int]:
        """Start offset of every line, then ``len(s) + 1`` (one past the end of the
        last line, as if the log ended with a newline)."""
        return [0, *map(_END, _NEWLINE.finditer(self.s)), len(self.s) + 1]

    @property
    def nlines(self) -> int:
        return len(self.starts) - 1

    def line(self, i: int) -> str:
        """Line ``i`` (without its newline)."""
        starts = self.starts
        return self.s[starts[i] : starts[i + 1] - 1]

    def index(self, pos: int) -> int:
        return bisect_right(self.starts, pos) - 1

    def info(self, i: int) -> tuple[str, str]:
        got = self._info.get(i)
        if got is None:
            got = self._info[i] = split_prefix(self.line(i))
        return got

    def context_lines(self, ctx: str, pos: int, endpos: int) -> tuple[list[str], list[int]]:
        """Contents and line starts of the lines of context ``ctx`` (``""`` or
        ``CONSOLE``, see ``split_prefix``) that start in ``(pos, endpos)``; ``pos``
        is a line end, ``endpos`` a line start or the end of the log.

        The lines of a context are indexed as windows ask for them: windows come
        in log order and overlap (a report's short, full and rest windows, the
        next report's), and a line is read once however many windows hold it."""
        s = self.s
        got = self._contexts.get(ctx)
        if got is None or not got[2][0] <= pos <= got[2][1]:
            # (a new index where this one cannot grow to: no line is read twice
            # for windows asked for in log order, and none between far windows)
            got = self._contexts[ctx] = ([], [], [pos, pos])
        contents, starts, span = got
        # (the index holds the lines whose newline before lies in span; the window
        # needs them up to the newline before ``endpos``)
        to = endpos - 1 if endpos < len(s) else len(s)
        if span[1] < to:
            # One match per newline (see context_line_regex): the line starts are
            # the log's, the context's lines those marked in group 1.
            found = context_line_regex(ctx, self.host).findall(s, span[1], to)
            mine = list(map(_GROUP0, found))
            contents.extend(compress(map(_GROUP1, found), mine))
            first = self.index(span[1] + 1)
            starts.extend(compress(self.starts[first : first + len(found)], mine))
            span[1] = to
        a = bisect_right(starts, pos)
        b = bisect_left(starts, endpos, a)
        return contents[a:b], starts[a:b]

    def caller_lines(self, ctx: str, pos: int) -> tuple[list[str], list[int]]:
        """Contents and line starts of the lines printed by caller ``ctx``
        (``T123``, ``C1``; ``ANY_CPU``: every ``C<n>``), from some offset at or
        before ``pos`` on; without trailing ``\\r``, questionable frames left out.

        The lines of ``report_callers`` are indexed once, from the first offset
        asked for (callers are asked for in log order): a cost linear in the log
        size however many reports and callers there are."""
        if self._callers_from < 0 or pos < self._callers_from:
            wanted = self.report_callers | {ctx}
            index: dict[str, tuple[list[str], list[int]]] = {c: ([], []) for c in wanted}
            # (one regex for every caller: an alternation of the wanted ones is
            # much slower to match at every line)
            cpus: tuple[list[str], list[int]] = ([], [])
            cr = self.has_cr
            get = index.get
            for m in caller_line_regex(self.host).finditer(self.s, pos):
                who = m[1]
                got = get(who)
                cpu = who[0] == "C"
                if got is None and not cpu:
                    continue
                c = m[2]
                if cr and c[-1:] == "\r":
                    c = c[:-1]
                if (" ? " in c or c[-13:] == " (unreliable)") and "<EOI>" not in c:
                    continue  # questionable()
                at = m.start() + 1
                if got is not None:
                    got[0].append(c)
                    got[1].append(at)
                if cpu:
                    cpus[0].append(c)
                    cpus[1].append(at)
            index[ANY_CPU] = cpus
            self._callers, self._callers_from = index, pos
        return self._callers.get(ctx, _NO_LINES)

    def line_end(self, i: int) -> int:
        return self.starts[i + 1] - 1


@dataclass
class Hit:
    start: int  # offset of the line start
    index: int  # line index
    group: Group
    header: str
    members: list[int] = field(default_factory=list)  # line indices of folded lines
    paired_warning: int | None = None  # line index of an adjacent WARNING
    # line index of the next report (not a consequence) printed by the same caller
    next_same_caller: int | None = None

    @property
    def role(self) -> str:
        return self.group.role


@dataclass
class Window:
    lines: list[str]  # filtered, prefix-stripped lines
    offsets: list[int]  # start offset of each line in the log
    _text: str | None = None
    # False once body_end found the body running to the window's last lines (more
    # lines could have extended it)
    closed: bool = True
    # lines were left out to make a short window (see parser.build_window)
    truncated: bool = False

    @property
    def text(self) -> str:
        """The lines joined with newlines."""
        if self._text is None:
            self._text = "\n".join(self.lines)
        return self._text


@dataclass
class Analysis:
    hit: Hit
    title: str
    corrupted: str
    frame: str | None
    body_end: int
    kind: Kind | None = None
    severity: str | None = None
    window_text: str = ""
    window_lines: list[str] = field(default_factory=list)
    window_offsets: list[int] = field(default_factory=list)
    closed: bool = True  # see Window.closed
    truncated: bool = False  # see Window.truncated
    # The title was reported before: only ``title`` and ``body_end`` are set (the
    # report is folded into the earlier one).
    repeat: bool = False


_REPORTISH = (
    r"\s|$|Call [Tt]race|<(?:/?TASK|/?IRQ|/?NMI|/?SOFTIRQ|EOI)>|[A-Z][A-Za-z0-9]{1,4}: |Code: "
    r"|Modules linked in|CPU: |Hardware name|---|Kernel panic|Kernel Offset|Rebooting in"
    r"|Dumping ftrace|Showing |=+$|-> #|\*\*\*|\.\.\.|Memory state|The buggy address"
    r"|[0-9a-f]{8,}:|>[0-9a-f]{8,}|page:|flags:|raw:|page dumped|Allocated by|Freed by"
    r"|Last potentially|Second to last|#\d+:|hardirqs|softirqs|irq event|Chain exists|Possible "
    r"|other info|stack backtrace|INFO: |NMI backtrace|Sending NMI|no locks held|\d+ locks? held"
    r"|task:|Workqueue:|rcu: |Task dump|RIP|RSP|R\d|FS:|CR2|DR\d|invalid opcode|general protection"
    r"|Oops|BUG|WARNING|kernel BUG|PGD|PUD|PMD|PTE|pc :|lr :|sp :|x\d+|Uninit|Local variable"
    r"|Bytes \d|Object|Redzone|Padding|Read of|Write of|unreferenced|  comm|hex dump|backtrace"
    r"|This report|If you|A lock|watchdog|turning off|\[ +\d+\]"
)


_AFTER_END = ("Kernel panic", "Kernel Offset", "---[ end Kernel panic", "Rebooting in")
# Over the joined window text (one line per window line): the first end marker
# line, and every line that does not look like report text (neither _REPORTISH
# nor a call-trace frame).
# (Both match the newline before the line: a literal first character is fast to scan for.)
_END_MARKER_M = re.compile(r"\n(?:---\[ end trace|={20,}[^\S\n]*(?=\n|\Z))")
_CHATTER_M = re.compile(r"\n(?!" + ascii_digits(_REPORTISH) + "|" + FRAME_ANY.pattern + ")", re.M)


def body_end(log: Log, win: Window) -> int:
    """Offset just past the last line of the report body.

    The body ends at an explicit end marker (``---[ end trace``, the closing
    ``=====`` line of sanitizer reports; a panic message right after it is kept),
    otherwise before the first run of more than BODY_GAP lines that look like
    ordinary console chatter (trailing chatter is left out as well).
    """
    lines, offsets = win.lines, win.offsets
    n = len(lines)
    last = offsets[0]
    if n > 1:
        text = win.text
        pos = len(lines[0])  # the newline before line 1
        m = _END_MARKER_M.search(text, pos)
        if m is not None:
            limit = m.start() + 1
            k_end = text.count("\n", 0, limit)
        else:
            limit = len(text)
            k_end = n
        # Walk the chatter lines (the others reset the gap).
        k = 0  # line index of the previous chatter line
        at = 0
        run = 0
        run_start = 0
        prev = -2
        gap_at = -1
        for c in _CHATTER_M.finditer(text, pos, limit):
            p = c.end()
            k += text.count("\n", at, p)
            at = p
            if k == prev + 1:
                run += 1
            else:
                run, run_start = 1, k
            prev = k
            if run > BODY_GAP:
                gap_at = run_start
                break
        if gap_at >= 0:
            last = offsets[gap_at - 1]
        elif m is not None:
            last = offsets[k_end]
            for j in range(k_end + 1, min(k_end + 5, n)):
                if not lines[j].startswith(_AFTER_END):
                    break
                last = offsets[j]
        else:
            win.closed = False
            # The last line before a trailing run of chatter.
            k_last = n - 1 if prev != n - 1 else run_start - 1
            last = offsets[max(k_last, 0)]
    end = log.s.find("\n", last)
    return len(log.s) if end < 0 else end
