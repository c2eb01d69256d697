"""Flight link node: one MAV's policy set-point and mocap odometry -> its flight controller (MAVLink or Crazyflie).

Where the rate controller node flies a simulated MAV rotor by rotor, a real MAV's autopilot runs
its own rate loop: this node runs only the outer loops of `controllers.quadrotor` (acceleration ->
collective thrust + body axis, tilt-first attitude loop -> body rates, feed-forward included) at the
policy rate and hands `(body rates, thrust)` to a `hardware.flight.FlightLink`, which streams them at
its own fixed rate, converts frames and units, and applies the hold-then-land rule when this node
goes quiet. The MAV's `odom` (world pose from motion capture) also goes to the vehicle as its
external pose. Vehicle commands are std_srvs/Trigger services: `/<mav>/arm`, `/<mav>/takeoff`,
`/<mav>/start_rate_control`, `/<mav>/land`, `/<mav>/kill`, `/<mav>/disarm`. They block until the
vehicle answers (start_rate_control streams for 0.5 s first, then waits for the mode), so they live
on a second node spun by its own thread: set-points and odometry keep flowing meanwhile, else the
link would see the stack go quiet and hold, then land, in the middle of the handshake. Onboard: no JAX.
"""
from __future__ import annotations

import sys
import threading

import numpy as np

from marlstack.controllers import quadrotor
from marlstack.hardware.flight import LinkLimits
from marlstack.ros_nodes import convert, health, topics
from marlstack.ros_nodes.mav_io import rotation, setpoint_values
from marlstack.ros_nodes.runner import StartError, declare, node_profile, run_node

LINKS = ("mavlink", "crazyflie")


def rates_and_thrust(setpoint: tuple[float, ...], quat_xyzw: tuple[float, ...], profile) -> tuple[np.ndarray, float]:
    """(acc x y z, rate ff x y z, yaw set-point) and the MAV's attitude -> (FLU body rates, collective thrust N)."""
    acc, rate_ff, yaw_sp = np.asarray(setpoint[:3], float), np.asarray(setpoint[3:6], float), float(setpoint[6])
    thrust, z_des = quadrotor.thrust_and_axis(acc, np.zeros(3), profile)
    rates = quadrotor.attitude_rates(rotation(*quat_xyzw), z_des, yaw_sp, rate_ff, profile)
    return np.asarray(rates, float), float(thrust)


def make_link(kind: str, url: str, limits: LinkLimits, autopilot: str, mocap: str):
    if kind == "mavlink":
        from marlstack.hardware.mavlink import MavlinkLink
        return MavlinkLink(url, limits, autopilot=autopilot, mocap=mocap)
    from marlstack.hardware.crazyflie import CrazyflieLink
    return CrazyflieLink(url, limits)


