"""The rate controller node over real DDS; run as a script in the loopback-only namespace (test_rate_controller.py).

This process plays the MAV and its policy for `mav_0` (crazyflie_team profile, set-point failsafe hold
0.3 s): level, at rest, publishing stamped odom (with a sensor's noise) + IMU at 100 Hz and a
zero-acceleration set-point, and records `rotor_thrust` and `/diagnostics` through the phases: all
inputs; set-point gone (hover, then descend); odom gone (hold level on the gyro); odom frozen (values
repeated with fresh stamps); set-point stamps frozen (repeated); recovery after each.
"""
from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import rclpy
from rclpy.node import Node

from marlstack.hardware import load_profile
from marlstack.ros_nodes import health, topics
from marlstack.ros_nodes.isolation import ros_env
from marlstack.ros_nodes.plan import NodeSpec
from marlstack.ros_nodes.supervisor import Supervisor

MAV, PROFILE = "mav_0", "crazyflie_team"


class Mav(Node):
    def __init__(self) -> None:
        super().__init__("mav_sim")
        cls, qos = topics.message_class, topics.qos_profile("state")
        self.odom = self.create_publisher(cls(topics.ODOM.type), topics.ODOM.path(MAV), qos)
        self.imu = self.create_publisher(cls(topics.IMU.type), topics.IMU.path(MAV), qos)
        self.setpoint = self.create_publisher(cls(topics.SETPOINT.type), topics.SETPOINT.path(MAV), qos)
        self.thrusts: list[tuple[float, list[float]]] = []
        self.diags: list[tuple[float, int, str]] = []
        self.create_subscription(cls(topics.ROTOR_THRUST.type), topics.ROTOR_THRUST.path(MAV),
                                 lambda m: self.thrusts.append((time.monotonic(), list(m.data))), qos)
        profile = load_profile(PROFILE)
        self.mass, self.g = profile.quadrotor.mass, profile.gravity
        self.z, self.vz = 1.0, 0.0   # level, so only the vertical motion: the thrust's answer closes the loop
        self.create_subscription(cls(topics.DIAGNOSTICS.type), topics.DIAGNOSTICS.path(),
                                 lambda m: self.diags.extend((time.monotonic(), s.level[0], s.message) for s in m.status),
                                 topics.qos_profile(topics.DIAGNOSTICS.qos))
        self.send = {"odom", "setpoint"}
        self.frozen_odom = self.frozen_setpoint_stamp = False
        self.rng = random.Random(0)
        self.create_timer(0.01, self._publish)

    def _publish(self) -> None:
        if self.thrusts:  # the vehicle answers the latest thrust command (10 ms Euler steps)
            self.vz += (sum(self.thrusts[-1][1]) / self.mass - self.g) * 0.01
            self.z += self.vz * 0.01
        now = self.get_clock().now().to_msg()
        odom = topics.message_class(topics.ODOM.type)()
        odom.header.stamp = now
        odom.pose.pose.orientation.w = 1.0
        if not self.frozen_odom:  # a sensor's noise (10 µm/s); frozen: the same values again and again
            self.odom_values = (self.z, self.vz, self.rng.gauss(0.0, 1e-5))
        odom.pose.pose.position.z, odom.twist.twist.linear.z, odom.twist.twist.linear.x = self.odom_values
        if "odom" in self.send:
            self.odom.publish(odom)
        imu = topics.message_class(topics.IMU.type)()
        imu.header.stamp = now
        self.imu.publish(imu)
        if "setpoint" in self.send:
            from trajectory_msgs.msg import MultiDOFJointTrajectoryPoint
            from geometry_msgs.msg import Transform, Twist
            msg = topics.message_class(topics.SETPOINT.type)()
            if not self.frozen_setpoint_stamp:
                self.setpoint_stamp = now
            msg.header.stamp = self.setpoint_stamp   # frozen: the same stamp every time (a stuck upstream)
            rot = Transform()
            rot.rotation.w = 1.0
            msg.points = [MultiDOFJointTrajectoryPoint(transforms=[rot], velocities=[Twist()], accelerations=[Twist()])]
            self.setpoint.publish(msg)

    def phase(self, seconds: float) -> dict:
        t0 = time.monotonic()
        end = t0 + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self, timeout_sec=0.005)
        late = [d for t, d in self.thrusts if t > t0 + seconds / 2]
        return {"last_thrust": self.thrusts[-1][1] if self.thrusts else None, "count": len(late), "vz": self.vz,
                "diagnostics": sorted({(lvl, m) for t, lvl, m in self.diags if t > t0 and lvl != health.OK}),
                "ok_diagnostic": any(t > t0 and lvl == health.OK for t, lvl, m in self.diags)}


def main(out: Path, workdir: Path) -> None:
    sup = Supervisor(ros_env(), workdir / "logs")
    sup.start(NodeSpec("rate_controller_node", "rate_controller", f"/{MAV}", {  # 100 ms: this machine stalls 30 ms
        "mav": MAV, "profile": PROFILE, "watchdog_periods": 10.0, "failsafe_hold_s": 0.3}))
    rclpy.init()
    node = Mav()
    result = {}
    try:
        end = time.monotonic() + 60
        while not node.thrusts and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        result["flying"] = node.phase(1.5)
        node.send.discard("setpoint")
        result["no_setpoint"] = node.phase(1.0)
        node.send.discard("odom")
        result["blind"] = node.phase(1.0)
        node.send.update({"odom", "setpoint"})
        result["recovered"] = node.phase(1.5)
        node.frozen_odom = True
        result["frozen_odom"] = node.phase(1.5)
        node.frozen_odom = False
        node.frozen_setpoint_stamp = True
        result["frozen_setpoint"] = node.phase(0.5)
        node.frozen_setpoint_stamp = False
        result["recovered_again"] = node.phase(1.0)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        result["exit_codes"] = sup.stop()
        sup.kill_all()
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
