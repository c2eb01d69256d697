"""Data flows one way (sim -> policies -> artifact -> nodes -> logs): a floor imports nothing above it."""
import ast
import os
import subprocess
import sys
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
# the folders installed as marlstack.<folder>: setup.py's list, read from it (one list)
FOLDERS = next(ast.literal_eval(n.value) for n in ast.parse((ROOT / "setup.py").read_text()).body
               if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "FOLDERS")


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports by absolute name, inside functions too (dotted names as written)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def floor_of(name: str) -> str:
    """The floor a module belongs to: marlstack.sim.fleet -> sim; marlstack.cli (the top floor) -> marlstack."""
    parts = name.split(".")
    return parts[1] if parts[0] == "marlstack" and len(parts) > 1 and parts[1] in FOLDERS else parts[0]


def imported(path: Path) -> set[str]:
    """Floors `path` imports; the bare `marlstack` package (its version string) is allowed."""
    return {floor_of(n) for n in imported_modules(path) if n != "marlstack"}


@pytest.mark.parametrize("floor", sorted(ABOVE))
def test_no_floor_imports_from_above(floor):
    bad = {f"{p.relative_to(ROOT)}: {', '.join(sorted(imported(p) & set(ABOVE[floor])))}"
           for p in (ROOT / floor).rglob("*.py") if imported(p) & set(ABOVE[floor])}
    assert not bad, sorted(bad)


@pytest.mark.parametrize("folder", FOLDERS)
def test_code_imports_the_folders_only_through_the_marlstack_namespace(folder):
    """`import sim` would load a second copy of every module beside `marlstack.sim` (two registries, two states)."""
    bad = sorted(f"{p.relative_to(ROOT)}: {n}" for p in ROOT.glob("[!.]*/**/*.py") if ".venv" not in p.parts
                 for n in imported_modules(p) if n.split(".")[0] == folder)
    assert not bad, bad


def test_an_install_puts_only_marlstack_into_site_packages(tmp_path):
    """setup.py maps the user's top-level folders to marlstack.<folder>; the built tree imports without the checkout."""
    build = tmp_path / "lib"
    proc = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(build)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in build.iterdir()) == ["marlstack"]
    assert (build / "marlstack" / "hardware" / "vehicles" / "gritsbot_x.yaml").is_file()
    code = ("import marlstack.policies.runtime, marlstack.hardware as h; "
            "print(marlstack.policies.runtime.__file__); print(h.load_profile('gritsbot_x').name)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(build)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(build / "marlstack" / "policies" / "runtime.py"), "gritsbot_x"]
