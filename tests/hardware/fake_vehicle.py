"""A quadrotor as its own flight controller flies it, behind the fake autopilot and the fake Crazyflie.

Why: a link's packets are only proven right when a vehicle flown by them goes where the stack wants.
This is the vehicle side of that loop, in numpy: a rigid body (mass, inertia, thrust along body z),
four rotors with first-order lag, and the firmware's loops taken from `controllers.quadrotor` (the
inner rate loop for a companion's body-rate + thrust setpoints; the whole cascade under a position
loop for the firmware's own take-off, hold and landing). A ground at z = 0 holds it up.

Modes (what the firmware is doing): "idle" (motors off, on the ground), "takeoff" (climb over the
take-off point, then "hold"), "hold" (hover in place), "rate" (the companion's setpoints), "land"
(descend at LAND_SPEED; "idle" on touchdown), "off" (motors cut wherever it is: kill).
"""
from __future__ import annotations

import threading
import time

import numpy as np

from controllers import quadrotor
from hardware import load_profile

LAND_SPEED = 1.0      # m/s
CLIMB_SPEED = 1.0     # m/s, take-off
KP, KD = 4.0, 3.0     # the firmware's position loop (1/s², 1/s)
MAX_ACC = 4.0         # m/s², its acceleration limit


def _exp_so3(w: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(w))
    if angle < 1e-12:
        return np.eye(3)
    k = w / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


class FakeQuad:
    """One vehicle; thread-safe; advance it with `advance_to(monotonic time)`."""

    def __init__(self, profile: str = "mav_corl25", position=(0.0, 0.0, 0.0)):
        self.profile = load_profile(profile)
        q = self.profile.quadrotor
        self.mass, self.inertia = q.mass, np.asarray(q.inertia, float)
        self.max_thrust_n = 4 * q.max_rotor_thrust
        self.rotor_limits = (q.min_rotor_thrust, q.max_rotor_thrust)
        self.wrench = quadrotor.allocation(q)   # rotor thrusts -> [collective, roll, pitch, yaw torque]
        self.dt = 1.0 / self.profile.control.physics_rate_hz
        self.pos, self.vel = np.asarray(position, float).copy(), np.zeros(3)
        self.rot, self.omega, self.thrust = np.eye(3), np.zeros(3), np.zeros(4)
        self.ctrl = quadrotor.init_state(self.vel, self.omega, self.thrust)
        self.mode, self.target = "idle", self.pos.copy()
        self.rates, self.collective = np.zeros(3), 0.0
        self.max_tilt_deg = 0.0
        self.modes: list[tuple[float, str]] = [(time.monotonic(), "idle")]
        self._lock = threading.Lock()
        self._clock: float | None = None

    # --- what the firmware is told -------------------------------------------------------------------
    def set_mode(self, mode: str, height: float | None = None) -> None:
        with self._lock:
            if mode in ("takeoff", "hold"):
                self.target = np.array([self.pos[0], self.pos[1], self.pos[2] if height is None else height])
            if mode != self.mode:
                self.modes.append((time.monotonic(), mode))
            self.mode = mode

    def set_rates(self, rates_flu, thrust_n: float) -> None:
        with self._lock:
            self.rates, self.collective = np.asarray(rates_flu, float), float(thrust_n)

    @property
    def airborne(self) -> bool:
        return self.pos[2] > 0.02

    def state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(position, attitude w x y z, world velocity, body rates)."""
        from hardware.frames import matrix_to_quat
        with self._lock:
            return self.pos.copy(), matrix_to_quat(self.rot), self.vel.copy(), self.omega.copy()

    # --- time ------------------------------------------------------------------------------------------
    def advance_to(self, now: float) -> None:
        with self._lock:
            if self._clock is None:
                self._clock = now
            steps = min(int((now - self._clock) / self.dt), 200)   # at most 0.5 s at once after a stall
            self._clock = now if steps == 200 else self._clock + steps * self.dt
            for _ in range(steps):
                self._substep()

    def _substep(self) -> None:
        p, dt = self.profile, self.dt
        if self.mode in ("idle", "off"):
            cmd = np.zeros(4)
        elif self.mode == "rate":
            cmd, self.ctrl = quadrotor.rate_step(self.ctrl, self.omega, self.thrust, self.rates, self.collective, p, dt)
        else:
            if self.mode == "land":
                acc = KP * (self.target - self.pos) * [1, 1, 0] + KD * ([0, 0, -LAND_SPEED] - self.vel)
            else:
                err = self.target - self.pos
                err[2] = np.clip(err[2], -CLIMB_SPEED / KP * KD, CLIMB_SPEED / KP * KD)
                acc = KP * err - KD * self.vel
            acc = np.clip(acc, -MAX_ACC, MAX_ACC)
            cmd, self.ctrl = quadrotor.step(self.ctrl, self.vel, self.rot, self.omega, self.thrust, acc, np.zeros(3),
                                            0.0, p, dt)
        cmd = np.clip(cmd, *self.rotor_limits)
        w = self.wrench @ self.thrust
        acc = self.rot[:, 2] * w[0] / self.mass - [0.0, 0.0, p.gravity]
        alpha = (w[1:] - np.cross(self.omega, self.inertia * self.omega)) / self.inertia
        self.vel = self.vel + dt * acc
        self.pos = self.pos + dt * self.vel
        self.omega = self.omega + dt * alpha
        self.rot = self.rot @ _exp_so3(self.omega * dt)
        u, _, vt = np.linalg.svd(self.rot)
        self.rot = u @ vt
        self.thrust = self.thrust + (1 - np.exp(-dt / p.quadrotor.motor_time_constant)) * (cmd - self.thrust)
        if self.pos[2] <= 0.0 and self.vel[2] <= 0.0:   # the ground: it stops what reaches it, level
            yaw = np.arctan2(self.rot[1, 0], self.rot[0, 0])
            self.pos[2], self.vel[:], self.omega[:] = 0.0, 0.0, 0.0
            self.rot = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
            if self.mode == "land":
                self.mode = "idle"
                self.modes.append((time.monotonic(), "idle"))
        if self.mode == "takeoff" and abs(self.pos[2] - self.target[2]) < 0.05:
            self.mode = "hold"
            self.modes.append((time.monotonic(), "hold"))
        if self.airborne:
            self.max_tilt_deg = max(self.max_tilt_deg, float(np.degrees(np.arccos(np.clip(self.rot[2, 2], -1, 1)))))


def fly(vehicles: list[FakeQuad], stop: threading.Event, period_s: float = 0.002) -> threading.Thread:
    """A thread that keeps every vehicle's physics up with the wall clock until `stop` is set."""
    def loop() -> None:
        while not stop.wait(period_s):
            now = time.monotonic()
            for v in vehicles:
                v.advance_to(now)
    thread = threading.Thread(target=loop, name="fake-vehicles", daemon=True)
    thread.start()
    return thread
