"""ArduPilot logs through pymavlink, into the common `FlightLog` view.

DataFlash (.bin, written by the autopilot to its SD card) is read with pymavlink's DFReader: each
message type (ATT, IMU, RCOU, BAT, ...) becomes a stream, instances (`I` / `C` columns of newer
logs) become `NAME.k`. Telemetry logs (.tlog, what a ground station recorded over MAVLink) are read
with `mavutil`: each MAVLink message becomes a stream timed by the ground station's clock.

pymavlink prints what it skips ("bad header", "Skipped N bad bytes") instead of reporting it, partly
from compiled code straight to the process's stdout / stderr, so its output is captured at the file
descriptors and summarised as problems; a file that ends inside a message says where.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from marlstack.replay import frames
from marlstack.replay.flightlog import FlightLog, FlightLogError, Series, Stream, VehicleState, changes, unit_from_name

# units of the DataFlash fields replay uses, for logs older than the FMTU/UNIT messages (ArduPilot 3.x)
DF_UNITS = {"ATT": {c: "deg" for c in ("Roll", "Pitch", "Yaw", "DesRoll", "DesPitch", "DesYaw")},
            "IMU": {**{f"Gyr{a}": "rad/s" for a in "XYZ"}, **{f"Acc{a}": "m/s^2" for a in "XYZ"}},
            "RATE": {c: "deg/s" for c in ("RDes", "R", "PDes", "P", "YDes", "Y")},
            "BAT": {"Volt": "V", "Curr": "A", "CurrTot": "mAh"}, "RCOU": {f"C{i}": "us" for i in range(1, 15)},
            "GPS": {"Lat": "deg", "Lng": "deg", "Alt": "m", "Spd": "m/s"}}
for _ekf in ("NKF1", "XKF1"):
    DF_UNITS[_ekf] = {**{c: "m" for c in ("PN", "PE", "PD")}, **{c: "m/s" for c in ("VN", "VE", "VD")},
                      **{c: "deg" for c in ("Roll", "Pitch", "Yaw")}}
SKIPPED = re.compile(r"Skipped (\d+) bad bytes in log at offset (\d+)")
MAV_MODE_FLAG_SAFETY_ARMED = 128


def quat_from_euler_deg(roll: np.ndarray, pitch: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(w, x, y, z) of Z-Y-X Euler angles in degrees (ArduPilot's ATT convention, NED/FRD)."""
    r, p, y = (np.radians(np.asarray(a, dtype=float)) / 2 for a in (roll, pitch, yaw))
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.stack([cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy,
                     cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy], axis=-1)


@contextlib.contextmanager
def _captured(printed: io.StringIO) -> Iterator[None]:
    """Everything written to stdout / stderr meanwhile, Python's and compiled code's alike, into `printed`."""
    with tempfile.TemporaryFile(mode="w+b") as sink, contextlib.redirect_stdout(printed), \
            contextlib.redirect_stderr(printed):
        sys.__stdout__.flush()
        sys.__stderr__.flush()
        saved = [os.dup(1), os.dup(2)]
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            for fd, old in zip((1, 2), saved):
                os.dup2(old, fd)
                os.close(old)
            sink.seek(0)
            printed.write(sink.read().decode("utf-8", "replace"))


