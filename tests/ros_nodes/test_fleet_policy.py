"""The fleet policy node (ros_nodes/fleet_policy_node.py): one batched onnxruntime call for every robot.

Against the per-robot policy node's own pieces (`open_policy`: its adapter and runtime) on the same inputs, with
the committed trained navigation policy; a robot's bad input stopping only that robot, in the batch and over
real DDS (fleet_policy_scenario.py); the plan of the `fleet_policy` arrangement. A SITL run in this arrangement
reaching its goals is test_sitl.py's 4-robot fleet-safety run.
"""
import math
from types import SimpleNamespace

import numpy as np
import onnx
import pytest

from ros_fixtures import REPO, config_with_policy, policies, run_scenario  # noqa: F401  (fixture)
from marlstack.hardware.profile import load_profile
from marlstack.ros_nodes.adapters import InvalidInput, StaleInput
from marlstack.ros_nodes.fleet_policy_node import OUTPUT, FleetPolicy
from marlstack.ros_nodes.plan import arrange, fleet_plan, load_deployment
from marlstack.ros_nodes.policy_node import open_policy
from marlstack.ros_nodes.runner import EXIT_START_ERROR

ROBOTS = [f"robot_{i}" for i in range(4)]
RATE_HZ = 1 / 0.033
MAX_AGE_S = 3 / RATE_HZ + 0.02
NEIGHBOUR_S = 60.0   # the nodes' default: a neighbour's last known pose feeds the model this long


def per_robot(policy):
    """Each robot's (runtime, adapter) as its own policy node builds them."""
    return {r: open_policy(str(policy), "navigation", load_profile("gritsbot_x"), RATE_HZ, ROBOTS, r, MAX_AGE_S,
                        NEIGHBOUR_S) for r in ROBOTS}


def feed(fleet, nodes, poses, goals, t):
    """The same poses (stamped t) and goals to the fleet's adapters and to every per-robot node's."""
    for r, p, g in zip(ROBOTS, poses, goals):
        fleet.adapters[r].update_pose(r, *p, t)
        fleet.adapters[r].update_goal(*g)
        for _, adapter in nodes.values():
            adapter.update_pose(r, *p, t)
        nodes[r][1].update_goal(*g)


def reference(nodes, r, now):
    runtime, adapter = nodes[r]
    return np.asarray(runtime.run(adapter.inputs(now))["cmd"], np.float64).reshape(-1)


def test_one_batched_call_gives_every_robot_its_policy_nodes_command(policies):
    fleet, nodes = FleetPolicy(str(policies[4]), "navigation", load_profile("gritsbot_x"), RATE_HZ, ROBOTS,
                               MAX_AGE_S, NEIGHBOUR_S), per_robot(policies[4])
    assert fleet.batched and fleet.runtime.batch_size == 4
    rng = np.random.default_rng(0)
    worst = 0.0
    for tick in range(6):
        t = 10.0 + tick / RATE_HZ
        feed(fleet, nodes, rng.uniform([-1.3, -0.8, -math.pi], [1.3, 0.8, math.pi], (4, 3)),
             rng.uniform([-1.3, -0.8], [1.3, 0.8], (4, 2)), t)
        calls = fleet.calls
        out = fleet.commands(t + 0.005, ROBOTS)
        assert fleet.calls == calls + 1   # one onnxruntime call for the whole fleet
        for r in ROBOTS:
            worst = max(worst, np.abs(np.array(out[r]) - reference(nodes, r, t + 0.005)).max())
        assert any(abs(v) > 1e-3 for r in ROBOTS for v in out[r])   # real commands, not zeros
    assert worst <= 1e-5, worst


