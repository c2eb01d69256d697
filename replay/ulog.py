"""PX4 ULog (.ulg) through pyulog, into the common `FlightLog` view.

pyulog reads every topic and instance, the formats, parameters, logged text and dropouts, but it
stops silently at a cut file and only prints (to stdout) what it skipped. So before parsing, the
message framing is walked once (3-byte header: uint16 size, uint8 type) to find where and why
the file stops making sense, and pyulog's printout is captured and summarised as problems.

The vehicle quantities come from the topics PX4 has logged over the years (old names as fallback):
vehicle_local_position (NED), vehicle_attitude (FRD -> NED quaternion), vehicle_angular_velocity or
vehicle_attitude.rollspeed.., vehicle_rates_setpoint, vehicle_attitude_setpoint, actuator_outputs
(PWM, range from PWM_MIN / PWM_MAX) or actuator_motors (0..1), battery_status, sensor_combined,
vehicle_status (nav_state, arming_state).
"""
from __future__ import annotations

import contextlib
import io
import mmap
import struct
from pathlib import Path

import numpy as np

from marlstack.replay import frames
from marlstack.replay.flightlog import (ULOG_MAGIC, FlightLog, FlightLogError, Series, Stream, VehicleState, changes,
                              unit_from_name)

HEADER_BYTES = 16  # magic (7), version (1), start timestamp (8)
MESSAGE_TYPES = frozenset(b"BFIMPQARDLCSO")  # ULog message types (PX4 ULog file format spec)
LOG_LEVELS = {ord("0") + i: n for i, n in enumerate(("EMERG", "ALERT", "CRIT", "ERROR", "WARNING", "NOTICE",
                                                     "INFO", "DEBUG"))}
# PX4 vehicle_status.nav_state values whose meaning has been stable across releases
NAV_STATES = {0: "MANUAL", 1: "ALTCTL", 2: "POSCTL", 3: "AUTO_MISSION", 4: "AUTO_LOITER", 5: "AUTO_RTL",
              10: "ACRO", 12: "DESCEND", 13: "TERMINATION", 14: "OFFBOARD", 15: "STAB", 17: "AUTO_TAKEOFF",
              18: "AUTO_LAND", 19: "AUTO_FOLLOW_TARGET", 20: "AUTO_PRECLAND", 21: "ORBIT", 22: "AUTO_VTOL_TAKEOFF"}
ARMED = 2  # vehicle_status.arming_state ARMING_STATE_ARMED
# fields whose unit the PX4 message definitions state but the name does not (or states wrongly: gyro_rad is rad/s)
KNOWN_UNITS = {"timestamp": "us", "timestamp_sample": "us", "x": "m", "y": "m", "z": "m", "vx": "m/s",
               "vy": "m/s", "vz": "m/s", "rollspeed": "rad/s", "pitchspeed": "rad/s", "yawspeed": "rad/s",
               "gyro_rad": "rad/s", "remaining": "1", "roll_body": "rad", "pitch_body": "rad", "yaw_body": "rad",
               "ref_alt": "m", "ref_lat": "deg", "ref_lon": "deg", "output": "us"}
TOPIC_UNITS = {("vehicle_rates_setpoint", f): "rad/s" for f in ("roll", "pitch", "yaw")} | {
    ("vehicle_angular_velocity", "xyz"): "rad/s", ("vehicle_local_position", "yaw"): "rad"}


def scan_framing(path: Path, size: int) -> str | None:
    """Where and why the message framing breaks (one line), or None when it runs to the end."""
    if size <= HEADER_BYTES:
        return None
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:  # no copy in memory
        pos = HEADER_BYTES
        while pos + 3 <= size:
            msg_size, msg_type = struct.unpack_from("<HB", data, pos)
            if msg_type not in MESSAGE_TYPES:
                return f"stopped making sense at byte {pos} of {size}: unknown message type 0x{msg_type:02x} (corrupt data)"
            if pos + 3 + msg_size > size:
                return (f"cut at byte {size}: the last {chr(msg_type)!r} message (from byte {pos}) has "
                        f"{size - pos - 3} of its {msg_size} bytes")
            pos += 3 + msg_size
    if pos < size:
        return f"cut at byte {size}: the file ends inside a message header (from byte {pos})"
    return None


