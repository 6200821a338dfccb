"""Find kernel reports in a console log.

Pipeline:

1. One regex (the alternation of every group header) scans the whole log; each
   hit line is assigned the first group whose header it contains (table order).
2. Hits are post-processed: a message printed next to a WARNING (DMA-API,
   NETDEV WATCHDOG, ref_tracker) becomes one report with it, follow-up lines of
   a multi-line event (AER sequences, kmemleak objects) are folded together.
3. Every remaining hit is analysed in its *window*: the lines after it printed
   by the same printk caller (``[T123]``) or, without caller ids, the lines up to
   the next report. The title comes from the group's formats (see formats.py),
   the guilty frame from the call trace (see stack.py).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Container, Sequence
from dataclasses import dataclass, replace
from itertools import compress

from . import nic
from .formats import GROUPS, IS_REPORT, NMI_BACKTRACE, SKIP_LINE, TAIL_MARKERS, Fmt, Group
from .lines import (
    CONSOLE,
    ascii_digits,
    has_host_prefixes,
    split_prefix,
    strip_all_prefixes,
)
from .model import Kind, Report
from .records import ANY_CPU, Analysis, Hit, Log, Window, body_end, questionable
from .stack import (
    RISCV_TRACE_START,
    TRACE_STARTS,
    extract_frames,
    is_frame_line,
    is_trace_start,
    module_stall_frame,
)
from .titles import kind_of, normalize_title, severity_of

_ALL_HEADERS = sorted({h for g in GROUPS for h in g.headers})

# Candidate lines come from a few regexes, each starting with one literal
# "anchor" character (the regex engine scans for a single literal character about
# ten times faster than for a set of characters, and than str.find runs for each
# of the ~50 headers). Every header is looked for at its rarest anchor (in this
# order; rare in console output first); lookbehinds check the text before it.
# Every candidate line is then checked against the real headers (_group_for).
_ANCHORS = "jKUPgk:"


def _anchor_regexes(headers: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    groups: dict[str, dict[str, list[str]]] = {}
    for h in headers:
        a = next((c for c in _ANCHORS if c in h), h[0])
        j = h.index(a)
        alt = (f"(?<={re.escape(h[: j + 1])})" if j else "") + re.escape(h[j + 1 :])
        groups.setdefault(a, {}).setdefault(h[j - 1] if j else "", []).append(alt)
    out = []
    for a, by_prev in groups.items():
        first = "|".join(sorted(by_prev.pop("", [])))  # headers starting with the anchor
        alts = []
        for prev, hs in sorted(by_prev.items()):
            inner = "|".join(sorted(hs))
            if len(hs) > 1:
                # Headers sharing the character before the anchor: check it once.
                inner = f"(?<={re.escape(prev + a)})(?:{inner})"
            alts.append(inner)
        # The others: one test of the character before the anchor rules out most
        # occurrences of the anchor (":" is frequent).
        prevs = re.escape("".join(sorted(by_prev)))
        rest = f"(?<=[{prevs}]{re.escape(a)})(?:{'|'.join(alts)})" if alts else ""
        out.append(re.compile(re.escape(a) + "(?:" + "|".join(filter(None, (first, rest))) + ")"))
    return tuple(out)


_HEADER_RES = _anchor_regexes(_ALL_HEADERS)


def _header_positions(s: str) -> list[int]:
    found: list[int] = []
    for rx in _HEADER_RES:
        found.extend(m.start() for m in rx.finditer(s))
    found.sort()
    return found


_REPLAY_RE = re.compile(r"\n[^\n]*\*\* replaying previous printk message \*\*")

# Limits keep pathological inputs linear.
MAX_WINDOW_LINES = 4000
# Lines of the first, short window of a report (see analyze).
FIRST_LINES = 200

CORRUPT_NO_FRAMES = "extracted no frames"
KMEMLEAK_SUMMARY = "memory leak: kmemleak"


def _group_for(line: str) -> tuple[Group, str] | None:
    for g in GROUPS:
        for h in g.headers:
            if h in line:
                break
        else:
            continue
        if g.suppressed is not None and g.suppressed.search(line):
            continue
        if g.require is not None and not g.require.search(split_prefix(line)[1]):
            continue
        return g, h
    return None


def scan(log: Log) -> list[Hit]:
    s = log.s
    hits: list[Hit] = []
    last_line = -1
    for pos in _header_positions(s):
        ls = s.rfind("\n", 0, pos) + 1
        if ls == last_line:
            continue
        last_line = ls
        end = s.find("\n", pos)
        if end < 0:
            end = len(s)
        line = s[ls:end]  # (no line index yet: most candidates of a clean log are no hit)
        if (
            not log.host
            and (line[:1].isdigit() or line[:2] == "[+" or line[5:6] == "-")
            and has_host_prefixes(line)
        ):
            log.host = True  # timestamps appear only later in the log
        found = _group_for(line)
        if found is None or _REPLAY_RE.match(s, end):
            continue
        i = log.index(ls)
        hits.append(Hit(ls, i, found[0], found[1], [i]))
    return hits


# ---------------------------------------------------------------------------
# Hit post-processing
# ---------------------------------------------------------------------------
_PAIR_WITH_WARNING = {"DMA_API": 3, "NETDEV_WATCHDOG": 3}
_REF_TRACKER_WARN = 60


def _combine(log: Log, hits: list[Hit]) -> list[Hit]:
    out: list[Hit] = []
    drop: set[int] = set()
    for k, h in enumerate(hits):
        if k in drop:
            continue
        name = h.group.name
        if name in _PAIR_WITH_WARNING or name == "REF_TRACKER":
            limit = _PAIR_WITH_WARNING.get(name, _REF_TRACKER_WARN)
            # A WARNING just before (message printed after the WARNING line) ...
            if (
                out
                and out[-1].group.name == "WARNING"
                and h.index - out[-1].index <= limit
                and name != "REF_TRACKER"
            ):
                w = out.pop()
                h = Hit(w.start, w.index, h.group, h.header, [w.index, *h.members], w.index)
            else:
                # ... or just after (message printed before the trap).
                for j in range(k + 1, len(hits)):
                    nxt = hits[j]
                    if nxt.index - h.index > limit:
                        break
                    if nxt.group.name == "WARNING":
                        if name != "REF_TRACKER" or "ref_tracker" in log.line(nxt.index):
                            drop.add(j)
                            h.paired_warning = nxt.index
                        break
                    if nxt.group.name != name and nxt.role in ("oops",):
                        break
        # Follow-up lines of the same multi-line event: a REF_TRACKER's come
        # right after it; an AER's may have other lines in between (what the
        # recovery makes drivers print, a link coming up, say).
        if name in ("AER", "REF_TRACKER"):
            last = out[-1:] if name == "REF_TRACKER" else reversed(out)
            event = next((p for p in last if p.group.name == name), None)
            if (
                event is not None
                and not nic.closed(log, event)
                and h.index - event.members[-1] <= 40
            ):
                event.members.append(h.index)
                continue
        if out:
            prev = out[-1]
            if (
                name == "REF_TRACKER"
                and prev.group.name == "UNREGISTER"
                and (h.index - prev.members[-1] <= 60)
            ):
                prev.members.append(h.index)
                continue
            if (
                name == "KMEMLEAK"
                and prev.group.name != "KMEMLEAK_SUMMARY"
                and "memory leak" in log.line(prev.index)
                and (h.index - prev.index <= 3)
            ):
                continue
            if name == "KBUG" and prev.group.name == "RUST" and h.index - prev.index <= 6:
                continue  # the BUG() of the Rust panic handler: part of the panic
        if name == "REBOOT" and not nic.is_real_reboot(log, h):
            continue
        out.append(h)
    return out


# ---------------------------------------------------------------------------
# Window analysis (syzkaller-compatible semantics)
# ---------------------------------------------------------------------------
def _window_lines(
    log: Log, ctx: str, pos: int, endpos: int, by_caller: bool, limit: int
) -> tuple[list[str], list[int]]:
    """Contents and start offsets of the lines of context ``ctx`` in ``[pos, endpos)``
    (with caller ids: the first ``limit`` of them)."""
    if not by_caller:
        contents, starts = log.context_lines(ctx, pos, endpos)
        if ctx == "" and pos < endpos and log.s[endpos - 1 : endpos] == "\n":
            # The line at ``endpos``, empty: a line without timestamp as seen by a
            # regex search that ends at ``endpos`` (how windows were first cut).
            contents.append("")
            starts.append(endpos)
        return contents, starts
    all_contents, all_starts = log.caller_lines(ctx, pos)
    a = bisect_right(all_starts, pos)
    b = min(bisect_left(all_starts, endpos, a), a + limit)
    contents, starts = all_contents[a:b], all_starts[a:b]
    # Once an all-CPU NMI backtrace starts, lines of CPU contexts belong too.
    # (The marker holds no newline: it is looked for in the joined lines.)
    joined = "\n".join(contents)
    at = joined.find(NMI_BACKTRACE)
    while at >= 0:
        k = joined.count("\n", 0, at)
        if not questionable(contents[k]):
            more = max(limit - k - 1, 0)
            own = _lines_after(all_contents, all_starts, starts[k], endpos, more)
            cpus = _lines_after(*log.caller_lines(ANY_CPU, pos), starts[k], endpos, more)
            contents[k + 1 :], starts[k + 1 :] = _first_lines(own, cpus, more, ctx[:1] == "C")
            break
        nl = joined.find("\n", at)
        at = -1 if nl < 0 else joined.find(NMI_BACKTRACE, nl)
    return contents, starts


def _lines_after(
    contents: list[str], starts: list[int], after: int, endpos: int, n: int
) -> tuple[list[str], list[int]]:
    """Contents and starts of the first ``n`` lines starting in ``(after, endpos)``."""
    a = bisect_right(starts, after)
    b = min(bisect_left(starts, endpos, a), a + n)
    return contents[a:b], starts[a:b]


def _first_lines(
    own: tuple[list[str], list[int]], cpus: tuple[list[str], list[int]], n: int, cpu: bool
) -> tuple[list[str], list[int]]:
    """The first ``n`` lines, in log order, of a caller's lines and the CPU lines
    (each the first ``n`` after some offset); ``cpu``: the caller is a CPU context,
    its lines are among the CPU lines."""
    if cpu:
        return cpus
    contents, starts = own[0] + cpus[0], own[1] + cpus[1]
    order = sorted(range(len(starts)), key=starts.__getitem__)[:n]
    return list(map(contents.__getitem__, order)), list(map(starts.__getitem__, order))


def build_window(log: Log, h: Hit, stop: int, full: bool = True) -> Window:
    """Collect the report's lines: same printk context, no questionable frames.

    Without caller ids the window ends at ``stop`` (the next report); with caller
    ids it extends over all later lines of the same caller. Both stop after
    MAX_WINDOW_LINES lines of the log. Unless ``full``, the window also ends at
    the caller's next report and after FIRST_LINES lines (``Window.truncated``
    tells whether that removed lines).
    """
    ctx, head = log.info(h.index)
    s = log.s
    nlines = log.nlines
    by_caller = ctx not in ("", CONSOLE)
    last = min(nlines if by_caller else stop, h.index + MAX_WINDOW_LINES, nlines)
    truncated = False
    limit = MAX_WINDOW_LINES
    if not full:
        if by_caller:
            if h.next_same_caller is not None and h.next_same_caller < last:
                last, truncated = h.next_same_caller, True
            limit = FIRST_LINES
        elif h.index + 1 + FIRST_LINES < last:
            last, truncated = h.index + 1 + FIRST_LINES, True
    endpos = log.starts[last] if last < nlines else len(s)
    pos = log.line_end(h.index)
    contents, starts = _window_lines(log, ctx, pos, endpos, by_caller, limit + 1)
    if len(contents) > limit:
        del contents[limit:], starts[limit:]
        truncated = True
    # (The checks below look at the window's own lines, not at the log range: with
    # caller ids, that range can hold far more lines of other callers.)
    joined = "\n".join(contents)
    if log.has_cr and "\r" in joined:
        contents = [c[:-1] if c.endswith("\r") else c for c in contents]
    if ctx == CONSOLE and (" ? " in joined or " (unreliable)" in joined):
        # (the lines of a caller come without them: see Log.caller_lines)
        keep = [
            (" ? " not in c and c[-13:] != " (unreliable)") or "<EOI>" in c for c in contents
        ]  # (not questionable(c), inlined)
        contents = list(compress(contents, keep))
        starts = list(compress(starts, keep))
    # Past the first lines of the report, a panic or a lockdep splat caused by
    # the report is cut off.
    min_lines = 16 if "BUG: KMSAN:" in head else 22
    if len(contents) >= min_lines and (TAIL_MARKERS[0] in joined or TAIL_MARKERS[1] in joined):
        tail = "\n".join(contents[min_lines - 1 :])
        found = [p for p in (tail.find(m) for m in TAIL_MARKERS) if p >= 0]
        if found:
            k = min_lines - 1 + tail.count("\n", 0, min(found))
            del contents[k:], starts[k:]
    out = [head, *contents]
    offs = [h.start, *starts]
    if SKIP_LINE in joined:
        pairs = [(head, h.start)] + [
            (c, o) for c, o in zip(out[1:], offs[1:], strict=True) if SKIP_LINE not in c
        ]
        out = [c for c, _ in pairs]
        offs = [o for _, o in pairs]
    return Window(out, offs, truncated=truncated)


@dataclass
class Description:
    title: str
    corrupted: str
    fmt: Fmt | None
    frame: str | None


def _format(template: str, args: Sequence[str]) -> str:
    try:
        return template.format(*args)
    except IndexError:
        padded = list(args) + [""] * 8
        return template.format(*padded)


def describe(text: str, group: Group, header: str) -> Description:
    """Title of the report ``text`` by the group's formats: the format whose title
    matches earliest wins (ties: table order); a format whose ``report`` pattern
    does not match leaves the place to the next one tied with it, if any."""
    m = group.titles.search(text) if group.titles is not None else None
    if m is not None:
        at = m.start()
        first = int(str(m.lastgroup)[1:])  # (see Group.titles)
        for f in group.formats[first:]:
            got = _apply(f, text, at)
            if got is not None:
                return got
    # No title, or none whose report pattern matched: the header line.
    corrupted = "" if m is None else "matched title but not report regexp"
    pos = text.find(header)
    if pos < 0:
        return Description("", corrupted, None, None)
    end = text.find("\n", pos)
    return Description(text[pos : end if end >= 0 else len(text)], corrupted, None, None)


def _apply(f: Fmt, text: str, at: int) -> Description | None:
    """The title by format ``f`` if its title matches at ``at`` (and its report
    pattern somewhere in ``text``), else None."""
    m = f.title.match(text, at)
    if m is None:
        return None
    if f.report is not None:
        m = f.report.search(text)
        if m is None:
            return None
    args = [g or "" for g in m.groups()]
    corrupted = ""
    frame = None
    if f.stack is not None:
        res = extract_frames(text[m.start() :], f.stack)
        if not res.ok:
            corrupted = CORRUPT_NO_FRAMES
        args.extend(res.frames)
        frame = res.frames[0] if res.frames else None
    if not corrupted and f.corrupted:
        corrupted = "report format is marked as corrupted"
    return Description(_format(f.fmt, args), corrupted, f, frame)


# Each trace-start pattern with a literal that must be present for it to match.
# Each trace-start pattern with a literal that every match contains, and the
# literal's offset from the match start (so a search can start near it).
_TRACE_KEYS = tuple(
    zip(
        TRACE_STARTS,
        (
            ("race", 6),
            ("Allocated", 0),
            ("Allocated", 0),
            ("Freed", 0),
            ("Freed", 0),
            ("backtrace", 2),
            ("Backtrace", 0),
            ("Uninit", 0),
            ("badaddr", 25),
        ),
        strict=True,
    )
)
_TS_IN_TITLE = re.compile(ascii_digits(r"\[ *\d+\.\d+\]"))


def check_corrupted(title: str, text: str, fmt: Fmt | None) -> str:
    if _TS_IN_TITLE.search(title):
        return "title matches corrupted regexp"
    if fmt is None or fmt.no_stack_trace:
        return ""
    have_trace = False
    first: dict[str, int] = {}
    for key, (needle, offset) in _TRACE_KEYS:
        at = first.get(needle)
        if at is None:
            at = first[needle] = text.find(needle)
        if at < 0:
            continue
        m = key.search(text, max(at - offset, 0))
        if m is None:
            continue
        # The trace start's line and the next ones: syzkaller counts at least
        # three lines (each ending with a newline) up to 17 lines on, and looks
        # for a frame in the 15 lines after the first.
        following = text[m.start() :].split("\n", 17)
        if len(following) < 3:
            return "call trace is missed"
        ok = False
        for line in following[1:16]:
            if is_trace_start(line):
                break
            if "(stack is not available)" in line or is_frame_line(line):
                have_trace = ok = True
                break
        if not ok and key is not RISCV_TRACE_START:
            return "no frames in a stack trace"
    if not have_trace:
        return "no stack trace in report"
    return ""


_MODULE_RE = re.compile(r"\+0x[0-9a-f]+/0x[0-9a-f]+ \[([A-Za-z0-9_]+)(?: [0-9a-f]+)?\]")
_TAINT_RE = re.compile(r"Not tainted|Tainted: ([A-Z][A-Z ]*?) *(?=\d|\n|$)")
_TITLE_FRAME_RE = re.compile(r".* in ((?:<[a-zA-Z0-9_: ]+>)?[a-zA-Z0-9_:]+)")


def modules_in(text: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for m in _MODULE_RE.finditer(text):
        seen.setdefault(m.group(1), None)
    return tuple(seen)


def taint_in(text: str) -> str | None:
    # Both alternatives contain "ainted": look for the regex only from there.
    at = text.find("ainted")
    if at < 0:
        return None
    m = _TAINT_RE.search(text, max(at - 5, 0))
    if m is None:
        return None
    if m.group(1) is None:
        return ""
    return m.group(1).replace(" ", "")


def report_text(log: Log, start: int, end: int) -> str:
    text = strip_all_prefixes(log.s[start:end].replace("\r\n", "\n")).rstrip("\n")
    return _recode(text)


def _recode(text: str) -> str:
    """The log was decoded as latin-1: decode its bytes as UTF-8."""
    if text.isascii():
        return text
    return text.encode("latin-1", "replace").decode("utf-8", "replace")


def analyze(log: Log, h: Hit, stop: int, seen: Container[str] = ()) -> Analysis:
    """Title (normalised), frame and body of the report at ``h``; a title in
    ``seen`` (reported before) makes a ``repeat`` analysis, without the fields
    that folding throws away.

    The report is first analysed in a short window (see ``build_window``: its
    first lines, up to its caller's next report); only a report found incomplete
    there (corrupted, or its body running to the end of those lines) is analysed
    again in its full window. So the cost of a complete report does not depend
    on what follows it."""
    if h.group.custom is not None and h.group.custom != "reboot":
        a = nic.build(log, h, build_window(log, h, stop, False), stop)
        if a.truncated and (a.corrupted or not a.closed):
            a = nic.build(log, h, build_window(log, h, stop, True), stop)
        return a
    win = build_window(log, h, stop, False)
    end = body_end(log, win)
    # (A body running to the end of the short window needs the full one whatever
    # the title: the end is found first.)
    if not win.truncated or win.closed:
        a = _analyze(log, h, stop, win, end, seen, short=True)
        if not a.truncated or not a.corrupted:
            return a
    win = build_window(log, h, stop, True)
    return _analyze(log, h, stop, win, body_end(log, win), seen, short=False)


# Stalls titled after the module function the CPU is stuck in (when there is one).
_MODULE_STALLS = ("BUG: soft lockup in ", "INFO: rcu detected stall in ")


def _stuck_in_module(desc: Description, text: str) -> Description:
    """A stall or lockup in module code is titled after the module function
    (``BUG: soft lockup in ktest_nic_poll_reset``) rather than after the syscall
    or work item that led there: every hang while a driver loads would otherwise
    be ``... in finit_module``. Core-kernel stalls keep syzkaller's title."""
    fn = module_stall_frame(text)
    if fn is None:
        return desc
    prefix = desc.title[: desc.title.index(" in ") + 4]
    corrupted = "" if desc.corrupted == CORRUPT_NO_FRAMES else desc.corrupted
    return Description(prefix + fn, corrupted, desc.fmt, fn)


def _analyze(
    log: Log, h: Hit, stop: int, win: Window, end: int, seen: Container[str], short: bool
) -> Analysis:
    """Title and frame of the report at ``h`` by the formats of its group, in the
    window ``win`` (whose body ends at ``end``; ``short``: the first window)."""
    text = win.text
    desc = describe(text, h.group, h.header)
    if not desc.title:
        raw = log.s[log.starts[h.index] : log.starts[max(stop, h.index + 1)] - 1]
        desc = describe(raw, h.group, h.header)
        if not desc.title:
            desc = Description(log.info(h.index)[1], "", None, None)
    if desc.title.startswith(_MODULE_STALLS):
        desc = _stuck_in_module(desc, text)
    title = normalize_title(desc.title)
    if title in seen and not (short and win.truncated):
        # Folded into an earlier report, and no full window to decide on.
        return Analysis(h, title, desc.corrupted, None, end, repeat=True)
    corrupted = desc.corrupted
    if not corrupted:
        corrupted = check_corrupted(desc.title, text, desc.fmt)
        if corrupted and stop < log.nlines and log.info(h.index)[0] in ("", CONSOLE):
            # Like syzkaller, look for the trace in the rest of the log too (here:
            # in the lines of the short window, past the next report).
            rest = build_window(log, h, log.nlines, full=False)
            corrupted = check_corrupted(desc.title, "\n".join(rest.lines), desc.fmt)
    return Analysis(
        h,
        title,
        corrupted,
        desc.frame,
        end,
        window_text=text,
        window_lines=win.lines,
        window_offsets=win.offsets,
        closed=win.closed,
        truncated=win.truncated,
        repeat=title in seen,
    )


def _link_same_caller(log: Log, hits: list[Hit]) -> None:
    """Set each hit's ``next_same_caller``: a report's window (with caller ids)
    ends where its caller starts another report, so that the cost of a window
    does not grow with the number of reports in the log."""
    nxt: dict[str, int] = {}
    for h in reversed(hits):
        ctx = log.info(h.index)[0]
        if ctx in ("", CONSOLE):
            continue
        log.report_callers.add(ctx)
        h.next_same_caller = nxt.get(ctx)
        if h.role != "consequence":
            nxt[ctx] = h.index


def parse_log(data: bytes | bytearray | memoryview | str) -> list[Report]:
    """Every report of the log, in log order, repeats of a title folded into the
    first one (see ``_drop_redundant``)."""
    log, analyses, cuts = _analyses(data, fold=True)
    return _drop_redundant([a.title if a.repeat else _report(log, a, cuts) for a in analyses])


def all_reports(data: bytes | bytearray | memoryview | str) -> list[Report]:
    """``parse_log`` before folding: every report, repeats included."""
    log, analyses, cuts = _analyses(data, fold=False)
    return [_report(log, a, cuts) for a in analyses]


def _analyses(
    data: bytes | bytearray | memoryview | str, fold: bool
) -> tuple[Log, list[Analysis], list[int]]:
    """The log, the analysis of each of its reports (in log order) and where
    report texts end (the starts of the non-quiet reports and of the window
    boundaries). With ``fold``, a report whose title an earlier one has is a
    ``repeat``."""
    if isinstance(data, str):
        raw = data.encode("utf-8", "surrogateescape")
    else:
        raw = bytes(data)
    s = raw.decode("latin-1")
    log = Log(s)
    analyses: list[Analysis] = []
    hits = _combine(log, scan(log))
    if not hits:
        return log, analyses, []
    terminators = [h.start for h in hits if h.role in ("oops", "boundary")]
    _link_same_caller(log, hits)
    seen: set[str] = set()
    last_body = -1
    for h in hits:
        if not IS_REPORT[h.group.name]:
            continue
        if h.role == "consequence" and h.start < last_body:
            continue
        k = bisect_right(terminators, h.start)
        stop_pos = terminators[k] if k < len(terminators) else len(s)
        stop = log.index(stop_pos) if stop_pos < len(s) else log.nlines
        a = analyze(log, h, stop, seen)
        analyses.append(a)
        if fold and not a.title.startswith(KMEMLEAK_SUMMARY):
            seen.add(a.title)  # (never a dropped summary: see _drop_redundant)
        if h.role != "quiet":
            last_body = max(last_body, a.body_end)
    cuts = sorted({a.hit.start for a in analyses if a.hit.role != "quiet"} | set(terminators))
    return log, analyses, cuts


def _report(log: Log, a: Analysis, cut_points: list[int]) -> Report:
    """The report of analysis ``a``: its text ends where the next non-quiet
    report (or window boundary) starts."""
    s = log.s
    start = a.hit.start
    k = bisect_right(cut_points, start)
    end = a.body_end
    if k < len(cut_points):
        end = min(end, max(cut_points[k] - 1, start))
    end = max(min(end, len(s)), start)
    ls = s.rfind("\n", start, end) + 1
    if ls > start and "[ cut here ]" in s[ls:end]:
        end = ls - 1  # that line introduces the next report
    if end < len(s) and s[end : end + 1] == "\n":
        end += 1  # include the newline of the last line
    title = a.title
    kind = a.kind if a.kind is not None else kind_of(title)
    if kind is Kind.PANIC and "Hard LOCKUP" in title:
        kind = Kind.HARD_LOCKUP
    severity = severity_of(kind, title)
    frame = a.frame
    fm = _TITLE_FRAME_RE.match(title)
    if a.kind is None:
        frame = fm.group(1) if fm else None
    if frame == "corrupted":
        frame = None
    body = a.window_text or report_text(log, start, end)
    if a.window_offsets:
        k = bisect_right(a.window_offsets, end - 1)
        text = "\n".join(a.window_lines[:k])
        text = _recode(text)
    else:
        text = report_text(log, start, end)
    return Report(
        title=title,
        kind=kind,
        start=start,
        end=end,
        text=text,
        frame=frame,
        modules=modules_in(body),
        taint=taint_in(body),
        corrupted=bool(a.corrupted),
        corrupted_reason=a.corrupted or None,
        severity=severity,
    )


def _drop_redundant(reports: Sequence[Report | str]) -> list[Report]:
    """Fold repeats of a title into its first report (``count``); drop the
    kmemleak summary line when the log shows the leaked objects themselves.
    (A repeat may come as its title alone: an earlier report has that title.)"""
    objects = any(
        isinstance(r, Report)
        and r.kind is Kind.MEMORY_LEAK
        and not r.title.startswith(KMEMLEAK_SUMMARY)
        for r in reports
    )
    first: dict[str, int] = {}
    out: list[Report] = []
    counts: list[int] = []
    for r in reports:
        title = r if isinstance(r, str) else r.title
        if objects and title.startswith(KMEMLEAK_SUMMARY):
            continue
        k = first.setdefault(title, len(out))
        if k == len(out):
            assert isinstance(r, Report)  # (the first report of a title is whole)
            out.append(r)
            counts.append(1)
        else:
            counts[k] += 1
    return [r if n == 1 else replace(r, count=n) for r, n in zip(out, counts, strict=True)]