def read_ardupilot(path: Path, kind: str) -> FlightLog:
    size = path.stat().st_size
    if size == 0:
        raise FlightLogError(f"{path}: empty file")
    printed = io.StringIO()
    rows: dict[str, list[dict[str, Any]]] = {}
    modes: list[tuple[float, str]] = []
    problems: list[str] = []
    try:
        with _captured(printed):
            reader = _dataflash if kind == "dataflash" else _tlog
            for name, t, msg, mode in reader(path, size, problems):
                rows.setdefault(name, []).append({"_t": t, **msg})
                if mode is not None and (not modes or modes[-1][1] != mode):
                    modes.append((t, mode))
    except (OSError, ValueError, IndexError, KeyError, TypeError, AttributeError) as exc:  # pymavlink, damaged file
        problems.append(f"pymavlink stopped: {type(exc).__name__}: {exc}")
    for count, offset in SKIPPED.findall(printed.getvalue()):
        problems.append(f"corrupt data at byte {offset}: {count} bytes skipped to the next valid message")
    streams = {name: _stream(name, r) for name, r in rows.items() if name not in ("FMT", "FMTU", "UNIT", "MULT")}
    streams = {k: v for k, v in streams.items() if len(v.t_s)}
    if not streams:
        why = f": {problems[0]}" if problems else ""
        raise FlightLogError(f"{path}: no {'DataFlash' if kind == 'dataflash' else 'MAVLink'} messages could be read{why}")
    params, changed = _parameters(rows, kind)
    msgs = [(r["_t"], "INFO", str(r.get("Message", ""))) for r in rows.get("MSG", [])]
    msgs += [(r["_t"], _severity(r.get("severity")), str(r.get("text", ""))) for r in rows.get("STATUSTEXT", [])]
    info = {"firmware": next((m[2] for m in msgs if m[2].startswith("Ardu")), None)}
    info.update({k: v for k, v in (rows.get("VER") or [{}])[0].items() if k != "_t"})
    t_all = np.concatenate([s.t_s for s in streams.values()])
    state = _df_state(streams, params) if kind == "dataflash" else _tlog_state(streams)
    state.modes = modes
    return FlightLog(path=path, format="ArduPilot DataFlash" if kind == "dataflash" else "MAVLink telemetry",
                     size_bytes=size, streams=streams, info={k: v for k, v in info.items() if v is not None},
                     parameters=params, changed_parameters=changed, messages=sorted(msgs), dropouts=[],
                     problems=problems, state=state, start_s=float(t_all.min()), end_s=float(t_all.max()),
                     clock="s since boot" if kind == "dataflash" else "s UTC (ground station clock)")


def _dataflash(path: Path, size: int, problems: list[str]) -> Iterator[tuple[str, float, dict, str | None]]:
    from pymavlink import DFReader

    r = DFReader.DFReader_binary(str(path))
    while True:
        m = r.recv_msg()
        if m is None:
            break
        d = m.to_dict()
        d.pop("mavpackettype", None)
        name = m.get_type()
        fmt = r.formats.get(r.name_to_id.get(name))
        inst = getattr(fmt, "instance_field", None) if fmt is not None else None
        if inst is not None and inst in d:
            name = f"{name}.{d[inst]}"
        t = d["TimeUS"] * 1e-6 if "TimeUS" in d else m._timestamp
        yield name, t, d, (r.flightmode if m.get_type() == "MODE" else None)
    if r.offset < size:
        problems.append(f"cut at byte {size}: the last message (from byte {r.offset}) is incomplete; "
                        f"everything before it was read")


def _tlog(path: Path, size: int, problems: list[str]) -> Iterator[tuple[str, float, dict, str | None]]:
    from pymavlink import mavutil

    conn = mavutil.mavlink_connection(str(path), robust_parsing=True)
    bad = read = 0
    try:
        while True:
            m = conn.recv_msg()
            if m is None:
                break
            name = m.get_type()
            if name == "BAD_DATA":
                bad += 1
                continue
            read += 8 + len(m.get_msgbuf())  # each frame follows its 8-byte ground-station timestamp
            d = m.to_dict()
            d.pop("mavpackettype", None)
            d = {k: v for k, v in d.items() if isinstance(v, (int, float, str))}
            mode = mavutil.mode_string_v10(m) if name == "HEARTBEAT" and m.type != mavutil.mavlink.MAV_TYPE_GCS else None
            yield name, m._timestamp, d, mode
    finally:
        conn.close()   # pymavlink leaves its file open otherwise
    if bad:
        problems.append(f"{bad} corrupt MAVLink frame(s) skipped")
    elif read < size:
        problems.append(f"cut at byte {size}: the last {size - read} bytes are an incomplete frame; "
                        f"everything before it was read")


