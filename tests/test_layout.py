"""Layout rules read from the source: no import cycle between tlm's subpackages, no long module.

The import graph counts every ``tlm`` import a module makes, at module level or inside a function
(a lazy import still ties the two packages together: each needs the other to work). Imports under
``if TYPE_CHECKING:`` are left out: they never run. A node is a subpackage (``tlm.engine``) or a
top-level module (``tlm.prompts``); ``from tlm import x`` and ``import tlm`` lead to the top
package ``tlm`` itself, whose ``__init__`` re-exports the engine.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import tlm

ROOT = Path(tlm.__file__).parent
MAX_LINES = 500

Edge = tuple[str, str, int]  # target node, file, line


def _node(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def _is_type_checking(statement: ast.If) -> bool:
    test = statement.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> list[tuple[str, int]]:
    """The tlm modules ``path`` imports (absolute names, with the line), TYPE_CHECKING aside."""
    relative = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(relative.parts)
    package = parts[:-1]
    found: list[tuple[str, int]] = []

    def visit(statements: list[ast.stmt]) -> None:
        for statement in statements:
            if isinstance(statement, ast.If) and _is_type_checking(statement):
                visit(statement.orelse)
                continue
            if isinstance(statement, ast.Import):
                found.extend((a.name, statement.lineno) for a in statement.names)
            elif isinstance(statement, ast.ImportFrom):
                module = statement.module or ""
                if statement.level:
                    base = package[: len(package) - statement.level + 1]
                    module = ".".join([*base, module] if module else base)
                found.append((module, statement.lineno))
            for child in ast.iter_child_nodes(statement):
                if isinstance(child, ast.stmt):
                    visit([child])
            for field in ("body", "orelse", "finalbody", "handlers"):
                value = getattr(statement, field, None)
                if isinstance(value, list):
                    for item in value:
                        if isinstance(item, ast.ExceptHandler):
                            visit(item.body)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)).body)
    return [(name, line) for name, line in found if name == "tlm" or name.startswith("tlm.")]


def import_graph() -> dict[str, dict[str, Edge]]:
    """node -> {target node: the first import that makes the edge}."""
    graph: dict[str, dict[str, Edge]] = defaultdict(dict)
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT.parent).with_suffix("")
        source = _node(".".join(relative.parts).removesuffix(".__init__"))
        for module, line in _imports(path):
            target = _node(module)
            if target != source:
                graph[source].setdefault(target, (target, str(relative) + ".py", line))
    return graph


def cycles(graph: dict[str, dict[str, Edge]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def _explain(component: list[str], graph: dict[str, dict[str, Edge]]) -> str:
    members = set(component)
    lines = [
        f"  {source} -> {target}  ({file}:{line})"
        for source in component
        for target, (_, file, line) in sorted(graph.get(source, {}).items())
        if target in members
    ]
    return " <-> ".join(component) + "\n" + "\n".join(lines)


def test_no_import_cycle_between_subpackages() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(_explain(c, graph) for c in found)


def test_the_cycle_finder_finds_a_cycle() -> None:
    edge: Edge = ("", "", 0)
    graph = {"a": {"b": edge}, "b": {"c": edge}, "c": {"a": edge}, "d": {"a": edge}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b": edge}, "b": {}}) == []


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(path.relative_to(ROOT.parent)): count
        for path in ROOT.rglob("*.py")
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"
