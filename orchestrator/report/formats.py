"""Report formats: which console lines start a report and how its title is built.

Every ``Group`` is keyed by literal header strings; a console line containing a
header (and none of the group's suppressions) starts a report of that group. The
group's ``Fmt`` entries are then tried on the report text: the format whose
``title`` pattern matches earliest wins; if it has a ``report`` pattern, that
must match too and supplies the arguments. Arguments are the captured groups
followed by the guilty frame(s) found by the format's ``Stack`` spec, and are
substituted into ``fmt`` (``{0}``, ``{1}``, ...). See README.md for the table of
resulting titles.

Roles of a group:

``oops``
    a kernel report; it also ends the title window of an earlier report printed
    without caller id (the earlier report is presumed complete).
``consequence``
    (``Kernel panic - not syncing``, ``invalid opcode``, double fault, ...) usually
    printed as part of the preceding report: folded into it when it falls within
    that report's body, a report of its own otherwise. Does not end windows.
``quiet``
    a report (NIC-specific kinds and events) that does not end the window of an
    earlier report.
``boundary``
    not a report, only ends windows (messages that come with a stack trace of
    their own, e.g. ``vmalloc: allocation failure``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from .stack import CALL_TRACE, RIP, TRACE, WARN_TRAP, Stack, hang_chooser, rx, stall_chooser

Role = Literal["oops", "consequence", "quiet", "boundary"]


@dataclass(frozen=True)
class Fmt:
    title: re.Pattern[str]
    fmt: str
    report: re.Pattern[str] | None = None
    stack: Stack | None = None
    no_stack_trace: bool = False
    corrupted: bool = False


@dataclass(frozen=True)
class Group:
    name: str
    headers: tuple[str, ...]
    formats: tuple[Fmt, ...] = ()
    suppress: tuple[re.Pattern[str], ...] = ()
    role: Role = "oops"
    # Line must also match this (cheap way to tell report lines from boot chatter).
    require: re.Pattern[str] | None = None
    # Builder name for groups whose title is computed in code (see parser.py).
    custom: str | None = None
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)
    # Every format's title in one regex (None without formats): its leftmost match
    # is where the earliest title match starts, and ``lastgroup`` (``f<index>``)
    # names the first format, in table order, whose title matches there.
    titles: re.Pattern[str] | None = field(default=None, init=False, compare=False, hash=False)
    # Every suppression in one regex (None without suppressions).
    suppressed: re.Pattern[str] | None = field(default=None, init=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.suppress:
            # ("(?i)x" becomes "(?i:x)": a flag applies to its own alternative only)
            alts = (
                f"(?i:{p.pattern[4:]})" if p.pattern.startswith("(?i)") else f"(?:{p.pattern})"
                for p in self.suppress
            )
            object.__setattr__(self, "suppressed", re.compile("|".join(alts)))
        if self.formats:
            # (the marker group closes each branch, so that the branches still begin
            # with their literal text: the regex engine then factors out the prefix
            # they share and scans for it)
            branches = (f"(?:{f.title.pattern})(?P<f{k}>)" for k, f in enumerate(self.formats))
            object.__setattr__(self, "titles", re.compile("|".join(branches)))


def F(
    title: str,
    fmt: str,
    report: str | None = None,
    stack: Stack | None = None,
    *,
    no_stack: bool = False,
    corrupted: bool = False,
) -> Fmt:
    return Fmt(
        title=rx(title),
        fmt=fmt,
        report=rx(report) if report is not None else None,
        stack=stack,
        no_stack_trace=no_stack,
        corrupted=corrupted,
    )


def S(*steps: re.Pattern[str] | str | None, skip: tuple[str, ...] = (), chooser=None) -> Stack:
    compiled = tuple(rx(s) if isinstance(s, str) else s for s in steps)
    return Stack(steps=compiled, skip=skip, chooser=chooser)


def trace_stack(*skip: str, chooser=None) -> Stack:
    """Guilty frame = first useful frame after ``Call Trace:``."""
    return Stack(steps=(CALL_TRACE, TRACE), skip=skip, chooser=chooser)


def rip_stack(*skip: str, chooser=None) -> Stack:
    """Guilty frame = the faulting RIP, else the first useful frame of the trace."""
    return Stack(steps=(RIP, CALL_TRACE, TRACE), skip=skip, chooser=chooser)


_WARN_TRAP = WARN_TRAP


def warn_stack(*skip: str) -> Stack:
    """WARNINGs trap: the RIP line names the warning site; old kernels only have a trace."""
    return Stack(steps=(_WARN_TRAP, TRACE), fallback=(CALL_TRACE, TRACE), skip=skip)


# Lockdep reports name the lock acquisition site as "at: [<pc>] func+0x1/0x2".
_AT_FN = r"at: (?:<PC> +)?<FN>"
_LINES = r"(?:.*\n)+?"  # lazily skip whole lines

# Functions that put the caller to sleep: the culprit of "scheduling while atomic"
# is their caller (``schedule`` also matches schedule_timeout, io_schedule, ...).
SLEEP_HELPERS = (
    "schedule",
    "msleep",
    "usleep_range",
    "ssleep",
    "fsleep",
    "wait_for_common",
    "^wait_event",
    "^__wait_event",
    "^wait_on_bit",
    "^out_of_line_wait_on_bit",
    "do_nanosleep",
    "hrtimer_nanosleep",
    "cond_resched",
    "synchronize_(?:rcu|srcu|net)",
    "wait_rcu_gp",
    "rcu_barrier",
)

# ---------------------------------------------------------------------------
# "BUG:" family
# ---------------------------------------------------------------------------
_KASAN_SKIP = ("kernel_fault", "tag_check", "mem_abort", "^el1_", "^el1h_")
_KMSAN_ORIGIN = r"(?:Local variable .* created at:|Uninit was created at:)"

BUG = Group(
    "BUG",
    ("BUG:",),
    (
        F(
            "BUG: KASAN:",
            "KASAN: {0} {2} in {3}",
            r"BUG: KASAN: ([a-z\-]+) in <FN>.*\n"
            + r"(?:.*\n)*?.*(Read|Write) (?:of size|at addr) [0-9a-f]",
            S(r"BUG: KASAN: [a-z\-]+ in <FN>", CALL_TRACE, TRACE, skip=_KASAN_SKIP),
        ),
        F(
            "BUG: KASAN:",
            "KASAN: invalid-free in {1}",
            r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in <FN>",
            S(
                r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in <FN>",
                CALL_TRACE,
                TRACE,
                skip=("slab_", "kfree", "vunmap", "vfree"),
            ),
        ),
        F(
            r"BUG: KASAN: ([a-z\-]+) on address" + _LINES + r".*(Read|Write) of size (\d+)",
            "KASAN: {0} {1}",
        ),
        F(r"BUG: KASAN: (.*)", "KASAN: {0}", corrupted=True),
        F(
            "BUG: KMSAN: kernel-usb-infoleak",
            "KMSAN: kernel-usb-infoleak in {1}",
            r"BUG: KMSAN: kernel-usb-infoleak in <FN>",
            S(
                TRACE,
                _KMSAN_ORIGIN,
                TRACE,
                skip=(
                    "alloc_skb",
                    "usb_submit_urb",
                    "usb_start_wait_urb",
                    "usb_bulk_msg",
                    "usb_interrupt_msg",
                    "usb_control_msg",
                ),
            ),
            no_stack=True,
        ),
        F(
            "BUG: KMSAN:",
            "KMSAN: {0} in {2}",
            r"BUG: KMSAN: ([a-z\-]+) in <FN>",
            S(
                TRACE,
                _KMSAN_ORIGIN,
                TRACE,
                skip=(
                    "alloc_skb",
                    "netlink_ack",
                    "netlink_rcv_skb",
                    "_encrypt$",
                    "^(?:crypto|cipher|drbg|rng)_",
                ),
            ),
            no_stack=True,
        ),
        F("BUG: KCSAN:", "KCSAN: {0}", r"BUG: KCSAN: (.*)", no_stack=True),
        F(
            r"BUG: KFENCE: (use-after-free|out-of-bounds) (read|write) in <FN>",
            "KFENCE: {0} {1} in {3}",
            stack=S(r"BUG: KFENCE: [a-z\- ]+ in <FN>", TRACE),
        ),
        F(
            r"BUG: KFENCE: invalid free in <FN>",
            "KFENCE: invalid free in {1}",
            stack=S(r"BUG: KFENCE: [a-z\- ]+ in <FN>", TRACE),
            no_stack=True,
        ),
        F(
            r"BUG: KFENCE: invalid (read|write) in <FN>",
            "KFENCE: invalid {0} in {2}",
            stack=S(r"BUG: KFENCE: [a-z\- ]+ in <FN>", TRACE),
        ),
        F(
            r"BUG: KFENCE: memory corruption in <FN>",
            "KFENCE: memory corruption in {1}",
            stack=S(r"BUG: KFENCE: [a-z\- ]+ in <FN>", TRACE),
            no_stack=True,
        ),
        F(
            "BUG: (?:unable to handle kernel paging request|unable to handle page fault for address"
            "|Unable to handle kernel data access)",
            "BUG: unable to handle kernel paging request in {0}",
            stack=rip_stack(),
        ),
        F(
            "BUG: (?:unable to handle kernel NULL pointer dereference"
            "|kernel NULL pointer dereference|Kernel NULL pointer dereference)",
            "BUG: unable to handle kernel NULL pointer dereference in {0}",
            stack=rip_stack(),
        ),
        F(
            "BUG: (?:unable to handle kernel|Unable to handle kernel)",
            "BUG: unable to handle kernel",
            corrupted=True,
        ),
        F(
            "BUG: (spinlock|rwlock) (lockup suspected|already unlocked|recursion|cpu recursion"
            "|bad magic|wrong owner|wrong CPU|trylock failure on UP)",
            "BUG: {0} {1} in {2}",
            stack=trace_stack("spin_", "_lock", "_unlock"),
        ),
        F("BUG: soft lockup", "BUG: soft lockup in {0}", stack=rip_stack(chooser=stall_chooser)),
        F(
            r"BUG: .*still has locks held!",
            "BUG: still has locks held in {0}",
            r"BUG: .*still has locks held!" + _LINES + r".*<PC> +<FN>",
        ),
        F(
            "BUG: scheduling while atomic",
            "BUG: scheduling while atomic in {0}",
            stack=trace_stack(*SLEEP_HELPERS),
        ),
        F(
            "BUG: lock held when returning to user space",
            "BUG: lock held when returning to user space in {0}",
            "BUG: lock held when returning to user space"
            + _LINES
            + ".*leaving the kernel with locks still held"
            + _LINES
            + ".*"
            + _AT_FN,
            no_stack=True,
        ),
        F(
            "BUG: bad unlock balance detected!",
            "BUG: bad unlock balance in {0}",
            stack=S("<PC> +<FN>", CALL_TRACE, TRACE),
        ),
        F(
            "BUG: held lock freed!",
            "BUG: held lock freed in {0}",
            "BUG: held lock freed!" + _LINES + ".*<PC> +<FN>",
        ),
        F("BUG: Bad rss-counter state", "BUG: Bad rss-counter state", no_stack=True),
        F(
            "BUG: non-zero nr_ptes on freeing mm",
            "BUG: non-zero nr_ptes on freeing mm",
            no_stack=True,
        ),
        F(
            "BUG: non-zero nr_pmds on freeing mm",
            "BUG: non-zero nr_pmds on freeing mm",
            no_stack=True,
        ),
        F(
            "BUG: Dentry .* still in use",
            "BUG: Dentry still in use in {0}",
            r"BUG: Dentry .* still in use \(\d+\) \[(unmount) of ([^\]]+)\]",
        ),
        F(
            "BUG: Bad page (state|cache)",
            "BUG: Bad page {0} in {1}",
            stack=S(
                "page last allocated",
                TRACE,
                skip=(
                    "(free|put|get|update|release)_page",
                    "free_unref",
                    "^_*folio",
                    "truncate_inode_pages",
                    "page_frag_free",
                    "alloc",
                    "vmap",
                    "page_owner",
                ),
            ),
        ),
        F("BUG: Bad page map", "BUG: Bad page map"),
        F("BUG: workqueue lockup", "BUG: workqueue lockup", no_stack=True),
        F(
            "BUG: sleeping function called from invalid context at (.*)",
            "BUG: sleeping function called from invalid context in {1}",
            stack=trace_stack(),
        ),
        F(
            r"BUG: using ([a-z_]+)\(\) in preemptible",
            "BUG: using {0}() in preemptible code in {1}",
            stack=trace_stack(
                "dump_stack", "preemption", "preempt", "debug_", "processor_id", "this_cpu"
            ),
        ),
        F(
            "BUG: workqueue leaked lock or atomic",
            "BUG: workqueue leaked lock or atomic in {0}",
            "BUG: workqueue leaked lock or atomic" + _LINES + r".*last function: ([a-zA-Z0-9_]+)\n",
            no_stack=True,
        ),
        F(
            "BUG: memory leak",
            "memory leak in {0}",
            stack=S(
                r"backtrace(?: \(crc [0-9a-fA-F]*\))?:",
                TRACE,
                skip=(
                    "kmemleak",
                    "mmap",
                    "kmem",
                    "slab",
                    "alloc",
                    "create_object",
                    "idr_get",
                    "list_lru_init",
                    "kasprintf",
                    "kvasprintf",
                    "pcpu_create",
                    "strdup",
                    "strndup",
                    "memdup",
                ),
            ),
        ),
        F(
            "BUG: .*stack guard page was hit at",
            "BUG: stack guard page was hit in {0}",
            stack=rip_stack(chooser=stall_chooser),
        ),
        F(
            "BUG: Invalid wait context",
            "WARNING: locking bug in {0}",
            stack=trace_stack("lock_sock", "release_sock"),
        ),
        F(r"BUG:\s*(?:\n|$)", "BUG: corrupted", corrupted=True),
    ),
    suppress=(
        rx("ODEBUG:"),
        rx("Boot_DEBUG:"),
        rx("xlog_status:"),
        rx("DEBUG:"),
        rx("BUG: no syscalls can create resource"),
    ),
)

# ---------------------------------------------------------------------------
# "WARNING:" family
# ---------------------------------------------------------------------------
WARNING = Group(
    "WARNING",
    ("WARNING:",),
    (
        F(
            # (a kernel without the file in its WARNING line names the function)
            r"WARNING: .*(?:lib/debugobjects\.c.* (?:debug_print|debug_check|at)"
            r"| at debug_print_object\+)",
            "WARNING: ODEBUG bug in {0}",
            stack=warn_stack(
                "debug_",
                "rcu",
                "hrtimer_",
                "timer_",
                "work_",
                "percpu_",
                "vunmap",
                "vfree",
                "__free_",
                "debug_check",
                "kobject_",
                # a net_device freed with its timers or works still active:
                # the driver's call of free_netdev is the culprit
                "netdev_release",
                "device_release",
                "put_device",
                "free_netdev",
            ),
        ),
        F(
            # CONFIG_DEBUG_LIST's checks (a double add: a NAPI instance
            # scheduled while it is still on a poll list)
            r"WARNING: .*(?:lib/list_debug\.c.* (?:__list|at)"
            r"| at __list_(?:add|del_entry)_valid_or_report\+)",
            "BUG: corrupted list in {0}",
            stack=warn_stack("__list_", "list_add", "list_del", "__napi_schedule", "napi_schedule"),
        ),
        F(
            r"WARNING: .*(?:mm/usercopy\.c.* (?:usercopy_warn|at)| at usercopy_warn\+)",
            "WARNING: bad usercopy in {0}",
            stack=warn_stack("usercopy", "__check"),
        ),
        F(
            r"WARNING: .*(?:lib/kobject\.c.* (?:kobject_|at)| at kobject_\w+\+)",
            "WARNING: kobject bug in {0}",
            stack=warn_stack("kobject_"),
        ),
        F(
            r"WARNING: .*fs/proc/generic\.c.* (?:proc_register|at)",
            "WARNING: proc registration bug in {0}",
            stack=warn_stack("proc_"),
        ),
        F(
            r"WARNING: .*lib/refcount\.c.* (?:refcount_|at)",
            "WARNING: refcount bug in {0}",
            stack=warn_stack("refcount", "kobject_"),
        ),
        F(  # without DEBUG_BUGVERBOSE (no file:line): the warning site names it
            r"WARNING: .* at refcount_warn_saturate\+",
            "WARNING: refcount bug in {0}",
            stack=warn_stack("refcount", "kobject_"),
        ),
        F(
            r"WARNING: .*kernel/locking/lockdep\.c.*lock_",
            "WARNING: locking bug in {0}",
            stack=warn_stack("lock_sock", "release_sock"),
        ),
        F(
            "WARNING: .*still has locks held!",
            "WARNING: still has locks held in {0}",
            "WARNING: .*still has locks held!" + _LINES + ".*at: <FN>",
        ),
        F(
            "WARNING: Nested lock was not taken",
            "WARNING: nested lock was not taken in {0}",
            stack=warn_stack(),
        ),
        F(
            "WARNING: lock held when returning to user space",
            "WARNING: lock held when returning to user space in {0}",
            "WARNING: lock held when returning to user space"
            + _LINES
            + ".*leaving the kernel with locks still held"
            + _LINES
            + ".*"
            + _AT_FN,
            no_stack=True,
        ),
        F(
            r"WARNING: .*mm/.*\.c.* k?.?malloc",
            "WARNING: kmalloc bug in {0}",
            stack=warn_stack("kmalloc", "krealloc", "slab", "kmem"),
        ),
        F(
            r"WARNING: .*mm/vmalloc.c.*__vmalloc_node",
            "WARNING: zero-size vmalloc in {0}",
            stack=warn_stack(),
        ),
        F(
            "WARNING: .* usb_submit_urb",
            "WARNING in {0}/usb_submit_urb",
            stack=warn_stack(
                "usb_submit_urb",
                "usb_start_wait_urb",
                "usb_bulk_msg",
                "usb_interrupt_msg",
                "usb_control_msg",
            ),
        ),
        F(r"WARNING: <SRC> at 0x\d+, CPU#\d+", "WARNING in {1}", stack=warn_stack()),
        F("WARNING: .* at <SRC> <FN>", "WARNING in {2}", stack=warn_stack()),
        F("WARNING: <SRC> at <FN>", "WARNING in {2}", stack=warn_stack()),
        F(r"WARNING: \[.*\] <SRC> at <FN>.*", "WARNING in {2}", stack=warn_stack()),
        # without CONFIG_DEBUG_BUGVERBOSE the site has no file:line
        F(r"WARNING: CPU: \d+ PID: \d+ at <FN>", "WARNING in {0}", stack=warn_stack()),
        F(
            "WARNING: possible circular locking dependency detected",
            "possible deadlock in {0}",
            "WARNING: possible circular locking dependency detected"
            + _LINES
            + ".*is trying to acquire lock",
            S(
                _AT_FN,
                _AT_FN,
                TRACE,
                skip=(
                    "process_one_work",
                    "flush_workqueue",
                    "drain_workqueue",
                    "destroy_workqueue",
                ),
            ),
        ),
        F(
            "WARNING: possible irq lock inversion dependency detected",
            "possible deadlock in {0}",
            "WARNING: possible irq lock inversion dependency detected"
            + _LINES
            + ".*just changed the state of lock"
            + _LINES
            + ".*"
            + _AT_FN,
        ),
        F(
            "WARNING: .*-safe -> .*-unsafe lock order detected",
            "possible deadlock in {0}",
            stack=S("which became (?:.*) at:", TRACE),
        ),
        F(
            "WARNING: possible recursive locking detected",
            "possible deadlock in {0}",
            "WARNING: possible recursive locking detected"
            + _LINES
            + ".*is trying to acquire lock"
            + _LINES
            + ".*"
            + _AT_FN,
        ),
        F(
            "WARNING: inconsistent lock state",
            "inconsistent lock state in {1}",
            "WARNING: inconsistent lock state" + _LINES + ".*takes" + _LINES + ".*" + _AT_FN,
            trace_stack(),
        ),
        F(
            "WARNING: suspicious RCU usage",
            "WARNING: suspicious RCU usage in {1}",
            "WARNING: suspicious RCU usage" + _LINES + ".*?<SRC>",
            trace_stack("rcu", "kmem", "slab"),
        ),
        F(
            "WARNING: kernel stack regs at [0-9a-f]+ in [^ ]* has bad '([^']+)' value",
            "WARNING: kernel stack regs has bad '{0}' value",
            no_stack=True,
        ),
        F(
            "WARNING: kernel stack frame pointer at [0-9a-f]+ in [^ ]* has bad value",
            "WARNING: kernel stack frame pointer has bad value",
            no_stack=True,
        ),
        F(
            "WARNING: bad unlock balance detected!",
            "WARNING: bad unlock balance in {0}",
            stack=S("<PC> +<FN>", CALL_TRACE, TRACE),
        ),
        F(
            "WARNING: held lock freed!",
            "WARNING: held lock freed in {0}",
            "WARNING: held lock freed!" + _LINES + ".*at:(?: <PC>)? +<FN>",
        ),
        F(
            "WARNING: kernel stack regs .* has bad 'bp' value",
            "WARNING: kernel stack regs has bad value",
            no_stack=True,
        ),
        F(
            "WARNING: kernel stack frame pointer .* has bad value",
            "WARNING: kernel stack regs has bad value",
            no_stack=True,
        ),
        F(r"WARNING:\s*(?:\n|$)", "WARNING: corrupted", corrupted=True),
    ),
    suppress=(
        rx("WARNING: /etc/ssh/moduli does not exist, using fixed modulus"),
        rx("WARNING: workqueue cpumask: online intersect > possible intersect"),
        rx("WARNING: [Tt]he mand mount option"),
        rx(r"WARNING: Unsupported flag value\(s\) of 0x%x in DT_FLAGS_1"),
        rx("WARNING: Unprivileged eBPF is enabled with eIBRS"),
        rx(r"WARNING: fbcon: Driver '(.*)' missed to adjust virtual screen size"),
        rx("WARNING: See https.* for mitigation options."),
        rx("WARNING: kernel not compiled with CPU_SRSO"),
        rx(r"EXT4-[Ff][Ss](?: \(.*\))?:"),
        rx("(?i)warning: .* uses (deprecated v2 capabilities|wireless extensions)"),
        rx(r"XFS \(\w+\): WARNING"),
    ),
)

# ---------------------------------------------------------------------------
# "INFO:" family (old lockdep banners, stalls, hangs)
# ---------------------------------------------------------------------------
_OLD_AT = r".*at: <PC> +<FN>"
INFO = Group(
    "INFO",
    ("INFO:",),
    (
        F(
            "INFO: possible circular locking dependency detected",
            "possible deadlock in {0}",
            r"INFO: possible circular locking dependency detected \]"
            + _LINES
            + ".*is trying to acquire lock"
            + _LINES
            + _OLD_AT,
        ),
        F(
            "INFO: possible irq lock inversion dependency detected",
            "possible deadlock in {0}",
            r"INFO: possible irq lock inversion dependency detected \]"
            + _LINES
            + ".*just changed the state of lock"
            + _LINES
            + _OLD_AT,
        ),
        F(
            "INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected",
            "possible deadlock in {0}",
            r"INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected \]"
            + _LINES
            + ".*is trying to acquire"
            + _LINES
            + _OLD_AT,
        ),
        F(
            "INFO: possible recursive locking detected",
            "possible deadlock in {0}",
            r"INFO: possible recursive locking detected \]"
            + _LINES
            + ".*is trying to acquire lock"
            + _LINES
            + _OLD_AT,
        ),
        F(
            "INFO: inconsistent lock state",
            "inconsistent lock state in {0}",
            r"INFO: inconsistent lock state \]" + _LINES + ".*takes" + _LINES + _OLD_AT,
        ),
        F(
            "INFO: rcu_(?:preempt|sched|bh|tasks) (?:self-)?detected(?: expedited)? stall",
            "INFO: rcu detected stall in {0}",
            stack=Stack(
                steps=(rx("apic_timer_interrupt"), RIP, TRACE),
                fallback=(rx("(?:apic_timer_interrupt|Exception stack|el1h_64_irq)"), TRACE),
                skip=("apic_timer_interrupt", "rcu"),
                chooser=stall_chooser,
            ),
        ),
        F(
            "INFO: trying to register non-static key",
            "INFO: trying to register non-static key in {0}",
            stack=trace_stack("stack", "lock", "IRQ"),
        ),
        F(
            "INFO: suspicious RCU usage",
            "INFO: suspicious RCU usage in {1}",
            "INFO: suspicious RCU usage" + _LINES + ".*?<SRC>",
            trace_stack("rcu", "kmem", "slab"),
        ),
        F(
            "INFO: task <TASK> blocked (?:in I/O wait )?for more than [0-9]+ seconds",
            "INFO: task hung in {0}",
            stack=trace_stack(chooser=hang_chooser),
        ),
        F(
            "INFO: task <TASK> can't die for more than .* seconds",
            "INFO: task can't die in {0}",
            stack=trace_stack("schedule"),
        ),
        F("INFO: (Freed|Allocated) in (.*)", "INFO: {0} in {1}", corrupted=True),
        F(r"INFO:\s*(?:\n|$)", "INFO: corrupted", corrupted=True),
    ),
    suppress=(
        rx("INFO: lockdep is turned off"),
        rx("INFO: Stall ended before state dump start"),
        rx("INFO: NMI handler"),
        rx("INFO: recovery required on readonly filesystem"),
        rx("(handler|interrupt).*took too long"),
        rx("INFO: sys_.* is not present in /proc/kallsyms"),
        rx("INFO: no syscalls can create resource"),
        rx("rmt_storage:INFO:"),
        rx("_INFO:"),
    ),
)


def _simple(
    name: str, header: str, *formats: Fmt, role: Role = "oops", suppress: tuple[str, ...] = ()
) -> Group:
    return Group(name, (header,), formats, tuple(rx(s) for s in suppress), role)


GROUPS: tuple[Group, ...] = (
    BUG,
    WARNING,
    INFO,
    _simple(
        "UNABLE",
        "Unable to handle kernel",
        F(
            "Unable to handle kernel "
            "(paging request|NULL pointer dereference|access to user memory)",
            "BUG: unable to handle kernel {0} in {1}",
            stack=rip_stack(),
        ),
    ),
    _simple(
        "GPF",
        "general protection fault",
        F("general protection fault.*:", "general protection fault in {0}", stack=rip_stack()),
        suppress=(r"general protection fault .* error:\d+ in ",),
    ),
    _simple(
        "STACKSEG",
        "stack segment: ",
        F("stack segment: ", "stack segment fault in {0}", stack=rip_stack()),
    ),
    _simple(
        "PANIC",
        "Kernel panic",
        F(
            "Kernel panic - not syncing: stack-protector:",
            "kernel panic: stack is corrupted in {0}",
            "Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: <FN>",
            no_stack=True,
        ),
        F(
            "Kernel panic - not syncing: stack-protector:",
            "kernel panic: stack is corrupted in {0}",
            "Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: [a-f0-9]+",
            trace_stack("stack_chk"),
        ),
        F(
            "Kernel panic - not syncing: corrupted stack end",
            "kernel panic: corrupted stack end in {0}",
            "Kernel panic - not syncing: corrupted stack end detected inside scheduler",
            trace_stack("schedule", "retint_kernel", chooser=stall_chooser),
        ),
        F(
            "Kernel panic - not syncing: kernel stack overflow",
            "kernel stack overflow in {0}",
            stack=trace_stack("bad_stack", chooser=stall_chooser),
        ),
        F(
            "Kernel panic - not syncing: Attempted to kill init!",
            "kernel panic: Attempted to kill init!",
        ),
        F(
            "Kernel panic - not syncing: Couldn't open N_TTY ldisc for [^ ]+ --- error -[0-9]+",
            "kernel panic: Couldn't open N_TTY ldisc",
        ),
        F(
            "Kernel panic - not syncing: Fatal exception",
            "kernel panic: Fatal exception",
            corrupted=True,
        ),
        F(
            "Kernel panic - not syncing: panic_on_warn set",
            "kernel panic: panic_on_warn set",
            corrupted=True,
        ),
        F(
            "Kernel panic - not syncing: hung_task: blocked tasks",
            "kernel panic: hung_task: blocked tasks",
            corrupted=True,
        ),
        F("Kernel panic - not syncing: (.*)", "kernel panic: {0}"),
        role="consequence",
    ),
    _simple(
        "DOUBLEFAULT",
        "PANIC: double fault",
        F("PANIC: double fault", "PANIC: double fault in {0}", stack=S(RIP)),
        role="consequence",
    ),
    _simple(
        "RUST",
        "rust_kernel: panicked",
        F(
            "rust_kernel: panicked",
            "{0} in {1}",
            r"rust_kernel: panicked at [^\n]*?\n(.+?)\n",
            trace_stack(re.escape("__rustc::rust_begin_unwind")),
        ),
    ),
    _simple(
        "KBUG",
        "kernel BUG",
        F(
            "kernel BUG at mm/usercopy.c",
            "BUG: bad usercopy in {0}",
            stack=trace_stack("usercopy", "__check"),
        ),
        F("kernel BUG at lib/list_debug.c", "BUG: corrupted list in {0}", stack=trace_stack()),
        F("kernel BUG at (.*)", "kernel BUG in {1}", stack=rip_stack("^skb_")),
    ),
    _simple(
        "KBUG2",
        "Kernel BUG",
        # x86 without DEBUG_BUGVERBOSE: "Kernel BUG at func+0x5/0x10 [mod]
        # [verbose debug info unavailable]": the RIP names the function
        F(r"Kernel BUG at \S+\+0x.*\[verbose debug info unavailable\]", "kernel BUG in {0}",
          stack=rip_stack()),
        F("Kernel BUG (.*)", "kernel BUG {0}"),
    ),
    _simple(
        "SLUBFREE",
        "BUG kmalloc-",
        F("BUG kmalloc-.*: Object already free", "BUG: Object already free"),
    ),
    _simple("DIVIDE", "divide error:", F("divide error: ", "divide error in {0}", stack=S(RIP))),
    _simple("DIVIDE2", "divide_error:", F("divide_error: ", "divide error in {0}", stack=S(RIP))),
    _simple(
        "INVOP",
        "invalid opcode:",
        F("invalid opcode: ", "invalid opcode in {0}", stack=S(RIP)),
        role="consequence",
    ),
    _simple("INT3", "int3:", F("int3: ", "int3 in {0}", stack=rip_stack())),
    _simple(
        "UBSAN",
        "UBSAN:",
        F(
            "UBSAN:",
            "UBSAN: undefined-behaviour in {0}",
            "UBSAN: Undefined behaviour in",
            trace_stack("ubsan", "overflow"),
        ),
        F(
            "UBSAN: array-index-out-of-bounds in",
            "UBSAN: array-index-out-of-bounds in {0}",
            stack=trace_stack("ubsan", "overflow"),
        ),
        F("UBSAN:", "UBSAN: {0} in {1}", "UBSAN: (.*?) in", trace_stack("ubsan", "overflow")),
    ),
    Group(
        "REBOOT",
        ("Booting the kernel.",),
        (F("^Booting the kernel", "unexpected kernel reboot", no_stack=True),),
        (rx("Parsing ELF|Decompressing Linux|Unknown parameter '"),),
        custom="reboot",
    ),
    _simple(
        "UNREGISTER",
        "unregister_netdevice: waiting for",
        F(
            "unregister_netdevice: waiting for (?:.*) to become free",
            "unregister_netdevice: waiting for DEV to become free",
            no_stack=True,
        ),
        role="quiet",
    ),
    _simple(
        "VFSCLOSE",
        "VFS: Close: file count is 0",
        F(
            "VFS: Close: file count is 0",
            "VFS: Close: file count is zero (use-after-free)",
            no_stack=True,
        ),
    ),
    _simple(
        "VFSBUSY",
        "VFS: Busy inodes after unmount",
        F(
            "VFS: Busy inodes after unmount",
            "VFS: Busy inodes after unmount (use-after-free)",
            no_stack=True,
        ),
    ),
    _simple(
        "INTERNAL",
        "Internal error:",
        F("Internal error:", "Internal error in {0}", stack=rip_stack()),
        role="consequence",
    ),
    _simple(
        "UNHANDLED",
        "Unhandled fault:",
        F("Unhandled fault:", "Unhandled fault in {0}", stack=rip_stack()),
    ),
    _simple(
        "ALIGN", "Alignment trap:", F("Alignment trap:", "Alignment trap in {0}", stack=rip_stack())
    ),
    _simple(
        "TRUSTY",
        "trusty: panic",
        F(
            "trusty: panic.* ASSERT FAILED",
            "trusty: ASSERT FAILED: {0}",
            r"trusty: panic \(.*?\):(?: DEBUG)? ASSERT FAILED at \(.*?\): (.+)",
            no_stack=True,
        ),
        F("trusty: panic.* ASSERT FAILED.*: *(.*)", "trusty: ASSERT FAILED: {0}", corrupted=True),
        F("trusty: panic", "trusty: panic: {0}", r"trusty: panic \(.*?\): (.+)", no_stack=True),
    ),
    _simple(
        "GOFATAL",
        "fatal error:",
        F("fatal error:", "go runtime error", no_stack=True),
        suppress=("ALSA", "fatal error: cannot create timer"),
    ),
    _simple("SYZFAIL", "SYZFAIL:", F("SYZFAIL:(.*)", "SYZFAIL:{0}", no_stack=True)),
    _simple("SYZFATAL", "SYZFATAL:", F("SYZFATAL:(.*)", "SYZFATAL:{0}", no_stack=True)),
    _simple(
        "GOPANIC",
        "panic:",
        F(
            "panic: Sentry detected .* stuck task",
            "panic: Sentry detected stuck tasks",
            no_stack=True,
        ),
        F("panic:(.*)", "panic:{0}", no_stack=True),
        suppress=("_panic:", "xlog_status:", r"ddb\.onpanic:", "evtlog_status:"),
    ),
    # ---- NIC-oriented kinds (not in syzkaller) ---------------------------------
    Group(
        "DMA_API",
        ("DMA-API: ",),
        require=re.compile(r"DMA-API: \S+ \S+: "),
        role="quiet",
        custom="dma_api",
    ),
    Group(
        "NETDEV_WATCHDOG",
        ("NETDEV WATCHDOG: ",),
        require=re.compile(r"NETDEV WATCHDOG: .*transmit queue \d+ timed out"),
        role="quiet",
        custom="netdev_watchdog",
    ),
    Group(
        "REF_TRACKER",
        ("leaked reference.", "ref_tracker: "),
        require=re.compile(r"^leaked reference\.|ref_tracker: .* has \d+/\d+ users at"),
        role="quiet",
        custom="ref_tracker",
    ),
    Group(
        "DMAR",
        ("DMAR: [", "AMD-Vi: Event logged [", "IOMMU fault"),
        require=re.compile(
            r"DMAR: \[(?:DMA (?:Read|Write)|INTR-REMAP)|AMD-Vi: Event logged \[[A-Z_]*FAULT"
        ),
        role="quiet",
        custom="iommu",
    ),
    Group(
        "AER",
        ("AER: ", "PCIe Bus Error"),
        require=re.compile(
            r"[Ee]rror (?:message )?received|PCIe Bus Error:|device recovery (?:successful|failed)"
        ),
        role="quiet",
        custom="aer",
    ),
    Group(
        "LINK",
        ("Link is Up", "Link is Down", "Link is up", "Link is down", "link becomes ready"),
        role="quiet",
        custom="link",
    ),
    Group(
        "FAULT_INJECTION",
        ("FAULT_INJECTION: forcing a failure",),
        role="boundary",
        custom="fault_injection",
    ),
    Group(
        "STACK_INFO",
        ("vmalloc: allocation failure:", "FAULT_FLAG_ALLOW_RETRY missing"),
        role="boundary",
    ),
    Group("KMEMLEAK", ("unreferenced object 0x",), role="quiet", custom="kmemleak"),
    Group(
        "KMEMLEAK_SUMMARY", ("new suspected memory leaks",), role="quiet", custom="kmemleak_summary"
    ),
    Group("HARD_LOCKUP", ("Watchdog detected hard LOCKUP",), role="quiet", custom="hard_lockup"),
)

# Headers that only end the window of an earlier report but are reports themselves
# (the FAULT_INJECTION event) are "boundary" + custom.
IS_REPORT = {g.name: (g.role != "boundary" or g.custom is not None) for g in GROUPS}

# Within a report's window, these lines are left out or end the interesting part.
SKIP_LINE = "Disabling lock debugging due to kernel taint"
NMI_BACKTRACE = "Sending NMI from CPU"
TAIL_MARKERS = (
    "Kernel panic - not syncing",
    "WARNING: possible circular locking dependency detected",
)
