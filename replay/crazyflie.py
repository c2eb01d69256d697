"""Crazyflie uSD-card logs (the uSD deck's event-based binary format), into the common `FlightLog` view.

No maintained package reads them, so this follows the format the firmware writes (its
`tools/usdlog` decoder and `usddeck.c` are the definition):

    u8 0xBC | u16 version (1, 2) | u16 number of event types
    per event type: u16 id | name NUL | u16 number of variables | per variable "name(T)" NUL,
                    T a Python struct code (little-endian, packed)
    events until the last 4 bytes: u16 id | timestamp (v1: u32 ms, v2: u64 us) | packed values
    u32 CRC-32 of everything before it

The Crazyflie's own frames are already ROS's (world x, y, z up; body x forward, y left, z up);
its gyroscope logs deg/s and its accelerometer g, converted here to rad/s and m/s^2.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from marlstack.replay.flightlog import FlightLog, FlightLogError, Series, Stream, VehicleState

MAGIC = 0xBC
G = 9.81  # m/s^2 per g, as the firmware scales its accelerometer
UNITS = {"gyro": "deg/s", "acc": "g", "baro.asl": "m", "x": "m", "y": "m", "z": "m"}


def read_crazyflie(path: Path) -> FlightLog:
    data = path.read_bytes()
    size = len(data)
    if not data:
        raise FlightLogError(f"{path}: empty file")
    if data[0] != MAGIC or size < 5:
        raise FlightLogError(f"{path}: not a Crazyflie uSD log (first byte 0x{data[0]:02x}, expected 0xBC)")
    version, n_types = struct.unpack_from("<HH", data, 1)
    if version not in (1, 2):
        raise FlightLogError(f"{path}: Crazyflie uSD log version {version} is not supported (1 and 2 are)")
    problems = []
    try:
        types, pos = _header(data, n_types)
    except (struct.error, IndexError, UnicodeDecodeError, ValueError) as exc:
        raise FlightLogError(f"{path}: the event definitions at the start of the file are damaged ({exc})") from None
    crc_ok = size >= pos + 4 and zlib.crc32(data[:-4]) == struct.unpack_from("<I", data, size - 4)[0]
    end = size - 4 if crc_ok else size  # without a valid CRC the file was cut: there is no CRC to skip
    if not crc_ok:
        problems.append("the CRC at the end does not match: the file was cut or damaged")
    head = struct.Struct("<HI" if version == 1 else "<HQ")
    scale = 1e-3 if version == 1 else 1e-6
    rows: dict[int, list[tuple]] = {i: [] for i in types}
    times: dict[int, list[float]] = {i: [] for i in types}
    while pos < end:
        if pos + head.size > end:
            problems.append(f"cut at byte {size}: the file ends inside an event header (from byte {pos})")
            break
        event_id, stamp = head.unpack_from(data, pos)
        if event_id not in types:
            problems.append(f"stopped making sense at byte {pos} of {size}: unknown event id {event_id}")
            break
        fmt = types[event_id][2]
        if pos + head.size + fmt.size > end:
            problems.append(f"cut at byte {size}: the last {types[event_id][0]!r} event (from byte {pos}) is incomplete")
            break
        rows[event_id].append(fmt.unpack_from(data, pos + head.size))
        times[event_id].append(stamp * scale)
        pos += head.size + fmt.size
    streams = {}
    for event_id, (name, variables, _) in types.items():
        if not rows[event_id]:
            continue
        values = np.asarray(rows[event_id], dtype=float)
        fields = {v: values[:, k] for k, v in enumerate(variables)}
        units = {v: UNITS.get(v.split(".")[0]) or UNITS.get(v.split(".")[-1]) or UNITS.get(v) for v in variables}
        streams[name] = Stream(name, name, np.asarray(times[event_id]), fields, {k: u for k, u in units.items() if u})
    if not streams:
        why = f": {problems[-1]}" if problems else ""
        raise FlightLogError(f"{path}: no events could be read{why}")
    t_all = np.concatenate([s.t_s for s in streams.values()])
    return FlightLog(path=path, format="Crazyflie uSD", size_bytes=size, streams=streams,
                     info={"format_version": version}, parameters={}, changed_parameters=[], messages=[],
                     dropouts=[], problems=problems, state=_state(streams), start_s=float(t_all.min()),
                     end_s=float(t_all.max()))


def _cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\0", pos)
    return data[pos:end].decode("utf-8"), end + 1


def _header(data: bytes, n_types: int) -> tuple[dict[int, tuple[str, list[str], struct.Struct]], int]:
    """Event id -> (name, variable names, packed layout), and where the events start."""
    pos, types = 5, {}
    for _ in range(n_types):
        (event_id,) = struct.unpack_from("<H", data, pos)
        name, pos = _cstring(data, pos + 2)
        (n_vars,) = struct.unpack_from("<H", data, pos)
        pos += 2
        variables, codes = [], ""
        for _ in range(n_vars):
            spec, pos = _cstring(data, pos)
            if len(spec) < 4 or spec[-3] != "(" or spec[-1] != ")":
                raise ValueError(f"variable {spec!r} of event {name!r} is not 'name(T)'")
            variables.append(spec[:-3])
            codes += spec[-2]
        types[event_id] = (name, variables, struct.Struct("<" + codes))
    return types, pos


def _vec(s: Stream, *names: str) -> np.ndarray:
    return np.stack([s.fields[n] for n in names], axis=-1)


def _state(streams: dict[str, Stream]) -> VehicleState:
    st = VehicleState()
    for name in ("estPosition", "estPose", "lhPosition"):
        s = streams.get(name)
        if s is not None and {"x", "y", "z"} <= {k.split(".")[-1] for k in s.fields}:
            cols = [next(k for k in s.fields if k.split(".")[-1] == a) for a in "xyz"]
            st.position = Series(s.t_s, _vec(s, *cols), "m", f"{name}.{'/'.join(cols)} (ENU)")
            break
    s = streams.get("estPose")
    if s is not None and all(any(k.endswith(f".q{a}") for k in s.fields) for a in "xyzw"):
        q = [next(k for k in s.fields if k.endswith(f".q{a}")) for a in "wxyz"]
        st.attitude = Series(s.t_s, _vec(s, *q), "1", f"estPose.{'/'.join(q)}")
    if (s := streams.get("estGyroscope")) and "gyro.x" in s.fields:
        st.gyro = Series(s.t_s, np.radians(_vec(s, "gyro.x", "gyro.y", "gyro.z")), "rad/s", "estGyroscope.gyro (FLU, deg/s)")
        st.body_rates = st.gyro
    if (s := streams.get("estAcceleration")) and "acc.x" in s.fields:
        st.accel = Series(s.t_s, G * _vec(s, "acc.x", "acc.y", "acc.z"), "m/s^2", "estAcceleration.acc (FLU, g)")
    return st
