"""Kernel config fragments: parse, merge, and check what Kconfig kept (pure).

A fragment is a .config snippet: ``CONFIG_FOO=y``, ``CONFIG_BAR="text"``,
``CONFIG_BAZ=n`` or ``# CONFIG_BAZ is not set``. Fragments merge in order,
later values win. A line ``# ktest: optional`` marks the next option as
wanted where the kernel has it: Kconfig may drop it without an error.
After ``olddefconfig`` the final .config is compared with what the
fragments asked for: an option that Kconfig silently dropped (an unmet
dependency) is reported with the dependency that failed, found by a small
reader of the Kconfig tree (:class:`KconfigTree`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

_SET_RE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET_RE = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")
OPTIONAL_MARK = "# ktest: optional"


class FragmentError(ValueError):
    """A fragment line that is neither an assignment, a comment nor blank."""


@dataclass(frozen=True)
class Option:
    name: str  # without the CONFIG_ prefix
    value: str  # "y", "m", "n", a number or a quoted string
    origin: str  # "file:line" of the fragment line that set it
    optional: bool = False  # may be dropped (marked "# ktest: optional")


def parse_fragment(text: str, origin: str = "<fragment>") -> dict[str, Option]:
    """Parse one fragment; raise FragmentError naming the bad line."""
    out: dict[str, Option] = {}
    optional = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = f"{origin}:{lineno}"
        m = _SET_RE.match(line)
        if m:
            name, value = m.group(1)[len("CONFIG_") :], m.group(2).strip()
            if value == "":
                raise FragmentError(f"{where}: empty value for {m.group(1)}")
            out[name] = Option(name, value, where, optional)
            optional = False
            continue
        m = _UNSET_RE.match(line)
        if m:
            name = m.group(1)[len("CONFIG_") :]
            out[name] = Option(name, "n", where, optional)
            optional = False
            continue
        if line == OPTIONAL_MARK:
            optional = True
            continue
        if not line or line.startswith("#"):
            continue
        raise FragmentError(f"{where}: not a config line: {raw.strip()!r}")
    return out


def merge(fragments: Iterable[tuple[str, str]]) -> dict[str, Option]:
    """Merge (origin, text) fragments in order; later assignments win."""
    merged: dict[str, Option] = {}
    for origin, text in fragments:
        merged.update(parse_fragment(text, origin))
    return merged


def render(options: Mapping[str, Option]) -> str:
    """The merged fragment as .config text (input for KCONFIG_ALLCONFIG)."""
    lines = []
    for opt in options.values():
        if opt.value == "n":
            lines.append(f"# CONFIG_{opt.name} is not set")
        else:
            lines.append(f"CONFIG_{opt.name}={opt.value}")
    return "\n".join(lines) + "\n"


def read_dotconfig(text: str) -> dict[str, str]:
    """Values of a final .config; options that are not set map to "n"."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        m = _SET_RE.match(line.strip())
        if m:
            values[m.group(1)[len("CONFIG_") :]] = m.group(2)
            continue
        m = _UNSET_RE.match(line.strip())
        if m:
            values[m.group(1)[len("CONFIG_") :]] = "n"
    return values


@dataclass(frozen=True)
class Dropped:
    """An option whose final value differs from what a fragment asked."""

    option: Option
    got: str
    reasons: tuple[str, ...] = ()

    def message(self) -> str:
        why = "; ".join(self.reasons) if self.reasons else "no unmet dependency found"
        return (
            f"CONFIG_{self.option.name}={self.option.value} ({self.option.origin}) "
            f"ended up {self.got}: {why}"
        )


def dropped_options(requested: Mapping[str, Option], final: Mapping[str, str]) -> list[Dropped]:
    """Options the fragments asked for that the final .config does not have
    (optional ones are not counted)."""
    out = []
    for name, opt in requested.items():
        got = final.get(name, "n")
        if _norm(got) != _norm(opt.value) and not opt.optional:
            out.append(Dropped(opt, got))
    return out


def _norm(value: str) -> str:
    value = value.strip()
    if value.startswith('"') and value.endswith('"'):
        return value[1:-1]
    if value.lower().startswith("0x"):
        try:
            return str(int(value, 16))
        except ValueError:
            return value
    return value


# --- explaining a dropped option: a small reader of the Kconfig language ---

_TRI = {"n": 0, "m": 1, "y": 2}


@dataclass
class SymbolDeps:
    """Where a symbol is defined and the conditions guarding each definition."""

    locations: list[str] = field(default_factory=list)
    # One list per definition: every condition (enclosing if/menu/choice, its
    # own `depends on`) that must hold for the symbol to be settable.
    conditions: list[list[str]] = field(default_factory=list)


