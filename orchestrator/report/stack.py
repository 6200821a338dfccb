"""Call-trace parsing and guilty-frame selection.

A report format says *where* the guilty frame is looked for through a ``Stack``
spec: an ordered list of steps, each either a line pattern (which may capture a
function name, e.g. the ``RIP:`` line) or ``TRACE`` (parse call-trace lines
until the next trace starts). The first frame that is not an infrastructure
function (``SKIP_COMMON`` plus per-format extras) is the guilty frame; stalls
and hangs use a custom chooser instead.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache

from .lines import ascii_digits
from .model import Report
from .titles import canonical_frame, demangle


def rx(pattern: str) -> re.Pattern[str]:
    """Compile a pattern after expanding the shorthands used in the tables.

    ``<FN>`` captures a function name followed by ``.`` or ``+`` (``foo+0x1/0x2``,
    ``foo.isra.0+...``); ``<PC>`` is a bracketed address (``[<ffffffff81000000>]``, or
    ``[<(____ptrval____)>]`` when the kernel hides pointers);
    ``<SRC>`` captures ``path/file.c:123``; ``<TASK>`` is a short, possibly
    multi-line task description.
    """
    pattern = pattern.replace("<FN>", r"([A-Za-z0-9_]+)[.+]")
    pattern = pattern.replace("<PC>", r"\[<?(?:0x)?(?:[0-9a-f]+|\(____ptrval____\))>?\]")
    pattern = pattern.replace("<SRC>", r"([A-Za-z0-9_/.\-]+\.[a-z]+:\d+)")
    pattern = pattern.replace("<TASK>", r"[\s\S]{0,100}?")
    return re.compile(ascii_digits(pattern))


# ``RIP: 0010:foo+0x1/0x2``, ``IP: foo+...``, ``pc : foo+...``, ``PC is at foo+...``;
# also user-space or NULL RIPs that carry no function name.
RIP = rx(
    r"(?:IP|NIP|pc |PC is at):? "
    r"(?:(?:\d+:)?(?:<PC> +){0,2}<FN>"
    r"|(?:\d+:)?0x[0-9a-f]+"
    r"|(?:\d+:)?<PC> +\[< *\(null\)>\] +\(null\)"
    r"|\d+: +\(null\))"
)
CALL_TRACE = re.compile(r"Call [Tt]race:|Backtrace:")

# Lines of a call trace. kmemleak prints its backtrace with its own prefix.
# ("(?:kmemleak: )? *(?:<PC> ){0,2}", spelled with alternations: optional groups
# and counted repeats of groups are slow in the regex engine.)
_FRAME_LEAD = r"(?:kmemleak: +| *)(?:<PC> <PC> |<PC> |)"
FRAME_LINES: tuple[re.Pattern[str], ...] = (
    rx(r"^" + _FRAME_LEAD + "<FN>"),
    rx(r"^ *<PC> \(([A-Za-z0-9_.]+)\) from <PC> \(<FN>"),  # arm
)
FRAME_ANY = rx(r"^" + _FRAME_LEAD + r"[A-Za-z0-9_]+[.+]|^ *<PC> \([A-Za-z0-9_.]+\) from ")

RISCV_TRACE_START = re.compile(r"status: [0-9a-f]{16} badaddr: [0-9a-f]{16} cause: [0-9a-f]{16}")
TRACE_STARTS: tuple[re.Pattern[str], ...] = (
    re.compile(r"Call [Tt]race"),
    re.compile(r"Allocated:"),
    re.compile(r"Allocated by task \d+:"),
    re.compile(r"Freed:"),
    re.compile(r"Freed by task \d+:"),
    re.compile(r"[^k] backtrace(?: \(crc [0-9a-fA-F]*\))?:"),  # not "stack backtrace:"
    re.compile(r"Backtrace:"),
    re.compile(r"Uninit was stored to memory at"),
    RISCV_TRACE_START,
)
# All trace starts in one regex, factored so that each alternative begins with a
# literal; "status: ... badaddr" (riscv) is checked separately.
_TRACE_START_ANY = re.compile(
    r"Call [Tt]race|Allocated(?: by task \d+)?:|Freed(?: by task \d+)?:|Backtrace:"
    r"|Uninit was stored to memory at|b(?<=[^k] b)acktrace(?: \(crc [0-9a-fA-F]*\))?:"
)


WARN_TRAP = re.compile(RIP.pattern + r"|--- interrupt: \d+ at ([A-Za-z0-9_]+)[.+]")


def next_trace_start(text: str, pos: int) -> re.Match[str] | None:
    m = _TRACE_START_ANY.search(text, pos)
    if "badaddr: " in text:
        r = RISCV_TRACE_START.search(text, pos)
        if r is not None and (m is None or r.start() < m.start()):
            return r
    return m


def is_trace_start(line: str) -> bool:
    if _TRACE_START_ANY.search(line) is not None:
        return True
    return "badaddr: " in line and RISCV_TRACE_START.search(line) is not None


# Fault-injection stacks interleaved with a report make the frame unreliable.
CORRUPTING_LINE = rx(r"^(?: <PC>)? should_fail(?:slab)?(?:\.[a-z0-9.]+)?\+0x")


CORRUPTING_LINE_M = re.compile(CORRUPTING_LINE.pattern, re.M)


def is_frame_line(line: str) -> bool:
    return FRAME_ANY.search(line) is not None


# Functions that are never the culprit. Regexes, searched in the function name.
SKIP_COMMON: tuple[str, ...] = (
    # sanitizers and report machinery
    "__sanitizer",
    "__asan",
    "kasan",
    "hwasan",
    "__msan",
    "kmsan",
    "kcsan_setup_watchpoint",
    "check_memory_region",
    "check_heap_object",
    "check_object",
    "read_word_at_a_time",
    "(read|write)_once_.*nocheck",
    "print_address_description",
    "print_report",
    "print_usage_bug",
    "print_tainted",
    "^get_taint$",
    "__fortify_report",
    # traps, warnings, stack dumping
    "panic",
    "invalid_op",
    "report_bug",
    "fixup_bug",
    "do_error",
    "_trap$|do_trap",
    "show_stack",
    "dump_stack",
    "walk_stack",
    "dump_backtrace",
    "warn_slowpath",
    "warn_alloc",
    "warn_bogus",
    "__warn",
    "program_check_exception",
    "program_check_common",
    "stack_trace_consume_entry",
    "arch_stack_walk",
    "stack_trace_save",
    "assertfail",
    "do_(kernel|translation)_fault",
    "do_mem_abort",
    "el1_abort",
    "el1h_64_sync(?:_handler)?",
    # allocators
    "alloc_page",
    "k?v?(?:m|z|c)alloc",
    "krealloc",
    "kmem_cache",
    "allocate_slab",
    "__alloc_frozen_pages_noprof",
    "folio_(?:alloc|unlock)",
    "filemap_alloc_folio",
    "__filemap_get_folio",
    "find_or_create_page",
    "do_read_cache_folio",
    "read_cache_page",
    "pagecache_get_page",
    "grab_cache_page_write_begin",
    "slab_",
    "^kv?free$",
    "kfree_skb",
    "memdup",
    "ida_free",
    "__phys_addr",
    # debug objects, lockdep and locking primitives
    "debug_object",
    "lookup_object_or_alloc",
    "timer_is_static_object",
    "work_is_static_object",
    "print_unlock",
    "imbalance_bug",
    "lockdep",
    "bh_enable",
    "bh_disable",
    "perf_trace",
    "lock_acquire",
    "lock_release",
    "lock_class",
    "mark_lock",
    "(reacquire|mark)_held_locks",
    "raw_spin_rq",
    "spin_lock",
    "spin_trylock",
    "spin_unlock",
    "read_lock",
    "read_trylock",
    "write_lock",
    "write_trylock",
    "read_unlock",
    "write_unlock",
    "^down$",
    "down_read",
    "down_write",
    "down_trylock",
    "up_read",
    "up_write",
    "^mutex_",
    "^__mutex_",
    "^rt_mutex_",
    "owner_on_cpu",
    "osq_lock",
    "osq_unlock",
    "seqprop_assert",
    "(trace|lockdep)_(hard|soft)irq",
    "^(un)?lock_page",
    "lock_timer_base",
    # atomics, refcounts, bit ops
    "atomic(64)?_(dec|inc|read|set|or|xor|and|add|sub|fetch|xchg|cmpxchg|try)",
    "(set|clear|change|test)_bit",
    "^refcount_",
    "^kref_",
    "ref_tracker",
    # string and memory helpers, user copies
    "memcpy",
    "memcmp",
    "memset",
    "memchr",
    "memmove",
    "strcmp",
    "strncmp",
    "strcpy",
    "strlcpy",
    "strncpy",
    "strscpy",
    "strlen",
    "strstr",
    "strnstr",
    "strnlen",
    "strchr",
    "strdup",
    "strndup",
    "copy_to_user",
    "copy_from_user",
    "copy_to_iter",
    "copy_from_iter",
    "copy_page_to_iter",
    "copy_page_from_iter",
    "copy_folio_to_iter",
    "^copyin$",
    "^copyout$",
    "put_user",
    "get_user",
    "might_fault",
    "might_sleep",
    "__might_resched",
    "extract_(user|iter)_to_sg",
    "hex_dump_to_buffer",
    "print_hex_dump",
    "^crc\\d+",
    "crc_itu_t",
    # containers
    "list_add",
    "list_del",
    "list_replace",
    "list_move",
    "list_splice",
    "^rb_",
    "^__rb_",
    "^klist_",
    "xas_(?:start|load|find)",
    "rhashtable_lookup",
    # formatting and printing
    "_indirect_thunk_",
    "string",
    "pointer",
    "snprintf",
    "scnprintf",
    "kasprintf",
    "kvasprintf",
    "printk",
    "va_format",
    "dev_info",
    "dev_notice",
    "dev_warn",
    "dev_err",
    "dev_alert",
    "dev_crit",
    "dev_emerg",
    # timers, work, completions
    "del_timer",
    "^timer_delete",
    "__timer_delete",
    "sk_stop_timer_sync",
    "__mod_timer",
    "flush_work",
    "__cancel_work",
    "cancel_work_sync",
    "cancel_delayed_work",
    "try_to_grab_pending",
    "flush_workqueue",
    "drain_workqueue",
    "destroy_workqueue",
    "queue_work",
    "insert_work",
    "__queue_delayed_work",
    "queue_delayed_work_on",
    "finish_wait",
    "kthread_stop",
    "^complete$",
    "wait_for_completion",
    "__wake_up",
    "cleanup_srcu_struct",
    # driver core and generic teardown paths
    "kobject_",
    "add_uevent_var",
    "get_device_parent",
    "device_add",
    "device_del",
    "device_unregister",
    "device_destroy",
    "device_release",
    "devres_release_all",
    "hwrng_unregister",
    "i2c_del_adapter",
    "__unregister_client",
    "device_for_each_child",
    "rollback_registered",
    "unregister_netdev",
    "sysfs_remove",
    "device_remove_file",
    "tty_unregister_device",
    "^put_device$",
    # usb plumbing
    "dummy_urb_enqueue",
    "usb_kill_urb",
    "usb_kill_anchored_urbs",
    "usb_control_msg",
    "usb_hcd_submit_urb",
    "usb_submit_urb",
    # MMIO accessors
    "readb$",
    "readw$",
    "readl$",
    "readq$",
    "writeb$",
    "writew$",
    "writel$",
    "writeq$",
    "logic_in",
    "logic_out",
    # vfs helpers
    "^iput$",
    "^iput_final$",
    "^ihold$",
    "find_lock_entries",
    "truncate_inode_pages_range",
    "drop_nlink",
    "fast_dput",
    "dput",
    "mark_buffer_dirty",
)

# Anchors used to pick a representative frame of a stall: the frame just before
# the first of these (the dispatch point of the looping work).
STALL_ANCHORS = re.compile(
    "|".join(
        (
            "process_one_work",
            "do_syscall_",
            "do_fast_syscall_",
            "sysenter_dispatch",
            "tracesys_phase2",
            "el0_svc_handler",
            "invoke_syscall",
            "ret_fast_syscall",
            "netif_receive_skb",
            "do_softirq",
            "call_timer_fn",
            "_run_timers",
            "run_timer_softirq",
            "hrtimer_run",
            "run_ksoftirqd",
            "smpboot_thread_fn",
            "^kthread$",
            "start_secondary",
            "cpu_startup_entry",
            "ret_from_fork",
            "vfs_write",
            "vfs_read",
            "vfs_iter_read",
            "vfs_iter_write",
            "do_iter_read",
            "do_iter_write",
            "call_read_iter",
            "call_write_iter",
            "new_sync_read",
            "new_sync_write",
            "vfs_ioctl",
            "ksys_ioctl",
            "compat_ioctl",
            "compat_sys_ioctl",
            "blkdev_driver_ioctl",
            "blkdev_ioctl",
            "do_iter_readv_writev",
            "^call_mmap",
            "mmap_region",
            "do_mmap",
            "do_dentry_open",
            "vfs_open",
            "^sock_sendmsg",
            "^sock_recvmsg",
            "^sock_release",
            "^__sock_release",
            "^setsockopt$",
            "kernel_setsockopt",
            "sock_common_setsockopt",
            "^listen$",
            "kernel_listen",
            "sk_common_release",
            "^sock_mmap",
            "^accept$",
            "kernel_accept",
            "^sock_do_ioctl",
            "^sock_ioctl",
            "^compat_sock_ioctl",
            "^nfnetlink_rcv_msg",
            "^rtnetlink_rcv_msg",
            "^netlink_dump",
            "^(sys_)?(socketpair|connect|ioctl)",
            "__do_fault",
            "do_page_fault",
            "^page_fault$",
            "__fput",
            "task_work_run",
            "exit_to_usermode",
            "smp_call_function",
            "tasklet_action",
            "tasklet_hi_action",
        )
    )
)


# A RIP in a module, and a call-trace frame in a module (not a questionable one).
_MODULE_RIP = re.compile(r"RIP: (?:[0-9]+:)?([A-Za-z0-9_]+)[.+][^ \n]* \[([A-Za-z0-9_]+)\]")
_MODULE_FRAME = rx(r"\n *(?:<PC> )*([A-Za-z0-9_]+)[.+][^ \n]* \[([A-Za-z0-9_]+)\]")


def module_stall_frame(text: str) -> str | None:
    """Where a stalled CPU is stuck in module code: the function of the first
    ``RIP:`` in a module, else the first module frame of the first call trace
    (the module function that called the core helper the CPU spins in, e.g.
    ``delay_tsc`` or a spinlock). ``None`` when no module code is involved:
    the stall then keeps syzkaller's title."""
    rip = _MODULE_RIP.search(text)
    if rip is not None:
        return canonical_frame(rip.group(1))
    trace = CALL_TRACE.search(text)
    if trace is None:
        return None
    end = text.find("</TASK>", trace.end())
    frame = _MODULE_FRAME.search(text, trace.end(), end if end >= 0 else len(text))
    return canonical_frame(frame.group(1)) if frame is not None else None


