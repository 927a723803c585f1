"""The import graph keeps DESIGN's layers: no cycle, a pure core, actors below the facade."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"runtime": "switchover", "actors": "switchover.actors", "bench": "switchover.bench"}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    parts[0] = FOLDERS[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports, absolute; imports under ``if TYPE_CHECKING`` excluded."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


GRAPH = {
    _module(path): _imports(path, _module(path))
    for folder in FOLDERS
    for path in sorted((ROOT / folder).rglob("*.py"))
}


def _under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _under(m, "switchover._core")))
def test_the_core_is_pure(module: str) -> None:
    bad = {
        name
        for name in GRAPH[module]
        if _under(name, "httpx", "pykka", "socket", "switchover.actors")
        or _under(name, "switchover.providers", "switchover.bench", "switchover.testing")
    }
    assert not bad, f"{module} imports {sorted(bad)}"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _under(m, "switchover.actors")))
def test_actors_import_only_the_core_and_the_providers(module: str) -> None:
    bad = {
        name
        for name in GRAPH[module]
        if _under(name, "switchover")
        and not _under(name, "switchover._core", "switchover.providers", "switchover.actors")
    }
    assert not bad, f"{module} imports {sorted(bad)}"


def test_nothing_imports_bench() -> None:
    bad = {
        module
        for module, names in GRAPH.items()
        if not _under(module, "switchover.bench")
        and any(_under(name, "switchover.bench") for name in names)
    }
    assert not bad


def test_only_the_facade_imports_actors() -> None:
    allowed = ("switchover.actors", "switchover._runtime", "switchover._stream")
    users = {
        module
        for module, names in GRAPH.items()
        if any(_under(n, "switchover.actors") for n in names) and not _under(module, *allowed)
    }
    assert not users, f"{sorted(users)} import the actors"


def test_there_is_no_import_cycle() -> None:
    # Edges into a package's __init__ are re-exports, not dependencies.
    edges = {
        module: {n for n in names if n in GRAPH and n != module and not _is_package(n)}
        for module, names in GRAPH.items()
    }
    seen: set[str] = set()
    path: list[str] = []

    def walk(module: str) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in seen:
            return
        path.append(module)
        for target in sorted(edges[module]):
            walk(target)
        path.pop()
        seen.add(module)

    for module in sorted(edges):
        walk(module)


def _is_package(module: str) -> bool:
    return (ROOT / Path(*_path_parts(module)) / "__init__.py").exists()


def _path_parts(module: str) -> list[str]:
    for folder, name in sorted(FOLDERS.items(), key=lambda item: -len(item[1])):
        if _under(module, name):
            return [folder, *module[len(name) :].strip(".").split(".")]
    raise ValueError(module)
