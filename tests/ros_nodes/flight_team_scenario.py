"""A MAV team through its flight links, closed loop: set-points -> flight link nodes -> fake vehicles -> mocap back.

Run as a script inside the loopback-only namespace (test_flight_link.py); JSON to argv[1]. Three fake
vehicles (tests/hardware/fake_vehicle.py, mav_corl25 quadrotors on the ground) behind a fake PX4
and a fake ArduPilot (MAVLink over UDP) and a fake Crazyflie (cflib's udp:// protocol). The flight
link nodes are the ones the team's plan starts for a `links:` section (launch/cable3_px4.yaml with
the fakes' addresses), each its own process, and so is the load's mocap odometry node. This process
plays the lab: the motion capture at 100 Hz (each vehicle's `/<mav>/odom`; a load circling at 1 rad/s
as Motive y-up PoseStamped on /mocap/load/pose, which the mocap odometry node turns into `/load/odom`,
compared with the truth at each stamp) and, in the policy's place, a position loop publishing each
MAV's `/<mav>/setpoint` (world acceleration, the MAV policy's output contract) towards a target.

Sequence through `marlstack flight`'s team call: arm, takeoff (firmware climbs to 1 m), start
(PX4 OFFBOARD, ArduPilot GUIDED, Crazyflie low-level stream), the targets move by (0.5, -0.3, +0.4) m;
then mav_0's set-points stop (its link hovers for hold_s, then lands it), mav_1 is killed in the air,
mav_2 lands on command and is disarmed. Reports what the vehicles did, with times.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
import yaml
from rclpy.node import Node

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1] / "hardware"))
from fake_autopilot import MODES, FakeAutopilot  # noqa: E402
from fake_crazyflie import FakeCrazyflieUdp  # noqa: E402
from fake_vehicle import FakeFleet, FakeQuad, fly  # noqa: E402

from marlstack.hardware.frames import matrix_to_quat  # noqa: E402
from marlstack.ros_nodes import convert, health, topics  # noqa: E402
from marlstack.ros_nodes.flight_cli import call_team, status_lines, team_status  # noqa: E402
from marlstack.ros_nodes.isolation import ros_env  # noqa: E402
from marlstack.ros_nodes.mav_io import odometry, odometry_msg, pose_msg, setpoint_msg  # noqa: E402
from marlstack.ros_nodes.plan import fleet_plan, load_deployment  # noqa: E402
from marlstack.ros_nodes.supervisor import Supervisor  # noqa: E402

MAVS = ["mav_0", "mav_1", "mav_2"]
STARTS = {"mav_0": (0.0, 0.0, 0.0), "mav_1": (1.5, 0.0, 0.0), "mav_2": (0.0, 1.5, 0.0)}
MOVE = np.array([0.5, -0.3, 0.4])
HOLD_S = 0.5
MOCAP_TOPIC = "/mocap/load/pose"
LOAD_RADIUS, LOAD_RATE = 0.5, 1.0   # m, rad/s: the load circles at 1.5 m, turning with its heading
Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])   # z-up world -> Motive's y-up


def load_truth(t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The circling load at time t: position, attitude matrix, world velocity, body rates."""
    a = LOAD_RATE * t
    c, s = np.cos(a), np.sin(a)
    return (np.array([LOAD_RADIUS * c, LOAD_RADIUS * s, 1.5]), np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]),
            LOAD_RADIUS * LOAD_RATE * np.array([-s, c, 0.0]), np.array([0.0, 0.0, LOAD_RATE]))


