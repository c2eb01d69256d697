"""Quadrotors as their own flight controllers fly them, behind the fake autopilot and the fake Crazyflie.

Why: a link's packets are only proven right when vehicles flown by them go where the stack wants.
This is the vehicle side of that loop, in numpy, every vehicle of a `FakeFleet` in one batch: rigid
bodies (mass, inertia, thrust along body z), four rotors each with first-order lag, and the
firmware's loops from `controllers.quadrotor`: its rate loop (`rate_step`: INDI or PID as the
profile says) fed either by a companion's body-rate + thrust setpoints or by the firmware's own
attitude and position loops (`thrust_and_axis`, `attitude_rates`) for take-off, hold and landing.
A ground at z = 0 holds them up.

Modes (what a vehicle's firmware is doing): "idle" (motors off, on the ground), "takeoff" (climb
over the take-off point, then "hold"), "hold" (hover in place), "rate" (the companion's setpoints),
"land" (descend at LAND_SPEED; "idle" on touchdown), "off" (motors cut wherever it is: kill).
"""
from __future__ import annotations

import threading
import time

import numpy as np

from marlstack.controllers import quadrotor
from marlstack.hardware import load_profile

LAND_SPEED = 1.0      # m/s
CLIMB_SPEED = 1.0     # m/s, take-off
KP, KD = 4.0, 3.0     # the firmware's position loop (1/s², 1/s)
MAX_ACC = 4.0         # m/s², its acceleration limit
PHYSICS_HZ = 200.0    # the fake's integration and rate-loop rate (the profile's 400 Hz costs twice the CPU)


def _exp_so3(w: np.ndarray) -> np.ndarray:
    """Rotation matrices (N, 3, 3) of rotation vectors (N, 3)."""
    angle = np.linalg.norm(w, axis=-1)[:, None, None]
    k = w / np.maximum(angle[:, :, 0], 1e-12)
    zero = np.zeros(len(w))
    kx = np.stack([np.stack([zero, -k[:, 2], k[:, 1]], -1), np.stack([k[:, 2], zero, -k[:, 0]], -1),
                   np.stack([-k[:, 1], k[:, 0], zero], -1)], 1)
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


