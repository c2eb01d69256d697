"""Rate controller node: one per MAV. Policy set-point + state -> per-rotor thrust, at the inner-loop rate.

Runs `controllers.quadrotor.step` (outer acceleration loop, tilt-first attitude loop, INDI or rate
PID, mixer with saturation) on numpy at the profile's `control.physics_rate_hz`, reading `odom`
(world pose, body twist), the IMU's gyro and the policy's `setpoint`; publishes `rotor_thrust`.
No rotor-speed feedback topic exists, so the controller's motor-lag model stands in for measured
rotor thrusts (exact for the PID inner loop, which does not use them).

Watchdog, as for ground robots but with a flying robot's safe action: a stale (older than
`watchdog_periods` policy periods), non-finite or malformed *set-point* makes the MAV hover in place
(zero commanded acceleration, no rate feed-forward, hold yaw) with a WARN diagnostic; a bad or
stale *state* (odom, IMU) cannot be flown on, so every rotor gets its minimum thrust and the
diagnostic is ERROR. Both recover with the next good input. Onboard code: numpy only, never JAX.
"""
from __future__ import annotations

import math
import sys

import numpy as np

from controllers import quadrotor
from ros_nodes import convert, health, topics
from ros_nodes.mav_io import rotation, setpoint_values
from ros_nodes.adapters import LatestValues
from ros_nodes.runner import StartError, declare, run_node

DIAGNOSTIC_PERIOD_S = 0.5


def odom_values(msg) -> tuple[float, ...]:
    """Odometry -> (quaternion x, y, z, w, body velocity x, y, z); raises convert.MessageError."""
    try:
        q, v = msg.pose.pose.orientation, msg.twist.twist.linear
        f = convert.floats({"orientation.x": q.x, "orientation.y": q.y, "orientation.z": q.z, "orientation.w": q.w,
                            "twist.linear.x": v.x, "twist.linear.y": v.y, "twist.linear.z": v.z}, "odom")
    except AttributeError as exc:
        raise convert.Malformed(f"odom: not an Odometry ({exc})") from None
    values = tuple(f.values())
    return (*convert.check_quaternion(*values[:4], "odom"), *values[4:])