@lru_cache(maxsize=16384)
def _is_stall_anchor(frame: str) -> bool:
    # (A long alternation tried at every position of the name: cached per name.)
    return STALL_ANCHORS.search(frame) is not None


def stall_chooser(frames: Sequence[str]) -> int | tuple[int, str]:
    """Index of the representative frame of a stall/lockup, or -1."""
    for i, frame in enumerate(frames):
        if _is_stall_anchor(frame):
            if "smp_call_function" in frame:
                return (i, "smp_call_function")
            return max(i - 1, 0)
    return -1


_HANG_BUCKETS: tuple[tuple[str, str | None], ...] = (
    ("rtnl_lock", None),
    ("synchronize_rcu", "synchronize_rcu"),
    ("synchronize_srcu", "synchronize_rcu"),
    ("synchronize_net", "synchronize_rcu"),
    ("synchronize_sched", "synchronize_rcu"),
)
_HANG_SKIP = (
    "sched",
    "_lock",
    "_slowlock",
    "rwsem",
    "completion",
    "kthread",
    "wait",
    "synchronize",
    "context_switch",
    "__switch_to",
    "cancel_delayed_work",
    "rcu_barrier",
)


# the semaphore's down(), down_read(), __down_common(), percpu_down_write()
# ..., not every function whose name holds "down" (a driver's ..._shutdown)
_HANG_SKIP_RE = re.compile("|".join([*map(re.escape, _HANG_SKIP), r"^(?:__|percpu_)?down(?:_|$)"]))


