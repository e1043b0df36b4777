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


def _imports(source: str, package: list[str]) -> list[tuple[str, int]]:
    """The tlm modules a module of ``package`` imports (absolute, with the line), at any depth,
    leaving out what ``if TYPE_CHECKING:`` guards."""
    found: list[tuple[str, int]] = []

    def walk(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for statement in node.orelse:
                walk(statement)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            found.append((module, node.lineno))
        for child in ast.iter_child_nodes(node):
            walk(child)

    walk(ast.parse(source))
    return [(name, line) for name, line in found if name == "tlm" or name.startswith("tlm.")]


def import_graph() -> dict[str, dict[str, Edge]]:
    """node -> {target node: the first import that makes the edge}."""
    graph: dict[str, dict[str, Edge]] = defaultdict(dict)
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT.parent).with_suffix("")
        source = _node(".".join(relative.parts).removesuffix(".__init__"))
        source_text = path.read_text(encoding="utf-8")
        for module, line in _imports(source_text, list(relative.parts[:-1])):
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


def test_lazy_imports_count_and_type_checking_ones_do_not() -> None:
    source = """
from typing import TYPE_CHECKING
from . import sibling
if TYPE_CHECKING:
    from tlm.learn import x
else:
    import tlm.rules
def f():
    from ..store import y
"""
    found = [name for name, _ in _imports(source, ["tlm", "engine"])]
    assert found == ["tlm.engine", "tlm.rules", "tlm.store"]


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(path.relative_to(ROOT.parent)): count
        for path in ROOT.rglob("*.py")
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"
