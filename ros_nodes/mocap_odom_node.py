"""Mocap odometry node: one rigid body's motion-capture pose -> the MAV team's odometry (`/<mav>/odom`, `/load/odom`).

Why: a MAV team's policy reads each MAV's and the load's `nav_msgs/Odometry` (pose, world velocity
as a body twist, body rates), which the MAV sim node publishes in SITL; a lab's motion-capture
bridge (vrpn_mocap, mocap4ros2, NatNet, Vicon) gives a `geometry_msgs/PoseStamped` per rigid body.
This node differentiates the pose: velocity from position differences and body rates from the
relative rotation between samples (log map), each low-passed at `cutoff_hz`, stamped with the
measurement's own time. Motive's y-up frames are turned z-up as the ground robots' adapter does.
A sample with a bad quaternion, a stamp not after the previous one, or non-finite numbers is
dropped; after a gap of more than `max_gap_s` the estimate restarts (nothing is published until a
second sample). Onboard code: rclpy + numpy, no JAX.
"""
from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from marlstack.hardware.frames import quat_to_matrix
from marlstack.ros_nodes import convert, topics
from marlstack.ros_nodes.hardware_adapter_node import mocap_to_world
from marlstack.ros_nodes.runner import StartError, declare, run_node

LOAD = "load"


def _log_so3(r: np.ndarray) -> np.ndarray:
    """Rotation vector of a rotation matrix (angle < pi)."""
    angle = math.acos(max(-1.0, min(1.0, (np.trace(r) - 1.0) / 2.0)))
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    return axis * (0.5 if angle < 1e-9 else angle / (2.0 * math.sin(angle)))


class PoseRates:
    """Pose samples -> (world velocity, body rates), low-passed finite differences."""

    def __init__(self, cutoff_hz: float = 20.0, max_gap_s: float = 0.5):
        self.cutoff_hz, self.max_gap_s = cutoff_hz, max_gap_s
        self._last: tuple[float, np.ndarray, np.ndarray] | None = None
        self.vel, self.omega = np.zeros(3), np.zeros(3)
        self._fresh = True

    def update(self, stamp_s: float, position: Any, quat_wxyz: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """The estimate after this sample, or None when there is none yet (first sample, after a gap, or dropped)."""
        pos, rot = np.asarray(position, float), quat_to_matrix(quat_wxyz)
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(rot))):
            return None
        last = self._last
        if last is not None and stamp_s <= last[0]:
            return None   # repeated or out of order: keep the newer sample
        self._last = (stamp_s, pos, rot)
        if last is None or stamp_s - last[0] > self.max_gap_s:
            self._fresh = True
            return None
        dt = stamp_s - last[0]
        vel, omega = (pos - last[1]) / dt, _log_so3(last[2].T @ rot) / dt
        if self._fresh:
            self.vel, self.omega, self._fresh = vel, omega, False
        else:
            alpha = 1.0 - math.exp(-2.0 * math.pi * self.cutoff_hz * dt)
            self.vel, self.omega = self.vel + alpha * (vel - self.vel), self.omega + alpha * (omega - self.omega)
        return self.vel, self.omega


def make_node():
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data

    from marlstack.ros_nodes.mav_io import odometry_msg

    class MocapOdomNode(Node):
        def __init__(self) -> None:
            super().__init__("mocap_odom")
            p = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
            self.body = p("body", "", f"a MAV's name (publishes /<mav>/odom) or '{LOAD}' (publishes /load/odom)")
            source = p("mocap_topic", "", "the mocap bridge's PoseStamped of this rigid body, e.g. /vrpn_mocap/mav_0/pose")
            self.up_axis = p("mocap_up_axis", "z", "the mocap world's up axis: z, or y (Motive's default)")
            cutoff = p("cutoff_hz", 20.0, "low-pass cut-off of the velocity and body-rate estimates", 0.5, 500.0)
            if not self.body or not source.startswith("/") or self.up_axis not in ("z", "y"):
                raise StartError("parameters 'body' and 'mocap_topic' (absolute) are required; 'mocap_up_axis' is z or y")
            self.rates = PoseRates(cutoff)
            self.dropped = 0
            cls = topics.message_class
            out = topics.LOAD_ODOM.path() if self.body == LOAD else topics.ODOM.path(self.body)
            self.pub = self.create_publisher(cls(topics.ODOM.type), out, topics.qos_profile("state"))
            self.create_subscription(cls("geometry_msgs/msg/PoseStamped"), source, self._on_pose, qos_profile_sensor_data)
            self.get_logger().info(f"{source} -> {out}")

        def _on_pose(self, msg) -> None:
            p, q = msg.pose.position, msg.pose.orientation
            try:
                x, y, z, w = convert.check_quaternion(q.x, q.y, q.z, q.w, f"mocap pose of {self.body}")
            except convert.MessageError:
                self.dropped += 1
                return
            pos, quat = mocap_to_world((p.x, p.y, p.z), (w, x, y, z), self.up_axis)
            stamp = convert.stamp_seconds(msg.header.stamp)
            est = self.rates.update(stamp, pos, quat)
            if est is not None:
                self.pub.publish(odometry_msg(pos, quat, est[0], est[1], stamp, self.body))

    return MocapOdomNode()


def main(argv: list[str] | None = None) -> int:
    return run_node(make_node, "mocap_odom", argv)


if __name__ == "__main__":
    sys.exit(main())
