"""RWARE over ROS 2: the exported policy behind the barrier with the shelves as box rows, real DDS.

Drives `tests/data/rware_4/policy.onnx` (`marlstack train rware` defaults, exported; tests/data/README.md):
the sim node plays RWARE's task (pick within the radius, deliver in the zone) and counts a robot touching a
shelf; the safety node keeps robots out of the shelves' margin. A full-speed command into a shelf, behind the
safety node alone, shows the braking by itself.
"""
import numpy as np
import yaml

from marlstack.replay.bag import Bag
from marlstack.replay.evaluate import evaluate
from marlstack.replay.fleet import load_config
from ros_fixtures import REPO, config_with_policy, run_scenario, sitl, stopped  # noqa: F401

TRAINED = REPO / "tests" / "data" / "rware_4" / "policy.onnx"


def test_the_trained_rware_policy_delivers_every_item_behind_the_shelf_barrier(tmp_path):
    """launch/rware4.yaml with one request, shelf 7 (both, 3 and 7, take 13-15 s; this one ~6 s), recorded;
    `replay eval` re-runs the policy on the logged poses and task messages (the pick and the drop)."""
    config = config_with_policy("rware4.yaml", TRAINED, tmp_path)
    config.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), "requests": [7]}))
    report, _ = sitl(config, "--duration", "60", "--until-goals", "--record", str(tmp_path / "run"))
    assert report["ok"], report["error"]
    assert report["items_delivered"] == report["items_requested"] == 1 and report["done_at_s"] is not None, report
    for name, r in report["robots"].items():
        assert r["collision_steps"] == r["shelf_collision_steps"] == r["boundary_exit_steps"] == 0, (name, r)
        assert r["goal_reached"] and r["barrier_brakes"] == 0, (name, r)
    assert sum(r["interventions"] for r in report["robots"].values()) > 0
    assert all(map(stopped, report["exit_codes"].values())), report["exit_codes"]
    res = evaluate(Bag(tmp_path / "run"), TRAINED, load_config(config))
    for name, r in res["per_robot"].items():
        assert r["compared"] >= 0.8 * r["commands"] and r["pose_triggered"] > 100, (name, r)
    exact = [np.max(np.abs(s["logged"][k] - s["policy"][k])) <= 1e-5 for s in res["series"].values()
             for k, st in enumerate(s["status"]) if st == "compared"]
    # measured 1,169 of 1,179 exact (99.2 %) at load ~3 on the 2 cores; the rest: a node's inputs the log does not hold
    assert np.mean(exact) >= 0.95, (sum(exact), len(exact))


def test_a_command_into_a_shelf_is_braked_over_ros(tmp_path):
    """A fleet safety node process with one shelf as its `boxes`; the robot (played by the scenario over DDS)
    is told to drive at it at full speed from 0.35 m: its barrier point slows down at the shelf's margin and never
    enters it (then the deadlock rule turns it along the shelf). Without the parameter (the node before this
    change) it drives into the shelf within ~1.7 s."""
    r = run_scenario("shelf_brake_scenario.py", tmp_path, "boxes")
    assert all(map(stopped, r["exit_codes"].values())), r["log"][-2000:]
    # measured: closest 0.184 m (margin 0.105 m; the cubic rows slow the last bit), 0.166 m travelled; without the
    # boxes: closest -0.047 m (inside the shelf), 0.436 m travelled
    assert r["margin_m"] - 1e-3 <= r["closest_m"] < 0.25, r["closest_m"]   # came on from 0.35 m, never inside the margin
    assert r["travelled_m"] > 0.1 and len(r["cmds"]) > 30, (r["travelled_m"], len(r["cmds"]))  # it did drive there
