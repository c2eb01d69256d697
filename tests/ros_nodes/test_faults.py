"""Faults over real DDS: bad poses, a killed policy node, a killed recorder, a wrong model."""
import json
import sys

from ros_fixtures import REPO, policies, run_scenario  # noqa: F401  (fixture)
from marlstack.ros_nodes.isolation import run_isolated
from marlstack.replay.bag import Bag
from marlstack.ros_nodes.runner import EXIT_START_ERROR


def test_watchdog_stops_and_recovers_and_a_killed_recorder_leaves_a_readable_bag(policies, tmp_path):
    result = run_scenario("fault_scenario.py", tmp_path, str(policies[4]))
    assert result["started"]
    for fault, words in (("nan", "non-finite"), ("malformed", "norm 0")):
        r = result[fault]
        assert r["zero_command"], (fault, r)
        assert any(words in d and "pose of robot_0" in d for d in r["diagnostics"]), (fault, r)
        assert r["recovered"] and r["ok_diagnostic_after"], (fault, r)
    lost = result["lost_2"]   # one lost marker stops only its robot (robot_2 has no policy: stopped anyway)
    assert lost["robot_0_moving"] and lost["robot_1_moving"], lost
    late = result["delay_0"]  # poses stamped 1 s before they arrive are stale every time: robot_0 stops
    assert late["victim_zero"] and not late["robot_0_moving"] and late["robot_1_moving"], late
    assert any("pose of robot_0: last one" in d for d in late["diagnostics"]), late
    kill = result["kill"]
    # the safety node's watchdog (3 periods of its own clock) stops it: counted in commands, not seconds (the
    # commands in flight at the kill, then at most the watchdog's 3 periods; a loaded machine stretches seconds)
    assert kill["moving_commands_after"] is not None and kill["moving_commands_after"] <= 5, kill
    assert kill["stays_zero"] and kill["robot_1_still_moving"], kill

    killed = result["recorder_kill"]
    bag = Bag(killed["bag"])  # SIGKILLed: no footer, no metadata.yaml
    records = list(bag.records())
    assert bag.status.unread_bytes == 0, bag.status  # every flushed chunk is whole
    poses = [r for r in records if r.topic == "/robot_0/pose"]
    assert any(r.topic == "/robot_0/cmd_vel" for r in records)
    assert abs(bag.decode(poses[-1]).pose.position.x + 1.0) < 1e-3   # robot_0 at x = -1 (0.1 mm mocap noise)
    # What was on disk at the kill: everything up to about one flush period (0.2 s) before it,
    # and no hole before that (best effort may lose a few under load, not a stretch).
    first, last = poses[0].t_ns / 1e9, poses[-1].t_ns / 1e9
    assert last >= killed["killed_at"] - 1.0, (last, killed["killed_at"])
    sent = [t for t in killed["pose_publish_times"] if first <= t <= last]
    assert len(poses) >= 0.8 * len(sent) > 20, (len(poses), len(sent))


def run_policy_node(policy, tmp_path, **overrides):
    params = {"robot": "robot_0", "robots": ["robot_0", "robot_1", "robot_2", "robot_3"], "profile": "gritsbot_x",
              "scenario": "navigation", "policy_path": str(policy), "rate_hz": 1 / 0.033, **overrides}
    args = [a for k, v in params.items() for a in ("-p", f"{k}:={json.dumps(v)}")]
    return run_isolated([sys.executable, "-m", "marlstack.ros_nodes.policy_node", "--ros-args", *args],
                        capture_output=True, text=True, timeout=60, cwd=REPO)


def test_wrong_models_are_refused_with_the_documented_error(policies, tmp_path):
    other_profile = run_policy_node(policies[4], tmp_path, profile="rps_v1")
    assert other_profile.returncode == EXIT_START_ERROR
    line = other_profile.stderr.strip().splitlines()[-1]
    assert line.startswith(f"policy_node: refusing to start: {policies[4]}: ") and "vehicle profile hash" in line

    wrong_fleet = run_policy_node(policies[8], tmp_path)
    assert wrong_fleet.returncode == EXIT_START_ERROR
    assert "model input 'others' expects per-robot shape [7, 3], this fleet of 4 robots gives [3, 3]" in wrong_fleet.stderr

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    bad = run_policy_node(garbage, tmp_path)
    assert bad.returncode == EXIT_START_ERROR and "onnxruntime cannot load this model" in bad.stderr
    assert "Traceback" not in bad.stderr + wrong_fleet.stderr + other_profile.stderr
