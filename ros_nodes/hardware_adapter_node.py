"""Hardware adapter node: between the safety node's `/<robot>/cmd_vel` and one real ground robot.

What a lab plugs in: its robot's command topic (TurtleBot3 `cmd_vel`, Create 3 `cmd_vel`, a
Clearpath `cmd_vel` mux input, `Twist` or `TwistStamped`, reliable QoS as robot drivers expect),
and its motion-capture topic (`PoseStamped` per rigid body, best-effort sensor data, z-up or
Motive's y-up), republished as the stack's `/<robot>/pose` (world frame, REP-103 z-up).

Order of precedence, applied every control period by the node's own timer (so the robot always
receives a fresh command, even from drivers that keep the last one forever, like TurtleBot3's):
  1. e-stop: the fleet-wide `/estop` topic (std_msgs/Bool, latched) or this robot's
     `/<robot>/estop` service (std_srvs/SetBool) holds -> zero, whatever else arrives;
  2. stack heartbeat: no command from the stack for `timeout_s` (the safety node died, the
     network stalled) -> zero;
  3. otherwise the stack's command, non-finite -> zero;
  4. the vehicle profile's limits, last (`controllers.unicycle.saturate`: per wheel or v/omega).
Diagnostics on `/diagnostics` say which rule holds the robot. Onboard code: rclpy + numpy, no JAX.
"""
from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from marlstack.controllers.unicycle import saturate
from marlstack.hardware.frames import matrix_to_quat, quat_to_matrix
from marlstack.ros_nodes import convert, health, topics
from marlstack.ros_nodes.runner import StartError, declare, profile_and_rate, ros_now, run_node

ESTOP_TOPIC = "/estop"
# Motive (OptiTrack) streams y-up: x stays, the world's up is its y, its z points toward the viewer.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def mocap_to_world(position: Any, quat_wxyz: Any, up_axis: str) -> tuple[np.ndarray, np.ndarray]:
    """A mocap pose (`up_axis` 'z' or 'y') as a REP-103 world pose: (position, quaternion w x y z)."""
    p, q = np.asarray(position, float), np.asarray(quat_wxyz, float)
    if up_axis == "z":
        return p, q
    return Y_UP_TO_Z_UP @ p, matrix_to_quat(Y_UP_TO_Z_UP @ quat_to_matrix(q) @ Y_UP_TO_Z_UP.T)


class CommandGate:
    """The precedence rules above, without ROS: feed it events, ask `command(now)`."""

    def __init__(self, profile: Any, timeout_s: float):
        self.profile, self.timeout_s = profile, timeout_s
        self.estop_topic = self.estop_service = False
        self._cmd: tuple[float, float] | None = None
        self._cmd_time = -math.inf

    def on_stack(self, v: float, omega: float, now: float) -> None:
        self._cmd, self._cmd_time = (v, omega), now

    def command(self, now: float) -> tuple[float, float, str]:
        """(v, omega, reason): reason is 'ok' or why the robot is stopped."""
        if self.estop_topic or self.estop_service:
            return 0.0, 0.0, "e-stop" + (" (topic)" if self.estop_topic else " (service)")
        if self._cmd is None:
            return 0.0, 0.0, "no command from the stack yet"
        age = now - self._cmd_time
        if age > self.timeout_s:
            return 0.0, 0.0, f"stack silent for {age:.2f} s (> {self.timeout_s:g} s)"
        v, w = self._cmd
        if not (math.isfinite(v) and math.isfinite(w)):
            return 0.0, 0.0, "non-finite command"
        v, w = saturate(np.float64(v), np.float64(w), self.profile)
        return float(v), float(w), "ok"


