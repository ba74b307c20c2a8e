"""Layers point one way: index/ never imports search/, serve/ or train/; search/ uses the index's
public surface and its channel protocols, not the store, segments, writer or leases."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "densa"
INDEX_INTERNALS = (
    "densa.index.store",
    "densa.index.segments",
    "densa.index.writer",
    "densa.index.leases",
    "densa.index.shards",
    "densa.index.upgrade",
)


def _imports(package: str) -> list[tuple[str, str]]:
    """``(module file, imported module)`` for every import in ``package``, lazy ones included."""
    found = []
    for path in sorted((SRC / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(SRC)), alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((str(path.relative_to(SRC)), node.module))
    return found


def test_the_walk_sees_imports() -> None:  # the rule below cannot pass vacuously
    assert ("index/index.py", "densa.index.snapshot") in _imports("index")
    assert any(module.startswith("densa.index") for _, module in _imports("search"))


@pytest.mark.parametrize("upper", ["densa.search", "densa.serve", "densa.train", "densa.cli", "densa.rag"])
def test_index_never_imports_the_layers_above(upper: str) -> None:
    offending = [(f, m) for f, m in _imports("index") if m == upper or m.startswith(upper + ".")]
    assert offending == []


def test_search_does_not_reach_into_index_internals() -> None:
    offending = [(f, m) for f, m in _imports("search") if m.startswith(INDEX_INTERNALS)]
    assert offending == []
    assert not [(f, m) for f, m in _imports("search") if m.startswith(("densa.serve", "densa.train"))]


def test_serve_goes_through_search_and_the_index_surface() -> None:
    offending = [(f, m) for f, m in _imports("serve") if m.startswith(INDEX_INTERNALS)]
    assert offending == []