class Lab(Node):
    """Motion capture for every vehicle, and a position loop in the policy's place."""

    def __init__(self, vehicles: dict[str, FakeQuad]) -> None:
        super().__init__("lab")
        self.vehicles = vehicles
        self.targets: dict[str, np.ndarray | None] = {m: None for m in vehicles}
        self.last_setpoint: dict[str, float] = {}
        self.faults: dict[str, list[tuple[float, str]]] = {m: [] for m in vehicles}
        state, cls = topics.qos_profile("state"), topics.message_class
        self.odom = {m: self.create_publisher(cls(topics.ODOM.type), topics.ODOM.path(m), state) for m in vehicles}
        from rclpy.qos import qos_profile_sensor_data
        self.mocap = self.create_publisher(cls("geometry_msgs/msg/PoseStamped"), MOCAP_TOPIC, qos_profile_sensor_data)
        self.load_errors: list[list[float]] = []   # (position, velocity, body-rate) error of each /load/odom
        self.create_subscription(cls(topics.LOAD_ODOM.type), topics.LOAD_ODOM.path(), self._on_load, state)
        self.setpoint = {m: self.create_publisher(cls(topics.SETPOINT.type), topics.SETPOINT.path(m), state) for m in vehicles}
        self.create_subscription(cls(topics.DIAGNOSTICS.type), topics.DIAGNOSTICS.path(), self._on_diag,
                                 topics.qos_profile(topics.DIAGNOSTICS.qos))
        self.create_timer(0.01, self._tick)

    def _tick(self) -> None:
        stamp = self.get_clock().now().nanoseconds * 1e-9
        for m, v in self.vehicles.items():
            pos, quat, vel, omega = v.state()
            self.odom[m].publish(odometry_msg(pos, quat, vel, omega, stamp, m))
            target = self.targets[m]
            if target is not None:
                acc = np.clip(4.0 * (target - pos) - 3.0 * vel, -3.0, 3.0)
                self.setpoint[m].publish(setpoint_msg([*acc, 0.0, 0.0], stamp))
                self.last_setpoint[m] = time.monotonic()

        pos, rot = load_truth(stamp)[:2]   # Motive streams y-up: (x, y, z) z-up is (x, z, -y) there
        self.mocap.publish(pose_msg(Y_UP @ pos, matrix_to_quat(Y_UP @ rot @ Y_UP.T), stamp))

    def _on_load(self, msg) -> None:
        got = odometry(msg, "load")
        pos, rot, vel, omega = load_truth(convert.stamp_seconds(msg.header.stamp))
        self.load_errors.append([float(np.linalg.norm(np.asarray(got[0:3]) - pos)), float(np.linalg.norm(np.asarray(got[7:10]) - vel)),
                                 float(np.linalg.norm(np.asarray(got[10:13]) - omega))])

    def _on_diag(self, msg) -> None:
        for s in msg.status:
            if s.hardware_id in self.faults and s.level[0] != health.OK:
                self.faults[s.hardware_id].append((time.monotonic(), s.message))

    def spin_until(self, done, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not done() and time.monotonic() < end:
            rclpy.spin_once(self, timeout_sec=0.005)
        return bool(done())


def main(out: Path, workdir: Path) -> None:
    fleet = FakeFleet("mav_corl25", [STARTS[m] for m in MAVS])
    vehicles = dict(zip(MAVS, fleet.vehicles))
    px4, apm = FakeAutopilot("px4", vehicle=vehicles["mav_0"]), FakeAutopilot("ardupilot", vehicle=vehicles["mav_1"])
    cf = FakeCrazyflieUdp(vehicles["mav_2"])
    stop = threading.Event()
    physics = fly(fleet, stop)
    data = yaml.safe_load((HERE.parents[2] / "launch" / "cable3_px4.yaml").read_text())
    data["failsafe"]["hold_s"] = HOLD_S
    data["links"] = {"mav_0": {"link": "mavlink", "url": px4.url, "autopilot": "px4", "takeoff_height": 1.0},
                     "mav_1": {"link": "mavlink", "url": apm.url, "autopilot": "ardupilot", "takeoff_height": 1.0},
                     "mav_2": {"link": "crazyflie", "url": cf.url, "takeoff_height": 1.0},
                     "load": {"mocap_topic": MOCAP_TOPIC, "mocap_up_axis": "y"}}
    config = workdir / "team.yaml"
    config.write_text(yaml.safe_dump(data))
    specs = [s for s in fleet_plan(load_deployment(config)) if s.executable in ("flight_link_node", "mocap_odom_node")]
    sup = Supervisor(ros_env(), workdir / "logs")
    procs = [sup.start(s) for s in specs]
    rclpy.init()
    lab = Lab(vehicles)
    r: dict = {"plan": [(s.executable, s.namespace) for s in specs]}
    t0 = time.monotonic()
    try:
        r["arm"] = call_team(lab, MAVS, "arm", timeout_s=40)
        r["armed"] = [px4.armed, apm.armed, cf.armed]
        r["status"] = status_lines(MAVS, team_status(lab, MAVS, 3.0))   # the autopilots' state back, as the links report it
        r["takeoff"] = call_team(lab, MAVS, "takeoff")
        r["climbed"] = lab.spin_until(lambda: all(v.mode == "hold" for v in vehicles.values()), 8)
        r["heights"] = [float(v.state()[0][2]) for v in vehicles.values()]
        lab.spin_until(lambda: px4.custom_mode != MODES["px4"]["takeoff"], 1.0)   # its heartbeat thread follows the vehicle
        r["modes_after_takeoff"] = [px4.custom_mode, apm.custom_mode]
        for m, v in vehicles.items():
            lab.targets[m] = v.state()[0]
        lab.spin_until(lambda: len(lab.last_setpoint) == 3, 2)
        r["start"] = call_team(lab, MAVS, "start_rate_control")
        r["modes_in_flight"] = [px4.custom_mode, apm.custom_mode, vehicles["mav_2"].mode]
        goals = {m: lab.targets[m] + MOVE for m in MAVS}
        lab.targets.update(goals)
        lab.spin_until(lambda: False, 3.0)
        r["errors"] = [float(np.linalg.norm(vehicles[m].state()[0] - goals[m])) for m in MAVS]
        r["speeds"] = [float(np.linalg.norm(vehicles[m].state()[2])) for m in MAVS]
        r["rate_mode_all_along"] = [[mode for _, mode in v.modes][-1] == "rate" for v in vehicles.values()]
        # mav_0: its set-points stop; mav_1: killed in the air; mav_2: lands on command
        lab.targets["mav_0"] = None
        r["kill"] = call_team(lab, ["mav_1"], "kill")
        r["kill_height"] = float(vehicles["mav_1"].state()[0][2])
        r["land"] = call_team(lab, ["mav_2"], "land")
        down = lab.spin_until(lambda: all(v.mode in ("idle", "off") and not v.airborne for v in vehicles.values())
                              and not px4.armed, 8)
        r["all_down"] = down
        r["disarm"] = call_team(lab, ["mav_2"], "disarm")
        lab.targets["mav_1"] = lab.targets["mav_2"] = None
        silent_at = lab.last_setpoint["mav_0"]
        land = [x.time for x in px4.received("COMMAND_LONG") if x.msg.command == 21]   # MAV_CMD_NAV_LAND
        r["mav_0_land_after_s"] = land[0] - silent_at if land else None
        r["mav_0_hover_setpoints"] = sum(1 for x in px4.received("SET_ATTITUDE_TARGET") if silent_at + 0.15 < x.time < land[0]
                                         and x.msg.body_roll_rate == x.msg.body_pitch_rate == x.msg.body_yaw_rate == 0.0) if land else 0
        r["mav_0_fault"] = next((msg for t, msg in lab.faults["mav_0"] if t > silent_at), None)
        r["mav_0_hover_thrust"] = sorted({round(x.msg.thrust, 6) for x in px4.received("SET_ATTITUDE_TARGET")
                                          if land and silent_at + 0.15 < x.time < land[0]})
        lab.spin_until(lambda: False, 0.2)   # the landed vehicles' mocap reaches the autopilots
        last = px4.received("ATT_POS_MOCAP")[-1].msg
        r["mav_0_mocap_ned"], r["mav_0_enu"] = [last.x, last.y, last.z], vehicles["mav_0"].state()[0].tolist()
        r["armed_after"] = [px4.armed, apm.armed, cf.armed]
        r["modes_after"] = [v.mode for v in vehicles.values()]
        r["max_tilt_deg"] = [v.max_tilt_deg for v in vehicles.values()]
        r["mocap_received"] = [len(px4.received("ATT_POS_MOCAP")), len(apm.received("ATT_POS_MOCAP")),
                               len([s for s in cf.sent if s.port == 6 and s.channel == 1])]
        errors = np.asarray(lab.load_errors[50:])   # after the first 0.5 s (the low-pass settling)
        r["load_odom"] = {"count": len(lab.load_errors), "max_errors": errors.max(0).tolist() if len(errors) else None}
        r["timeline"] = {m: [(round(t - t0, 2), mode) for t, mode in v.modes] for m, v in vehicles.items()}
    finally:
        r["elapsed_s"] = round(time.monotonic() - t0, 2)
        lab.destroy_node()
        rclpy.shutdown()
        r["exit_codes"] = sup.stop(["flight_link_node", "mocap_odom_node"])
        sup.kill_all()
        stop.set()
        physics.join(timeout=2)
        for fake in (px4, apm, cf):
            fake.close()
        r["log"] = "".join(p.log.read_text(errors="replace")[-1500:] for p in procs)
    out.write_text(json.dumps(r))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
