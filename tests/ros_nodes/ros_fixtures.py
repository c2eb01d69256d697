"""Shared by the DDS tests: scripted go-to-goal policies exported once per session, and configs using them."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from ros_nodes.isolation import run_isolated

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def policies(tmp_path_factory) -> dict[int, Path]:
    """fleet size -> policy.onnx of the scripted controller (ros_nodes/scripted_policy.py), cached on disk."""
    from ros_nodes.scripted_policy import export_scripted
    root = tmp_path_factory.getbasetemp() / "ros_policies"
    root.mkdir(exist_ok=True)
    out = {}
    for n in (4, 8):
        path = root / f"scripted_{n}.onnx"
        if not path.exists():
            export_scripted(path, n)
        out[n] = path
    return out


def config_with_policy(example: str, policy: Path, tmp_path: Path) -> Path:
    """A copy of launch/<example> that uses `policy`."""
    data = yaml.safe_load((REPO / "launch" / example).read_text())
    data["policy"] = str(policy)
    path = tmp_path / example
    path.write_text(yaml.safe_dump(data))
    return path


def sitl(config: Path, *args: str, timeout: float = 180) -> tuple[dict, str]:
    """`marlstack sitl --json` in a loopback-only namespace; (report, stderr)."""
    out = run_isolated([sys.executable, "-m", "marlstack", "sitl", "--config", str(config), "--json", *args],
                       capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert out.stdout.strip(), f"sitl printed no report (exit {out.returncode}):\n{out.stderr[-3000:]}"
    return json.loads(out.stdout), out.stderr
