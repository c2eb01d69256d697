"""Fixtures of the Robotarium tests: rps 2.1.0's venv (rps21_env.py) and the exported navigation policy."""
from __future__ import annotations

from pathlib import Path

import pytest

from rps21_env import TRAINED, Rps21Missing, find_wheel, make_venv


@pytest.fixture(scope="session")
def rps21() -> Path:
    """Python of the rps 2.1.0 venv; fails (never skips) with how to get the wheel when it is missing."""
    try:
        return make_venv(find_wheel())
    except Rps21Missing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def nav_policy(tmp_path_factory) -> Path:
    """The committed trained navigation policy (tests/data/README.md), exported for 4 robots."""
    from marlstack.policies.export import export
    path = tmp_path_factory.mktemp("robotarium") / "navigation_4.onnx"
    export(TRAINED, path)
    return path
