"""The sim node holds the robots until the fleet is connected; run as a script inside the
loopback-only namespace (see test_sim_hold.py).

A real sim node process simulates two robots and must wait for one reader on each pose topic and
one writer on each cmd_vel. This process plays the fleet: it connects to robot_0 only (and
commands it to drive), then to robot_1 as well, and reports what it received while connected to
one robot, when the sim's summary file (written once the robots are released) appeared, and
robot_0's first poses. JSON to argv[1].
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import rclpy
from rclpy.node import Node

from marlstack.ros_nodes import topics
from marlstack.ros_nodes.isolation import ros_env
from marlstack.ros_nodes.plan import NodeSpec
from marlstack.ros_nodes.supervisor import Supervisor

ROBOTS = ["robot_0", "robot_1"]
HOLD_CHECK_S = 3.0  # longer than the sim's 2 s between "holding" log lines


class Fleet(Node):
    def __init__(self) -> None:
        super().__init__("fleet")
        self.poses: dict[str, list[tuple[float, float]]] = {r: [] for r in ROBOTS}
        self.cmd_pubs: list = []
        self.create_timer(0.03, lambda: [p.publish(self.cmd) for p in self.cmd_pubs])
        self.cmd = topics.message_class(topics.CMD_VEL.type)()
        self.cmd.linear.x = 0.1

    def connect(self, robot: str) -> None:
        state = topics.qos_profile("state")
        self.create_subscription(topics.message_class(topics.POSE.type), topics.POSE.path(robot),
                                 lambda m: self.poses[robot].append((m.pose.position.x, m.pose.position.y)), state)
        self.cmd_pubs.append(self.create_publisher(topics.message_class(topics.CMD_VEL.type), topics.CMD_VEL.path(robot),
                                                   state))

    def spin_for(self, seconds: float, until=lambda: False) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            rclpy.spin_once(self, timeout_sec=0.01)
            if until():
                return True
        return False


def main(out: Path, workdir: Path) -> None:
    summary = workdir / "sim_summary.json"
    spec = NodeSpec("sim_node", "sim", "/", {
        "robots": ROBOTS, "profile": "gritsbot_x", "starts": [-0.5, 0.0, 0.0, 0.5, 0.0, 3.14], "goals": [0.5, 0.5, -0.5, -0.5],
        "summary_path": str(summary), "pose_subscribers": 1, "task_subscribers": 0, "cmd_vel_publishers": 1})
    sup = Supervisor(ros_env(), workdir / "logs")
    proc = sup.start(spec)
    rclpy.init()
    node = Fleet()
    result: dict = {}
    try:
        node.connect("robot_0")
        node.spin_for(60.0, lambda: "holding" in proc.log.read_text(errors="replace"))  # the sim is up
        node.spin_for(HOLD_CHECK_S)
        result["poses_while_held"] = len(node.poses["robot_0"])
        result["released_with_one_robot"] = summary.exists()
        node.connect("robot_1")
        result["released"] = node.spin_for(30.0, summary.exists)
        node.spin_for(1.0)
        result["robot_0_poses"] = node.poses["robot_0"]
        result["summary"] = json.loads(summary.read_text()) if summary.exists() else None
    finally:
        node.destroy_node()
        rclpy.shutdown()
        result["exit_codes"] = sup.stop(["sim_node"])
        sup.kill_all()
        result["log"] = proc.log.read_text(errors="replace")
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