def _parse(path: Path):
    """pyulog's ULog of the file, and what pyulog printed while skipping data."""
    from pyulog import ULog
    from pyulog.core import ULogException

    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            ulog = ULog(str(path))
    except ULogException as exc:
        raise FlightLogError(f"{path}: not a readable ULog file ({exc})") from None
    except (OSError, struct.error, ValueError, IndexError, KeyError, UnicodeDecodeError) as exc:
        # pyulog seeks and unpacks without checks: a damaged definitions section surfaces as any of these
        raise FlightLogError(f"{path}: pyulog could not read past a damaged part of the file "
                             f"({type(exc).__name__}: {exc})") from None
    return ulog, printed.getvalue()


def read_ulog(path: Path) -> FlightLog:
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(HEADER_BYTES)
    if not head:
        raise FlightLogError(f"{path}: empty file")
    if head[:len(ULOG_MAGIC)] != ULOG_MAGIC or len(head) < HEADER_BYTES:
        raise FlightLogError(f"{path}: not a ULog file (bad header: the first bytes are not ULog's magic)")
    ulog, printed = _parse(path)
    problems = []
    stop = scan_framing(path, size)
    if stop:
        problems.append(stop + ("; pyulog skipped ahead to the next sync marker" if ulog.file_corruption else
                                "; everything before it was read"))
    elif ulog.file_corruption:
        problems.append("pyulog found corrupt data and skipped ahead to the next sync marker")
    unknown = sorted({line.split("message id ")[1].split(".")[0] for line in printed.splitlines()
                      if "no subscription found for message id" in line})
    if unknown:
        problems.append(f"data for {len(unknown)} message id(s) without a format/subscription "
                        f"({', '.join(unknown[:8])}) skipped")
    streams = _streams(ulog)
    if not streams:
        why = f": {problems[0]}" if problems else ""
        raise FlightLogError(f"{path}: no data messages could be read{why}")
    us = 1e-6
    info = {k: v for k, v in ulog.msg_info_dict.items() if isinstance(v, (str, int, float))}
    params = dict(ulog.initial_parameters)
    return FlightLog(
        path=path, format="PX4 ULog", size_bytes=size, streams=streams, info=info, parameters=params,
        changed_parameters=[(t * us, n, v) for t, n, v in ulog.changed_parameters],
        messages=[(m.timestamp * us, LOG_LEVELS.get(m.log_level, str(m.log_level)), m.message)
                  for m in ulog.logged_messages],
        dropouts=[(d.timestamp * us, d.duration * 1e-3) for d in ulog.dropouts],
        problems=problems, state=_state(streams, params), start_s=ulog.start_timestamp * us,
        end_s=ulog.last_timestamp * us)


def _streams(ulog) -> dict[str, Stream]:
    out = {}
    for d in ulog.data_list:
        name = d.name if d.multi_id == 0 else f"{d.name}.{d.multi_id}"
        fields = {k: v for k, v in d.data.items() if k != "timestamp"}
        units = {}
        for k in fields:
            base = k.split("[")[0]
            unit = TOPIC_UNITS.get((d.name, base)) or KNOWN_UNITS.get(base) or unit_from_name(base)
            if unit:
                units[k] = unit
        out[name] = Stream(name, d.name, d.data["timestamp"] * 1e-6, fields, units)
    return out


def _vec(s: Stream, *names: str) -> np.ndarray:
    return np.stack([s.fields[n].astype(float) for n in names], axis=-1)


def _has(streams: dict[str, Stream], name: str, *fields: str) -> Stream | None:
    s = streams.get(name)
    return s if s is not None and len(s.t_s) and all(f in s.fields for f in fields) else None


