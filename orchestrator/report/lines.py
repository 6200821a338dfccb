"""Console line prefixes: host timestamps, kernel timestamps and printk caller ids.

A console line may look like any of::

    [   12.345678] e1000e 0000:00:03.0 eth0: NIC Link is Up
    [   12.345678][  T123] BUG: KASAN: use-after-free in foo+0x12/0x40
    <4>[   12.345678][    C1] ...
    09:10:11.123456 [   12.345678] ...            (host wall clock)
    2026-11-24T09:10:11.123456 [   12.345678] ...
    [+12.345678] [   12.345678] ...              (host relative time)
    [2026-11-24 09:10:11.123456] [   12.345678] ...
    BUG: KASAN: ...                                (no kernel timestamp)

The host timestamp is always removed first, so a log and the same log with every
line prefixed by a host timestamp parse identically.
"""

from __future__ import annotations

import re
from functools import lru_cache


def ascii_digits(pattern: str) -> str:
    """``pattern`` with ``\\d`` spelled ``[0-9]``: the same on logs decoded as
    latin-1 (no other decimal digits there), and much faster to match than the
    Unicode digit category."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            out.append(
                ("0-9" if in_class else "[0-9]") if pattern[i + 1] == "d" else pattern[i : i + 2]
            )
            i += 2
            continue
        out.append(c)
        i += 1
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            # "]" right after "[" or "[^" is a literal
            if pattern[i : i + 1] == "^":
                out.append("^")
                i += 1
            if pattern[i : i + 1] == "]":
                out.append("]")
                i += 1
    return "".join(out)


# Host-side timestamp written by the log collector (never by the kernel).
_HOST = ascii_digits(
    r"(?:\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?"  # 09:10:11.123456
    r"|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
    r"|\[\+ *\d+(?:\.\d+)?\]"  # [+12.345678]
    r"|\[\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\]"
    r") "
)
_HOST_PREFIX = re.compile(_HOST)

# Kernel printk prefix: optional "dropped" notice, optional syslog level, the
# timestamp and the optional CONFIG_PRINTK_CALLER id.
_DROPPED = ascii_digits(r"(?:\*\* \d+ printk messages dropped \*\* )?")
_TS = ascii_digits(r"(?:<\d+>)?\[ *\d+\.\d+\]")
_PREFIX = re.compile("(?:" + _HOST + ")?" + _DROPPED + _TS + r"(?:\[ *([CT]\d+)\])? ")
# The same, when garbage ending in " login: " precedes the kernel prefix.
_LOGIN_PREFIX = re.compile(
    "(?:" + _HOST + ")?" + _DROPPED + r"(?:.* login: )?" + _TS + r"(?:\[ *([CT]\d+)\])? "
)

CONSOLE = "console"
"""Context of a line with a kernel timestamp but without a caller id."""


def strip_host_prefix(line: str) -> str:
    """Remove a leading host timestamp (collector-side), if any."""
    if line[:1].isdigit() or line[:1] == "[":
        m = _HOST_PREFIX.match(line)
        if m is not None:
            return line[m.end() :]
    return line


def split_prefix(line: str) -> tuple[str, str]:
    """Split a console line into (context, content).

    The context is ``""`` for a line without a kernel timestamp, ``"console"``
    for a timestamped line without caller id, and ``"T123"`` / ``"C1"`` for a
    line with a printk caller id. A trailing carriage return is dropped.
    """
    if line.endswith("\r"):
        line = line[:-1]
    m = _PREFIX.match(line)
    if m is None:
        if " login: " in line:
            m = _LOGIN_PREFIX.match(line)
        if m is None:
            return "", strip_host_prefix(line)
    ctx = m.group(1)
    return (CONSOLE if ctx is None else ctx), line[m.end() :]


_HAS_HOST = re.compile(
    ascii_digits(r"^(?:\d{1,2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}[T ]\d|\[\+ *\d|\[\d{4}-)"), re.M
)


def has_host_prefixes(text: str, lines: int = 8) -> bool:
    """Whether lines of ``text`` carry host timestamps (a collector prefixes every
    line, so the first few lines are checked)."""
    return any(_HAS_HOST.match(line) for line in text[:4096].split("\n", lines)[:lines])


def _timestamp_led(host: bool) -> str:
    """Pattern of a newline and a line's prefix up to its kernel timestamp.
    (Optional groups are slow in the regex engine: "(?:A)?(?:<\\d+>)?\\[" is
    spelled as an alternation of literal-led branches.)"""
    host_re = "(?:" + _HOST + ")?" if host else ""
    lvl = ascii_digits(r"<\d+>")
    ts = rf"(?:\[|{lvl}\[|{_DROPPED[3:-2]}(?:{lvl})?\[)" + _TS[len(rf"(?:{lvl})?\[") :]
    return r"\n" + host_re + ts


@lru_cache(maxsize=4)
def context_line_regex(ctx: str, host: bool = True) -> re.Pattern[str]:
    """Regex matching a newline followed by a whole line, whatever its context: a
    search range gives one match per newline, i.e. per line after the first. For
    a line of context ``ctx`` (``""`` or ``CONSOLE``, see ``split_prefix``) group
    1 is ``"\\n"`` and group 2 the message; for other lines both are empty. (A
    match starts at the newline *before* the line: a literal first character
    makes scanning fast.) ``host=False`` gives a faster regex for logs without
    host timestamps."""
    if ctx == "":
        host_re = "(?:" + _HOST + ")?" if host else ""
        mine = "(?!" + host_re + _DROPPED + _TS + ")" + host_re + r"([^\n]*)"
    elif ctx == CONSOLE:
        mine = _timestamp_led(host)[2:] + r" ([^\n]*)"
    else:
        raise ValueError(f"not a context without caller id: {ctx!r}")
    return re.compile(r"(\n)" + mine + r"|\n[^\n]*")


@lru_cache(maxsize=4)
def caller_line_regex(host: bool = True) -> re.Pattern[str]:
    """Regex matching a newline followed by a whole line printed by a printk
    caller: group 1 is the caller id (``T123``, ``C1``), group 2 the message."""
    return re.compile(_timestamp_led(host) + ascii_digits(r"\[ *([CT]\d+)\] ([^\n]*)"))


_ANY_PREFIX = re.compile(
    "^(?:" + _HOST + ")?" + _DROPPED + "(?:" + _TS + r"(?:\[ *[CT]\d+\])? )?", re.M
)


def strip_all_prefixes(text: str) -> str:
    """``strip_prefixes`` applied to every line of ``text``."""
    return _ANY_PREFIX.sub("", text)


def strip_prefixes(line: str | bytes) -> str:
    """Return the kernel message of a console line without any timestamp/caller prefix."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    return split_prefix(line.rstrip("\n"))[1]