def hang_chooser(frames: Sequence[str]) -> int | tuple[int, str]:
    """Hung tasks are bucketed on rtnl_lock / synchronize_rcu, else the first
    frame that is not a sleeping primitive."""
    for i, frame in enumerate(frames):
        for needle, bucket in _HANG_BUCKETS:
            if needle in frame:
                return (i, bucket) if bucket else i
    for i, frame in enumerate(frames):
        if _HANG_SKIP_RE.search(frame) is None:
            return i
    return -1


Chooser = Callable[[Sequence[str]], "int | tuple[int, str]"]

TRACE: None = None
"""Step of a Stack spec: parse call-trace lines from here."""


@dataclass(frozen=True)
class Stack:
    steps: tuple[re.Pattern[str] | None, ...]
    fallback: tuple[re.Pattern[str] | None, ...] = ()
    skip: tuple[str, ...] = ()
    chooser: Chooser | None = None
    # Fault-injection frames (should_fail...) normally mark the trace as interleaved.
    allow_fault_frames: bool = False
    # Use only ``skip`` (not SKIP_COMMON).
    own_skip: bool = False

    @cached_property
    def skip_re(self) -> SkipMatcher:
        return _skip_matcher(self.skip, self.own_skip)


_META = re.compile(r"[\\.^$*+?{}\[\]|()]")


