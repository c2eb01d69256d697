"""A fake PX4 / ArduPilot autopilot speaking MAVLink over UDP on 127.0.0.1 (pymavlink, real packets).

It behaves like the parts of the firmware a companion link touches, and records everything it
receives with its arrival time so the tests can check rates, fields, units and frames:
  * HEARTBEAT at 10 Hz with its arming state and custom mode (can be paused: link loss);
  * COMMAND_LONG: arm / disarm / force disarm (21196), DO_SET_MODE, NAV_TAKEOFF, NAV_LAND, each
    acknowledged (ACCEPTED or DENIED);
  * GLOBAL_POSITION_INT at 10 Hz, home at HOME_AMSL (off: PX4 indoors before its EKF origin is set);
  * PX4: refuses OFFBOARD unless setpoints arrived at >= 2 Hz over the last second, and drops out of
    it (to AUTO.LAND) when they stop for 1 s (COM_OF_LOSS_T default); take-off altitude (param 7) AMSL;
  * ArduCopter: GUIDED whenever asked; take-off only in GUIDED, altitude relative to home; attitude
    targets in GUIDED fly the vehicle on them, and when they stop for GUID_TIMEOUT (3 s) it holds;
  * with a `vehicle` (tests/hardware/fake_vehicle.py) it flies it: take-off, then hold (PX4:
    AUTO.TAKEOFF, then AUTO.LOITER); in rate control the setpoints' FRD body rates and normalised
    thrust (of the vehicle's maximum); land mode descends and disarms on touchdown; force disarm cuts
    the motors in the air; a plain disarm is refused while airborne.
"""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pymavlink import mavutil
from pymavlink.dialects.v20 import common as mav

# PX4: main mode << 16 | AUTO sub mode << 24 (OFFBOARD 6; AUTO 4: TAKEOFF 2, LOITER 3, LAND 6); ArduCopter: GUIDED 4, LAND 9
HOME_AMSL = 488.0        # m, the fake's home altitude above mean sea level
GUIDED_TIMEOUT_S = 3.0   # ArduCopter GUID_TIMEOUT default
MODES = {"px4": {"rate": 6 << 16, "land": (4 << 16) | (6 << 24), "takeoff": (4 << 16) | (2 << 24),
                 "hold": (4 << 16) | (3 << 24)},
         "ardupilot": {"rate": 4, "land": 9, "takeoff": 4, "hold": 4}}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    time: float
    msg: Any