class KconfigTree:
    """Reads `config`, `depends on`, `if`, `menu` and `choice` structure.

    This is not a full Kconfig implementation: it only collects, for each
    symbol, the dependency expressions that guard its definitions, which is
    what an error message needs. `select`, `imply` and defaults are ignored.
    """

    def __init__(self, srctree: Path, arch: str = "x86") -> None:
        self.srctree = srctree
        self.arch = arch
        self.symbols: dict[str, SymbolDeps] = {}
        self._parse(Path("Kconfig"), [])

    def _parse(self, rel: Path, outer: list[str]) -> None:
        path = self.srctree / rel
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            return
        stack: list[tuple[str, str | None]] = []  # (kind, condition)
        current: list[str] | None = None  # conditions list of the open config
        pending_block: tuple[str, int] | None = None  # menu/choice awaiting depends
        i = 0
        while i < len(lines):
            line = lines[i]
            while line.endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line[:-1] + " " + lines[i]
            i += 1
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            word = s.split(None, 1)[0]
            rest = s[len(word) :].strip()
            if word in ("help", "---help---"):
                i = _skip_help(lines, i)
                continue
            if word in ("config", "menuconfig"):
                conds = [*outer, *(c for _, c in stack if c)]
                deps = self.symbols.setdefault(rest, SymbolDeps())
                deps.locations.append(f"{rel}:{i}")
                deps.conditions.append(conds)
                current, pending_block = conds, None
            elif word == "depends" and rest.startswith("on"):
                expr = rest[2:].strip()
                if current is not None:
                    current.append(expr)
                elif pending_block is not None:
                    kind, idx = pending_block
                    old = stack[idx][1]
                    stack[idx] = (kind, f"({old}) && ({expr})" if old else expr)
            elif word in ("bool", "tristate", "prompt", "string", "int", "hex") and " if " in s:
                if current is not None:
                    current.append(s.rsplit(" if ", 1)[1].strip())
            elif word == "if":
                stack.append(("if", rest))
                current, pending_block = None, None
            elif word in ("menu", "choice"):
                stack.append((word, None))
                current, pending_block = None, (word, len(stack) - 1)
            elif word in ("endif", "endmenu", "endchoice"):
                if stack:
                    stack.pop()
                current, pending_block = None, None
            elif word in ("source", "rsource", "osource", "orsource"):
                target = rest.strip('"').replace("$(SRCARCH)", self.arch)
                target = target.replace("$SRCARCH", self.arch)
                base = rel.parent if word.startswith(("r", "or")) else Path()
                conds = [*outer, *(c for _, c in stack if c)]
                sub = base / target
                if "*" in target:
                    for match in sorted(self.srctree.glob(str(sub))):
                        self._parse(match.relative_to(self.srctree), conds)
                else:
                    self._parse(sub, conds)
                current = None
            elif word in ("comment", "mainmenu", "endchoice"):
                current = None

    def explain(self, name: str, final: Mapping[str, str]) -> tuple[str, ...]:
        """Unmet dependencies of `name` under the final config, as text."""
        deps = self.symbols.get(name)
        if deps is None:
            return (f"no such symbol in {self.srctree.name}'s Kconfig",)
        out: list[str] = []
        for loc, conds in zip(deps.locations, deps.conditions, strict=True):
            unmet = [c for c in conds if evaluate(c, final) == 0]
            if not unmet:
                continue
            parts = []
            for c in unmet:
                terms = ", ".join(_failing_terms(c, final))
                parts.append(f"depends on {c}" + (f" ({terms})" if terms else ""))
            out.append(f"{'; '.join(parts)} [{loc}]")
        if not out:
            out.append("its dependencies are met: a choice, a select or a range overrides it")
        return tuple(out)


def _indent(line: str) -> int:
    return len(line.expandtabs(8)) - len(line.expandtabs(8).lstrip())


def _skip_help(lines: list[str], i: int) -> int:
    """Index of the first line after the help text starting at lines[i]."""
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines):
        return i
    width = _indent(lines[i])
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) >= width):
        i += 1
    return i


_TOKEN = re.compile(r'\s*(\|\||&&|!=|<=|>=|[()!=<>]|"[^"]*"|[A-Za-z0-9_$.-]+)')


def _tokens(expr: str) -> list[str]:
    pos, toks = 0, []
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            break
        toks.append(m.group(1))
        pos = m.end()
    return toks


def evaluate(expr: str, final: Mapping[str, str]) -> int:
    """Tristate value (0, 1, 2) of a Kconfig expression under `final`."""
    toks = _tokens(expr)
    pos = 0

    def value(tok: str) -> str:
        if tok.startswith('"'):
            return tok.strip('"')
        if tok in _TRI:
            return tok
        if re.fullmatch(r"-?[0-9]+|0x[0-9a-fA-F]+", tok):
            return tok
        return final.get(tok, "n")

    def primary() -> int:
        nonlocal pos
        if pos >= len(toks):
            return 0
        tok = toks[pos]
        pos += 1
        if tok == "!":
            return 2 - primary()
        if tok == "(":
            v = disj()
            if pos < len(toks) and toks[pos] == ")":
                pos += 1
            return v
        if pos < len(toks) and toks[pos] in ("=", "!=", "<", ">", "<=", ">="):
            op = toks[pos]
            rhs = toks[pos + 1] if pos + 1 < len(toks) else ""
            pos += 2
            a, b = value(tok), value(rhs)
            res = {"=": a == b, "!=": a != b}.get(op)
            if res is None:
                try:
                    ia, ib = int(a, 0), int(b, 0)
                except ValueError:
                    return 0
                res = {"<": ia < ib, ">": ia > ib, "<=": ia <= ib, ">=": ia >= ib}[op]
            return 2 if res else 0
        return _TRI.get(value(tok), 0)

    def conj() -> int:
        nonlocal pos
        v = primary()
        while pos < len(toks) and toks[pos] == "&&":
            pos += 1
            v = min(v, primary())
        return v

    def disj() -> int:
        nonlocal pos
        v = conj()
        while pos < len(toks) and toks[pos] == "||":
            pos += 1
            v = max(v, conj())
        return v

    return disj()


def _failing_terms(expr: str, final: Mapping[str, str]) -> list[str]:
    """The plain symbols of `expr` with their values, for the message."""
    names = []
    for tok in _tokens(expr):
        if re.fullmatch(r"[A-Z][A-Z0-9_]*", tok) and tok not in names:
            names.append(tok)
    return [f"{n}={final.get(n, 'n')}" for n in names]
