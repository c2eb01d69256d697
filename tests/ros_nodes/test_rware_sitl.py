"""RWARE over ROS 2: the exported policy behind the barrier with the shelves as box rows, real DDS.

Drives `tests/data/rware_4/policy.onnx` (`marlstack train rware` defaults, exported; tests/data/README.md):
the sim node plays RWARE's task (pick within the radius, deliver in the zone) and counts a robot touching a
shelf; the safety node keeps robots out of the shelves' margin. A constant command into a shelf shows the
braking by itself.
"""
import jax.numpy as jnp
import yaml

from marlstack.hardware import load_profile, profile_hash
from marlstack.policies.export import Step, trace, write_artifact
from marlstack.policies.runtime import PolicyRuntime
from marlstack.policies.spec import build_spec
from marlstack.sim.scenarios import rware_spec
from ros_fixtures import REPO, config_with_policy, sitl, stopped  # noqa: F401

GRITS = load_profile("gritsbot_x")
TRAINED = REPO / "tests" / "data" / "rware_4" / "policy.onnx"


def test_the_trained_rware_policy_delivers_every_item_behind_the_shelf_barrier(tmp_path):
    """launch/rware4.yaml with one request, shelf 7 (both, 3 and 7, take 13-15 s; this one ~6 s)."""
    config = config_with_policy("rware4.yaml", TRAINED, tmp_path)
    config.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), "requests": [7]}))
    report, _ = sitl(config, "--duration", "60", "--until-goals")
    assert report["ok"], report["error"]
    assert report["items_delivered"] == report["items_requested"] == 1 and report["done_at_s"] is not None, report
    for name, r in report["robots"].items():
        assert r["collision_steps"] == r["shelf_collision_steps"] == r["boundary_exit_steps"] == 0, (name, r)
        assert r["goal_reached"] and r["barrier_brakes"] == 0, (name, r)
    assert sum(r["interventions"] for r in report["robots"].values()) > 0
    assert all(map(stopped, report["exit_codes"].values())), report["exit_codes"]


def forward_model(tmp_path, speed):
    """An RWARE 'policy' for two robots that drives straight ahead at `speed` whatever it senses."""
    spec = PolicyRuntime(TRAINED).spec
    inputs = [dict(e, shape=["B", 1, 3]) if e["name"] == "others" else e for e in spec["inputs"]]
    meta = build_spec(scenario="rware", vehicle_kind="ground", agent={"role": "shared", "agents": ["robot_0", "robot_1"]},
                      inputs=inputs, outputs=spec["outputs"], recurrent=None, control_rate_hz=1 / GRITS.dt,
                      profile_name=GRITS.name, profile_hash=profile_hash(GRITS), training_run_id="test",
                      git_revision="test", created="2026-01-01T00:00:00+00:00", marlstack_version="0.1.0",
                      exporter={"opset": 20})

    def fn(pose, others, load, requests):
        zero = 0.0 * (jnp.sum(pose, -1) + jnp.sum(load, -1) + jnp.sum(requests, (-2, -1)))
        return jnp.stack([zero + speed, zero], axis=-1)

    return write_artifact(trace(Step(fn, inputs, spec["outputs"], None)), meta, tmp_path / "forward.onnx")


def test_a_command_into_a_shelf_is_braked_over_ros(tmp_path):
    """Two robots 0.25 m below shelves 5 and 7, facing them, told to drive at full speed: the safety node's box
    rows stop them at the margin (no shelf contact in the sim's count); without them they hit in about 1 s."""
    starts = [[sum(rware_spec.SHELVES[k][:2]) / 2, rware_spec.SHELVES[k][2] - 0.25, 1.5708] for k in (5, 7)]
    data = yaml.safe_load((REPO / "launch" / "rware4.yaml").read_text())
    data.update(policy=str(forward_model(tmp_path, GRITS.max_linear_speed)), requests=[1],
                robots=[{"name": f"robot_{i}", "start": s} for i, s in enumerate(starts)])
    config = tmp_path / "into_shelf.yaml"
    config.write_text(yaml.safe_dump(data))
    report, _ = sitl(config, "--duration", "2")
    for r in report["robots"].values():
        assert r["shelf_collision_steps"] == 0 and r["collision_steps"] == 0, r
        assert r["interventions"] > 20 and r["barrier_brakes"] == 0, r   # braked by the certificate, not stopped
    assert report["ok"], report["error"]
