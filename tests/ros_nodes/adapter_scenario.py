"""A real hardware adapter process between a stand-in stack and a fake robot; run as a script inside the
loopback-only namespace (see test_hardware_adapter.py). JSON to argv[1].

The fake robot behaves like a TurtleBot3 driver: it takes Twist on its own reliable `cmd_vel`, acts
on each command 30 ms after it arrives, loses 10 % of them, keeps the last command forever, and its
motion-capture body streams PoseStamped in OptiTrack's y-up frame with 1 mm noise (best effort).
Phases: drive (a command beyond the limits), e-stop topic, release, e-stop service, release, the
stack dies. For each phase the commands the robot executed in its last 0.4 s are reported.
"""
from __future__ import annotations

import collections
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, Twist
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from std_msgs.msg import Bool
from std_srvs.srv import SetBool

from marlstack.ros_nodes import convert, topics
from marlstack.ros_nodes.isolation import ros_env
from marlstack.ros_nodes.plan import NodeSpec
from marlstack.ros_nodes.supervisor import Supervisor

ROBOT, ROBOT_CMD, MOCAP = "tb3_0", "/tb3_0_driver/cmd_vel", "/optitrack/tb3_0/pose"
LATENCY_S, DROP, NOISE_M = 0.03, 0.1, 0.001


class World(Node):
    def __init__(self) -> None:
        super().__init__("world")
        self.rng = random.Random(0)
        self.pending: collections.deque = collections.deque()
        self.executed: list[tuple[float, float, float]] = []   # (time, v, w) the robot acted on
        self.x = self.y = self.yaw = 0.0
        self.stack_cmd: tuple[float, float] | None = (1.0, 0.5)
        self.poses_seen: list[tuple[float, float, float, float, float]] = []  # stack pose vs truth
        self.create_subscription(Twist, ROBOT_CMD, self._on_robot_cmd, topics.qos_profile("events"))
        self.stack = self.create_publisher(Twist, topics.CMD_VEL.path(ROBOT), topics.qos_profile("state"))
        self.mocap = self.create_publisher(PoseStamped, MOCAP, qos_profile_sensor_data)
        self.estop = self.create_publisher(Bool, "/estop", topics.qos_profile("latched"))
        self.create_subscription(PoseStamped, topics.POSE.path(ROBOT), self._on_pose, topics.qos_profile("state"))
        self.client = self.create_client(SetBool, f"/{ROBOT}/estop")
        self.create_timer(0.05, self._stack_tick)
        self.create_timer(0.01, self._robot_tick)

    def _on_robot_cmd(self, msg) -> None:
        if self.rng.random() >= DROP:
            self.pending.append((time.monotonic() + LATENCY_S, msg.linear.x, msg.angular.z))

    def _stack_tick(self) -> None:
        if self.stack_cmd is not None:
            self.stack.publish(convert.cmd_to_twist(*self.stack_cmd))

    def _robot_tick(self) -> None:
        now = time.monotonic()
        while self.pending and self.pending[0][0] <= now:
            _, v, w = self.pending.popleft()
            self.executed.append((now, v, w))
        if self.executed:
            _, v, w = self.executed[-1]   # the driver keeps the last command
            self.x += 0.01 * v * math.cos(self.yaw)
            self.y += 0.01 * v * math.sin(self.yaw)
            self.yaw += 0.01 * w
        msg = PoseStamped()
        convert.set_stamp(msg.header.stamp, self.get_clock().now().nanoseconds * 1e-9)
        # OptiTrack y-up: world (x, y, z) is streamed as (x, z, -y); a yaw about world z is a turn about its y
        n = [self.rng.gauss(0, NOISE_M) for _ in range(3)]
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = self.x + n[0], 0.05 + n[1], -(self.y + n[2])
        msg.pose.orientation.w, msg.pose.orientation.y = math.cos(self.yaw / 2), math.sin(self.yaw / 2)
        self.mocap.publish(msg)

    def _on_pose(self, msg) -> None:
        x, y, yaw, _ = convert.pose_from_msg(msg)
        self.poses_seen.append((x, y, yaw, self.x, self.y, self.yaw, msg.pose.position.z))

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self, timeout_sec=0.005)

    def last(self, seconds: float) -> list[list[float]]:
        now = time.monotonic()
        return [[v, w] for t, v, w in self.executed if now - t <= seconds]

    def set_estop_service(self, hold: bool) -> dict:
        assert self.client.wait_for_service(timeout_sec=10.0)
        future = self.client.call_async(SetBool.Request(data=hold))
        end = time.monotonic() + 5
        while not future.done() and time.monotonic() < end:
            rclpy.spin_once(self, timeout_sec=0.01)
        return {"success": future.result().success, "message": future.result().message}


def main(out: Path, workdir: Path) -> None:
    spec = NodeSpec("hardware_adapter_node", "adapter_tb3_0", "/", {
        "robot": ROBOT, "profile": "turtlebot3_burger", "timeout_s": 0.25, "robot_cmd_topic": ROBOT_CMD,
        "mocap_topic": MOCAP, "mocap_up_axis": "y"})
    sup = Supervisor(ros_env(), workdir / "logs")
    proc = sup.start(spec)
    rclpy.init()
    node = World()
    result: dict = {}
    try:
        deadline = time.monotonic() + 60
        while not node.executed and time.monotonic() < deadline:  # the adapter is up and commanding
            node.spin_for(0.1)
        node.spin_for(1.5)
        result["drive"] = node.last(0.4)
        node.estop.publish(Bool(data=True))
        node.spin_for(1.0)
        result["estop_topic"] = node.last(0.4)
        node.estop.publish(Bool(data=False))
        node.spin_for(1.0)
        result["released"] = node.last(0.4)
        result["service_hold"] = node.set_estop_service(True)
        node.spin_for(1.0)
        result["estop_service"] = node.last(0.4)
        result["service_release"] = node.set_estop_service(False)
        node.spin_for(1.0)
        result["released_again"] = node.last(0.4)
        node.stack_cmd = None   # the stack dies
        died = time.monotonic()
        node.spin_for(1.5)
        result["stack_dead"] = node.last(0.4)
        stops = [t - died for t, v, w in node.executed if t > died and v == 0.0 and w == 0.0]
        result["first_stop_after_s"] = stops[0] if stops else None
        result["poses"] = node.poses_seen[-50:]
        result["pose_count"] = len(node.poses_seen)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        result["exit_codes"] = sup.stop(["hardware_adapter_node"])
        sup.kill_all()
        result["log"] = proc.log.read_text(errors="replace")
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
