"""The product's layers, read from its source: no import cycle, and imports point one way.

Every `import` counts, wherever it is written (a function-level import is still a dependency:
it only hides a cycle until the function runs).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT_PACKAGES = ("bo1site", "sessions_app", "deliberation", "dashboard", "vocabulary")
PRODUCT_PACKAGES += ("importer", "webhooks", "observability")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def product_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PRODUCT_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def imported_names(name: str, path: Path) -> Iterator[tuple[str, ...]]:
    """For each name an import brings in, the dotted names it may be, most precise first.

    `from package import x` imports the module `package.x` when there is one, else takes the
    name `x` from `package`; relative imports are made absolute.
    """
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name,) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            yield from ((f"{source}.{alias.name}", source) for alias in node.names)


def resolve(candidates: tuple[str, ...], modules: dict[str, Path]) -> str | None:
    """The product module an import loads: the first candidate that is one, else its package."""
    for candidate in candidates:
        if candidate in modules:
            return candidate
    imported = candidates[-1]
    while imported and imported not in modules:
        imported = imported.rpartition(".")[0]
    return imported or None


def import_graph() -> dict[str, set[str]]:
    """Module -> the product modules it imports."""
    modules = product_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {resolve(candidates, modules) for candidates in imported_names(name, path)}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def external_imports(name: str) -> set[str]:
    """The top-level names of everything a module imports."""
    path = product_modules()[name]
    return {candidates[-1].split(".")[0] for candidates in imported_names(name, path)}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
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
            visit(node)
    return found


def test_the_graph_sees_relative_and_function_level_imports():
    graph = import_graph()
    assert "sessions_app.models" in graph["sessions_app.services"]  # from .models import ...
    assert "deliberation.tasks" in graph["deliberation.services"]
    assert "sessions_app.signals" in graph["sessions_app.apps"]  # imported inside ready()


def test_the_cycle_finder_finds_a_cycle_through_three_modules():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycle_among_product_modules():
    assert cycles(import_graph()) == []


def test_the_engine_imports_no_django_and_neither_app():
    allowed_product = "deliberation.engine"
    # The engine speaks the shared vocabulary (plain enums, no Django) and nothing else of ours.
    forbidden_roots = {"django", "rest_framework", "celery", *PRODUCT_PACKAGES} - {"vocabulary"}
    graph = import_graph()
    for name in graph:
        if not (name == allowed_product or name.startswith(allowed_product + ".")):
            continue
        outside = {
            t
            for t in graph[name]
            if not (t == allowed_product or t.startswith(allowed_product)) and t != "vocabulary"
        }
        assert outside == set(), f"{name} imports {sorted(outside)}"
        roots = external_imports(name) & (forbidden_roots - {"deliberation"})
        assert roots == set(), f"{name} imports {sorted(roots)}"


def test_the_vocabulary_imports_nothing_of_ours_nor_django():
    assert import_graph()["vocabulary"] == set()
    assert external_imports("vocabulary") & {"django", "rest_framework", "celery"} == set()


def test_the_store_imports_nothing_from_deliberation_or_the_dashboard():
    graph = import_graph()
    for name, targets in graph.items():
        if name.split(".")[0] != "sessions_app":
            continue
        wrong = {t for t in targets if t.split(".")[0] in ("deliberation", "dashboard")}
        assert wrong == set(), f"{name} imports {sorted(wrong)}"
