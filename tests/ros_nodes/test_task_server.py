"""The task server node over real DDS (loopback only): launch/material_transport4.yaml as a testbed plans it (no sim),
its task server fed fake mocap poses of the 4 robots; every robot's task message equals `ScenarioTask`'s on the
same poses: at the starts, after robot_1 drives into the loading zone (it loads), while robot_1's pose is refused
(the task keeps its last good pose: nothing changes, the diagnostic says why) and once it is in the unloading zone.

Run by pytest; the DDS part runs this file as a script in a loopback-only namespace (ros_fixtures.run_scenario).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from marlstack.ros_nodes.plan import fleet_plan, load_deployment

CONFIG = Path(__file__).resolve().parents[2] / "launch" / "material_transport4.yaml"
LOADING, UNLOADING = (-0.6, 0.0, 0.0), (0.6, 0.0, 0.0)   # material_transport's zones (docs/sim.md)


def test_a_testbed_plan_of_a_task_scenario_has_the_task_server_with_the_sims_task():
    dep = load_deployment(CONFIG)
    hardware, sitl = fleet_plan(dep), fleet_plan(dep, sitl=True)
    server = [s for s in hardware if s.executable == "task_server_node"]
    assert len(server) == 1 and not any(s.executable == "sim_node" for s in hardware)
    assert not any(s.executable == "task_server_node" for s in sitl)   # in SITL the sim node hosts the task
    sim = next(s for s in sitl if s.executable == "sim_node").parameters
    for key in ("scenario", "seed", "starts", "team", "robots", "profile", "rate_hz"):
        assert server[0].parameters[key] == sim[key], key
    assert not any(s.executable == "task_server_node" for s in fleet_plan(load_deployment(CONFIG.with_name(
        "robotarium_nav4.yaml"))))   # navigation's goals come from the deployment


def test_the_task_server_hosts_the_task_on_the_robots_poses_over_dds(tmp_path):
    from ros_fixtures import run_scenario, stopped

    out = run_scenario("test_task_server.py", tmp_path, timeout=120)
    assert stopped(out["exit"]), out
    for phase in ("start", "loaded", "refused", "unloaded"):
        assert out[phase]["error"] <= 1e-6, (phase, out[phase])   # each robot's message = ScenarioTask's
    # the task changed when robot_1 entered a zone (its load; everyone's view of the material waiting), and only then
    assert "robot_1" in out["loaded"]["changed"] and "robot_1" in out["unloaded"]["changed"], out
    assert out["refused"]["changed"] == [], out["refused"]
    assert out["refused"]["held"] == "robot_1" and out["refused"]["level"] == 1, out["refused"]
    assert "pose of robot_1" in out["refused"]["message"] and "in the future" in out["refused"]["message"], out["refused"]
    assert out["unloaded"]["held"] == "" and out["unloaded"]["level"] == 0, out["unloaded"]
    assert out["start"]["message"] == "0 of 4 robots whose team delivered all the material", out["start"]
    assert out["unloaded"]["solved"] and out["unloaded"]["message"] == "solved", out["unloaded"]   # the task's progress


def scenario(result: Path, work: Path) -> None:
    """The DDS part: the task server process from the testbed plan, fake mocap in this process."""
    import rclpy
    from rclpy.node import Node

    from marlstack.hardware import load_profile
    from marlstack.ros_nodes import convert, topics
    from marlstack.ros_nodes.isolation import ros_env
    from marlstack.ros_nodes.scenario_task import host_task
    from marlstack.ros_nodes.supervisor import Supervisor

    dep = load_deployment(CONFIG)
    spec = next(s for s in fleet_plan(dep) if s.executable == "task_server_node")
    sup = Supervisor(ros_env(), work / "logs")
    proc = sup.start(spec)
    robots, params = dep.robot_names, spec.parameters
    starts = np.reshape(params["starts"], (-1, 3))
    ref = host_task(dep.scenario, load_profile(dep.profile), starts, params["seed"], np.zeros((0, 4)), [],
                    params["team"])
    rclpy.init()
    node = Node("mocap")
    tasks: dict[str, np.ndarray] = {}
    diags: list = []
    pubs = [node.create_publisher(topics.message_class(topics.POSE.type), topics.POSE.path(r),
                                  topics.qos_profile("state")) for r in robots]
    for r in robots:
        node.create_subscription(topics.message_class(topics.TASK.type), topics.TASK.path(r),
                                 lambda m, r=r: tasks.__setitem__(r, np.asarray(m.data)), topics.qos_profile("latched"))
    node.create_subscription(topics.message_class(topics.DIAGNOSTICS.type), topics.DIAGNOSTICS.path(),
                             lambda m: diags.extend(s for s in m.status if s.hardware_id == "task"),
                             topics.qos_profile(topics.DIAGNOSTICS.qos))
    poses = starts.copy()
    early: float | None = None   # robot_1's poses stamped this far in the future of the server's clock (refused)

    def publish() -> None:
        now = node.get_clock().now().nanoseconds * 1e-9
        for i, pub in enumerate(pubs):
            pub.publish(convert.pose_to_msg(*poses[i], now + (early if early and i == 1 else 0.0)))

    node.create_timer(0.03, publish)

    def settle(expected: np.ndarray, held: str, more_s: float = 0.0, limit_s: float = 60.0) -> dict:
        """Spin until every robot's latest task message is `expected` and the latest diagnostic names `held` as the
        robots at their last good pose, and so for `more_s` after that; what the last one says."""
        end, error, matched = time.monotonic() + limit_s, np.inf, None
        first = {r: v.copy() for r, v in tasks.items()}
        t0 = time.monotonic()
        while time.monotonic() < end and proc.popen.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
            if len(tasks) == len(robots) and diags:
                error = max(float(np.max(np.abs(tasks[r] - expected[i]))) for i, r in enumerate(robots))
                ok = error <= 1e-6 and {kv.key: kv.value for kv in diags[-1].values}["held"] == held
                matched = None if not ok else time.monotonic() if matched is None else matched
                if matched is not None and time.monotonic() - matched >= more_s:
                    break
        d = diags[-1] if diags else None
        values = {} if d is None else {kv.key: kv.value for kv in d.values}
        return {"error": error, "level": d.level[0] if d else None, "message": d.message if d else "",
                "held": values.get("held"), "changed": sorted(r for r in first if np.any(first[r] != tasks[r])),
                "solved": ref.solved, "s": round(time.monotonic() - t0, 2)}

    out: dict = {}
    ref.step(starts, starts)
    out["start"] = settle(np.asarray(ref.messages()), "")
    poses[1] = LOADING
    ref.step(starts, poses)
    out["loaded"] = settle(np.asarray(ref.messages()), "")
    poses[1], early = UNLOADING, 5.0    # where it would unload: the task keeps its last good pose, in the loading zone
    # held from the tick that refused the pose on, which a server using it would have moved; and for 10 ticks more
    out["refused"] = settle(np.asarray(ref.messages()), "robot_1", more_s=0.3)
    early = None
    ref.step(np.where(np.arange(len(robots))[:, None] == 1, LOADING, poses), poses)
    out["unloaded"] = settle(np.asarray(ref.messages()), "")
    node.destroy_node()
    rclpy.shutdown()
    out["exit"] = sup.stop()[proc.label]
    result.write_text(json.dumps(out))


if __name__ == "__main__":
    scenario(Path(sys.argv[1]), Path(sys.argv[2]))