def make_node():
    from rclpy.node import Node

    class HardwareAdapterNode(Node):
        def __init__(self) -> None:
            super().__init__("hardware_adapter")
            p = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
            self.robot = p("robot", "", "the robot's name in the stack (its /<robot>/ namespace)")
            profile_name = p("profile", "turtlebot3_burger", "vehicle profile: the limits applied last")
            rate = p("rate_hz", 0.0, "command rate to the robot (0: the profile's 1 / dt)", 0.0, 1000.0)
            timeout = p("timeout_s", 0.25, "stop the robot when the stack's cmd_vel is older than this", 0.01, 10.0)
            self.robot_cmd = p("robot_cmd_topic", "", "the robot driver's velocity topic, e.g. /tb3_0/cmd_vel")
            self.stamped = p("robot_cmd_stamped", False, "publish TwistStamped (ROS 2 Jazzy TurtleBot3) instead of Twist")
            self.base_frame = p("base_frame", "base_link", "frame_id of TwistStamped commands")
            mocap = p("mocap_topic", "", "the robot's motion-capture PoseStamped topic ('' = none: the stack gets poses elsewhere)")
            self.up_axis = p("mocap_up_axis", "z", "'z' (VRPN, Vicon) or 'y' (OptiTrack Motive default)")
            if not self.robot or not self.robot_cmd:
                raise StartError("parameters 'robot' and 'robot_cmd_topic' are required")
            if self.up_axis not in ("z", "y"):
                raise StartError(f"parameter 'mocap_up_axis' must be 'z' or 'y', got {self.up_axis!r}")
            self.profile, rate = profile_and_rate(profile_name, rate)
            self.gate = CommandGate(self.profile, timeout)
            self.reason, self.sent = "starting", 0

            from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
            from rclpy.qos import qos_profile_sensor_data
            from std_msgs.msg import Bool
            from std_srvs.srv import SetBool
            cls = topics.message_class
            reliable = topics.qos_profile("events")
            self.out = self.create_publisher(TwistStamped if self.stamped else Twist, self.robot_cmd, reliable)
            self.create_subscription(cls(topics.CMD_VEL.type), topics.CMD_VEL.path(self.robot), self._on_cmd,
                                     topics.qos_profile(topics.CMD_VEL.qos))
            self.create_subscription(Bool, ESTOP_TOPIC, self._on_estop, topics.qos_profile("latched"))
            self.create_service(SetBool, f"/{self.robot}/estop", self._on_estop_service)
            if mocap:
                self.pose_pub = self.create_publisher(PoseStamped, topics.POSE.path(self.robot),
                                                      topics.qos_profile(topics.POSE.qos))
                self.create_subscription(PoseStamped, mocap, self._on_mocap, qos_profile_sensor_data)
            self.diag = self.create_publisher(cls(topics.DIAGNOSTICS.type), topics.DIAGNOSTICS.path(),
                                              topics.qos_profile(topics.DIAGNOSTICS.qos))
            self.create_timer(1.0 / rate, self._on_timer)
            self.create_timer(0.5, self._publish_diag)
            self.get_logger().info(f"{self.robot}: {topics.CMD_VEL.path(self.robot)} -> {self.robot_cmd} "
                                   f"({self.profile.name} limits, stop after {timeout:g} s of silence)")

        def _on_cmd(self, msg) -> None:
            try:
                v, w = convert.twist_to_cmd(msg)
            except convert.MessageError:
                v = w = math.nan  # the gate stops the robot on a non-finite command
            self.gate.on_stack(v, w, ros_now(self))

        def _on_estop(self, msg) -> None:
            self.gate.estop_topic = bool(msg.data)
            self._on_timer()  # act now, not at the next period

        def _on_estop_service(self, request, response):
            self.gate.estop_service = bool(request.data)
            self._on_timer()
            response.success, response.message = True, f"{self.robot}: e-stop {'held' if request.data else 'released'}"
            return response

        def _on_mocap(self, msg) -> None:
            o, q = msg.pose.position, msg.pose.orientation
            pos, quat = mocap_to_world((o.x, o.y, o.z), (q.w, q.x, q.y, q.z), self.up_axis)
            out = type(msg)()
            out.header.stamp, out.header.frame_id = msg.header.stamp, "world"   # the measurement's own time
            out.pose.position.x, out.pose.position.y, out.pose.position.z = (float(c) for c in pos)
            out.pose.orientation.w, out.pose.orientation.x, out.pose.orientation.y, out.pose.orientation.z = \
                (float(c) for c in quat)
            self.pose_pub.publish(out)

        def _on_timer(self) -> None:
            now = ros_now(self)
            v, w, self.reason = self.gate.command(now)
            twist = convert.cmd_to_twist(v, w)
            if self.stamped:
                from geometry_msgs.msg import TwistStamped
                msg = TwistStamped()
                convert.set_stamp(msg.header.stamp, now)
                msg.header.frame_id, msg.twist = self.base_frame, twist
                twist = msg
            self.out.publish(twist)
            self.sent += 1

        def _publish_diag(self) -> None:
            level = health.OK if self.reason == "ok" else health.WARN
            status = health.status(self.get_fully_qualified_name(), self.robot, level, self.reason,
                                   {"robot_cmd_topic": self.robot_cmd, "commands_sent": self.sent})
            self.diag.publish(health.array(self.get_clock().now().to_msg(), [status]))

    return HardwareAdapterNode()


def main(argv: list[str] | None = None) -> int:
    return run_node(make_node, "hardware_adapter", argv)


if __name__ == "__main__":
    sys.exit(main())