class SkipMatcher(dict[str, bool]):
    """Whether function names are to be skipped: ``matcher[name]``, by a skip list
    of regexes (searched, i.e. a plain word matches anywhere in the name). Plain
    words are checked with one prefix-tree regex, which is much faster than a long
    alternation. The mapping holds the names looked up so far (a name seen before
    costs one dict lookup)."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__()
        words = [p for p in patterns if not _META.search(p)]
        others = [p for p in patterns if _META.search(p)]
        self.key = "|".join(patterns)
        self._words = re.compile(trie_pattern(words)) if words else None
        self._others = re.compile("|".join(others)) if others else None

    def __missing__(self, name: str) -> bool:
        # (a Rust symbol is matched demangled: ``core::panicking::panic_fmt``)
        target = demangle(name) if name.startswith(("_R", "_ZN")) else name
        got = bool(
            (self._words is not None and self._words.search(target))
            or (self._others is not None and self._others.search(target))
        )
        if len(self) > 50_000:
            self.clear()
        self[name] = got
        return got

    def search(self, name: str) -> bool:
        """Whether ``name`` is to be skipped."""
        return self[name]


def trie_pattern(words: Sequence[str]) -> str:
    """A regex matching any of ``words``, factored as a prefix tree (much faster
    to search with than a flat alternation)."""
    trie: dict[str, dict] = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, dict]) -> str:
        alts = [re.escape(ch) + emit(node[ch]) for ch in sorted(k for k in node if k)]
        if not alts:
            return ""
        if "" in node:
            # A word ends here: the rest is optional (shorter word already matches).
            return ""
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    return emit(trie)


@cache
def _skip_matcher(extra: tuple[str, ...], own: bool = False) -> SkipMatcher:
    return SkipMatcher(extra if own else SKIP_COMMON + extra)


CORRUPTED = "corrupted"


@dataclass
class FrameResult:
    frames: list[str]  # canonical guilty frame per trace step ("corrupted" if none)
    raw: list[str]
    ok: bool


def _collect(match: re.Match[str], skip: SkipMatcher, out: list[str]) -> None:
    for name in match.groups():
        if name is not None and not skip[name]:
            out.append(name)


def _choose(raw: list[str], chooser: Chooser | None) -> tuple[str, str] | None:
    if not raw:
        return None
    if chooser is None:
        return canonical_frame(raw[0]), raw[0]
    canon = list(map(canonical_frame, raw))
    res = chooser(canon)
    if isinstance(res, tuple):
        return res[1], raw[res[0]]
    if res < 0:
        return None
    return canon[res], raw[res]


def _line_end(text: str, p: int) -> int:
    e = text.find("\n", p)
    return len(text) if e < 0 else e


def _line_start(text: str, p: int) -> int:
    return text.rfind("\n", 0, p) + 1


# FRAME_LINES as one regex (the first alternative wins on a line), matching from
# the newline before the line (a literal first character is fast to scan for).
_FRAMES_ONE = re.compile("|".join(p.pattern for p in FRAME_LINES))
_FRAMES_NL = re.compile(r"\n(?:" + "|".join(p.pattern[1:] for p in FRAME_LINES) + ")")
assert all(p.pattern.startswith("^") for p in FRAME_LINES)
assert _FRAMES_NL.groups > 1  # (findall gives a tuple of names per line)


def _frames_in(
    text: str, pos: int, end: int, skip: SkipMatcher, out: list[str], first_only: bool
) -> None:
    """Frames of the lines starting in ``[pos, end)`` (``pos`` is a line start)."""
    if pos == 0:
        m = _FRAMES_ONE.match(text, 0, end)
        if m is not None:
            _collect(m, skip, out)
            if first_only and out:
                return
    if first_only:
        for m in _FRAMES_NL.finditer(text, max(pos - 1, 0), end):
            _collect(m, skip, out)
            if out:
                return
        return
    # Every frame: the names of all lines at once (an empty string where a
    # pattern's group did not take part).
    for names in _FRAMES_NL.findall(text, max(pos - 1, 0), end):
        for name in names:
            if name and not skip[name]:
                out.append(name)


def _first_frame(text: str, pos: int, skip: SkipMatcher, out: list[str]) -> int:
    """``_frames_in(text, pos, len(text), skip, out, True)``, returning the end of
    the line that gave the frame (-1: none)."""
    if pos == 0:
        m = _FRAMES_ONE.match(text)
        if m is not None:
            _collect(m, skip, out)
            if out:
                return _line_end(text, m.end())
    for m in _FRAMES_NL.finditer(text, max(pos - 1, 0)):
        _collect(m, skip, out)
        if out:
            return _line_end(text, m.end())
    return -1


def _trace_starts_before(text: str, pos: int, end: int) -> bool:
    """Whether a trace starts in ``[pos, end)``."""
    if _TRACE_START_ANY.search(text, pos, end) is not None:
        return True
    return "badaddr: " in text and RISCV_TRACE_START.search(text, pos, end) is not None


def _next_trace_line(text: str, pos: int) -> int:
    """Start offset of the first line at or after ``pos`` (a line start) that
    starts a trace, ``len(text)`` if none."""
    m = next_trace_start(text, pos)
    return len(text) if m is None else text.rfind("\n", 0, m.start()) + 1


def _run(
    text: str,
    steps: tuple[re.Pattern[str] | None, ...],
    skip: SkipMatcher,
    chooser: Chooser | None,
    corrupting: re.Pattern[str] | None,
) -> FrameResult:
    """Match ``steps`` line by line from the start of ``text`` (regex-driven: the
    lines between interesting ones are skipped at C speed)."""
    result = FrameResult([], [], True)
    raw: list[str] = []
    pos, n = 0, len(text)
    traces = 0
    i = 0
    nsteps = len(steps)
    faulty = corrupting is not None and "should_fail" in text
    trace_from, trace_at = 1, 0  # the last trace-start lookup (none yet)
    while True:
        if i == nsteps or (steps[i] is TRACE and traces > 0):
            picked = _choose(raw, chooser)
            if picked is None:
                picked = (CORRUPTED, CORRUPTED)
                result.ok = False
            result.frames.append(picked[0])
            result.raw.append(picked[1])
            raw = []
        if i == nsteps:
            return result
        step = steps[i]
        if pos >= n:
            i += 1
            continue
        bad = None
        if faulty and corrupting is not None:
            bad = corrupting.search(text, pos)
        bad_at = _line_start(text, bad.start()) if bad is not None else n
        if step is TRACE and i + 1 == nsteps and chooser is None and bad_at == n:
            # The last step, for one frame: the first useful frame, unless a trace
            # starts before it (ending this one). (The rest of the text is not
            # searched for trace starts.)
            if not raw:
                end = _first_frame(text, pos, skip, raw)
                if end >= 0 and _trace_starts_before(text, pos, end):
                    raw.clear()
        elif step is TRACE:
            traces += 1
            if not trace_from <= pos <= trace_at:
                # (no trace starts in [trace_from, trace_at): still valid for pos)
                trace_from, trace_at = pos, _next_trace_line(text, pos)
            ts_at = trace_at
            stop = min(bad_at, ts_at)
            lookahead = steps[i + 1] if i + 1 < nsteps else None
            la = lookahead.search(text, pos, stop) if lookahead is not None else None
            frames_end = _line_start(text, la.start()) if la is not None else stop
            if chooser is not None or not raw:
                _frames_in(text, pos, frames_end, skip, raw, chooser is None)
            if la is not None:
                _collect(la, skip, raw)
                i += 1  # the next step is consumed as well
                pos = _line_end(text, la.start()) + 1
            else:
                if stop < n and bad_at <= ts_at:
                    result.ok = False
                pos = _line_end(text, stop) + 1 if stop < n else n
        else:
            m = step.search(text, pos)
            m_at = _line_start(text, m.start()) if m is not None else n
            if bad_at <= m_at and bad_at < n:
                result.ok = False
                pos = _line_end(text, bad_at) + 1
            elif m is not None:
                _collect(m, skip, raw)
                pos = _line_end(text, m.start()) + 1
            else:
                pos = n
        i += 1


def extract_frames(text: str, stack: Stack) -> FrameResult:
    """Find the guilty frame(s) in ``text`` (the report from its title match on)."""
    corrupting = None if stack.allow_fault_frames else CORRUPTING_LINE_M
    res = _run(text, stack.steps, stack.skip_re, stack.chooser, corrupting)
    if res.ok or not stack.fallback:
        return res
    return _run(text, stack.fallback, stack.skip_re, stack.chooser, corrupting)


InlineLookup = Callable[[str, int], Sequence[tuple[str, str]]]


def name_inlined(report: Report, module: str, lookup: InlineLookup) -> Report:
    """`report` titled after the function that was inlined at its guilty
    frame, when that frame is in `module` (``FUNC+0xOFF/0xSIZE [module]``)
    and `lookup(FUNC, OFF)` (the module's debug information: innermost
    first, each with its source file) names one of the module's own
    functions there that the skip list does not skip; a helper from a
    kernel header (include/) is not the module's."""
    m = re.search(r" in (\S+)$", report.title)
    if m is None:
        return report
    func = m.group(1)
    frame = rf"(?<![\w.]){re.escape(func)}\+0x([0-9a-f]+)/0x[0-9a-f]+ \[{re.escape(module)}\]"
    at = re.search(frame, report.text)
    if at is None:
        return report
    skip = _skip_matcher(())
    for name, file in lookup(func, int(at.group(1), 16)):
        if "/include/" in file or skip[name]:
            continue
        if name == func:
            return report
        return dataclasses.replace(report, title=report.title[:m.start(1)] + name, frame=name)
    return report
