"""Reading ktest's YAML files (profiles, plans, driver declarations) with
errors that name the file, the line and the key (pure).

:func:`load` parses YAML into plain dicts and lists that remember the line
of each key and item; :class:`Reader` gives typed access to one mapping and
raises :class:`ConfigError` with ``path:line: key: what was wrong``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A YAML file that cannot be used; the message names file, line and key."""


class LineDict(dict[Any, Any]):
    """A mapping that knows the line of itself and of each key (1-based)."""

    line = 0
    lines: dict[Any, int]


class LineList(list[Any]):
    line = 0
    lines: list[int]


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.lines = {}
    for knode, vnode in node.value:
        key = loader.construct_object(knode, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "found an unhashable key", knode.start_mark) from None
        out[key] = loader.construct_object(vnode, deep=True)
        out.lines[key] = knode.start_mark.line + 1
    return out


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(n, deep=True) for n in node.value)
    out.line = node.start_mark.line + 1
    out.lines = [n.start_mark.line + 1 for n in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def loads(text: str, where: str) -> Any:
    """Parse YAML text; malformed YAML raises ConfigError with its line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}{line}: malformed YAML: {problem}") from None


def load(path: Path, what: str = "file") -> tuple[Any, str]:
    """(data, text) of a YAML file; a missing or unreadable file or bad YAML
    raises ConfigError."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    return loads(text, str(path)), text


def describe(value: Any) -> str:
    """A YAML value's type in words, for messages."""
    for typ, words in ((bool, "true/false"), (dict, "a mapping"), (list, "a list"),
                       (str, "a string"), (int, "a number"), (float, "a number")):
        if isinstance(value, typ):
            return words
    return "nothing" if value is None else type(value).__name__


def line_of(container: Any, key: Any = None) -> int:
    """The line of `key` in `container` (or of the container), 0 if unknown."""
    if key is not None:
        lines = getattr(container, "lines", None)
        if isinstance(lines, dict) and key in lines:
            return int(lines[key])
        if isinstance(lines, list) and isinstance(key, int) and key < len(lines):
            return int(lines[key])
    return int(getattr(container, "line", 0))


class Reader:
    """Typed access to one mapping, naming file, line and key in errors.
    Call :meth:`finish` last: a key nobody asked for is an error."""

    def __init__(self, data: Any, where: str, key: str = "", line: int = 0) -> None:
        self.where = where
        self.key = key
        line = line or line_of(data)
        if not isinstance(data, dict):
            raise ConfigError(f"{self._at(line)}: {key or 'top level'}: expected a mapping, "
                              f"got {describe(data)}")
        self.data = data
        self.used: set[str] = set()

    def _at(self, line: int) -> str:
        return f"{self.where}:{line}" if line else self.where

    def _name(self, k: str) -> str:
        return f"{self.key}.{k}" if self.key else k

    def error(self, k: str, message: str) -> ConfigError:
        """A ConfigError for key `k` of this mapping (at its line)."""
        line = line_of(self.data, k) or line_of(self.data)
        return ConfigError(f"{self._at(line)}: {self._name(k)}: {message}")

    def has(self, k: str) -> bool:
        return k in self.data and self.data[k] is not None

    def get(self, k: str, typ: type | tuple[type, ...], default: Any, what: str) -> Any:
        self.used.add(k)
        if k not in self.data or self.data[k] is None:
            return default
        v = self.data[k]
        types = typ if isinstance(typ, tuple) else (typ,)
        if (isinstance(v, bool) and bool not in types) or not isinstance(v, types):
            raise self.error(k, f"expected {what}, got {v!r}")
        return v

    def required(self, k: str, typ: type | tuple[type, ...], what: str) -> Any:
        v = self.get(k, typ, None, what)
        if v is None:
            raise ConfigError(f"{self._at(line_of(self.data))}: {self._name(k)}: missing "
                              f"({what})")
        return v

    def choice(self, k: str, choices: Sequence[str], default: str) -> str:
        v = self.get(k, (str, bool), default, "one of " + "/".join(choices))
        if v is False:
            v = "off"
        if v not in choices:
            raise self.error(k, f"expected one of {', '.join(choices)}, got {v!r}")
        return str(v)

    def strings(self, k: str) -> tuple[str, ...]:
        v = self.get(k, (list, str), [], "a list of strings")
        items = v.split() if isinstance(v, str) else v
        for item in items:
            if not isinstance(item, str | int | float) or isinstance(item, bool):
                raise self.error(k, f"expected strings, got {item!r}")
        return tuple(str(i) for i in items)

    def child(self, k: str, default: Any = None) -> Reader:
        """A Reader for the mapping at key `k` (an empty one if absent)."""
        v = self.get(k, dict, default if default is not None else {}, "a mapping")
        return Reader(v, self.where, self._name(k), line_of(self.data, k))

    def items(self, k: str) -> list[tuple[int, Any, str, int]]:
        """(index, item, key name, line) of the list at key `k`."""
        v = self.get(k, list, [], "a list")
        return [(i, item, f"{self._name(k)}[{i}]", line_of(v, i)) for i, item in enumerate(v)]

    def finish(self) -> None:
        unknown = sorted(str(k) for k in set(self.data) - self.used)
        if unknown:
            known = ", ".join(sorted(self.used))
            raise self.error(unknown[0], f"unknown key (known: {known})")
