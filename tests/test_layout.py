"""The package's shape: no import cycle between subpackages, and leaf modules that stay leaves.

Read from the source (every import, lazy ones inside functions included), so a cycle that only
shows when some function runs is caught too.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import composer_swa

ROOT = Path(composer_swa.__file__).parent


def _imported(path: Path) -> set[str]:
    """Every ``composer_swa`` module ``path`` imports, anywhere in it (absolute names)."""
    package = ["composer_swa", *path.relative_to(ROOT).parent.parts]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}  # `from composer_swa import checkpoint`
    return {name for name in found if name.startswith("composer_swa.")}


def _unit(module: str) -> str:
    """The subpackage (or top-level module) a module belongs to: ``composer_swa.merging.merge`` -> ``merging``."""
    return module.split(".")[1]


def _graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], set[str]]]:
    """Imports between the package's units (subpackages and top-level modules), and the files behind each."""
    edges: dict[str, set[str]] = defaultdict(set)
    files: dict[tuple[str, str], set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        if path.parent == ROOT and path.name == "__init__.py":
            continue  # the package root re-exports everything; it is no unit of its own
        me = path.relative_to(ROOT).parts[0].removesuffix(".py")
        for module in _imported(path):
            other = _unit(module)
            if other != me and ((ROOT / other).is_dir() or (ROOT / f"{other}.py").is_file()):
                edges[me].add(other)
                files[me, other].add(str(path.relative_to(ROOT)))
    return edges, files


def _subpackage_edges() -> dict[str, set[str]]:
    """Which subpackages each subpackage reaches, directly or through top-level modules (``state.py``...)."""
    edges, _ = _graph()
    subpackages = {path.name for path in ROOT.iterdir() if (path / "__init__.py").is_file()}
    reached: dict[str, set[str]] = {}
    for start in subpackages:
        seen, stack = set(), list(edges[start])
        while stack:
            unit = stack.pop()
            if unit in seen or unit == start:
                continue
            seen.add(unit)
            if unit not in subpackages:  # a top-level module: follow it to the subpackages it imports
                stack.extend(edges[unit])
        reached[start] = seen & subpackages
    return reached


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``edges`` as ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for other in sorted(edges.get(node, ())):
            if state.get(other) == 1:
                return [*path[path.index(other) :], other]
            if other not in state and (found := visit(other)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_between_subpackages() -> None:
    edges = _subpackage_edges()
    _, files = _graph()

    cycle = _cycle(edges)

    where = [
        f"{a} -> {b}: {sorted(files.get((a, b), {'(through a top-level module)'}))}"
        for a, b in zip(cycle or [], (cycle or [])[1:])
    ]
    assert cycle is None, "import cycle " + " -> ".join(cycle or []) + "\n" + "\n".join(where)


def test_training_never_imports_the_offline_half() -> None:
    edges = _subpackage_edges()

    assert "merging" in edges and "averaging" in edges["merging"]
    assert not {"merging", "checkpoint", "cli"} & edges["averaging"]


def test_atomic_files_is_a_leaf() -> None:
    assert _imported(ROOT / "atomic_files.py") == set()
