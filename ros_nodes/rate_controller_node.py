"""Rate controller node: one per MAV. Policy set-point + state -> per-rotor thrust, at the inner-loop rate.

Runs `controllers.quadrotor.step` (outer acceleration loop, tilt-first attitude loop, INDI or rate
PID, mixer with saturation) on numpy at the profile's `control.physics_rate_hz`, reading `odom`
(world pose, body twist), the IMU's gyro and the policy's `setpoint`; publishes `rotor_thrust`.
No rotor-speed feedback topic exists, so the controller's motor-lag model stands in for measured
rotor thrusts (exact for the PID inner loop, which does not use them).

Every input is judged by the time it describes (DESIGN contract 8, the shared rules of `health.Stamps`):
freshness from its header stamp against this node's clock (`clock_offset_s` allowance), a source whose
stamps are unset, in the future, repeated or jumping is unusable until a good sample, an out-of-order
packet is dropped. A set-point's stamp is the load sample it answers, and a policy node's timer step
answers the same one again: a repeated set-point stamp is used, timed by it, so a stream whose stamps stop
advancing goes stale within the age limit. Odometry repeated exactly for `health.FROZEN_S` while the MAV flies is frozen
(`health.FrozenValues`). Failsafes of a flight controller carrying a load (never a motor cut while it
may hang on a cable; issue 13):
- set-point stale / invalid: level hover (velocity damped; INDI's external-acceleration estimate keeps
  the load share) for `failsafe_hold_s`, WARN; then a bounded descent at `failsafe_descent_rate`, ERROR,
  down to the ground (both default to the profile's `failsafe` section, as the SITL firmware and the team landing); a fresh set-point flies again (as the SITL firmware, ros_nodes/mav_sim.py);
- odometry stale / invalid / frozen while the gyro is good: hold level on the gyro: the attitude carried
  on from the last good odometry by integrating the body rates, the collective of a hover with the last
  load-share estimate, no velocity feedback (an open-loop hold: it drifts), ERROR;
- odometry and gyro both unusable: every rotor at the last hover collective's share (no torque, no cut),
  ERROR; never flown yet (no good measurement ever): the rotors' minimum thrust.
All recover with the next good inputs. Onboard code: numpy only, never JAX.
"""
from __future__ import annotations

import math
import sys

import numpy as np

from marlstack.controllers import quadrotor
from marlstack.ros_nodes import convert, health, topics
from marlstack.ros_nodes.adapters import LatestValues
from marlstack.ros_nodes.mav_io import failsafe_acceleration, rotation, setpoint_values
from marlstack.ros_nodes.runner import StartError, declare, declare_stamp_limits, node_profile, ros_now, run_node

DIAGNOSTIC_PERIOD_S = 0.5
FLYING_SHARE = 0.5   # thrust above this share of the MAV's weight: it is flying (its odometry must change)


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


def gyro_values(msg) -> tuple[float, ...]:
    """Imu -> (body rates x, y, z, padded to the table's width); raises convert.MessageError."""
    try:
        w = msg.angular_velocity
        f = convert.floats({"angular_velocity.x": w.x, "angular_velocity.y": w.y, "angular_velocity.z": w.z}, "imu")
    except AttributeError as exc:
        raise convert.Malformed(f"imu: not an Imu ({exc})") from None
    return (*f.values(), 0.0, 0.0, 0.0, 0.0)


def integrate_gyro(rot: np.ndarray, omega: np.ndarray, dt: float) -> np.ndarray:
    """The attitude (body to world) turned by body rates `omega` over `dt` (exact for constant rates)."""
    angle = float(np.linalg.norm(omega)) * dt
    if angle < 1e-12:
        return rot
    k = np.asarray(omega, np.float64) / np.linalg.norm(omega)
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return rot @ (np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx)