def test_a_robots_bad_input_stops_only_that_robot(policies):
    fleet, nodes = FleetPolicy(str(policies[4]), "navigation", load_profile("gritsbot_x"), RATE_HZ, ROBOTS,
                               MAX_AGE_S, NEIGHBOUR_S), per_robot(policies[4])
    poses = [(-1.0, 0.5, 0.0), (-1.0, -0.5, 0.0), (1.0, 0.5, math.pi), (1.0, -0.5, math.pi)]
    goals = [(0.5, 0.5), (0.5, -0.5), (-0.5, 0.5), (-0.5, -0.5)]
    feed(fleet, nodes, poses, goals, 10.0)
    fleet.adapters["robot_1"].update_pose("robot_1", *poses[1], 10.0 - 1.0)   # its pose is a second old: stale
    fleet.adapters["robot_2"].update_goal(math.nan, 0.0)                        # a non-finite goal
    out = fleet.commands(10.01, ROBOTS, problems={"robot_3": "frozen"})         # what the node's frozen check says
    assert isinstance(out["robot_1"], StaleInput) and out["robot_1"].source == "pose of robot_1"
    assert isinstance(out["robot_2"], InvalidInput) and out["robot_2"].source == "goal"
    assert out["robot_3"].source == "pose of robot_3" and out["robot_3"].reason == "frozen"
    # robot_0 drives, with the command its own node computes (its neighbour robot_1's older pose is allowed)
    nodes["robot_0"][1].update_pose("robot_1", *poses[1], 10.0 - 1.0)
    assert np.abs(np.array(out["robot_0"]) - reference(nodes, "robot_0", 10.01)).max() <= 1e-5
    assert fleet.calls == 1
    # good inputs again: every robot drives
    feed(fleet, nodes, poses, goals, 10.1)
    assert all(isinstance(c, tuple) for c in fleet.commands(10.11, ROBOTS).values())
    # robot_1's next pose is non-finite: refused in the one pose store; robot_1 stops, saying why, and the others
    # drive on with its last good pose (stamped 10.1), as their own policy nodes do
    fleet.adapters["robot_1"].update_pose("robot_1", math.nan, -0.5, 0.0, 10.133)
    out = fleet.commands(10.14, ROBOTS)
    assert isinstance(out["robot_1"], InvalidInput) and str(out["robot_1"]) == "pose of robot_1: non-finite value"
    for r in ("robot_0", "robot_2", "robot_3"):
        nodes[r][1].update_pose("robot_1", math.nan, -0.5, 0.0, 10.133)
        assert np.abs(np.array(out[r]) - reference(nodes, r, 10.14)).max() <= 1e-5
    feed(fleet, nodes, poses, goals, 10.15)
    # a refused model output (beyond the implausible limit) stops only its robot
    run = fleet.runtime.run
    fleet.runtime.run = lambda feeds: {**run(feeds), "cmd": run(feeds)["cmd"] + np.array([[0, 0], [100, 0], [0, 0], [0, 0]],
                                                                                       np.float32)}
    out = fleet.commands(10.12, ROBOTS)
    assert out["robot_1"].source == OUTPUT and all(isinstance(out[r], tuple) for r in ("robot_0", "robot_2", "robot_3"))


def test_a_model_exported_with_a_fixed_batch_of_one_runs_once_per_robot(policies, tmp_path):
    model = onnx.load(str(policies[4]))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1    # as a fixed-batch exporter would write it
    fixed = tmp_path / "fixed_batch.onnx"
    onnx.save(model, str(fixed))
    fleet = FleetPolicy(str(fixed), "navigation", load_profile("gritsbot_x"), RATE_HZ, ROBOTS, MAX_AGE_S, NEIGHBOUR_S)
    assert not fleet.batched and fleet.unbatched_reason, fleet.unbatched_reason
    nodes = per_robot(policies[4])
    feed(fleet, nodes, [(-1.0, 0.5, 0.0), (-1.0, -0.5, 0.0), (1.0, 0.5, 3.0), (1.0, -0.5, 3.0)],
         [(0.5, 0.5), (0.5, -0.5), (-0.5, 0.5), (-0.5, -0.5)], 10.0)
    out = fleet.commands(10.01, ROBOTS)
    assert fleet.calls == 1 and all(np.abs(np.array(out[r]) - reference(nodes, r, 10.01)).max() <= 1e-5 for r in ROBOTS)


