"""rps 2.1.0 in its own virtual environment (.venv-rps21, git-ignored), made once and reused.

The Robotarium runs submissions on rps 2.x; the package index only has the 2020 release (0.0.0),
and both install the `rps` package, so 2.1.0 gets a venv of its own, with the library versions the
Robotarium's servers list (robotarium-2.1.0-libraries.txt beside the wheel) as constraints.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WHEEL_NAME = "robotarium_python_simulator-2.1.0-py3-none-any.whl"
WHEEL_DIR = REPO.parent / "shared" / "wheels"
VENV = REPO / ".venv-rps21"
TRAINED = REPO / "tests" / "data" / "navigation_4" / "checkpoint.msgpack"


def find_wheel(env: dict[str, str] = os.environ, wheel_dir: Path = WHEEL_DIR) -> Path:
    """The rps 2.1.0 wheel ($MARLSTACK_RPS21_WHEEL or ../shared/wheels/), or FileNotFoundError saying how to get it."""
    path = Path(env.get("MARLSTACK_RPS21_WHEEL") or wheel_dir / WHEEL_NAME)
    if not path.is_file():
        raise FileNotFoundError(
            f"these tests need rps 2.1.0 ({WHEEL_NAME}, not on the package index) and found no {path}: build it "
            f"from https://github.com/robotarium/robotarium_python_simulator at version 2.1.0 (`pip wheel --no-deps .`) "
            f"and put it in {wheel_dir}/ or point MARLSTACK_RPS21_WHEEL at it")
    return path


def make_venv(wheel: Path, venv: Path = VENV) -> Path:
    """venv/bin/python with rps 2.1.0 + PyYAML; remade only when the wheel or the library list changes."""
    libraries = wheel.parent / "robotarium-2.1.0-libraries.txt"
    digest = hashlib.sha256(wheel.read_bytes() + (libraries.read_bytes() if libraries.is_file() else b"")).hexdigest()
    python, stamp = venv / "bin" / "python", venv / ".installed"
    if python.is_file() and stamp.is_file() and stamp.read_text() == digest:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    constraints = ["-c", str(libraries)] if libraries.is_file() else []
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *constraints,
                    str(wheel), "pyyaml"], check=True)
    stamp.write_text(digest)
    return python


@pytest.fixture(scope="session")
def rps21() -> Path:
    """Python of the rps 2.1.0 venv; fails (does not skip) with how to get the wheel when it is missing."""
    try:
        wheel, missing = find_wheel(), None
    except FileNotFoundError as exc:
        wheel, missing = None, str(exc)
    if missing:
        pytest.fail(missing, pytrace=False)
    return make_venv(wheel)


@pytest.fixture(scope="session")
def nav_policy(tmp_path_factory) -> Path:
    """The committed trained navigation policy (tests/data/README.md), exported for 4 robots."""
    from policies.export import export
    path = tmp_path_factory.mktemp("robotarium") / "navigation_4.onnx"
    export(TRAINED, path)
    return path
