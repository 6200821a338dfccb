"""Title normalisation, frame canonicalisation and title -> kind classification."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from .lines import ascii_digits
from .model import Kind, Severity

MAX_TITLE = 120

# (pattern, replacement) applied in order, each until the string stops changing.
# They remove everything that differs between two occurrences of the same bug.
_VOLATILE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(ascii_digits(r"syz-executor\.?\d+(?:[/:]\d+)?")), "syz-executor"),
    (re.compile(ascii_digits(r"syzkaller\d+(?:[/:]\d+)?")), "syzkaller"),
    # Anything that looks like an address: 6+ hex digits after a non-alnum, as a
    # whole token (so that identifiers such as "e1000e_down" survive), with 0x or
    # at least 8 digits when it could also be a name ("e1000e").
    (
        re.compile(
            ascii_digits(r"([^a-zA-Z0-9])(?:0x[0-9a-f]{6,}|[0-9a-f]{8,}|[0-9]{6,})(?![A-Za-z0-9_])")
        ),
        r"\1ADDR",
    ),
    (re.compile(ascii_digits(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")), "IP"),
    # file.c:123 -> file.c:LINE
    (re.compile(ascii_digits(r"(\.\w+)(?::\d+)+")), r"\1:LINE"),
    # func+0x12/0x40 -> func
    (re.compile(ascii_digits(r"([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+")), r"\1"),
    (re.compile(ascii_digits(r"CPU#\d+")), "CPU"),
    # Stand-alone decimal numbers.
    (re.compile(ascii_digits(r"(\W)\d+(\W|$)")), r"\1NUM\2"),
    # Very long digit runs glued to identifiers.
    (re.compile(ascii_digits(r"\d{7,}")), "NUM"),
)


# Cheap preconditions: a replacement cannot apply when its marker is absent.
# (_DIGIT: the pattern needs a decimal digit.)
_DIGIT = "0-9"
_HEX = "0-9a-f"  # (the address pattern)
_HEX8 = re.compile(r"[a-f]{8}")
_NEEDS = ("syz-executor", "syzkaller", _HEX, _DIGIT, ":", "+0x", "CPU#", _DIGIT, _DIGIT)
_HAS_DIGIT = re.compile("[0-9]")


def normalize_title(title: str) -> str:
    """Replace volatile parts (addresses, numbers, pids, ...) and sanitise."""
    if _HAS_DIGIT.search(title) is None:
        # Every pattern needs a decimal digit but the address one, and no
        # replacement brings one in: only a run of 8+ letters a-f can change.
        if _HEX8.search(title) is not None:
            title = _replace_all(*_VOLATILE[_NEEDS.index(_HEX)], title)
        return sanitize_title(title)
    for (pattern, repl), needle in zip(_VOLATILE, _NEEDS, strict=True):
        if needle is not _DIGIT and needle is not _HEX and needle not in title:
            continue
        title = _replace_all(pattern, repl, title)
    return sanitize_title(title)


def _replace_all(pattern: re.Pattern[str], repl: str, title: str) -> str:
    """``pattern`` replaced until the title stops changing."""
    while True:
        title, n = pattern.subn(repl, title)
        if not n:
            return title


_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
_SPACES = re.compile(r" {2,}")


def sanitize_title(title: str) -> str:
    """Cut to MAX_TITLE characters, drop control and non-ASCII characters,
    squeeze blanks."""
    title = title[:MAX_TITLE].replace("\t", " ")
    if not (title.isascii() and title.isprintable()):
        title = _UNPRINTABLE.sub("", title)
    if "  " in title:
        title = _SPACES.sub(" ", title)
    return title.strip()


# Syscall entry points are named differently per architecture and kernel version;
# a frame is canonicalised by the single removal giving the shortest name.
SYSCALL_PREFIXES: tuple[str, ...] = (
    "SYSC_",
    "SyS_",
    "sys_",
    "__x64_",
    "__ia32_",
    "__arm64_",
    "____sys_",
    "___sys_",
    "__sys_",
    "__se_",
    "__se_sys_",
    "__do_sys_",
    "compat_SYSC_",
    "compat_SyS_",
    "ksys_",
)


_CXX_NAME = re.compile(r"_Z(?:L)?(\d+)")
_RUST_LEGACY = re.compile(r"_ZN((?:\d+[^\W\d]\w*?)+)17h[0-9a-f]{16}E")
_LEGACY_PART = re.compile(r"(\d+)")


def demangle(name: str) -> str:
    """Readable name of a mangled function symbol, the form syzkaller titles use:

    * Rust v0 (``_RNv...``) as rustc-demangle prints it without hashes
      (``<ktest_rnic::Ring>::refill``, ``<a::B as c::D>::f``, ``core::panicking::panic_fmt``);
    * Rust legacy (``_ZN10ktest_rnic4Ring6refill17h...E``) -> ``ktest_rnic::Ring::refill``;
    * a plain Itanium C++ function (``_Z8fakeNameiii``) -> ``fakeName``.

    Other names, and symbols this subset cannot read, are returned unchanged."""
    if name.startswith("_R"):
        return _V0(name).demangle() or name
    m = _RUST_LEGACY.fullmatch(name)
    if m is not None:
        return _legacy_path(m.group(1)) or name
    m = _CXX_NAME.match(name)
    if m is None:
        return name
    n = int(m.group(1))
    ident = name[m.end() : m.end() + n]
    return ident if len(ident) == n and n > 0 else name


def _legacy_path(body: str) -> str | None:
    parts, i = [], 0
    while i < len(body):
        m = _LEGACY_PART.match(body, i)
        if m is None:
            return None
        n, i = int(m.group(1)), m.end()
        if n == 0 or i + n > len(body):
            return None
        parts.append(body[i : i + n].replace("$LT$", "<").replace("$GT$", ">"))
        i += n
    return "::".join(parts)


class _Bad(Exception):
    """Not a symbol of the supported v0 subset."""


# v0 basic types (https://doc.rust-lang.org/rustc/symbol-mangling/v0.html)
_V0_BASIC = {
    "a": "i8", "b": "bool", "c": "char", "d": "f64", "e": "str", "f": "f32", "h": "u8",
    "i": "isize", "j": "usize", "l": "i32", "m": "u32", "n": "i128", "o": "u128",
    "p": "_", "s": "i16", "t": "u16", "u": "()", "v": "...", "x": "i64", "y": "u64",
    "z": "!",
}  # fmt: skip
_V0_BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class _V0:
    """A small reader of Rust v0 symbol names: paths (crate roots, nested names,
    inherent and trait impls, generic arguments, back references) and the types
    that appear in impl paths. Generic arguments are printed as rustc-demangle
    does in its ``{:#}`` form; closures as ``{closure#N}``."""

    def __init__(self, sym: str) -> None:
        self.s = sym[2:]  # back references count from after "_R"
        self.i = 0
        self.depth = 0

    def demangle(self) -> str | None:
        try:
            if self.s[:1].isdigit():  # encoding version
                raise _Bad
            out = self.path()
            # an optional instantiating crate may follow; anything else is foreign
            if self.i < len(self.s) and self.peek() != "C":
                raise _Bad
            return out
        except (_Bad, IndexError, RecursionError):
            return None

    def peek(self) -> str:
        return self.s[self.i]

    def next(self) -> str:
        c = self.s[self.i]
        self.i += 1
        return c

    def eat(self, c: str) -> bool:
        if self.i < len(self.s) and self.s[self.i] == c:
            self.i += 1
            return True
        return False

    def base62(self) -> int:
        if self.eat("_"):
            return 0
        n = 0
        while not self.eat("_"):
            k = _V0_BASE62.find(self.next())
            if k < 0:
                raise _Bad
            n = n * 62 + k
        return n + 1

    def disambiguator(self) -> None:
        if self.eat("s"):
            self.base62()

    def ident(self) -> str:
        self.disambiguator()
        if self.eat("u"):
            raise _Bad  # punycode identifiers: not needed for kernel symbols
        start = self.i
        while self.peek().isdigit():
            self.i += 1
        if start == self.i:
            raise _Bad
        n = int(self.s[start : self.i])
        self.eat("_")
        text = self.s[self.i : self.i + n]
        if len(text) != n:
            raise _Bad
        self.i += n
        return text

    def backref(self, read: Callable[[], str]) -> str:
        at = self.base62()
        if at >= self.i or self.depth > 40:
            raise _Bad
        saved = self.i
        self.i = at
        self.depth += 1
        try:
            return read()
        finally:
            self.depth -= 1
            self.i = saved

    def path(self) -> str:
        tag = self.next()
        if tag == "C":
            return self.ident()
        if tag == "N":
            ns = self.next()
            parent = self.path()
            name = self.ident()
            if ns == "C":
                return f"{parent}::{{closure#{0}}}"
            if ns == "S":
                return f"{parent}::{{shim:{name}#0}}"
            return f"{parent}::{name}" if name else parent
        if tag == "M":
            self.disambiguator()
            self.path()  # the impl's own path (crate/module): not printed
            return f"<{self.type_()}>"
        if tag == "X":
            self.disambiguator()
            self.path()
            return f"<{self.type_()} as {self.path()}>"
        if tag == "Y":
            return f"<{self.type_()} as {self.path()}>"
        if tag == "I":
            base = self.path()
            args = []
            while not self.eat("E"):
                args.append(self.generic_arg())
            return f"{base}::<{', '.join(args)}>"
        if tag == "B":
            return self.backref(self.path)
        raise _Bad

    def generic_arg(self) -> str:
        if self.eat("L"):
            self.base62()  # lifetime
            return "'_"
        if self.eat("K"):
            return self.const()
        return self.type_()

    def const(self) -> str:
        if self.eat("p"):
            return "_"
        if self.eat("B"):
            return self.backref(self.const)
        self.next()  # the const's type
        neg = self.eat("n")
        digits = ""
        while not self.eat("_"):
            digits += self.next()
        return ("-" if neg else "") + str(int(digits or "0", 16))

    def type_(self) -> str:
        c = self.peek()
        if c in _V0_BASIC:
            self.i += 1
            return _V0_BASIC[c]
        if c in "CNMXYI":
            return self.path()
        self.i += 1
        if c == "B":
            return self.backref(self.type_)
        if c in "RQ":
            if self.eat("L"):
                self.base62()
            return ("&" if c == "R" else "&mut ") + self.type_()
        if c in "PO":
            return ("*const " if c == "P" else "*mut ") + self.type_()
        if c == "S":
            return f"[{self.type_()}]"
        if c == "A":
            t = self.type_()
            return f"[{t}; {self.const()}]"
        if c == "T":
            items = []
            while not self.eat("E"):
                items.append(self.type_())
            return "(" + ", ".join(items) + (",)" if len(items) == 1 else ")")
        raise _Bad


@lru_cache(maxsize=65536)
def canonical_frame(name: str) -> str:
    name = demangle(name)
    best = name
    for prefix in SYSCALL_PREFIXES:
        if name.startswith(prefix) and len(name) - len(prefix) < len(best):
            best = name[len(prefix) :]
    return best


# Ordered: the first matching prefix decides.
_KIND_BY_PREFIX: tuple[tuple[str, Kind], ...] = (
    ("KASAN:", Kind.KASAN),
    ("KFENCE:", Kind.KFENCE),
    ("KMSAN:", Kind.KMSAN),
    ("KCSAN:", Kind.KCSAN),
    ("UBSAN:", Kind.UBSAN),
    ("INFO: Freed in", Kind.KASAN),
    ("INFO: Allocated in", Kind.KASAN),
    ("BUG: Object already free", Kind.KASAN),
    ("possible deadlock", Kind.LOCKDEP),
    ("inconsistent lock state", Kind.LOCKDEP),
    ("WARNING: locking bug", Kind.LOCKDEP),
    ("WARNING: bad unlock balance", Kind.LOCKDEP),
    ("BUG: bad unlock balance", Kind.LOCKDEP),
    ("WARNING: held lock freed", Kind.LOCKDEP),
    ("BUG: held lock freed", Kind.LOCKDEP),
    ("WARNING: still has locks held", Kind.LOCKDEP),
    ("BUG: still has locks held", Kind.LOCKDEP),
    ("WARNING: nested lock was not taken", Kind.LOCKDEP),
    ("WARNING: lock held when returning", Kind.LOCKDEP),
    ("BUG: lock held when returning", Kind.LOCKDEP),
    ("INFO: trying to register non-static key", Kind.LOCKDEP),
    ("INFO: suspicious RCU usage", Kind.LOCKDEP),
    ("WARNING: suspicious RCU usage", Kind.LOCKDEP),
    ("BUG: MAX_", Kind.LOCKDEP),
    ("BUG: spinlock", Kind.LOCKDEP),
    ("BUG: rwlock", Kind.LOCKDEP),
    ("BUG: workqueue leaked lock", Kind.LOCKDEP),
    ("BUG: sleeping function called from invalid context", Kind.SLEEP_IN_ATOMIC),
    ("BUG: scheduling while atomic", Kind.SLEEP_IN_ATOMIC),
    ("WARNING: refcount bug", Kind.REFCOUNT),
    ("DMA-API:", Kind.DMA_API),
    ("NETDEV WATCHDOG:", Kind.NETDEV_WATCHDOG),
    ("unregister_netdevice:", Kind.UNREGISTER_NETDEVICE),
    ("ref_tracker:", Kind.UNREGISTER_NETDEVICE),
    ("WARNING", Kind.WARNING),
    ("general protection fault", Kind.GPF),
    ("BUG: unable to handle kernel NULL pointer dereference", Kind.NULL_DEREF),
    ("BUG: unable to handle kernel", Kind.PAGING_FAULT),
    ("Unhandled fault", Kind.PAGING_FAULT),
    ("Internal error", Kind.PAGING_FAULT),
    ("divide error", Kind.TRAP),
    ("invalid opcode", Kind.TRAP),
    ("int3", Kind.TRAP),
    ("stack segment fault", Kind.TRAP),
    ("Alignment trap", Kind.TRAP),
    ("INFO: task hung", Kind.HUNG_TASK),
    ("INFO: task can't die", Kind.HUNG_TASK),
    ("INFO: rcu detected stall", Kind.RCU_STALL),
    ("BUG: soft lockup", Kind.SOFT_LOCKUP),
    ("BUG: hard lockup", Kind.HARD_LOCKUP),
    ("BUG: workqueue lockup", Kind.WQ_LOCKUP),
    ("memory leak", Kind.MEMORY_LEAK),
    ("DMAR:", Kind.IOMMU_FAULT),
    ("AMD-Vi:", Kind.IOMMU_FAULT),
    ("IOMMU", Kind.IOMMU_FAULT),
    ("AER:", Kind.AER),
    ("NIC Link is", Kind.LINK_CHANGE),
    ("link ", Kind.LINK_CHANGE),
    ("FAULT_INJECTION", Kind.FAULT_INJECTION),
    ("kernel panic", Kind.PANIC),
    ("PANIC:", Kind.PANIC),
    ("kernel stack overflow", Kind.PANIC),
    ("kernel BUG", Kind.BUG),
    ("BUG:", Kind.BUG),
    ("INFO:", Kind.INFO),
    ("unexpected kernel reboot", Kind.REBOOT),
    ("SYZFAIL", Kind.HARNESS),
    ("SYZFATAL", Kind.HARNESS),
    ("panic:", Kind.HARNESS),
    ("go runtime error", Kind.HARNESS),
)


# The prefixes by first character (table order kept).
_KIND_BY_FIRST: dict[str, list[tuple[str, Kind]]] = {}
for _p, _k in _KIND_BY_PREFIX:
    _KIND_BY_FIRST.setdefault(_p[:1], []).append((_p, _k))


def kind_of(title: str) -> Kind:
    for prefix, kind in _KIND_BY_FIRST.get(title[:1], ()):
        if title.startswith(prefix):
            return kind
    return Kind.OTHER


_EVENT_KINDS = frozenset({Kind.LINK_CHANGE, Kind.FAULT_INJECTION})


def severity_of(kind: Kind, title: str) -> Severity:
    if kind in _EVENT_KINDS:
        return "event"
    if kind is Kind.AER and title in ("AER: recovery successful", "AER: corrected error"):
        return "event"
    if kind is Kind.AER and title.startswith("AER: corrected error"):
        return "event"
    return "bug"
