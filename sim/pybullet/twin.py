"""A fleet of differential-drive robots in pybullet, driven by (v, ω) commands like the real ones.

Each control period (the profile's dt) the commands are saturated and mapped to wheel speeds
with `controllers.unicycle` (the same code the JAX simulator uses), set as pybullet velocity
motors on the wheel joints (torque-limited, as the URDF says), and the world is stepped at about
PHYSICS_HZ in substeps. Poses are read back from pybullet: nothing here integrates the unicycle
model, so contact, friction, wheel slip and inertia decide where the robots end up.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pybullet

from marlstack.controllers.unicycle import saturate, uni_to_diff
from marlstack.hardware.urdf import Chassis, write_urdf

PHYSICS_HZ = 240.0  # pybullet's default step rate, for which its contact solver is tuned
GRAVITY = 9.81  # m/s^2
FLOOR_THICKNESS = 0.02  # m


class PybulletFleet:
    """N robots of one ground profile on the profile's arena floor, in a headless (DIRECT) pybullet world.

    starts: (N, 3) [x, y, θ]. The floor extends one robot diameter past the arena's walls, so a
    robot that leaves the arena (a boundary exit the caller counts) stays on the ground.
    """

    def __init__(self, profile: Any, starts: Any, chassis: Chassis = Chassis()):
        self.profile = profile
        starts = np.asarray(starts, dtype=float)
        if starts.ndim != 2 or starts.shape[1] != 3:
            raise ValueError(f"starts must be (N, 3) [x, y, theta], got shape {starts.shape}")
        self.substeps = math.ceil(PHYSICS_HZ * profile.dt)
        # pybullet.connect, not pybullet_utils' BulletClient: that passes options="", which prints to stdout.
        self.client = pybullet.connect(pybullet.DIRECT)
        pybullet.setGravity(0, 0, -GRAVITY, physicsClientId=self.client)
        pybullet.setPhysicsEngineParameter(fixedTimeStep=profile.dt / self.substeps, physicsClientId=self.client)
        self._floor()
        with tempfile.TemporaryDirectory() as tmp:
            urdf = str(write_urdf(profile, Path(tmp) / f"{profile.name}.urdf", chassis))
            self.robots = [pybullet.loadURDF(urdf, self._position(s), self._orientation(s[2]),
                                             flags=pybullet.URDF_USE_INERTIA_FROM_FILE, physicsClientId=self.client)
                           for s in starts]
        joints = [pybullet.getJointInfo(self.robots[0], j, physicsClientId=self.client)
                  for j in range(pybullet.getNumJoints(self.robots[0], physicsClientId=self.client))]
        index = {info[1].decode(): info[0] for info in joints}
        self.wheels = [index["left_wheel_joint"], index["right_wheel_joint"]]
        self.max_torque = joints[self.wheels[0]][10]  # the URDF's effort limit

    def _floor(self) -> None:
        a, margin = self.profile.arena, self.profile.diameter
        half = [(a.x_max - a.x_min) / 2 + margin, (a.y_max - a.y_min) / 2 + margin, FLOOR_THICKNESS / 2]
        shape = pybullet.createCollisionShape(pybullet.GEOM_BOX, halfExtents=half, physicsClientId=self.client)
        centre = [(a.x_min + a.x_max) / 2, (a.y_min + a.y_max) / 2, -FLOOR_THICKNESS / 2]
        self.floor = pybullet.createMultiBody(0, shape, basePosition=centre, physicsClientId=self.client)

    def _position(self, pose: np.ndarray) -> list[float]:
        return [float(pose[0]), float(pose[1]), self.profile.wheel_radius]  # the axle, wheels on the floor

    def _orientation(self, theta: float) -> list[float]:
        return list(pybullet.getQuaternionFromEuler([0.0, 0.0, float(theta)]))

    @property
    def num_robots(self) -> int:
        return len(self.robots)

    def poses(self) -> np.ndarray:
        """(N, 3) [x, y, θ] of every robot's axle midpoint, as pybullet has them now."""
        out = np.empty((self.num_robots, 3))
        for i, body in enumerate(self.robots):
            (x, y, _), q = pybullet.getBasePositionAndOrientation(body, physicsClientId=self.client)
            out[i] = x, y, pybullet.getEulerFromQuaternion(q)[2]
        return out

    def step(self, u: Any) -> np.ndarray:
        """Apply (N, 2) [v m/s, ω rad/s] for one control period (saturated like the robot); returns the new poses."""
        u = np.asarray(u, dtype=float).reshape(self.num_robots, 2)
        p = self.profile
        left, right = uni_to_diff(*saturate(u[:, 0], u[:, 1], p), p.wheel_radius, p.base_length)
        for body, wl, wr in zip(self.robots, left, right):
            pybullet.setJointMotorControlArray(body, self.wheels, pybullet.VELOCITY_CONTROL,
                                               targetVelocities=[float(wl), float(wr)],
                                               forces=[self.max_torque] * 2, physicsClientId=self.client)
        for _ in range(self.substeps):
            pybullet.stepSimulation(physicsClientId=self.client)
        return self.poses()

    def close(self) -> None:
        pybullet.disconnect(physicsClientId=self.client)

    def __enter__(self) -> "PybulletFleet":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
