"""The fleet container (ros_nodes/container.py): the plan's arrangement, and over real DDS one robot's bad marker or
failing policy node stopping only that robot.

A SITL run in the container arrangement reaching its goals (16 nodes in one process, stopped by SIGINT) is
test_sitl.py's 8-robot onboard run.
"""
import pytest

from ros_fixtures import REPO, config_with_policy, policies, run_scenario  # noqa: F401  (fixture)
from container_scenario import INJECTED, VICTIM
from marlstack.ros_nodes.container import EXIT_HOSTED_FAILED, Hosted
from marlstack.ros_nodes.plan import PlanError, arrange, fleet_plan, load_deployment


def test_the_arrangement_puts_the_onboard_nodes_in_one_container_and_keeps_the_rest(tmp_path):
    config = config_with_policy("robotarium_nav4.yaml", REPO / "policy.onnx", tmp_path)
    dep = load_deployment(config)
    assert dep.arrangement == "process_per_node"  # the default: one process per node, as on the robots
    specs = fleet_plan(dep, sitl=True, record=tmp_path / "bag")
    assert arrange(specs, "process_per_node") == specs
    arranged = arrange(specs, "fleet_container")
    assert [s.executable for s in arranged] == ["sim_node", "recorder_node", "container"]
    (box,) = [s for s in arranged if s.hosted]
    assert [h.fqn for h in box.hosted] == [f"/robot_{i}/policy" for i in range(4)] + ["/safety"]
    # the container's command carries each hosted node's own --ros-args (its name, namespace, parameters, remaps)
    cmd = box.command("python")
    assert cmd[:3] == ["python", "-m", "marlstack.ros_nodes.container"]
    hosted = [Hosted.parse(a) for a in cmd[3:]]
    assert [(h.module, h.fqn, h.args) for h in hosted] == [(s.module, s.fqn, s.ros_args()) for s in box.hosted]

    config.write_text(config.read_text() + "arrangement: fleet_container\n")
    assert load_deployment(config).arrangement == "fleet_container"
    config.write_text(config.read_text().replace("arrangement: fleet_container", "arrangement: one_big_process"))
    with pytest.raises(PlanError, match="key 'arrangement' must be one of process_per_node, fleet_container"):
        load_deployment(config)


def test_one_robots_bad_marker_or_failing_policy_stops_only_that_robot_in_a_fleet_container(policies, tmp_path):
    """Every robot's policy and onboard safety node in one container, the robots driven by their cmd_vel. (1)
    Availability (issue 14): robot_1 stands in robot_0's way and its poses turn NaN once all drive: it stops with its
    reason and the others drive on round it, never closer than a collision. (2) robot_3's policy node fails."""
    result = run_scenario("container_scenario.py", tmp_path, str(policies[4]))
    assert result["started"], result["log"][-3000:]
    nan = result["nan"]
    assert nan["robot_1_zero"] and not nan["robot_1_moving_after"] and nan["robot_1_drift_m"] < 0.05, nan
    warned = nan["warnings"]   # robot_1's own nodes say why; the others never stop for it
    for name in ("/robot_1/policy", "/robot_1/safety"):
        assert any("pose of robot_1" in w and "non-finite" in w for w in warned.get(name, [])), warned
    assert not any("robot_1" in w for name, ws in warned.items() if "robot_1" not in name for w in ws), warned
    assert result["others_drove_on"], nan
    assert result["min_distance_m"] > result["collision_distance_m"], result["min_distance_m"]

    fault = result["fault"]
    # the safety node (in the same process) stops robot_3 once its nominal command goes stale: counted in
    # commands, not seconds (a loaded machine stretches seconds)
    assert fault["moving_commands_after"] is not None and fault["moving_commands_after"] <= 5, fault
    assert fault["stays_zero"] and fault["robot_2_still_moving"] and fault["container_running"], fault
    assert fault["failures"] == [[f"/{VICTIM}/policy", f"RuntimeError: {INJECTED}"]], fault
    assert f"node /{VICTIM}/policy failed (RuntimeError: {INJECTED}); it is stopped" in result["log"]
    assert "Traceback" in result["log"]  # where it failed, for whoever reads the log
    assert result["exit_codes"] == {"/fleet_container": EXIT_HOSTED_FAILED}, (result["exit_codes"], result["log"][-2000:])
