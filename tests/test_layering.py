"""Layering: the modules of pipeline/ import each other without a circle (issue 18).

The graph is built from the source with `ast`, from module-level imports only (an import
inside a function is how a module defers a heavy or optional dependency, and runs after
every module involved has finished loading). A circle among module-level imports makes the
import order matter and hides which module is the lower layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "pipeline"
PACKAGE = "pipeline"


def module_name(path: Path) -> str:
    """pipeline/stages/train.py -> pipeline.stages.train; a package's __init__.py -> the package."""
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_level_imports(path: Path, known: set[str]) -> set[str]:
    """The modules of the package that `path` imports at module level (not inside a function or class).

    `if TYPE_CHECKING:` blocks are left out (they never run); other module-level `if` and `try`
    blocks count. `from package import name` counts as importing `package.name` where that is a
    module, else `package`.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    this = module_name(path)
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for statement in statements:
            if isinstance(statement, ast.Import):
                for alias in statement.names:
                    found.add(_known_prefix(alias.name, known))
            elif isinstance(statement, ast.ImportFrom):
                base = _absolute(statement, this, is_package)
                for alias in statement.names:
                    candidate = f"{base}.{alias.name}" if base else alias.name
                    found.add(candidate if candidate in known else _known_prefix(base, known))
            elif isinstance(statement, ast.If):
                if not _is_type_checking(statement.test):
                    visit(statement.body)
                visit(statement.orelse)
            elif isinstance(statement, ast.Try):
                visit(statement.body)
                for handler in statement.handlers:
                    visit(handler.body)
                visit(statement.orelse)
                visit(statement.finalbody)
            elif isinstance(statement, ast.With):
                visit(statement.body)

    visit(tree.body)
    found.discard("")
    found.discard(this)
    return {name for name in found if name in known}


def _absolute(statement: ast.ImportFrom, this: str, is_package: bool) -> str:
    if not statement.level:
        return statement.module or ""
    parts = this.split(".")
    if not is_package:
        parts = parts[:-1]
    parts = parts[: len(parts) - (statement.level - 1)]
    return ".".join(parts + ([statement.module] if statement.module else []))


def _known_prefix(name: str, known: set[str]) -> str:
    """The longest prefix of a dotted name that is a module of the package ('' if none)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return ""


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports at module level, for every module under pipeline/."""
    paths = sorted(PACKAGE_ROOT.rglob("*.py"))
    known = {module_name(path) for path in paths}
    return {module_name(path): module_level_imports(path, known) for path in paths}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (or a module importing itself),
    each as a sorted list: Tarjan's algorithm, iterative."""
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index_of:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index_of[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for successor in successors:
                if successor not in index_of:
                    index_of[successor] = low[successor] = counter
                    counter += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph.get(successor, ())))))
                    advanced = True
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index_of[successor])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index_of[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    cycles.append(sorted(component))
    return cycles


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert "pipeline.run" in graph and "pipeline.stages.train" in graph
    assert "pipeline.artifacts" in graph["pipeline.run"]  # `from pipeline import artifacts`
    assert "pipeline.config" in graph["pipeline.run"]


def test_the_cycle_finder_finds_a_circle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    assert find_cycles({"a": {"a"}}) == [["a"]]


def test_no_import_circle_in_the_package():
    cycles = find_cycles(import_graph())
    assert not cycles, "module-level import circles in pipeline/: " + "; ".join(" <-> ".join(c) for c in cycles)
