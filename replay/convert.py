"""`replay convert`: a flight log as a rosbag2 MCAP bag of standard ROS 2 messages.

Written with rosbags' rosbag2 writer, as our recorder writes bags, so `ros2 bag`, Foxglove and
`marlstack replay` read the result like any recorded run. Topics follow the stack's MAV names
under the given namespace (ros_nodes/topics.py: `/<ns>/odom`, `/<ns>/imu`) plus the flight
controller's own streams; frames are ROS's (ENU world `world`, FLU body `<ns>/base_link`).

Per sample: the pose at each position sample, with the attitude then in force (zero-order hold);
the odometry twist in the body frame (REP-105); the IMU at each IMU sample with the attitude
then in force. Log time and header stamps are the flight controller's clock (seconds since boot).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from marlstack.replay import frames
from marlstack.replay.flightlog import FlightLog, Series, hold
from marlstack.ros_nodes import topics

WORLD = "world"
POSE_TYPE, VEC_TYPE = "geometry_msgs/msg/PoseStamped", "geometry_msgs/msg/Vector3Stamped"
BATTERY_TYPE, STRING_TYPE, LOG_TYPE = "sensor_msgs/msg/BatteryState", "std_msgs/msg/String", "rcl_interfaces/msg/Log"
ROSOUT_LEVEL = {"DEBUG": 10, "INFO": 20, "NOTICE": 20, "WARNING": 30, "ERROR": 40, "CRIT": 50, "ALERT": 50, "EMERG": 50}


class ConvertError(Exception):
    """The output cannot be written (it exists, or the log has nothing to convert)."""


def convert(log: FlightLog, out: Path, namespace: str = "vehicle") -> dict[str, int]:
    """Write the bag directory `out` (must not exist); returns messages written per topic."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    if out.exists():
        raise ConvertError(f"{out} exists already; choose a new path (bags are never overwritten)")
    store = get_typestore(Stores.ROS2_KILTED)
    ns = namespace.strip("/")
    msgs = sorted(_messages(log, store.types, ns), key=lambda m: m[2])
    if not msgs:
        raise ConvertError(f"{log.path}: no position, attitude, IMU, battery, mode or text data to convert")
    out.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with Writer(out, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns: dict[str, Any] = {}
        for topic, msgtype, t_ns, msg in msgs:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, msgtype, typestore=store)
            w.write(conns[topic], t_ns, store.serialize_cdr(msg, msgtype))
            counts[topic] = counts.get(topic, 0) + 1
    return counts


def _messages(log: FlightLog, T: dict, ns: str) -> Iterator[tuple[str, str, int, Any]]:
    st = log.state
    body = f"{ns}/base_link"

    def header(t: float, frame: str = WORLD) -> Any:
        sec = math.floor(t)
        stamp = T["builtin_interfaces/msg/Time"](sec=sec, nanosec=min(int(round((t - sec) * 1e9)), 999_999_999))
        return T["std_msgs/msg/Header"](stamp=stamp, frame_id=frame)

    def vec(v: np.ndarray) -> Any:
        return T["geometry_msgs/msg/Vector3"](x=float(v[0]), y=float(v[1]), z=float(v[2]))

    def quat(q: np.ndarray) -> Any:
        return T["geometry_msgs/msg/Quaternion"](x=float(q[1]), y=float(q[2]), z=float(q[3]), w=float(q[0]))

    def ns_of(t: float) -> int:
        return int(round(t * 1e9))

    def attitude_at(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if st.attitude is None:
            return np.tile([1.0, 0, 0, 0], (len(t), 1)), np.zeros(len(t), dtype=bool)
        q, known = hold(st.attitude, t)
        return np.where(known[:, None], q, [1.0, 0.0, 0.0, 0.0]), known

    cov9, cov36 = np.zeros(9), np.zeros(36)
    if st.position is not None:
        t = st.position.t_s
        q, known = attitude_at(t)
        v = st.velocity.values if st.velocity is not None else np.zeros((len(t), 3))
        v_body = frames.rotate(q * np.array([1.0, -1, -1, -1]), v)  # world velocity seen in the body frame
        w = hold(st.body_rates, t)[0] if st.body_rates is not None else np.zeros((len(t), 3))
        for k in range(len(t)):
            if not known[k]:
                continue
            p = st.position.values[k]
            pose = T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](
                x=float(p[0]), y=float(p[1]), z=float(p[2])), orientation=quat(q[k]))
            yield topics.POSE.path(ns), POSE_TYPE, ns_of(t[k]), T[POSE_TYPE](header=header(t[k]), pose=pose)
            odom = T[topics.ODOM.type](
                header=header(t[k]), child_frame_id=body,
                pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=cov36),
                twist=T["geometry_msgs/msg/TwistWithCovariance"](
                    twist=T["geometry_msgs/msg/Twist"](linear=vec(v_body[k]), angular=vec(w[k])), covariance=cov36))
            yield topics.ODOM.path(ns), topics.ODOM.type, ns_of(t[k]), odom
    if st.gyro is not None and st.accel is not None:
        t = st.gyro.t_s
        q, known = attitude_at(t)
        unknown_orientation = np.array([-1.0, 0, 0, 0, 0, 0, 0, 0, 0])  # sensor_msgs/Imu: -1 = no estimate
        for k in range(len(t)):
            imu = T[topics.IMU.type](header=header(t[k], body), orientation=quat(q[k]),
                                     orientation_covariance=cov9 if known[k] else unknown_orientation,
                                     angular_velocity=vec(st.gyro.values[k]), angular_velocity_covariance=cov9,
                                     linear_acceleration=vec(st.accel.values[k]), linear_acceleration_covariance=cov9)
            yield topics.IMU.path(ns), topics.IMU.type, ns_of(t[k]), imu
    yield from _vectors(st.rate_setpoint, f"/{ns}/rate_setpoint", body, T, header, vec)
    yield from _vectors(st.body_rates, f"/{ns}/body_rates", body, T, header, vec)
    if st.battery_voltage is not None:
        rem = st.battery_remaining
        for k, t in enumerate(st.battery_voltage.t_s):
            msg = T[BATTERY_TYPE](
                header=header(t, body), voltage=float(st.battery_voltage.values[k]), temperature=math.nan,
                current=math.nan, charge=math.nan, capacity=math.nan, design_capacity=math.nan,
                percentage=float(rem.values[k]) if rem is not None else math.nan, power_supply_status=0,
                power_supply_health=0, power_supply_technology=0, present=True, cell_voltage=np.zeros(0, np.float32),
                cell_temperature=np.zeros(0, np.float32), location="", serial_number="")
            yield f"/{ns}/battery", BATTERY_TYPE, ns_of(t), msg
    for t, mode in log.state.modes:
        yield f"/{ns}/flight_mode", STRING_TYPE, ns_of(t), T[STRING_TYPE](data=mode)
    for t, level, text in log.messages:
        sec = math.floor(t)
        stamp = T["builtin_interfaces/msg/Time"](sec=sec, nanosec=min(int(round((t - sec) * 1e9)), 999_999_999))
        yield "/rosout", LOG_TYPE, ns_of(t), T[LOG_TYPE](stamp=stamp, level=ROSOUT_LEVEL.get(level, 20), name=ns,
                                                         msg=text, file="", function="", line=0)


def _vectors(s: Series | None, topic: str, frame: str, T: dict, header: Any, vec: Any) -> Iterator:
    if s is None:
        return
    for k, t in enumerate(s.t_s):
        yield topic, VEC_TYPE, int(round(t * 1e9)), T[VEC_TYPE](header=header(t, frame), vector=vec(s.values[k]))