def _state(streams: dict[str, Stream], params: dict[str, float]) -> VehicleState:
    st = VehicleState()
    q = ["q[0]", "q[1]", "q[2]", "q[3]"]
    if s := _has(streams, "vehicle_local_position", "x", "y", "z"):
        st.position = Series(s.t_s, frames.ned_to_enu(_vec(s, "x", "y", "z")), "m",
                             "vehicle_local_position.x/y/z (NED)")
        if all(k in s.fields for k in ("vx", "vy", "vz")):
            st.velocity = Series(s.t_s, frames.ned_to_enu(_vec(s, "vx", "vy", "vz")), "m/s",
                                 "vehicle_local_position.vx/vy/vz (NED)")
    if s := _has(streams, "vehicle_attitude", *q):
        st.attitude = Series(s.t_s, frames.quat_ned_frd_to_enu_flu(_vec(s, *q)), "1", "vehicle_attitude.q (FRD->NED)")
    if s := _has(streams, "vehicle_angular_velocity", "xyz[0]", "xyz[1]", "xyz[2]"):
        st.body_rates = Series(s.t_s, frames.frd_to_flu(_vec(s, "xyz[0]", "xyz[1]", "xyz[2]")), "rad/s",
                               "vehicle_angular_velocity.xyz (FRD)")
    elif s := _has(streams, "vehicle_attitude", "rollspeed", "pitchspeed", "yawspeed"):
        st.body_rates = Series(s.t_s, frames.frd_to_flu(_vec(s, "rollspeed", "pitchspeed", "yawspeed")), "rad/s",
                               "vehicle_attitude.rollspeed/pitchspeed/yawspeed (FRD)")
    if s := _has(streams, "vehicle_rates_setpoint", "roll", "pitch", "yaw"):
        st.rate_setpoint = Series(s.t_s, frames.frd_to_flu(_vec(s, "roll", "pitch", "yaw")), "rad/s",
                                  "vehicle_rates_setpoint.roll/pitch/yaw (FRD)")
    if s := _has(streams, "vehicle_attitude_setpoint", "q_d[0]", "q_d[1]", "q_d[2]", "q_d[3]"):
        qd = _vec(s, "q_d[0]", "q_d[1]", "q_d[2]", "q_d[3]")
        ok = np.linalg.norm(qd, axis=-1) > 0.5  # PX4 logs zeros before the first valid set-point
        st.attitude_setpoint = Series(s.t_s[ok], frames.quat_ned_frd_to_enu_flu(qd[ok]), "1",
                                      "vehicle_attitude_setpoint.q_d (FRD->NED)")
        if "thrust_body[2]" in s.fields:
            st.thrust_setpoint = Series(s.t_s, -s.fields["thrust_body[2]"].astype(float), "1",
                                        "vehicle_attitude_setpoint.thrust_body[2] (FRD, negated)")
        elif "thrust" in s.fields:
            st.thrust_setpoint = Series(s.t_s, s.fields["thrust"].astype(float), "1", "vehicle_attitude_setpoint.thrust")
    if s := _has(streams, "actuator_motors", "control[0]"):
        cols = [k for k in s.fields if k.startswith("control[")]
        vals = _vec(s, *cols)
        used = np.isfinite(vals).any(axis=0)  # PX4 logs NaN for motors that do not exist
        st.actuators = Series(s.t_s, vals[:, used], "1", "actuator_motors.control")
        st.actuator_range = (0.0, 1.0)
    elif s := _has(streams, "actuator_outputs", "output[0]"):
        n = int(np.max(s.fields["noutputs"])) if "noutputs" in s.fields else 8
        st.actuators = Series(s.t_s, _vec(s, *(f"output[{i}]" for i in range(n))), "us",
                              "actuator_outputs.output")
        lo, hi = params.get("PWM_MAIN_MIN1", params.get("PWM_MIN")), params.get("PWM_MAIN_MAX1", params.get("PWM_MAX"))
        st.actuator_range = (float(lo), float(hi)) if lo is not None and hi is not None else None
    if s := _has(streams, "sensor_combined", "gyro_rad[0]", "accelerometer_m_s2[0]"):
        st.gyro = Series(s.t_s, frames.frd_to_flu(_vec(s, "gyro_rad[0]", "gyro_rad[1]", "gyro_rad[2]")), "rad/s",
                         "sensor_combined.gyro_rad (FRD)")
        st.accel = Series(s.t_s, frames.frd_to_flu(_vec(s, *(f"accelerometer_m_s2[{i}]" for i in range(3)))),
                          "m/s^2", "sensor_combined.accelerometer_m_s2 (FRD)")
    if s := _has(streams, "battery_status", "voltage_v"):
        st.battery_voltage = Series(s.t_s, s.fields["voltage_v"].astype(float), "V", "battery_status.voltage_v")
        if "remaining" in s.fields:
            st.battery_remaining = Series(s.t_s, s.fields["remaining"].astype(float), "1", "battery_status.remaining")
    if s := _has(streams, "vehicle_status", "nav_state"):
        st.modes = [(t, NAV_STATES.get(int(n), f"nav_state {int(n)}")) for t, n in changes(s.t_s, s.fields["nav_state"])]
        if "arming_state" in s.fields:
            st.armed = changes(s.t_s, s.fields["arming_state"] == ARMED)
    return st
