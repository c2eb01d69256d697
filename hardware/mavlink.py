"""A PX4 / ArduPilot flight controller over MAVLink (pymavlink): body rates + thrust, mocap, arming.

`MavlinkLink(url, limits)` speaks to one autopilot as an onboard computer (component 191):
  * heartbeats at 1 Hz, and watches the autopilot's: none for `link_timeout_s` is a lost link
    (status fault; the autopilot's own failsafe handles its side, e.g. PX4's COM_OF_LOSS_T);
  * streams SET_ATTITUDE_TARGET at `limits.setpoint_rate_hz` (>= 50 Hz) from its own thread: type
    mask "ignore attitude", FRD body rates in rad/s, thrust normalised to [0, 1] of max_thrust_n;
  * enters rate control the way PX4 demands: setpoints stream first (PX4 refuses offboard, and
    leaves it, when they arrive slower than ~2 Hz), then MAV_CMD_DO_SET_MODE (PX4 OFFBOARD,
    ArduPilot GUIDED), then waits for the heartbeat to show the mode;
  * feeds mocap as ATT_POS_MOCAP (quaternion) or VISION_POSITION_ESTIMATE (Euler), NED / FRD;
  * when the stack's setpoints go stale: hover setpoint for `hold_s`, then MAV_CMD_NAV_LAND.
Everything the stack hands in is ENU / FLU (REP-103); `hardware.frames` converts at the wire.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from pymavlink import mavutil
from pymavlink.dialects.v20 import common as mav

from marlstack.hardware.flight import LinkLimits, SetpointGuard
from marlstack.hardware.frames import attitude_enu_flu_to_ned_frd, enu_to_ned, euler_zyx, flu_to_frd

# autopilot -> (DO_SET_MODE custom main mode for rate control, heartbeat custom_mode it shows)
RATE_MODES = {"px4": (6, 6 << 16), "ardupilot": (4, 4)}   # PX4 OFFBOARD (main mode 6), ArduCopter GUIDED (4)
FORCE_DISARM = 21196   # MAV_CMD_COMPONENT_ARM_DISARM param2: disarm even in flight (both autopilots)
COMPANION = (245, mav.MAV_COMP_ID_ONBOARD_COMPUTER)
MOCAP_MESSAGES = ("att_pos_mocap", "vision_position_estimate")


class MavlinkLink:
    """One vehicle; thread-safe; see the module docstring. `url` is pymavlink's (udpin:/udpout:/serial)."""

    def __init__(self, url: str, limits: LinkLimits, autopilot: str = "px4", target_system: int = 1,
                 target_component: int = 1, mocap: str = "att_pos_mocap", link_timeout_s: float = 1.5,
                 heartbeat_rate_hz: float = 1.0):
        if autopilot not in RATE_MODES:
            raise ValueError(f"autopilot must be one of {', '.join(RATE_MODES)}, got {autopilot!r}")
        if mocap not in MOCAP_MESSAGES:
            raise ValueError(f"mocap must be one of {', '.join(MOCAP_MESSAGES)}, got {mocap!r}")
        self.url, self.limits, self.autopilot, self.mocap = url, limits, autopilot, mocap
        self.target = (target_system, target_component)
        self.link_timeout_s, self.heartbeat_period = link_timeout_s, 1.0 / heartbeat_rate_hz
        self._conn: Any = None
        self._lock = threading.Lock()           # one writer on the wire at a time
        self._acks = threading.Condition()
        self._ack: dict[int, int] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._t0 = time.monotonic()
        self._guard = SetpointGuard(limits)
        self._fault: str | None = None   # a failed landing; the guard holds the stale-setpoint fault
        self._last_heartbeat: float | None = None
        self._base_mode = 0
        self._custom_mode = 0
        self._home_amsl: float | None = None    # home altitude above mean sea level, from GLOBAL_POSITION_INT
        self.sent = {"setpoints": 0, "heartbeats": 0, "poses": 0, "commands": 0}

    # --- connection ------------------------------------------------------------------------
    def connect(self, timeout_s: float = 5.0) -> None:
        self._conn = mavutil.mavlink_connection(self.url, source_system=COMPANION[0], source_component=COMPANION[1])
        for target, name in ((self._rx_loop, "mavlink-rx"), (self._tx_loop, "mavlink-tx")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        deadline = time.monotonic() + timeout_s
        while self._last_heartbeat is None:
            if time.monotonic() > deadline:
                self.close()
                raise ConnectionError(f"{self.url}: no autopilot heartbeat from system {self.target[0]} "
                                      f"within {timeout_s:g} s")
            time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        if self._conn is not None:
            self._conn.close()

    # --- vehicle commands ------------------------------------------------------------------
    def arm(self) -> None:
        self._command(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1)

    def disarm(self) -> None:
        self._command(mav.MAV_CMD_COMPONENT_ARM_DISARM, 0)

    def kill(self) -> None:
        self._guard.stop()
        self._command(mav.MAV_CMD_COMPONENT_ARM_DISARM, 0, FORCE_DISARM)

    def takeoff(self, height_m: float) -> None:
        """MAV_CMD_NAV_TAKEOFF to `height_m` above home. PX4 reads param 7 as altitude above mean sea level:
        home's (GLOBAL_POSITION_INT alt - relative_alt) is added, and without it the take-off is refused
        (indoors, PX4 has a global position only once its EKF origin is set). ArduCopter takes off only
        in GUIDED, set here first, and reads param 7 as relative to home."""
        if self.autopilot == "px4":
            if self._home_amsl is None:
                raise RuntimeError(f"{self.url}: PX4 takes MAV_CMD_NAV_TAKEOFF's altitude above mean sea level and sent no "
                                   f"GLOBAL_POSITION_INT to add the home altitude to: set its EKF origin "
                                   f"(SET_GPS_GLOBAL_ORIGIN) first")
            altitude = self._home_amsl + float(height_m)
        else:
            self._command(mav.MAV_CMD_DO_SET_MODE, mav.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, RATE_MODES["ardupilot"][0], 0)
            altitude = float(height_m)
        self._command(mav.MAV_CMD_NAV_TAKEOFF, 0, 0, 0, float("nan"), float("nan"), float("nan"), altitude)

    def land(self) -> None:
        self._guard.stop()
        self._command(mav.MAV_CMD_NAV_LAND, 0, 0, 0, float("nan"), float("nan"), float("nan"), 0)

    def start_rate_control(self, warmup_s: float = 0.5, timeout_s: float = 3.0) -> None:
        """Stream setpoints (the stack's, or hover) for `warmup_s`, then switch mode and wait for it."""
        self._fault = None
        self._guard.start(time.monotonic())
        time.sleep(warmup_s)
        main_mode, shown = RATE_MODES[self.autopilot]
        self._command(mav.MAV_CMD_DO_SET_MODE, mav.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, main_mode, 0)
        deadline = time.monotonic() + timeout_s
        while self._custom_mode != shown:
            if time.monotonic() > deadline:
                raise ConnectionError(f"{self.url}: mode change acknowledged but the heartbeat still shows "
                                      f"custom mode {self._custom_mode} after {timeout_s:g} s")
            time.sleep(0.01)

    # --- streams ---------------------------------------------------------------------------
    def set_rates(self, body_rates_flu: Any, thrust_n: float) -> None:
        self._guard.update(body_rates_flu, thrust_n, time.monotonic())

    def send_pose(self, position_enu: Any, attitude_enu_flu: Any, stamp_s: float) -> None:
        pos = enu_to_ned(position_enu)
        q = attitude_enu_flu_to_ned_frd(attitude_enu_flu)
        usec = int(stamp_s * 1e6)
        with self._lock:
            if self.mocap == "att_pos_mocap":
                self._conn.mav.att_pos_mocap_send(usec, q.tolist(), *pos.tolist())
            else:
                self._conn.mav.vision_position_estimate_send(usec, *pos.tolist(), *euler_zyx(q))
            self.sent["poses"] += 1

    def status(self) -> dict[str, Any]:
        age = None if self._last_heartbeat is None else time.monotonic() - self._last_heartbeat
        lost = age is None or age > self.link_timeout_s
        return {"connected": not lost, "heartbeat_age_s": age, "armed": bool(self._base_mode & mav.MAV_MODE_FLAG_SAFETY_ARMED),
                "custom_mode": self._custom_mode, "rate_control": self._guard.active,
                "fault": "autopilot heartbeat lost" if lost and age is not None else self._fault or self._guard.fault,
                **self.sent}

    # --- internals ---------------------------------------------------------------------------
    def _command(self, command: int, *params: float, timeout_s: float = 1.0, attempts: int = 3) -> None:
        """COMMAND_LONG until acknowledged; raises RuntimeError naming the autopilot's refusal."""
        args = [float(p) for p in params] + [0.0] * (7 - len(params))
        name = mav.enums["MAV_CMD"][command].name
        for attempt in range(attempts):
            with self._acks:
                self._ack.pop(command, None)
            with self._lock:
                self._conn.mav.command_long_send(*self.target, command, attempt, *args)
                self.sent["commands"] += 1
            with self._acks:
                if self._acks.wait_for(lambda: command in self._ack, timeout_s):
                    result = self._ack.pop(command)
                    if result == mav.MAV_RESULT_ACCEPTED:
                        return
                    raise RuntimeError(f"{self.url}: the autopilot refused {name}: {mav.enums['MAV_RESULT'][result].name}")
        raise ConnectionError(f"{self.url}: no acknowledgement of {name} after {attempts} attempts")

    def _rx_loop(self) -> None:
        while not self._stop.is_set():
            msg = self._conn.recv_match(blocking=True, timeout=0.05)
            if msg is None or msg.get_srcSystem() != self.target[0]:
                continue
            kind = msg.get_type()
            if kind == "HEARTBEAT" and msg.autopilot != mav.MAV_AUTOPILOT_INVALID:
                self._last_heartbeat = time.monotonic()
                self._base_mode, self._custom_mode = msg.base_mode, msg.custom_mode
            elif kind == "GLOBAL_POSITION_INT":
                self._home_amsl = (msg.alt - msg.relative_alt) / 1000.0
            elif kind == "COMMAND_ACK":
                with self._acks:
                    self._ack[msg.command] = msg.result
                    self._acks.notify_all()

    def _tx_loop(self) -> None:
        period = 1.0 / self.limits.setpoint_rate_hz
        tick = next_heartbeat = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_heartbeat:
                with self._lock:
                    self._conn.mav.heartbeat_send(mav.MAV_TYPE_ONBOARD_CONTROLLER, mav.MAV_AUTOPILOT_INVALID, 0, 0,
                                                  mav.MAV_STATE_ACTIVE)
                    self.sent["heartbeats"] += 1
                next_heartbeat = now + self.heartbeat_period
            if self._guard.active:
                self._send_setpoint(now)
            tick += period
            self._stop.wait(max(0.0, tick - time.monotonic()))
            if time.monotonic() - tick > 10 * period:  # fell far behind (suspended): do not burst to catch up
                tick = time.monotonic()

    def _send_setpoint(self, now: float) -> None:
        setpoint = self._guard.next(now)
        if setpoint is None:  # held long enough: land (acknowledged off this thread)
            threading.Thread(target=self._land_quietly, daemon=True).start()
            return
        rates, thrust = flu_to_frd(setpoint[0]), setpoint[1] / self.limits.max_thrust_n
        with self._lock:
            self._conn.mav.set_attitude_target_send(
                int((now - self._t0) * 1000) & 0xFFFFFFFF, *self.target, mav.ATTITUDE_TARGET_TYPEMASK_ATTITUDE_IGNORE,
                [1.0, 0.0, 0.0, 0.0], *rates.tolist(), thrust)
            self.sent["setpoints"] += 1

    def _land_quietly(self) -> None:
        try:
            self.land()
        except (RuntimeError, ConnectionError) as exc:
            self._fault = f"{self._guard.fault}; landing failed: {exc}"