def _stream(name: str, rows: list[dict[str, Any]]) -> Stream:
    base = name.split(".")[0]
    cols = [k for k in rows[0] if k != "_t"]
    fields = {}
    for c in cols:
        vals = [r.get(c) for r in rows]
        fields[c] = np.asarray(vals, dtype=object if any(isinstance(v, (str, bytes)) for v in vals) else float)
    units = {c: DF_UNITS.get(base, {}).get(c) or unit_from_name(c) for c in cols}
    return Stream(name, base, np.asarray([r["_t"] for r in rows], dtype=float), fields,
                  {c: u for c, u in units.items() if u})


def _parameters(rows: dict[str, list[dict]], kind: str) -> tuple[dict[str, float], list[tuple[float, str, float]]]:
    key, val, src = ("Name", "Value", "PARM") if kind == "dataflash" else ("param_id", "param_value", "PARAM_VALUE")
    params: dict[str, float] = {}
    changed = []
    for r in rows.get(src, []):
        name, value = str(r[key]), float(r[val])
        if name in params and params[name] != value:
            changed.append((r["_t"], name, value))
        params.setdefault(name, value)
    return params, changed


def _severity(s: Any) -> str:
    names = ("EMERG", "ALERT", "CRIT", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")
    return names[s] if isinstance(s, int) and 0 <= s < len(names) else "INFO"


def _get(streams: dict[str, Stream], *names: str) -> Stream | None:
    """The first of `names` that is logged (instance 0 of a multi-instance message)."""
    for n in names:
        for key in (n, f"{n}.0"):
            if key in streams:
                return streams[key]
    return None


def _vec(s: Stream, *cols: str) -> np.ndarray:
    return np.stack([s.fields[c].astype(float) for c in cols], axis=-1)


def _df_state(streams: dict[str, Stream], params: dict[str, float]) -> VehicleState:
    st = VehicleState()
    if (s := _get(streams, "XKF1", "NKF1")) and "PN" in s.fields:
        st.position = Series(s.t_s, frames.ned_to_enu(_vec(s, "PN", "PE", "PD")), "m", f"{s.name}.PN/PE/PD (NED)")
        st.velocity = Series(s.t_s, frames.ned_to_enu(_vec(s, "VN", "VE", "VD")), "m/s", f"{s.name}.VN/VE/VD (NED)")
    if s := _get(streams, "ATT"):
        q = quat_from_euler_deg(s.fields["Roll"], s.fields["Pitch"], s.fields["Yaw"])
        st.attitude = Series(s.t_s, frames.quat_ned_frd_to_enu_flu(q), "1", "ATT.Roll/Pitch/Yaw (NED/FRD Euler)")
        qd = quat_from_euler_deg(s.fields["DesRoll"], s.fields["DesPitch"], s.fields["DesYaw"])
        st.attitude_setpoint = Series(s.t_s, frames.quat_ned_frd_to_enu_flu(qd), "1",
                                      "ATT.DesRoll/DesPitch/DesYaw (NED/FRD Euler)")
    if s := _get(streams, "IMU"):
        st.gyro = Series(s.t_s, frames.frd_to_flu(_vec(s, "GyrX", "GyrY", "GyrZ")), "rad/s", f"{s.name}.Gyr (FRD)")
        st.accel = Series(s.t_s, frames.frd_to_flu(_vec(s, "AccX", "AccY", "AccZ")), "m/s^2", f"{s.name}.Acc (FRD)")
    if s := _get(streams, "RATE"):
        st.body_rates = Series(s.t_s, frames.frd_to_flu(np.radians(_vec(s, "R", "P", "Y"))), "rad/s", "RATE.R/P/Y (FRD)")
        st.rate_setpoint = Series(s.t_s, frames.frd_to_flu(np.radians(_vec(s, "RDes", "PDes", "YDes"))), "rad/s",
                                  "RATE.RDes/PDes/YDes (FRD)")
    elif st.gyro is not None:
        st.body_rates = st.gyro
    if s := _get(streams, "RCOU"):
        cols = [c for c in s.fields if re.fullmatch(r"C\d+", c)]
        st.actuators = Series(s.t_s, _vec(s, *cols), "us", "RCOU.C*")
        lo, hi = params.get("SERVO1_MIN", params.get("RC1_MIN")), params.get("SERVO1_MAX", params.get("RC1_MAX"))
        st.actuator_range = (lo, hi) if lo is not None and hi is not None else None
    if s := _get(streams, "BAT", "CURR"):
        st.battery_voltage = Series(s.t_s, s.fields["Volt"].astype(float), "V", f"{s.name}.Volt")
        if "RemPct" in s.fields:
            st.battery_remaining = Series(s.t_s, s.fields["RemPct"].astype(float) / 100, "1", f"{s.name}.RemPct")
        elif "CurrTot" in s.fields and params.get("BATT_CAPACITY"):
            st.battery_remaining = Series(s.t_s, 1 - s.fields["CurrTot"].astype(float) / params["BATT_CAPACITY"], "1",
                                          f"1 - {s.name}.CurrTot / BATT_CAPACITY")
    if (s := _get(streams, "STAT")) and "Armed" in s.fields:
        st.armed = changes(s.t_s, s.fields["Armed"].astype(float) > 0)
    elif (s := _get(streams, "ARM")) and "ArmState" in s.fields:
        st.armed = changes(s.t_s, s.fields["ArmState"].astype(float) > 0)
    return st


def _tlog_state(streams: dict[str, Stream]) -> VehicleState:
    st = VehicleState()
    if s := _get(streams, "LOCAL_POSITION_NED"):
        st.position = Series(s.t_s, frames.ned_to_enu(_vec(s, "x", "y", "z")), "m", "LOCAL_POSITION_NED.x/y/z")
        st.velocity = Series(s.t_s, frames.ned_to_enu(_vec(s, "vx", "vy", "vz")), "m/s", "LOCAL_POSITION_NED.vx/vy/vz")
    if s := _get(streams, "ATTITUDE_QUATERNION"):
        st.attitude = Series(s.t_s, frames.quat_ned_frd_to_enu_flu(_vec(s, "q1", "q2", "q3", "q4")), "1",
                             "ATTITUDE_QUATERNION.q1..q4")
    elif s := _get(streams, "ATTITUDE"):
        q = quat_from_euler_deg(*(np.degrees(s.fields[c].astype(float)) for c in ("roll", "pitch", "yaw")))
        st.attitude = Series(s.t_s, frames.quat_ned_frd_to_enu_flu(q), "1", "ATTITUDE.roll/pitch/yaw")
    if s := _get(streams, "ATTITUDE"):
        st.body_rates = Series(s.t_s, frames.frd_to_flu(_vec(s, "rollspeed", "pitchspeed", "yawspeed")), "rad/s",
                               "ATTITUDE.rollspeed/pitchspeed/yawspeed (FRD)")
    if s := _get(streams, "ATTITUDE_TARGET"):
        st.rate_setpoint = Series(s.t_s, frames.frd_to_flu(_vec(s, "body_roll_rate", "body_pitch_rate",
                                                                "body_yaw_rate")), "rad/s", "ATTITUDE_TARGET body rates")
        st.thrust_setpoint = Series(s.t_s, s.fields["thrust"].astype(float), "1", "ATTITUDE_TARGET.thrust")
    if s := _get(streams, "SERVO_OUTPUT_RAW"):
        cols = [f"servo{i}_raw" for i in range(1, 17) if f"servo{i}_raw" in s.fields]
        st.actuators = Series(s.t_s, _vec(s, *cols), "us", "SERVO_OUTPUT_RAW")
    if s := _get(streams, "SYS_STATUS"):
        st.battery_voltage = Series(s.t_s, s.fields["voltage_battery"].astype(float) / 1000, "V", "SYS_STATUS.voltage_battery")
        st.battery_remaining = Series(s.t_s, s.fields["battery_remaining"].astype(float) / 100, "1",
                                      "SYS_STATUS.battery_remaining")
    if (s := _get(streams, "HEARTBEAT")) and "base_mode" in s.fields:
        armed = (s.fields["base_mode"].astype(int) & MAV_MODE_FLAG_SAFETY_ARMED) > 0
        st.armed = changes(s.t_s, armed)
    return st