def make_node():
    from rclpy.node import Node

    class RateControllerNode(Node):
        def __init__(self) -> None:
            super().__init__("rate_controller")
            p = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
            self.mav = p("mav", "", "this MAV's name (its namespace without '/')")
            profile_name = p("profile", "crazyflie_team", "MAV team profile: mass, rotors, gains, rates")
            rate = p("rate_hz", 0.0, "inner-loop rate (0: the profile's control.physics_rate_hz)", 0.0, 10000.0)
            periods, offset = declare_stamp_limits(self, "the sources", "policy", age_allowance=False)
            hold_s = p("failsafe_hold_s", -1.0, "set-points lost: level hover this long, then descend (s; -1: the "
                       "profile's failsafe.hold_s)", -1.0, 60.0)
            descent_rate = p("failsafe_descent_rate", 0.0, "... at this bounded rate (m/s; 0: the profile's "
                             "failsafe.descent_rate)", 0.0, 2.0)
            if not self.mav:
                raise StartError("parameter 'mav' (this MAV's name) is empty")
            self.profile = node_profile(profile_name, "mav_team")
            self.hold_s = self.profile.failsafe.hold_s if hold_s < 0 else hold_s   # one source: the vehicle profile
            self.descent_rate = descent_rate or self.profile.failsafe.descent_rate
            self.dt = 1.0 / (rate or self.profile.control.physics_rate_hz)
            policy_period = 1.0 / self.profile.control.policy_rate_hz
            self.max_age = periods * policy_period
            self.inputs = LatestValues(["odom", "imu", "setpoint"], 7, "")
            self.stamps = health.Stamps(offset, offset + policy_period)
            self.frozen = health.FrozenValues()
            self.state = None  # controller memory, created from the first good measurements
            self.rot: np.ndarray | None = None   # attitude: the last good odometry's, carried on by the gyro
            self.lost_setpoint_at: float | None = None
            self.dog = health.Watchdog()
            self.mode = "starting"
            self.last_diag = -math.inf
            q = self.profile.quadrotor
            self.weight = q.mass * self.profile.gravity
            self.min_thrust = np.full(4, q.min_rotor_thrust)
            self.thrust = self.min_thrust
            cls = topics.message_class
            state_qos = topics.qos_profile("state")
            self.pub = self.create_publisher(cls(topics.ROTOR_THRUST.type), topics.ROTOR_THRUST.path(self.mav), state_qos)
            self.diag = self.create_publisher(cls(topics.DIAGNOSTICS.type), topics.DIAGNOSTICS.path(),
                                              topics.qos_profile(topics.DIAGNOSTICS.qos))
            for key, topic, parse in (("odom", topics.ODOM, odom_values), ("setpoint", topics.SETPOINT, setpoint_values),
                                      ("imu", topics.IMU, gyro_values)):
                self.create_subscription(cls(topic.type), topic.path(self.mav), self._store(key, parse), state_qos)
            self.create_timer(self.dt, self._tick)
            self.get_logger().info(f"rate controller for {self.mav} ({self.profile.control.inner_loop}) at {1 / self.dt:g} Hz")

        def _store(self, key: str, parse):
            def cb(msg) -> None:
                now = ros_now(self)
                try:
                    values = parse(msg)
                except convert.MessageError as exc:
                    self.inputs.invalidate(key, str(exc))
                    return
                if health.receive_stamped(self.stamps, self.inputs, key, values, convert.stamp_seconds(msg.header.stamp),
                                          now, repeats=key == "setpoint") and key == "odom":
                    self.frozen.sample(key, values, now)
            return cb

        def _problem(self, key: str, now: float):
            bad = self.inputs.problem(key, now, self.max_age)
            if bad is None and key == "odom":
                self.frozen.commanded(key, float(np.sum(self.thrust)) > FLYING_SHARE * self.weight, now)
                frozen = self.frozen.problem(key, now)
                bad = None if frozen is None else f"odom: {frozen}"
            return bad

        def _tick(self) -> None:
            now = ros_now(self)
            odom_bad, imu_bad = self._problem("odom", now), self._problem("imu", now)
            if self.state is None and (odom_bad or imu_bad):  # never had a good state: on the ground, idle
                self._fly(self.min_thrust, "starting", health.WARN, f"motors at minimum thrust: {odom_bad or imu_bad}", now)
                return
            gyro = self.inputs.get("imu")[:3]
            if odom_bad and imu_bad:   # no attitude at all: no torque, the hover collective evenly (no motor cut)
                share = np.full(4, self._hover_collective() / 4)
                self._fly(share, "blind", health.ERROR, f"equal rotor thrusts at the hover collective: {odom_bad}; "
                                                       f"{imu_bad}", now)
                return
            if odom_bad:               # the gyro carries the attitude on: hold level, open loop in velocity
                self.rot = integrate_gyro(self.rot, gyro, self.dt)
                collective, z_des = quadrotor.thrust_and_axis(np.zeros(3), self.state.a_ext, self.profile)
                rate_ref = quadrotor.attitude_rates(self.rot, z_des, self._yaw(), np.zeros(3), self.profile)
                cmd, self.state = quadrotor.rate_step(self.state, gyro, self.state.rotor_model, rate_ref, collective,
                                                      self.profile, self.dt)
                self._fly(cmd, "hold on gyro", health.ERROR, f"holding level on the gyro: {odom_bad}", now)
                return
            odom = self.inputs.get("odom")
            self.rot = rotation(*odom[:4])
            vel = self.rot @ odom[4:7]  # body twist -> world velocity
            if self.state is None:
                self.state = quadrotor.init_state(vel, gyro, np.full(4, self.weight / 4))
            bad_setpoint = self._problem("setpoint", now)
            if bad_setpoint:
                self.lost_setpoint_at = now if self.lost_setpoint_at is None else self.lost_setpoint_at
                descend = now - self.lost_setpoint_at >= self.hold_s
                acc, rate_ff, yaw_sp = failsafe_acceleration(vel, descend, self.descent_rate), np.zeros(3), self._yaw()
                mode, level = ("descend", health.ERROR) if descend else ("hold", health.WARN)
                reason = (f"descending at {self.descent_rate:g} m/s: " if descend else "hovering: ") + str(bad_setpoint)
            else:
                self.lost_setpoint_at = None
                sp = self.inputs.get("setpoint")
                acc, rate_ff, yaw_sp = sp[:3], sp[3:6], sp[6]
                mode, level, reason = "fly", health.OK, None
            cmd, self.state = quadrotor.step(self.state, vel, self.rot, gyro, self.state.rotor_model, acc, rate_ff,
                                             yaw_sp, self.profile, self.dt)
            self._fly(cmd, mode, level, reason, now)

        def _yaw(self) -> float:
            return math.atan2(self.rot[1, 0], self.rot[0, 0])

        def _hover_collective(self) -> float:
            return float(quadrotor.thrust_and_axis(np.zeros(3), self.state.a_ext, self.profile)[0])

        def _fly(self, cmd: np.ndarray, mode: str, level: int, reason: str | None, now: float) -> None:
            cmd = np.asarray(cmd, np.float64)
            self.thrust = cmd if np.all(np.isfinite(cmd)) else np.full(4, self.weight / 4)
            msg = topics.message_class(topics.ROTOR_THRUST.type)()
            msg.data = [float(t) for t in self.thrust]
            self.pub.publish(msg)
            changed = self.dog.clear() if reason is None else self.dog.trip(reason)
            if changed and reason is not None and level >= health.ERROR:
                self.get_logger().error(reason)
            elif changed and reason is not None:
                self.get_logger().warning(reason)
            if changed or mode != self.mode or now - self.last_diag > DIAGNOSTIC_PERIOD_S:
                self.mode, self.last_diag = mode, now
                status = health.watchdog_status(self.get_fully_qualified_name(), self.mav, self.dog, {
                    "mode": mode, "odom_delay_ms_max": f"{self.stamps.worst_delay_ms():.1f}",
                    "dropped_out_of_order": self.stamps.dropped, "stamp_jumps": self.stamps.jumps})
                if not self.dog.ok:
                    status.level = bytes([level])
                    status.message = self.dog.reason
                self.diag.publish(health.array(self.get_clock().now().to_msg(), [status]))

    return RateControllerNode()


def main(argv: list[str] | None = None) -> int:
    return run_node(make_node, "rate_controller_node", argv)


if __name__ == "__main__":
    sys.exit(main())
