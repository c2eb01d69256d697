"""Data flows one way (sim -> policies -> artifact -> nodes -> logs): a floor imports nothing above it."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ABOVE = {  # floor -> the packages it must never import (also inside functions)
    "sim": ("policies", "ros_nodes", "replay", "targets", "marlstack", "bench"),
    "controllers": ("sim", "policies", "ros_nodes", "replay", "targets", "marlstack", "bench"),
    "hardware": ("sim", "policies", "ros_nodes", "replay", "targets", "marlstack", "bench"),
    "policies": ("ros_nodes", "replay", "targets", "marlstack", "bench"),
    "ros_nodes": ("replay", "targets", "marlstack", "bench"),
}


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports by absolute name, inside functions too (dotted names as written)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def imported(path: Path) -> set[str]:
    """Top-level packages `path` imports; the bare `marlstack` package (its version string) is allowed."""
    return {n.split(".")[0] for n in imported_modules(path) if n != "marlstack"}


@pytest.mark.parametrize("floor", sorted(ABOVE))
def test_no_floor_imports_from_above(floor):
    bad = {f"{p.relative_to(ROOT)}: {', '.join(sorted(imported(p) & set(ABOVE[floor])))}"
           for p in (ROOT / floor).rglob("*.py") if imported(p) & set(ABOVE[floor])}
    assert not bad, sorted(bad)
