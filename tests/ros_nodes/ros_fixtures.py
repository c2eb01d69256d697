"""Shared by the DDS tests: the committed trained navigation and coverage policies, exported once per session, and configs using them."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from marlstack.ros_nodes.isolation import run_isolated
from marlstack.ros_nodes.runner import EXIT_TEARDOWN_WEDGED

REPO = Path(__file__).resolve().parents[2]
# `marlstack train navigation --num-agents 4` (the navigation.yaml defaults, as `make demo` trains),
# kept in the repository so the SITL tests drive a trained policy without minutes of training.
# How it was made and how to remake it: tests/data/README.md.
TRAINED = REPO / "tests" / "data" / "navigation_4" / "checkpoint.msgpack"
TRAINED_COVERAGE = REPO / "tests" / "data" / "coverage_4" / "checkpoint.msgpack"  # `marlstack train coverage`


def trained_onnx(checkpoint: Path, out: Path, num_agents: int | None = None) -> Path:
    """`checkpoint` exported (for `num_agents` robots): the committed export beside it
    (`policy_<N>.onnx`, tests/data/README.md) while it is current — made from this checkpoint for today's
    profile — else a fresh export to `out` (an export costs each test process ~5 s)."""
    import msgpack

    from marlstack.hardware import load_profile, profile_hash
    from marlstack.policies.runtime import load_spec
    # the checkpoint's header without flax's reader: importing JAX would cost this test process more than it saves
    meta = json.loads(msgpack.unpackb(checkpoint.read_bytes(), raw=False, strict_map_key=False)["meta"])
    committed = checkpoint.with_name(f"policy_{num_agents or meta['config']['num_agents']}.onnx")
    try:
        spec = load_spec(committed)
        if spec["training_run_id"] == meta["run_id"] and spec["profile"]["hash"] == profile_hash(load_profile(spec["profile"]["name"])):
            return committed
    except ValueError:  # missing or unreadable: export
        pass
    if not out.exists():
        from marlstack.policies.export import export
        out.parent.mkdir(parents=True, exist_ok=True)
        export(checkpoint, out, num_agents=num_agents)
    return out


def stopped(code: int) -> bool:
    """The node handled our SIGINT: exit 0, or its work saved and the DDS teardown hung (runner.py)."""
    return code in (0, EXIT_TEARDOWN_WEDGED)


@pytest.fixture(scope="session")
def policies(tmp_path_factory) -> dict[int, Path]:
    """fleet size -> policy.onnx of the trained 4-robot policy, exported for 4 and for 8 robots."""
    root = tmp_path_factory.getbasetemp() / "ros_policies"
    return {n: trained_onnx(TRAINED, root / f"trained_{n}.onnx", n) for n in (4, 8)}


@pytest.fixture(scope="session")
def coverage_policy(tmp_path_factory) -> Path:
    """policy.onnx of the trained 4-robot coverage policy."""
    return trained_onnx(TRAINED_COVERAGE, tmp_path_factory.getbasetemp() / "ros_policies" / "coverage_4.onnx")


def config_with_policy(example: str, policy: Path, tmp_path: Path) -> Path:
    """A copy of launch/<example> that uses `policy`."""
    data = yaml.safe_load((REPO / "launch" / example).read_text())
    data["policy"] = str(policy)
    path = tmp_path / example
    path.write_text(yaml.safe_dump(data))
    return path


def run_scenario(script: str, tmp_path: Path, *args: str, timeout: float = 150) -> dict:
    """Run a DDS scenario script (tests/ros_nodes/<script>) in a loopback-only namespace; the JSON it
    wrote to its first argument (its other arguments: `args`, then `tmp_path` as its work directory)."""
    out = tmp_path / "result.json"
    proc = run_isolated([sys.executable, str(Path(__file__).with_name(script)), str(out), *args, str(tmp_path)],
                        capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def sitl(config: Path, *args: str, timeout: float = 180) -> tuple[dict, str]:
    """`marlstack sitl --json` in a loopback-only namespace; (report, stderr)."""
    out = run_isolated([sys.executable, "-m", "marlstack", "sitl", "--config", str(config), "--json", *args],
                       capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert out.stdout.strip(), f"sitl printed no report (exit {out.returncode}):\n{out.stderr[-3000:]}"
    return json.loads(out.stdout), out.stderr