def test_the_arrangement_plans_one_fleet_policy_node_in_place_of_the_per_robot_ones(tmp_path):
    config = config_with_policy("robotarium_nav4.yaml", REPO / "policy.onnx", tmp_path)
    config.write_text(config.read_text() + "arrangement: fleet_policy\n")
    dep = load_deployment(config)
    specs = fleet_plan(dep, sitl=True, record=tmp_path / "bag")
    assert [s.executable for s in specs] == ["sim_node", "fleet_policy_node", "safety_node", "recorder_node"]
    assert arrange(specs, "fleet_policy") == specs   # every node its own process
    (node,) = [s for s in specs if s.executable == "fleet_policy_node"]
    assert node.fqn == "/fleet_policy" and node.parameters["robots"] == dep.robot_names
    sim = specs[0].parameters   # the sim holds the robots until each pose has the fleet node, safety and recorder
    assert sim["pose_subscribers"] == 3 and sim["task_subscribers"] == 2
    per_robot_plan = fleet_plan(dep, sitl=True, record=tmp_path / "bag", arrangement="process_per_node")
    assert [s.executable for s in per_robot_plan].count("policy_node") == 4
    assert per_robot_plan[0].parameters["pose_subscribers"] == 6


def test_over_dds_a_stale_pose_and_a_bad_goal_stop_only_their_robots(policies, tmp_path):
    result = run_scenario("fleet_policy_scenario.py", tmp_path, str(policies[4]))
    assert result["started"], result["log"][-3000:]
    fault = result["fault"]   # robot_0's poses a second late (stale) and robot_1's goal non-finite, at once
    assert fault["zero"]["robot_0"] and fault["zero"]["robot_1"], fault
    assert fault["moving"] == {"robot_0": False, "robot_1": False, "robot_2": True, "robot_3": True}, fault
    diags = fault["diagnostics"]
    assert any("pose of robot_0: last one" in d for d in diags["/fleet_policy: robot_0"]), diags
    assert any("goal" in d and "non-finite" in d for d in diags["/fleet_policy: robot_1"]), diags
    # neither fault reaches the others (a loaded machine may still delay everyone's poses for a moment)
    assert not any("robot_0" in d or "goal" in d for r in ("robot_2", "robot_3") for d in diags.get(f"/fleet_policy: {r}", [])), diags
    assert result["recovered"], result
    assert result["batched_log"] in result["log"], result["log"][-2000:]


@pytest.mark.parametrize("arrangement", ["fleet_policy", "fleet_container"])
def test_the_launch_file_runs_the_deployments_arrangement(arrangement, monkeypatch, tmp_path, capsys):
    from test_launch import load_launch_file
    from marlstack.ros_nodes import container
    config = config_with_policy("robotarium_nav4.yaml", REPO / "policy.onnx", tmp_path)
    config.write_text(config.read_text() + f"arrangement: {arrangement}\n")
    opaque = [a for a in load_launch_file(monkeypatch).generate_launch_description().args[0]
              if type(a).__name__ == "OpaqueFunction"][0]
    context = SimpleNamespace(launch_configurations={"config": str(config), "sim": "false", "record": "", "foxglove": ""})
    nodes = {n.kwargs["executable"]: n.kwargs for n in opaque.kwargs["function"](context)}
    specs = arrange(fleet_plan(load_deployment(config)), arrangement)
    assert list(nodes) == [s.executable for s in specs]
    if arrangement == "fleet_policy":
        assert list(nodes) == ["fleet_policy_node", "safety_node"] and "arguments" not in nodes["fleet_policy_node"]
    else:   # the container gets its hosted nodes as arguments; ros2 launch appends its own --ros-args after them
        (box,) = specs
        assert list(nodes) == ["container"] and nodes["container"]["arguments"] == box.command()[3:]
        assert container.main(["--ros-args", "-r", "__node:=fleet_container"]) == EXIT_START_ERROR
        assert capsys.readouterr().err.strip() == "container: no nodes to host"
