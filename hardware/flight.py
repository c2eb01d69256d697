"""The interface every flight-controller link offers (MAVLink autopilots, the Crazyflie radio).

The MAV chain's output is a body-rate + collective-thrust setpoint (ENU world, FLU body, SI units);
a link turns it into its vehicle's protocol, streams it at its own fixed rate, feeds the vehicle the
motion-capture pose, and owns the vehicle-level commands. One interface, so the MAV launch
configuration and the tests treat every vehicle alike.

Fault rule shared by every link (DESIGN contract 9, MAV: hold, then land): when the stack's
setpoints stop arriving for `setpoint_timeout_s`, the link sends a level hover setpoint (zero body
rates, hover thrust); if none arrives within `hold_s` it commands a landing; the fault is in `status()`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np


@dataclasses.dataclass(frozen=True)
class LinkLimits:
    """What a link needs to know about its vehicle (from a MAV profile or a lab's own numbers)."""
    max_thrust_n: float          # collective thrust at full command (all rotors at their maximum)
    hover_thrust_n: float        # collective thrust that holds the vehicle level (mass * g)
    max_body_rate: float         # |p|, |q|, |r| sent are clipped to this (rad/s)
    setpoint_rate_hz: float = 100.0   # rate the link streams setpoints at (PX4 leaves offboard below ~2 Hz)
    setpoint_timeout_s: float = 0.1   # the stack's setpoint is stale after this long
    hold_s: float = 1.0               # hover this long after the stack goes quiet, then land

    def __post_init__(self) -> None:
        if not 0 < self.hover_thrust_n < self.max_thrust_n:
            raise ValueError(f"need 0 < hover_thrust_n < max_thrust_n, got {self.hover_thrust_n} and {self.max_thrust_n}")
        if self.setpoint_rate_hz < 50:
            raise ValueError(f"setpoint_rate_hz must be at least 50 Hz, got {self.setpoint_rate_hz}")

    @classmethod
    def from_mav_profile(cls, profile: Any, **overrides: Any) -> "LinkLimits":
        """One MAV of a `mav_team` profile: thrust from its rotors, hover from its own mass (no load)."""
        quad = profile.quadrotor
        return cls(max_thrust_n=4 * quad.max_rotor_thrust, hover_thrust_n=quad.mass * 9.81,
                   max_body_rate=profile.control.max_rate_reference, **overrides)


class FlightLink(Protocol):
    """Arm / take off / fly rates / land / kill, and the mocap feed, for one vehicle."""

    def connect(self, timeout_s: float = 5.0) -> None:
        """Open the link and wait for the vehicle; raises ConnectionError naming what was missing."""

    def arm(self) -> None: ...

    def disarm(self) -> None: ...

    def takeoff(self, height_m: float) -> None:
        """Climb to `height_m` above the take-off point with the vehicle's own controller."""

    def start_rate_control(self) -> None:
        """Hand the vehicle to the stack's body-rate setpoints (PX4: offboard; ArduPilot: guided)."""

    def set_rates(self, body_rates_flu: Any, thrust_n: float) -> None:
        """The stack's newest setpoint: FLU body rates (rad/s) and collective thrust (N)."""

    def send_pose(self, position_enu: Any, attitude_enu_flu: Any, stamp_s: float) -> None:
        """Motion-capture pose of the vehicle (ENU, FLU body, quaternion w x y z) measured at `stamp_s`."""

    def land(self) -> None: ...

    def kill(self) -> None:
        """Stop the motors now, in the air or not."""

    def status(self) -> dict[str, Any]:
        """connected, armed, mode, fault (None or why), setpoints sent, link age..."""

    def close(self) -> None: ...


class SetpointGuard:
    """The stack's newest setpoint and the shared fault rule (hold, then land), for a link's stream thread.

    `update` stores a setpoint (clipped to the limits; non-finite ones are dropped, so the previous
    one ages into the hold). Each tick the stream asks `next(now)`: the stack's setpoint while fresh,
    the hover setpoint once it is stale (the stack's again if a fresh one comes within `hold_s`),
    then, after `hold_s` of hovering, None exactly once: land now.
    """

    def __init__(self, limits: LinkLimits):
        self.limits = limits
        self._setpoint: tuple[Any, float, float] | None = None   # (FLU rates rad/s, thrust N, received at)
        self._hold_since: float | None = None
        self.fault: str | None = None
        self.active = False

    def update(self, body_rates_flu: Any, thrust_n: float, now: float) -> None:
        rates = np.asarray(body_rates_flu, float).reshape(3)
        if not (np.all(np.isfinite(rates)) and np.isfinite(thrust_n)):
            return
        lim = self.limits
        self._setpoint = (np.clip(rates, -lim.max_body_rate, lim.max_body_rate),
                          float(np.clip(thrust_n, 0.0, lim.max_thrust_n)), now)

    def start(self, now: float) -> None:
        """Begin streaming: from the stack's setpoint if one came, else from hover."""
        if self._setpoint is None:
            self.update((0.0, 0.0, 0.0), self.limits.hover_thrust_n, now)
        self._hold_since, self.fault, self.active = None, None, True

    def stop(self) -> None:
        self.active = False

    def next(self, now: float) -> tuple[Any, float] | None:
        rates, thrust, received = self._setpoint
        stale = now - received > self.limits.setpoint_timeout_s
        if self._hold_since is None and stale:
            self._hold_since = now
            self.fault = f"stack setpoints stale for {now - received:.2f} s: hold, then land"
        elif self._hold_since is not None and not stale:   # the stack is back within the hold: fly on
            self._hold_since, self.fault = None, None
        if self._hold_since is None:
            return rates, thrust
        if now - self._hold_since >= self.limits.hold_s:
            self.active = False
            return None
        return np.zeros(3), self.limits.hover_thrust_n
