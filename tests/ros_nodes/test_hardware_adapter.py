"""The hardware adapter node between a stack and a fake TurtleBot3-like robot over real DDS (loopback)."""
import math

import numpy as np
import pytest

from marlstack.hardware import load_profile
from ros_fixtures import REPO, policies, run_scenario, stopped  # noqa: F401  (fixture)
from marlstack.ros_nodes.hardware_adapter_node import CommandGate, mocap_to_world


def test_gate_precedence_and_limits_last():
    gate = CommandGate(load_profile("turtlebot3_burger"), timeout_s=0.25)
    assert gate.command(0.0)[2] == "no command from the stack yet"
    gate.on_stack(1.0, -5.0, now=1.0)
    assert gate.command(1.1)[:2] == (0.22, -2.84)            # TurtleBot3: v and omega clipped independently
    gate.estop_service = True
    assert gate.command(1.1) == (0.0, 0.0, "e-stop (service)")
    gate.estop_service = False
    assert gate.command(1.3)[2].startswith("stack silent")  # 0.3 s > 0.25 s
    gate.on_stack(math.nan, 0.0, now=2.0)
    assert gate.command(2.0) == (0.0, 0.0, "non-finite command")
    create = CommandGate(load_profile("create3"), timeout_s=0.25)
    create.on_stack(0.306, 1.0, now=0.0)
    v, w, _ = create.command(0.0)                             # Create 3: per-wheel clip slows both
    assert v < 0.306 and w < 1.0 and max(abs(v - w * 0.235 / 2), abs(v + w * 0.235 / 2)) / 0.036 <= 8.5 + 1e-9


def test_mocap_y_up_to_z_up():
    yaw = 0.7
    pos, q = mocap_to_world([1.0, 0.3, -2.0], [math.cos(yaw / 2), 0.0, math.sin(yaw / 2), 0.0], "y")
    assert pos.tolist() == pytest.approx([1.0, 2.0, 0.3])
    assert q == pytest.approx([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


def test_adapter_with_a_fake_robot(tmp_path):
    r = run_scenario("adapter_scenario.py", tmp_path, timeout=150)
    assert list(r["exit_codes"]) == ["/adapter_tb3_0"] and stopped(r["exit_codes"]["/adapter_tb3_0"]), r["log"][-2000:]
    for phase in ("drive", "released", "released_again"):
        cmds = np.array(r[phase])
        assert len(cmds) >= 3 and np.allclose(cmds, [0.22, 0.5]), (phase, cmds[-5:])  # limits applied last
    for phase in ("estop_topic", "estop_service", "stack_dead"):
        cmds = np.array(r[phase])
        assert len(cmds) >= 3 and np.all(cmds == 0.0), (phase, cmds[-5:])             # e-stop / heartbeat win
    assert r["service_hold"]["success"] and "held" in r["service_hold"]["message"]
    assert r["first_stop_after_s"] is not None and r["first_stop_after_s"] < 1.0
    # mocap y-up, 1 mm noise -> the stack's z-up world pose
    poses = np.array(r["poses"])
    assert r["pose_count"] > 100
    assert np.abs(poses[:, 0] - poses[:, 3]).max() < 0.01 and np.abs(poses[:, 1] - poses[:, 4]).max() < 0.01
    assert np.abs(np.angle(np.exp(1j * (poses[:, 2] - poses[:, 5])))).max() < 0.01
    assert np.abs(poses[:, 6] - 0.05).max() < 0.01   # height: the body's y in Motive


def test_sitl_through_hardware_adapters_reaches_goals(policies, tmp_path):
    """marlstack sitl with a 'hardware' section: the sim plays the drivers and the mocap on the real-fleet topics."""
    from ros_fixtures import config_with_policy, sitl
    from marlstack.ros_nodes.plan import fleet_plan, load_deployment
    config = config_with_policy("robotarium_nav4_hardware.yaml", policies[4], tmp_path)
    specs = fleet_plan(load_deployment(config), sitl=True)
    adapters = [s for s in specs if s.executable == "hardware_adapter_node"]
    sim = next(s for s in specs if s.executable == "sim_node")
    assert [a.parameters["robot_cmd_topic"] for a in adapters] == [f"/robot_{i}/driver/cmd_vel" for i in range(4)]
    assert sim.remaps["/robot_0/cmd_vel"] == "/robot_0/driver/cmd_vel" and sim.remaps["/robot_0/pose"] == "/mocap/robot_0/pose"
    report, _ = sitl(config, "--duration", "60", "--until-goals")
    assert report["ok"], report["error"]
    assert sorted(report["exit_codes"]) == sorted({*report["exit_codes"]} | {f"/robot_{i}/hardware_adapter" for i in range(4)})
    assert all(map(stopped, report["exit_codes"].values())), report["exit_codes"]
    for name, r in report["robots"].items():
        assert r["goal_reached"] and r["collision_steps"] == 0 and r["boundary_exit_steps"] == 0, (name, r)


@pytest.mark.parametrize("section, message", [({"mocap_up_axis": "x"}, "hardware.mocap_up_axis"),
                                              ({"robot_cmd_topic": "cmd_vel"}, "hardware.robot_cmd_topic"),
                                              ({"timeout": 1}, "key 'hardware' must be a mapping")])
def test_bad_hardware_section_is_named(tmp_path, section, message):
    import yaml

    from marlstack.ros_nodes.plan import PlanError, load_deployment
    data = yaml.safe_load((REPO / "launch" / "robotarium_nav4_hardware.yaml").read_text())
    data["hardware"] = section
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PlanError, match=message):
        load_deployment(path)