def make_node():
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.node import Node

    class FlightLinkNode(Node):
        def __init__(self) -> None:
            super().__init__("flight_link")
            p = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
            self.mav = p("mav", "", "this MAV's name (its namespace without '/')")
            profile_name = p("profile", "mav_corl25", "MAV team profile: mass, rotor thrust, rate limits, outer-loop gains")
            kind = p("link", "mavlink", f"flight controller link: {' or '.join(LINKS)}")
            url = p("url", "", "pymavlink connection (udpin:0.0.0.0:14540, /dev/ttyACM0) or Crazyflie URI (radio://0/80/2M/E7E7E7E7E7)")
            autopilot = p("autopilot", "px4", "MAVLink only: px4 or ardupilot")
            mocap = p("mocap_message", "att_pos_mocap", "MAVLink only: att_pos_mocap or vision_position_estimate")
            self.height = p("takeoff_height", 1.0, "take-off service: height above the take-off point", 0.1, 20.0)
            hold_s = p("hold_s", 1.0, "set-points silent: hover this long, then land (the team's failsafe.hold_s)", 0.0, 60.0)
            if not self.mav or not url or kind not in LINKS:
                raise StartError(f"parameters 'mav' and 'url' are required and 'link' must be one of {LINKS}")
            self.profile = node_profile(profile_name, "mav_team")
            try:
                self.link = make_link(kind, url, LinkLimits.from_mav_profile(self.profile, hold_s=hold_s), autopilot, mocap)
                self.link.connect()
            except (ValueError, ConnectionError, OSError) as exc:
                raise StartError(f"{kind} link: {exc}") from None
            self.attitude: tuple[float, ...] | None = None
            self.setpoints = 0
            cls = topics.message_class
            state = topics.qos_profile("state")
            self.create_subscription(cls(topics.ODOM.type), topics.ODOM.path(self.mav), self._on_odom, state)
            self.create_subscription(cls(topics.SETPOINT.type), topics.SETPOINT.path(self.mav), self._on_setpoint, state)
            self.commands = rclpy.create_node(f"{self.get_name()}_commands", namespace=self.get_namespace(),
                                              context=self.context, use_global_arguments=False)
            for command in topics.VEHICLE_COMMANDS:
                self.commands.create_service(cls(command.type), command.path(self.mav), self._command(command.name))
            self._serving = True
            self._executor = SingleThreadedExecutor(context=self.context)
            self._executor.add_node(self.commands)
            self._command_thread = threading.Thread(target=self._serve_commands, name="vehicle-commands", daemon=True)
            self._command_thread.start()
            self.diag = self.create_publisher(cls(topics.DIAGNOSTICS.type), topics.DIAGNOSTICS.path(),
                                              topics.qos_profile(topics.DIAGNOSTICS.qos))
            self.create_timer(0.5, self._publish_diag)
            self.get_logger().info(f"{self.mav}: {kind} link to {url} connected")

        def _on_odom(self, msg) -> None:
            pos, q = msg.pose.pose.position, msg.pose.pose.orientation
            try:
                x, y, z, w = convert.check_quaternion(q.x, q.y, q.z, q.w, "odom")
            except convert.MessageError:
                return  # a bad pose is not forwarded; the vehicle's estimator times the feed out
            self.attitude = (x, y, z, w)
            self.link.send_pose((pos.x, pos.y, pos.z), (w, x, y, z), convert.stamp_seconds(msg.header.stamp))

        def _on_setpoint(self, msg) -> None:
            if self.attitude is None:
                return
            try:
                rates, thrust = rates_and_thrust(setpoint_values(msg), self.attitude, self.profile)
            except convert.MessageError:
                return  # dropped: the link holds, then lands, if no good set-point follows
            self.link.set_rates(rates, thrust)
            self.setpoints += 1

        def _command(self, name: str):
            def cb(request, response):
                try:
                    fn = getattr(self.link, name)
                    fn(self.height) if name == "takeoff" else fn()
                    response.success, response.message = True, f"{self.mav}: {name} done"
                except (RuntimeError, ConnectionError) as exc:
                    response.success, response.message = False, f"{self.mav}: {name} failed: {exc}"
                return response
            return cb

        def _publish_diag(self) -> None:
            st = self.link.status()
            level = health.OK if st.get("connected") and not st.get("fault") else health.WARN
            status = health.status(self.get_fully_qualified_name(), self.mav, level, st.get("fault") or "ok",
                                   {k: v for k, v in st.items() if k != "fault"} | {"setpoints_in": self.setpoints})
            self.diag.publish(health.array(self.get_clock().now().to_msg(), [status]))

        def _serve_commands(self) -> None:
            try:
                while self._serving and self.context.ok():
                    self._executor.spin_once(timeout_sec=0.1)
            except ExternalShutdownException:
                pass   # Ctrl-C / SIGTERM: the main loop stops the node

        def close(self) -> None:
            self._serving = False
            self._command_thread.join(timeout=5.0)
            self._executor.shutdown()
            self.commands.destroy_node()
            self.link.close()

    return FlightLinkNode()


def main(argv: list[str] | None = None) -> int:
    return run_node(make_node, "flight_link", argv)


if __name__ == "__main__":
    sys.exit(main())
