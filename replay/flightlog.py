"""One view over flight-controller logs (PX4 ULog, ArduPilot DataFlash / telemetry, Crazyflie uSD).

Each format's reader fills a `FlightLog`: its raw `streams` (every logged topic or message type,
with timestamps, fields and units where the format or its naming says them), the log's metadata,
and a `VehicleState`: the quantities replay works with, already converted to ROS frames
(ENU world, FLU body; see `replay.frames`). The commands (`info`, `csv`, `report`, `convert`)
only see this view, so a new format is one reader module.

Reading is lenient: what could not be read becomes a line in `problems` (where and why it
stopped); `FlightLogError` is raised only when nothing at all could be read.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ULOG_MAGIC = b"ULog\x01\x12\x35"
DATAFLASH_HEAD = b"\xa3\x95"  # every DataFlash (.bin) message starts with these two bytes
CRAZYFLIE_MAGIC = 0xBC  # a Crazyflie uSD log's first byte, followed by its u16 version (1 or 2)
FLIGHT_SUFFIXES = {".ulg": "ulog", ".bin": "dataflash", ".tlog": "tlog"}


class FlightLogError(Exception):
    """Nothing could be read from the file; the message says why (one line)."""


@dataclass
class Stream:
    """One logged topic (one instance of a multi-instance topic)."""
    name: str  # e.g. "vehicle_attitude", "battery_status.1" (instance 1)
    type: str  # the format's message type (PX4 topic, DataFlash message name)
    t_s: np.ndarray  # timestamps, seconds on the log's clock (flight controller boot time)
    fields: dict[str, np.ndarray]  # field name -> one value per timestamp (numbers, or strings)
    units: dict[str, str] = field(default_factory=dict)  # field -> unit, for the fields whose unit is known


@dataclass
class Series:
    """One quantity over time in ROS conventions; `source` names the log fields it came from."""
    t_s: np.ndarray
    values: np.ndarray  # (n,) or (n, k)
    unit: str
    source: str


@dataclass
class VehicleState:
    """What replay uses, in ENU (world) / FLU (body); None where the log lacks it."""
    position: Series | None = None  # (n, 3) m, ENU, local origin
    velocity: Series | None = None  # (n, 3) m/s, ENU
    attitude: Series | None = None  # (n, 4) quaternion (w, x, y, z), FLU body -> ENU
    attitude_setpoint: Series | None = None  # (n, 4) like attitude
    body_rates: Series | None = None  # (n, 3) rad/s, FLU
    rate_setpoint: Series | None = None  # (n, 3) rad/s, FLU
    thrust_setpoint: Series | None = None  # (n,) normalised collective thrust 0..1
    actuators: Series | None = None  # (n, k) outputs as logged (PWM us or normalised)
    actuator_range: tuple[float, float] | None = None  # the outputs' (min, max): at either end = saturated
    accel: Series | None = None  # (n, 3) m/s^2 specific force, FLU (IMU)
    gyro: Series | None = None  # (n, 3) rad/s, FLU (IMU)
    battery_voltage: Series | None = None  # (n,) V
    battery_remaining: Series | None = None  # (n,) fraction 0..1
    modes: list[tuple[float, str]] = field(default_factory=list)  # (t_s, mode name) at every change
    armed: list[tuple[float, bool]] = field(default_factory=list)  # (t_s, armed) at every change


@dataclass
class FlightLog:
    path: Path
    format: str  # "PX4 ULog", "ArduPilot DataFlash", "MAVLink telemetry"
    size_bytes: int
    streams: dict[str, Stream]
    info: dict[str, Any]  # vehicle, firmware, board, ... as the log states them
    parameters: dict[str, float]  # values at start
    changed_parameters: list[tuple[float, str, float]]  # (t_s, name, new value)
    messages: list[tuple[float, str, str]]  # (t_s, level, text): the firmware's own log lines
    dropouts: list[tuple[float, float]]  # (t_s, duration s): data the logger itself could not write
    problems: list[str]  # where and why reading stopped or skipped data; empty for a clean log
    state: VehicleState
    start_s: float  # the log's start and end on its clock (not the streams' extremes: some topics
    end_s: float  # are logged with a zero timestamp before their publisher sets one)
    clock: str = "s since boot"  # what the timestamps count: the flight controller's boot time, or UTC

    def stream(self, name: str) -> Stream:
        """The named stream; KeyError (listing what there is) when absent."""
        if name not in self.streams:
            raise KeyError(name)
        return self.streams[name]


def hold(s: Series, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The value in force at each time t (zero-order hold, as a controller uses a set-point) and a mask
    of the times after the first sample."""
    from marlstack.replay.fleet import Stream as Rows, held

    values = held(Rows(s.t_s, s.values.reshape(len(s.t_s), -1)), t).reshape((len(t), *s.values.shape[1:]))
    return values, (t >= s.t_s[0]) if len(s.t_s) else np.zeros(len(t), dtype=bool)


def changes(t: np.ndarray, values: np.ndarray) -> list[tuple[float, Any]]:
    """(t, value) at the first sample and wherever the value changes (modes, arming)."""
    idx = [0, *np.flatnonzero(values[1:] != values[:-1]) + 1] if len(values) else []
    return [(float(t[i]), values[i].item() if hasattr(values[i], "item") else values[i]) for i in idx]


def flight_format(path: Path) -> str | None:
    """'ulog', 'dataflash', 'tlog' or 'crazyflie' for a flight log (by content, else suffix), else None."""
    try:
        with path.open("rb") as f:
            head = f.read(len(ULOG_MAGIC))
    except (IsADirectoryError, FileNotFoundError, PermissionError):
        return None
    if head == ULOG_MAGIC:
        return "ulog"
    if head[:2] == DATAFLASH_HEAD and path.suffix.lower() != ".mcap":
        return "dataflash"
    if len(head) >= 3 and head[0] == CRAZYFLIE_MAGIC and head[1:3] in (b"\x01\x00", b"\x02\x00"):
        return "crazyflie"  # uSD deck files have no suffix (log00, log01, ...)
    return FLIGHT_SUFFIXES.get(path.suffix.lower())


def open_flight_log(path: str | Path) -> FlightLog:
    """Read a flight log of any supported format; FlightLogError when nothing is readable."""
    path = Path(path)
    kind = flight_format(path)
    if kind == "ulog":
        from marlstack.replay.ulog import read_ulog
        return read_ulog(path)
    if kind in ("dataflash", "tlog"):
        from marlstack.replay.ardupilot import read_ardupilot
        return read_ardupilot(path, kind)
    if kind == "crazyflie":
        from marlstack.replay.crazyflie import read_crazyflie
        return read_crazyflie(path)
    raise FlightLogError(f"{path}: not a flight log (expected PX4 .ulg, ArduPilot .bin or .tlog, Crazyflie uSD log)")


def unit_from_name(name: str) -> str:
    """The unit PX4 / ArduPilot field names carry in their suffix (`gyro_rad`, `voltage_v`), or ''."""
    base = name.split("[")[0].lower()
    for suffix, unit in UNIT_SUFFIXES:
        if base.endswith(suffix):
            return unit
    return ""


UNIT_SUFFIXES = (("_m_s2", "m/s^2"), ("_m_s", "m/s"), ("_rad_s", "rad/s"), ("_rad", "rad"), ("_ga", "gauss"),
                 ("_meter", "m"), ("_m", "m"), ("_celcius", "degC"), ("_celsius", "degC"), ("_v", "V"),
                 ("_a", "A"), ("_deg", "deg"), ("_hz", "Hz"), ("_pa", "Pa"), ("_us", "us"), ("_s", "s"))
