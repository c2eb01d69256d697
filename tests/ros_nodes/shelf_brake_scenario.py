"""A robot told to drive into a shelf, behind a real safety node process; run as a script inside the
loopback-only namespace (see test_rware_sitl.py).

The safety node (fleet mode) gets one box, `argv[2]` = "boxes" passes it as its `boxes` parameter, "none"
leaves it out. This process plays the robot and its policy: at the control rate it publishes the robot's
pose (stamped now) and a nominal command of full speed straight ahead, and moves the robot (a unicycle,
Euler step of one period) with the latest `cmd_vel` the safety node sent. The robot starts facing the box,
its barrier point 0.35 m below it. JSON to argv[1]: the closest the barrier point came to the box and the
commands received.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.node import Node

from marlstack.controllers.barrier_qp import barrier_points, barrier_spec, box_normals
from marlstack.hardware import load_profile
from marlstack.ros_nodes import convert, topics
from marlstack.ros_nodes.isolation import ros_env
from marlstack.ros_nodes.plan import NodeSpec
from marlstack.ros_nodes.supervisor import Supervisor

PROFILE = load_profile("gritsbot_x")
BOX = (-0.1, 0.1, 0.25, 0.35)
DRIVE_S = 3.0  # at 0.2 m/s the robot would be inside the box after ~1.7 s


class Robot(Node):
    def __init__(self) -> None:
        super().__init__("robot")
        state = topics.qos_profile("state")
        self.pose = np.array([0.0, BOX[2] - 0.35 - PROFILE.barrier.unicycle_walls.projection_distance, math.pi / 2])
        self.cmd = np.zeros(2)
        self.cmds: list[tuple[float, float]] = []
        self.pose_pub = self.create_publisher(topics.message_class(topics.POSE.type), topics.POSE.path("robot_0"), state)
        self.nominal_pub = self.create_publisher(topics.message_class(topics.CMD_VEL_NOMINAL.type),
                                                 topics.CMD_VEL_NOMINAL.path("robot_0"), state)
        self.create_subscription(topics.message_class(topics.CMD_VEL.type), topics.CMD_VEL.path("robot_0"), self._on_cmd,
                                 state)

    def _on_cmd(self, msg) -> None:
        self.cmd = np.array(convert.twist_to_cmd(msg))
        self.cmds.append(tuple(self.cmd))

    def tick(self) -> None:
        """One control period: move with the last safe command, then report the pose and ask for full speed."""
        v, w = self.cmd
        x, y, th = self.pose
        self.pose = np.array([x + PROFILE.dt * v * math.cos(th), y + PROFILE.dt * v * math.sin(th), th + PROFILE.dt * w])
        self.pose_pub.publish(convert.pose_to_msg(*self.pose, time.time()))
        self.nominal_pub.publish(convert.cmd_to_twist(PROFILE.max_linear_speed, 0.0))


def main(out: Path, boxes: str, workdir: Path) -> None:
    params = {"robots": ["robot_0"], "profile": PROFILE.name, "form": "unicycle_walls", "mode": "fleet", "robot": "",
              **({"boxes": list(BOX)} if boxes == "boxes" else {})}
    sup = Supervisor(ros_env(), workdir / "logs")
    proc = sup.start(NodeSpec("safety_node", "safety", "/", params))
    spec = barrier_spec(PROFILE, "unicycle_walls", boxes=[BOX])
    rclpy.init()
    robot = Robot()
    result: dict = {"closest_m": math.inf, "margin_m": spec.distance / 2}
    try:
        deadline = time.monotonic() + 60.0
        while not robot.cmds and time.monotonic() < deadline:   # the safety node is up and answering
            robot.pose_pub.publish(convert.pose_to_msg(*robot.pose, time.time()))
            robot.nominal_pub.publish(convert.cmd_to_twist(0.0, 0.0))
            rclpy.spin_once(robot, timeout_sec=PROFILE.dt)
        start, y0 = time.monotonic(), robot.pose[1]
        while time.monotonic() - start < DRIVE_S:
            robot.tick()
            t_next = time.monotonic() + PROFILE.dt
            while time.monotonic() < t_next:
                rclpy.spin_once(robot, timeout_sec=max(0.0, t_next - time.monotonic()))
            gap = float(box_normals(spec, barrier_points(spec, robot.pose[None]))[1][0, 0])
            result["closest_m"] = min(result["closest_m"], gap)
        result["travelled_m"] = float(robot.pose[1] - y0)
        result["cmds"] = robot.cmds
    finally:
        robot.destroy_node()
        rclpy.shutdown()
        result["exit_codes"] = sup.stop(["safety_node"])
        sup.kill_all()
        result["log"] = proc.log.read_text(errors="replace")
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
