"""rps 2.1.0 in its own virtual environment (.venv-rps21, git-ignored), made once and reused.

The Robotarium runs submissions on rps 2.x; the package index only has the 2020 release (0.0.0),
and both install the `rps` package, so 2.1.0 gets a venv of its own, with the library versions the
Robotarium's servers list (robotarium-2.1.0-libraries.txt beside the wheel) as constraints. The
wheel comes from ../shared/wheels/ (CI clones the repository beside ../shared) or
$MARLSTACK_RPS21_WHEEL. Without it the tests that need it fail, saying how to get it: never a skip.
A plain module (not conftest) so tests import it by a name no other folder uses.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WHEEL_NAME = "robotarium_python_simulator-2.1.0-py3-none-any.whl"
WHEEL_DIR = REPO.parent / "shared" / "wheels"
VENV = REPO / ".venv-rps21"
TRAINED = REPO / "tests" / "data" / "navigation_4" / "checkpoint.msgpack"   # the committed trained navigation policy


class Rps21Missing(RuntimeError):
    """rps 2.1.0 cannot be had here; the message says why and what to do."""


def find_wheel(env: dict[str, str] = os.environ, wheel_dir: Path = WHEEL_DIR) -> Path:
    """The rps 2.1.0 wheel ($MARLSTACK_RPS21_WHEEL or ../shared/wheels/), or Rps21Missing saying how to get it."""
    path = Path(env.get("MARLSTACK_RPS21_WHEEL") or wheel_dir / WHEEL_NAME)
    if not path.is_file():
        raise Rps21Missing(
            f"these tests need rps 2.1.0 ({WHEEL_NAME}, not on the package index) and found no {path}: build it "
            f"from https://github.com/robotarium/robotarium_python_simulator at version 2.1.0 (`pip wheel --no-deps .`) "
            f"and put it in {wheel_dir}/ or point MARLSTACK_RPS21_WHEEL at it")
    return path


def make_venv(wheel: Path, venv: Path = VENV) -> Path:
    """venv/bin/python with rps 2.1.0 + PyYAML; remade only when the wheel or the library list changes (one
    maker at a time: parallel test workers share the venv)."""
    import fcntl
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _make_venv(wheel, venv)


def _make_venv(wheel: Path, venv: Path) -> Path:
    libraries = wheel.parent / "robotarium-2.1.0-libraries.txt"
    digest = hashlib.sha256(wheel.read_bytes() + (libraries.read_bytes() if libraries.is_file() else b"")).hexdigest()
    python, stamp = venv / "bin" / "python", venv / ".installed"
    if python.is_file() and stamp.is_file() and stamp.read_text() == digest:
        return python
    constraints = ["-c", str(libraries)] if libraries.is_file() else []
    for step in ([sys.executable, "-m", "venv", "--clear", str(venv)],
                 [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *constraints, str(wheel), "pyyaml"]):
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise Rps21Missing(f"could not make the rps 2.1.0 venv {venv} from {wheel} (`{' '.join(step[:4])} ...` "
                               f"exited {done.returncode}: {tail[0]}); the Robotarium's libraries come from the package index")
    stamp.write_text(digest)
    return python