@dataclass
class FakeAutopilot:
    autopilot: str = "px4"
    port: int = field(default_factory=free_udp_port)
    armed: bool = False
    custom_mode: int = 0
    heartbeats: bool = True
    log: list[Received] = field(default_factory=list)
    vehicle: Any = None          # a fake_vehicle.FakeQuad to fly, or None: protocol only
    offboard: bool = False       # flying the companion's rates (ArduCopter takes off in GUIDED too: the mode alone does not say)
    global_position: bool = True

    def __post_init__(self) -> None:
        self.conn = mavutil.mavlink_connection(f"udpin:127.0.0.1:{self.port}", source_system=1, source_component=1)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._rx, self._beat)]
        for t in self._threads:
            t.start()

    @property
    def url(self) -> str:
        return f"udpout:127.0.0.1:{self.port}"

    def received(self, kind: str) -> list[Received]:
        with self._lock:
            return [r for r in self.log if r.msg.get_type() == kind]

    def commands(self) -> list[Any]:
        return [r.msg for r in self.received("COMMAND_LONG")]

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        self.conn.close()

    def _beat(self) -> None:
        while not self._stop.wait(0.1):
            if self.heartbeats and self.conn.clients:
                base = mav.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | (mav.MAV_MODE_FLAG_SAFETY_ARMED if self.armed else 0)
                kind = mav.MAV_AUTOPILOT_PX4 if self.autopilot == "px4" else mav.MAV_AUTOPILOT_ARDUPILOTMEGA
                self.conn.mav.heartbeat_send(mav.MAV_TYPE_QUADROTOR, kind, base, self.custom_mode, mav.MAV_STATE_ACTIVE)
                if self.global_position:
                    z = float(self.vehicle.state()[0][2]) if self.vehicle is not None else 0.0
                    self.conn.mav.global_position_int_send(0, 0, 0, round((HOME_AMSL + z) * 1000), round(z * 1000),
                                                           0, 0, 0, 65535)
            self._watch_setpoints()
            self._watch_vehicle()

    def _setpoint_times(self, within: float) -> list[float]:
        now = time.monotonic()
        return [r.time for r in self.received("SET_ATTITUDE_TARGET") if now - r.time <= within]

    def _watch_setpoints(self) -> None:
        if self.offboard and self.autopilot == "px4" and not self._setpoint_times(1.0):
            self._set_mode("land")  # PX4: offboard lost -> failsafe
        elif self.offboard and not self._setpoint_times(GUIDED_TIMEOUT_S):
            self.offboard = False   # ArduCopter: guided attitude targets timed out -> hold
            if self.vehicle is not None:
                self.vehicle.set_mode("hold")

    def _watch_vehicle(self) -> None:
        v = self.vehicle
        if v is None:
            return
        if v.mode == "hold" and self.custom_mode == MODES[self.autopilot]["takeoff"]:
            self.custom_mode = MODES[self.autopilot]["hold"]
        if v.mode == "idle" and self.armed and self.custom_mode == MODES[self.autopilot]["land"]:
            self.armed = False   # landed: auto-disarm

    def _set_mode(self, name: str, height: float | None = None) -> None:
        self.custom_mode, self.offboard = MODES[self.autopilot][name], name == "rate"
        if self.vehicle is not None:
            self.vehicle.set_mode({"rate": "rate", "land": "land", "takeoff": "takeoff"}[name], height)

    def _rx(self) -> None:
        while not self._stop.is_set():
            msg = self.conn.recv_match(blocking=True, timeout=0.05)
            if msg is None or msg.get_type() == "BAD_DATA":
                continue
            with self._lock:
                self.log.append(Received(time.monotonic(), msg))
            if msg.get_type() == "COMMAND_LONG":
                self._ack(msg.command, self._handle(msg))
            elif msg.get_type() == "SET_ATTITUDE_TARGET":
                if self.vehicle is not None:
                    # FRD body rates (MAVLink common.xml) -> FLU, written out here rather than taken from the link's code
                    rates = [msg.body_roll_rate, -msg.body_pitch_rate, -msg.body_yaw_rate]
                    self.vehicle.set_rates(rates, msg.thrust * self.vehicle.max_thrust_n)
                guided = self.autopilot == "ardupilot" and self.custom_mode == MODES["ardupilot"]["rate"]
                if guided and self.armed and not self.offboard and (self.vehicle is None or self.vehicle.airborne):
                    self._set_mode("rate")   # ArduCopter flies guided attitude targets as they come

    def _handle(self, cmd: Any) -> int:
        ok, denied = mav.MAV_RESULT_ACCEPTED, mav.MAV_RESULT_DENIED
        if cmd.command == mav.MAV_CMD_COMPONENT_ARM_DISARM:
            airborne = self.vehicle.airborne if self.vehicle is not None else self.offboard
            if cmd.param1 == 1:
                self.armed = True
            elif cmd.param2 == 21196 or not airborne:
                self.armed = False
                if self.vehicle is not None:
                    self.vehicle.set_mode("off")
            else:
                return denied  # a plain disarm in flight is refused, as by the firmware
            return ok
        if cmd.command == mav.MAV_CMD_DO_SET_MODE:
            if self.autopilot == "ardupilot" and cmd.param2 == 4:
                self.custom_mode = 4   # GUIDED: the vehicle keeps doing what it does until a target or take-off comes
                return ok
            if self.autopilot == "px4" and cmd.param2 == 6:
                if len(self._setpoint_times(1.0)) < 2:
                    return denied  # PX4: no offboard without a setpoint stream
                self._set_mode("rate")
                return ok
            return denied
        if cmd.command == mav.MAV_CMD_NAV_LAND:
            self._set_mode("land")
            return ok
        if cmd.command == mav.MAV_CMD_NAV_TAKEOFF:
            if not self.armed or (self.autopilot == "ardupilot" and self.custom_mode != 4):
                return denied   # ArduCopter: take-off only in GUIDED
            self._set_mode("takeoff", cmd.param7 - HOME_AMSL if self.autopilot == "px4" else cmd.param7)
            return ok
        return mav.MAV_RESULT_UNSUPPORTED

    def _ack(self, command: int, result: int) -> None:
        self.conn.mav.command_ack_send(command, result)
