"""A Crazyflie over its radio (cflib): body-rate setpoints, external pose, arming, take-off, landing.

`CrazyflieLink(uri, limits)` is the Crazyflie's `FlightLink`:
  * rate setpoints stream at `limits.setpoint_rate_hz` from its own thread as the generic commander's
    manual setpoint with the rate flag (type 11, the packet cflib's `send_setpoint_manual(..., rate=True)`
    sends): no flight-mode parameters to set first. Built here with cflib's packet class because
    `send_setpoint_manual` takes thrust as a percentage it maps to 10001..60000, while the firmware
    hands the field to the motors as a fraction of 65535: 0 % would be 15 % power. Units at the wire:
    deg/s, thrust 65535 * thrust_n / max_thrust_n (linear in thrust to first order — calibrate).
    Signs: FLU roll rate p and yaw rate r go as they are; the firmware's rate loop compares the
    packet's pitch with -gyro.y, so the wire carries -q (as cflib's own call would for pitch = q);
  * the Crazyflie's world is ENU with an FLU body already: the mocap pose goes to cflib's
    `extpos.send_extpose` (x, y, z, qx, qy, qz, qw) unconverted;
  * arm / disarm through the supervisor, take-off / land through the high-level commander (after
    `send_notify_setpoint_stop`, which hands priority back from the low-level setpoints), kill = stop
    setpoint + the supervisor's emergency stop;
  * the shared fault rule (`hardware.flight.SetpointGuard`): stale stack setpoints -> hover, then land.
"""
from __future__ import annotations

import math
import struct
import threading
import time
from typing import Any

import numpy as np

from marlstack.hardware.flight import LinkLimits, SetpointGuard

ARM_TIMEOUT_S = 2.0  # the supervisor's confirmation of an arming request
LAND_SECONDS = 2.0   # high-level commander: duration of the descent to the ground
MANUAL = 11          # generic commander packet type: roll, pitch (deg or deg/s), yaw rate deg/s, thrust 0..65535, rate flag


class CrazyflieLink:
    """One Crazyflie. `crazyflie`: an existing `cflib.crazyflie.Crazyflie` (default: a new one)."""

    def __init__(self, uri: str, limits: LinkLimits, crazyflie: Any = None):
        self.uri, self.limits = uri, limits
        self._cf = crazyflie
        self._guard = SetpointGuard(limits)
        self._connected = threading.Event()
        self._failed: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._land_pending = False
        self.sent = {"setpoints": 0, "poses": 0}

    def connect(self, timeout_s: float = 5.0) -> None:
        """Open the radio link; wait for the first packet back and the CRTP protocol version (which picks
        the supervisor's or the legacy emergency stop). Parameter / log TOCs are not needed."""
        import cflib.crtp
        from cflib.crazyflie import Crazyflie
        if not cflib.crtp.CLASSES:
            cflib.crtp.init_drivers()
        if self._cf is None:
            self._cf = Crazyflie(rw_cache=None)
        self._cf.link_established.add_callback(lambda uri: self._connected.set())
        self._cf.connection_failed.add_callback(lambda uri, msg: self._fail(msg))
        self._cf.open_link(self.uri)
        if not self._connected.wait(timeout_s) or self._failed:
            self.close()
            raise ConnectionError(f"{self.uri}: {self._failed or f'no answer from the Crazyflie within {timeout_s:g} s'}")
        deadline = time.monotonic() + min(timeout_s, 1.0)
        while self._cf.platform.get_protocol_version() < 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        self._thread = threading.Thread(target=self._stream, name="crazyflie-tx", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._cf is not None:
            self._cf.close_link()

    def arm(self, timeout_s: float = ARM_TIMEOUT_S) -> None:
        self._request_arming(True, timeout_s)

    def disarm(self, timeout_s: float = ARM_TIMEOUT_S) -> None:
        self._request_arming(False, timeout_s)

    def _request_arming(self, armed: bool, timeout_s: float) -> None:
        """The arming request is fire-and-forget on the radio: confirm it from the supervisor's state bitfield
        (`is_armed`, CRTP protocol >= 12), re-sending the request each poll, so a lost packet is not a
        silent 'armed'. Legacy firmware has no bitfield: the request is sent and not confirmed."""
        sup = self._cf.supervisor
        if self._cf.platform.get_protocol_version() < 12:
            sup.send_arming_request(armed)
            return
        deadline = time.monotonic() + timeout_s
        while True:
            sup.send_arming_request(armed)
            if sup.is_armed == armed:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.uri}: the Crazyflie did not confirm {'arming' if armed else 'disarming'} "
                                   f"within {timeout_s:g} s (supervisor bitfield 0x{sup.read_bitfield():04X}: "
                                   f"{', '.join(sup.read_state_list()) or 'no state'}); check its battery, "
                                   "that it is level and not locked, then retry")
            time.sleep(0.05)

    def takeoff(self, height_m: float) -> None:
        """High-level commander take-off to `height_m` (absolute: the mocap world's z) at about 0.3 m/s."""
        self._cf.high_level_commander.takeoff(float(height_m), max(1.0, height_m / 0.3))

    def start_rate_control(self) -> None:
        self._guard.start(time.monotonic())

    def set_rates(self, body_rates_flu: Any, thrust_n: float) -> None:
        self._guard.update(body_rates_flu, thrust_n, time.monotonic())

    def send_pose(self, position_enu: Any, attitude_enu_flu: Any, stamp_s: float) -> None:
        x, y, z = (float(v) for v in np.asarray(position_enu, float).reshape(3))
        w, qx, qy, qz = (float(v) for v in np.asarray(attitude_enu_flu, float).reshape(4))
        with self._lock:
            self._cf.extpos.send_extpose(x, y, z, qx, qy, qz, w)
            self.sent["poses"] += 1

    def land(self) -> None:
        self._guard.stop()
        with self._lock:
            self._cf.commander.send_notify_setpoint_stop()
            self._cf.high_level_commander.land(0.0, LAND_SECONDS)

    def kill(self) -> None:
        self._guard.stop()
        with self._lock:
            self._cf.commander.send_stop_setpoint()
            self._cf.supervisor.send_emergency_stop()

    def status(self) -> dict[str, Any]:
        return {"connected": self._connected.is_set() and not self._failed, "rate_control": self._guard.active,
                "fault": self._failed or self._guard.fault, **self.sent}

    def _fail(self, message: str) -> None:
        self._failed = message
        self._connected.set()

    def _stream(self) -> None:
        period = 1.0 / self.limits.setpoint_rate_hz
        tick = time.monotonic()
        while not self._stop.is_set():
            if self._guard.active:
                setpoint = self._guard.next(time.monotonic())
                if setpoint is None:
                    self.land()
                else:
                    self._send(*setpoint)
            tick += period
            self._stop.wait(max(0.0, tick - time.monotonic()))
            if time.monotonic() - tick > 10 * period:
                tick = time.monotonic()

    def _send(self, rates_flu: np.ndarray, thrust_n: float) -> None:
        from cflib.crtp.crtpstack import CRTPPacket, CRTPPort
        p, q, r = (math.degrees(float(v)) for v in rates_flu)
        pk = CRTPPacket()
        pk.port, pk.channel = CRTPPort.COMMANDER_GENERIC, 0
        pk.data = struct.pack("<BfffHB", MANUAL, p, -q, r, round(65535 * float(np.clip(thrust_n / self.limits.max_thrust_n, 0, 1))), 1)
        with self._lock:
            self._cf.send_packet(pk)
            self.sent["setpoints"] += 1