class FakeFleet:
    """N vehicles of one profile; thread-safe; `fleet[i]` is vehicle i; advance with `advance_to(monotonic)`."""

    def __init__(self, profile: str, positions) -> None:
        self.profile = load_profile(profile)
        q = self.profile.quadrotor
        self.mass, self.inertia = q.mass, np.asarray(q.inertia, float)
        self.max_thrust_n = 4 * q.max_rotor_thrust
        self.wrench = quadrotor.allocation(q)   # rotor thrusts -> [collective, roll, pitch, yaw torque]
        self.dt = 1.0 / PHYSICS_HZ
        self.pos = np.asarray(positions, float).copy()
        n = len(self.pos)
        self.vel, self.omega, self.thrust = np.zeros((n, 3)), np.zeros((n, 3)), np.zeros((n, 4))
        self.rot = np.repeat(np.eye(3)[None], n, 0)
        self.ctrl = quadrotor.init_state(self.vel, self.omega, self.thrust)
        self.mode, self.target = ["idle"] * n, self.pos.copy()
        self.rates, self.collective = np.zeros((n, 3)), np.zeros(n)
        self.max_tilt_deg = np.zeros(n)
        self.modes: list[list[tuple[float, str]]] = [[(time.monotonic(), "idle")] for _ in range(n)]
        self.lock = threading.Lock()
        self._clock: float | None = None
        self.vehicles = [FakeQuad(self, i) for i in range(n)]

    def __getitem__(self, i: int) -> "FakeQuad":
        return self.vehicles[i]

    def _set(self, i: int, mode: str) -> None:
        if mode != self.mode[i]:
            self.modes[i].append((time.monotonic(), mode))
        self.mode[i] = mode

    def advance_to(self, now: float) -> None:
        with self.lock:
            if self._clock is None:
                self._clock = now
            steps = min(int((now - self._clock) / self.dt), 100)   # at most 0.5 s at once after a stall
            self._clock = now if steps == 100 else self._clock + steps * self.dt
            for _ in range(steps):
                self._substep()

    def _substep(self) -> None:
        p, dt, mode = self.profile, self.dt, np.asarray(self.mode)
        # the firmware's position loop, for take-off, hold and land
        err = self.target - self.pos
        err[:, 2] = np.clip(err[:, 2], -CLIMB_SPEED * KD / KP, CLIMB_SPEED * KD / KP)
        acc = KP * err - KD * self.vel
        landing = mode == "land"
        acc[landing, 2] = KD * (-LAND_SPEED - self.vel[landing, 2])
        collective, z_des = quadrotor.thrust_and_axis(np.clip(acc, -MAX_ACC, MAX_ACC), np.zeros_like(acc), p)
        rate_ref = quadrotor.attitude_rates(self.rot, z_des, np.zeros(len(mode)), np.zeros_like(acc), p)
        companion = mode == "rate"
        rate_ref[companion], collective[companion] = self.rates[companion], self.collective[companion]
        cmd, self.ctrl = quadrotor.rate_step(self.ctrl, self.omega, self.thrust, rate_ref, collective, p, dt)
        cmd = np.clip(cmd, p.quadrotor.min_rotor_thrust, p.quadrotor.max_rotor_thrust)
        cmd[(mode == "idle") | (mode == "off")] = 0.0
        w = self.thrust @ self.wrench.T
        lin = self.rot[:, :, 2] * (w[:, :1] / self.mass) - [0.0, 0.0, p.gravity]
        alpha = (w[:, 1:] - np.cross(self.omega, self.inertia * self.omega)) / self.inertia
        self.vel = self.vel + dt * lin
        self.pos = self.pos + dt * self.vel
        self.omega = self.omega + dt * alpha
        u, _, vt = np.linalg.svd(self.rot @ _exp_so3(self.omega * dt))
        self.rot = u @ vt
        self.thrust = self.thrust + (1 - np.exp(-dt / p.quadrotor.motor_time_constant)) * (cmd - self.thrust)
        for i in np.flatnonzero((self.pos[:, 2] <= 0.0) & (self.vel[:, 2] <= 0.0)):  # the ground stops it, level
            yaw = np.arctan2(self.rot[i, 1, 0], self.rot[i, 0, 0])
            self.pos[i, 2], self.vel[i], self.omega[i] = 0.0, 0.0, 0.0
            self.rot[i] = [[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]]
            if self.mode[i] == "land":
                self._set(i, "idle")
        for i in np.flatnonzero((mode == "takeoff") & (np.abs(self.pos[:, 2] - self.target[:, 2]) < 0.05)):
            self._set(i, "hold")
        tilt = np.degrees(np.arccos(np.clip(self.rot[:, 2, 2], -1, 1)))
        self.max_tilt_deg = np.where(self.pos[:, 2] > 0.02, np.maximum(self.max_tilt_deg, tilt), self.max_tilt_deg)


class FakeQuad:
    """Vehicle i of a fleet, as one firmware sees it."""

    def __init__(self, fleet: FakeFleet, i: int) -> None:
        self.fleet, self.i = fleet, i
        self.max_thrust_n = fleet.max_thrust_n

    @property
    def mode(self) -> str:
        return self.fleet.mode[self.i]

    @property
    def modes(self) -> list[tuple[float, str]]:
        return self.fleet.modes[self.i]

    @property
    def max_tilt_deg(self) -> float:
        return float(self.fleet.max_tilt_deg[self.i])

    @property
    def airborne(self) -> bool:
        return bool(self.fleet.pos[self.i, 2] > 0.02)

    def set_mode(self, mode: str, height: float | None = None) -> None:
        f, i = self.fleet, self.i
        with f.lock:
            if mode in ("takeoff", "hold"):
                f.target[i] = [f.pos[i, 0], f.pos[i, 1], f.pos[i, 2] if height is None else height]
            elif mode == "land":
                f.target[i] = f.pos[i]
            f._set(i, mode)

    def set_rates(self, rates_flu, thrust_n: float) -> None:
        with self.fleet.lock:
            self.fleet.rates[self.i], self.fleet.collective[self.i] = rates_flu, thrust_n

    def state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(position, attitude w x y z, world velocity, body rates)."""
        from marlstack.hardware.frames import matrix_to_quat
        f, i = self.fleet, self.i
        with f.lock:
            return f.pos[i].copy(), matrix_to_quat(f.rot[i]), f.vel[i].copy(), f.omega[i].copy()


def fly(fleet: FakeFleet, stop: threading.Event, period_s: float = 0.005) -> threading.Thread:
    """A thread that keeps the fleet's physics up with the wall clock until `stop` is set."""
    def loop() -> None:
        while not stop.wait(period_s):
            fleet.advance_to(time.monotonic())
    thread = threading.Thread(target=loop, name="fake-vehicles", daemon=True)
    thread.start()
    return thread
