"""Layers look only down: the import graph between superscale's top-level packages and
modules has no cycle (docs/architecture.md, "Layers").

Every module under src/superscale is parsed with `ast`, so an import inside a function or
under `if TYPE_CHECKING:` counts as much as one at the top: a cycle cannot hide in a lazy
import. A node is a top-level package (`superscale/training/` → `training`) or module
(`superscale/pipeline.py` → `pipeline`); `superscale/__init__.py` is `__init__`.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import superscale

ROOT = Path(superscale.__file__).parent

# Cycles still allowed, each a sorted tuple of nodes with the reason it stays. Empty: none.
ALLOWED_CYCLES: dict[tuple[str, ...], str] = {}

Edges = dict[str, dict[str, set[str]]]


def _node(path: Path, root: Path) -> str:
    """The top-level package or module a file belongs to."""
    return path.relative_to(root).with_suffix("").parts[0]


def _imported(tree: ast.AST, path: Path, root: Path) -> Iterator[str]:
    """Dotted names of every superscale module or name a file imports, anywhere in it."""
    package = ("superscale", *path.relative_to(root).parent.parts)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = ".".join(package[: len(package) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module == "superscale":  # `from superscale import vec` names a node
                yield from (f"superscale.{a.name}" for a in node.names)
            else:
                yield module


def _target(dotted: str, root: Path) -> str | None:
    """The node a dotted import lands in, or None outside superscale."""
    parts = dotted.split(".")
    if parts[0] != "superscale":
        return None
    if len(parts) == 1:
        return "__init__"
    name = parts[1]
    is_node = (root / name).is_dir() or (root / f"{name}.py").is_file()
    return name if is_node else "__init__"  # a name the package root exports


def import_edges(root: Path = ROOT) -> Edges:
    """node → imported node → the files (relative to `root`) behind that edge."""
    edges: Edges = {}
    for path in sorted(root.rglob("*.py")):
        source = _node(path, root)
        for dotted in _imported(ast.parse(path.read_text(), str(path)), path, root):
            target = _target(dotted, root)
            if target is not None and target != source:
                files = edges.setdefault(source, {}).setdefault(target, set())
                files.add(str(path.relative_to(root)))
    return edges


def cycles(edges: Edges) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, {})):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    nodes = sorted(set(edges) | {t for targets in edges.values() for t in targets})
    for node in nodes:
        if node not in index:
            visit(node)
    return sorted(found)


def cycle_path(edges: Edges, component: list[str]) -> list[str]:
    """One closed path through a component, from its first node back to it (breadth-first,
    so the shortest such path)."""
    members = set(component)
    start = component[0]
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(edges.get(node, {})):
                if nxt not in members:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{component} is not strongly connected")


def describe(edges: Edges, component: list[str]) -> str:
    """The cycle as `a -> b (files) -> ... -> a`, naming the files behind each step."""
    path = cycle_path(edges, component)
    steps = [f"{a} -> {b} ({', '.join(sorted(edges[a][b]))})" for a, b in itertools.pairwise(path)]
    return f"cycle among {', '.join(component)}: " + "; ".join(steps)


def test_package_imports_have_no_cycle() -> None:
    edges = import_edges()
    found = [c for c in cycles(edges) if tuple(c) not in ALLOWED_CYCLES]
    assert not found, "layers must look only down:\n" + "\n".join(describe(edges, c) for c in found)


def test_allowed_cycles_still_exist() -> None:
    """An exception that no longer happens is removed, so it cannot cover a new cycle."""
    present = {tuple(c) for c in cycles(import_edges())}
    assert not set(ALLOWED_CYCLES) - present


def test_cycles_are_found(tmp_path: Path) -> None:
    """The check sees a cycle through a lazy import, and names it with its files."""
    pkg = tmp_path / "superscale"
    (pkg / "low").mkdir(parents=True)
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("def f():\n    from superscale.high import b\n    return b\n")
    (pkg / "high.py").write_text("from superscale.low.a import f\n")
    (pkg / "top.py").write_text("from superscale import high\n")
    edges = import_edges(pkg)
    assert edges == {
        "low": {"high": {"low/a.py"}},
        "high": {"low": {"high.py"}},
        "top": {"high": {"top.py"}},
    }
    assert cycles(edges) == [["high", "low"]]
    assert describe(edges, ["high", "low"]) == (
        "cycle among high, low: high -> low (high.py); low -> high (low/a.py)"
    )
