"""No import circles among the project's modules.

A circle (``checks → outbox → tasks → checks``) works only while its imports are deferred
into functions or happen in a lucky order, and it hides which module owns an idea. This
walks the project's packages with :mod:`ast` (nothing is imported), builds the graph of
their imports (every ``import`` statement, inside functions too; not those under
``if TYPE_CHECKING:``, which never run) and asserts it has no cycle. Unit test: no services.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "workspace", "notifications", "digests", "api", "frontend")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    }


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_statements(nodes):
    """Every ``import`` among ``nodes``, at any depth, except under ``if TYPE_CHECKING:``
    (which never runs). An import inside a function counts: deferring it hides a circle
    from the interpreter, not from the reader."""
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_statements(node.orelse)
        else:
            yield from _import_statements(ast.iter_child_nodes(node))


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports at load time. ``from a import b`` counts as
    importing ``a.b`` when that is a module, else ``a``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_statements([ast.parse(path.read_text(), str(path))]):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {target for target in found if target in modules and target != name}


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), each as a
    sorted list: a circle is any such component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

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
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_check_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_the_project():
    graph = import_graph()
    assert "notifications.checks" in graph["notifications.tasks"]
    assert "notifications.models" in graph["notifications.services"]
    assert "notifications.triggers" in graph["notifications.models"]  # inside Trigger.clean
    assert "workspace.models" not in graph["notifications.ingestion"]  # TYPE_CHECKING only
    assert len(graph) > 50


def test_no_module_of_the_project_imports_itself_in_a_circle():
    assert find_cycles(import_graph()) == []


def test_the_pages_ask_the_services_not_the_api():
    """The pages and the API both call ``notifications.services`` and ``workspace``; a page
    importing an API module would make the API's serializers the pages' model."""
    graph = import_graph()
    pages = {name: targets for name, targets in graph.items() if name.startswith("frontend")}
    assert {
        name: sorted(t for t in targets if t.startswith("api")) for name, targets in pages.items()
    } == {name: [] for name in pages}