def make_node():
    from rclpy.node import Node

    from hardware.profile import ProfileError, load_profile

    class RateControllerNode(Node):
        def __init__(self) -> None:
            super().__init__("rate_controller")
            p = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
            self.mav = p("mav", "", "this MAV's name (its namespace without '/')")
            profile_name = p("profile", "crazyflie_team", "MAV team profile: mass, rotors, gains, rates")
            rate = p("rate_hz", 0.0, "inner-loop rate (0: the profile's control.physics_rate_hz)", 0.0, 10000.0)
            periods = p("watchdog_periods", 3.0, "inputs older than this many policy periods trip the watchdog", 1.0, 100.0)
            if not self.mav:
                raise StartError("parameter 'mav' (this MAV's name) is empty")
            try:
                self.profile = load_profile(profile_name)
            except ProfileError as exc:
                raise StartError(str(exc)) from None
            if self.profile.kind != "mav_team":
                raise StartError(f"parameter 'profile' = {profile_name!r} is a {self.profile.kind!r} profile, not 'mav_team'")
            self.dt = 1.0 / (rate or self.profile.control.physics_rate_hz)
            self.max_age = periods / self.profile.control.policy_rate_hz
            self.inputs = LatestValues(["odom", "imu", "setpoint"], 7, "")
            self.state = None  # controller memory, created from the first good measurements
            self.dog = health.Watchdog()
            self.level = health.WARN
            self.last_diag = -math.inf
            q = self.profile.quadrotor
            self.min_thrust = np.full(4, q.min_rotor_thrust)
            cls = topics.message_class
            state_qos = topics.qos_profile("state")
            self.pub = self.create_publisher(cls(topics.ROTOR_THRUST.type), topics.ROTOR_THRUST.path(self.mav), state_qos)
            self.diag = self.create_publisher(cls(topics.DIAGNOSTICS.type), topics.DIAGNOSTICS.path(),
                                              topics.qos_profile(topics.DIAGNOSTICS.qos))
            for key, topic, parse in (("odom", topics.ODOM, odom_values), ("setpoint", topics.SETPOINT, setpoint_values),
                                      ("imu", topics.IMU, self._gyro)):
                self.create_subscription(cls(topic.type), topic.path(self.mav), self._store(key, parse), state_qos)
            self.create_timer(self.dt, self._tick)
            self.get_logger().info(f"rate controller for {self.mav} ({self.profile.control.inner_loop}) at {1 / self.dt:g} Hz")

        @staticmethod
        def _gyro(msg) -> tuple[float, ...]:
            try:
                w = msg.angular_velocity
                f = convert.floats({"angular_velocity.x": w.x, "angular_velocity.y": w.y, "angular_velocity.z": w.z}, "imu")
            except AttributeError as exc:
                raise convert.Malformed(f"imu: not an Imu ({exc})") from None
            return (*f.values(), 0.0, 0.0, 0.0, 0.0)  # padded to the table's width

        def _store(self, key: str, parse):
            def cb(msg) -> None:
                now = self.get_clock().now().nanoseconds * 1e-9
                try:
                    self.inputs.put(key, parse(msg), now)
                except convert.MessageError as exc:
                    self.inputs.invalidate(key, str(exc))
            return cb

        def _tick(self) -> None:
            now = self.get_clock().now().nanoseconds * 1e-9
            blind = self.inputs.problem("odom", now, self.max_age) or self.inputs.problem("imu", now, self.max_age)
            if blind:
                self._report(self.dog.trip(f"motors at minimum thrust: {blind}"), health.ERROR, now)
                self.state = None  # re-initialise from fresh measurements when they return
                self._publish(self.min_thrust)
                return
            odom, gyro = self.inputs.get("odom"), self.inputs.get("imu")[:3]
            rot = rotation(*odom[:4])
            vel = rot @ odom[4:7]  # body twist -> world velocity
            if self.state is None:
                self.state = quadrotor.init_state(vel, gyro, np.full(4, self.profile.quadrotor.mass * self.profile.gravity / 4))
            bad_setpoint = self.inputs.problem("setpoint", now, self.max_age)
            if bad_setpoint:
                yaw = math.atan2(rot[1, 0], rot[0, 0])
                acc, rate_ff, yaw_sp = np.zeros(3), np.zeros(3), yaw  # hover: no acceleration, hold heading
                changed = self.dog.trip(f"hovering: {bad_setpoint}")
            else:
                sp = self.inputs.get("setpoint")
                acc, rate_ff, yaw_sp = sp[:3], sp[3:6], sp[6]
                changed = self.dog.clear()
            cmd, self.state = quadrotor.step(self.state, vel, rot, gyro, self.state.rotor_model, acc, rate_ff, yaw_sp,
                                             self.profile, self.dt)
            self._report(changed, health.WARN, now)
            self._publish(np.asarray(cmd) if np.all(np.isfinite(cmd)) else self.min_thrust)

        def _publish(self, thrust: np.ndarray) -> None:
            msg = topics.message_class(topics.ROTOR_THRUST.type)()
            msg.data = [float(t) for t in thrust]
            self.pub.publish(msg)

        def _report(self, changed: bool, level: int, now: float) -> None:
            if changed and not self.dog.ok:
                self.get_logger().warning(self.dog.reason)
            if changed or now - self.last_diag > DIAGNOSTIC_PERIOD_S:
                self.last_diag = now
                status = health.watchdog_status(self.get_fully_qualified_name(), self.mav, self.dog)
                if not self.dog.ok:
                    status.level = bytes([level])
                    status.message = self.dog.reason
                self.diag.publish(health.array(self.get_clock().now().to_msg(), [status]))

    return RateControllerNode()


def main(argv: list[str] | None = None) -> int:
    return run_node(make_node, "rate_controller_node", argv)


if __name__ == "__main__":
    sys.exit(main())
