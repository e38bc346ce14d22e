"""No import circles among the package's modules.

The graph is read from the sources with ``ast``: every ``import`` statement counts, at module
level, inside functions and under ``if TYPE_CHECKING:`` alike (a lazy import is still a
dependency, and a circle through one breaks as soon as someone hoists it). The implicit
import of a parent package by its submodules is not an edge. A second check imports each
module on its own in a fresh interpreter, which catches what the static graph cannot (an
import that only works when something else was imported first).
"""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys

import pytest

PACKAGE = "flightdeck_rs"
ROOT = pathlib.Path(__file__).resolve().parent.parent / "python" / PACKAGE


def _module_name(path: pathlib.Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
# The compiled module imports nothing of ours.
KNOWN = set(MODULES) | {f"{PACKAGE}._native"}


def _resolve(module: str | None, level: int, importer: str, is_package: bool) -> str | None:
    if level == 0:
        return module
    base = importer.split(".")
    if not is_package:
        base.pop()
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _edges(name: str, path: pathlib.Path) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module, node.level, name, is_package)
            if base is None:
                continue
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one.
            subs = [f"{base}.{alias.name}" for alias in node.names]
            targets = [s for s in subs if s in KNOWN] or [base]
        for target in targets:
            # ``import a.b.c`` depends on the deepest of our modules it names.
            while target and target not in KNOWN:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _edges(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_graph_is_read() -> None:
    """Harness check: the edges this module's own reading must find are found."""
    assert f"{PACKAGE}.sdk.client" in GRAPH
    assert f"{PACKAGE}._paging" in GRAPH[f"{PACKAGE}.sdk.client"]  # a function-level import
    assert f"{PACKAGE}._native" in GRAPH[f"{PACKAGE}.sdk._core"]
    assert f"{PACKAGE}.sdk" in GRAPH[f"{PACKAGE}.__init__".removesuffix(".__init__")]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles() -> None:
    cycles = _cycles(GRAPH)
    detail = "\n".join(
        " -> ".join(group) + "\n  " + "; ".join(f"{m} imports {sorted(GRAPH[m] & set(group))}"
                                               for m in group)
        for group in cycles
    )
    assert cycles == [], f"import circles:\n{detail}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.endswith("__main__")))
def test_each_module_imports_on_its_own(module: str) -> None:
    env = dict(os.environ)
    r = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert r.returncode == 0, r.stderr
