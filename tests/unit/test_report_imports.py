"""orchestrator.report: the modules' import graph has no cycle, deferred imports included."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "orchestrator" / "report"


def _imports(path: Path) -> set[str]:
    """Sibling modules imported anywhere in ``path`` (function bodies and
    ``if TYPE_CHECKING:`` blocks too)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(a.name for a in node.names)
    return out


def test_no_import_cycle() -> None:
    graph = {p.stem: _imports(p) for p in PACKAGE.glob("*.py")}
    done: set[str] = set()

    def visit(mod: str, path: list[str]) -> None:
        assert mod not in path, "import cycle: " + " -> ".join([*path, mod])
        if mod in done:
            return
        for dep in sorted(graph.get(mod, ())):
            visit(dep, [*path, mod])
        done.add(mod)

    for mod in sorted(graph):
        visit(mod, [])


def test_parser_and_nic_share_records() -> None:
    graph = {p.stem: _imports(p) for p in PACKAGE.glob("*.py")}
    assert "parser" not in graph["nic"]
    assert "records" in graph["nic"] and "records" in graph["parser"]
