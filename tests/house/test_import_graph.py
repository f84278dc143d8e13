"""No import circles in flowkit/: counting imports inside functions, leaving out ``if TYPE_CHECKING:`` blocks.

A circle held apart only by function-level imports is a dependency pointing the wrong way; type-only
imports cost nothing at run time and may go both ways.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import flowkit

PACKAGE = Path(flowkit.__file__).parent


def module_name(path: Path) -> str:
    parts = ["flowkit", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    return skipped


def imports_of(path: Path, modules: set[str], here: str | None = None) -> Iterator[str]:
    """The flowkit modules ``path`` (module ``here``) imports anywhere: module level or in functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_blocks(tree)
    here = here or module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # `from package import module` imports the module
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
            ]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != here:
                yield name


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: set(imports_of(path, modules)) for name, path in paths.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
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
    return sorted(found)


def _package_faces(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Without a package ``__init__``'s edges to its own submodules: a package face re-exporting them
    (``flowkit.dsl`` -> ``flowkit.dsl.job``) is not a dependency of the submodule on its package."""
    return {name: {t for t in targets if not t.startswith(name + ".")} for name, targets in graph.items()}


def test_there_is_no_import_circle() -> None:
    graph = _package_faces(import_graph())
    assert "flowkit.compiler" in graph["flowkit.cli._compile"]  # the walk sees function-level imports
    assert circles(graph) == []


def test_the_dsl_never_imports_the_compiler_and_validation_never_sees_the_dsl() -> None:
    graph = import_graph()
    assert not {m for m in graph["flowkit.dsl.workflow"] if m in ("flowkit.compiler", "flowkit.validation")}
    assert not {m for m in graph["flowkit.validation"] if m.startswith(("flowkit.dsl", "flowkit.compiler"))}


def test_the_walk_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_walk_reads_function_level_imports_and_skips_type_checking(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from flowkit.compiler import compile\n"
        "def f():\n"
        "    from flowkit.document import Run\n"
    )
    modules = {"flowkit.compiler", "flowkit.document"}
    assert set(imports_of(source, modules, here="flowkit.m")) == {"flowkit.document"}
