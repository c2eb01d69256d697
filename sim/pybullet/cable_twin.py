"""The cable team in pybullet: quadrotors, one link-chain cable per MAV and the load, each MAV flown by
its own firmware (`controllers.quadrotor`, numpy) at the profile's physics rate.

Why a second engine: marlstack's cable simulator (sim/cable/dynamics.py) is a hand-written, massless
spring-damper (or Baumgarte-rod) model integrated by explicit Euler; here Bullet's rigid bodies and
constraint solver decide where the team goes, so the gap between the two is what our model hides.

* **Quadrotors**: rigid bodies with the profile's mass and principal inertia. Every rotor's thrust is a
  force along body z applied at the rotor's position (from `controllers.quadrotor.allocation`, the
  one rotor-geometry definition), its drag torque `±torque_coefficient · thrust` about body z; linear
  drag `-drag_coefficient · v`. Rotor thrusts follow the commands through the first-order motor lag
  (exact discretisation at the engine's step). Bullet's default velocity damping is switched off.
* **Cables**: a chain of `Chain.segments` rigid links per cable, joined end to end and to the MAV's hook
  and the load's attachment point by ball joints (point-to-point constraints). A chain pulls but cannot
  push — under compression it folds — so a cable goes slack and taut by itself, which a single
  point-to-point rod (bilateral: it pushes as hard as it pulls) could not do. Its stretch comes only
  from the solver's residual (there is no stiffness parameter), and it has mass (the profile's cable has none).
* **Load**: rigid body with the profile's mass and inertia; attachment points from the team layout.
* **Firmware**: `step(setpoints)` runs one policy period: `profile.substeps` ticks of
  `controllers.quadrotor.step` (outer loop, attitude, INDI / rate PID, mixer — the same code the jitted
  simulator runs) at `control.physics_rate_hz`, each followed by `Chain.engine_substeps` Bullet steps.
  INDI reads the rotor thrusts (rotor-speed feedback), as in the simulator.
Nothing collides (marlstack's simulator has no contacts either) and there is no floor.
Headless (`pybullet.DIRECT`). Never imports JAX.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import numpy as np
import pybullet

from marlstack.controllers import quadrotor
from marlstack.sim.cable.equilibrium import Hover, attitude_for, hover, rot_to_quat


@dataclasses.dataclass(frozen=True)
class Chain:
    """How each cable and the engine are built; every number is an estimate (see docs/sim2sim.md)."""
    segments: int = 4              # rigid links per cable
    mass_ratio: float = 0.007      # each cable's mass / the load's: 10 g for mav_corl25's 1.4 kg (a 1 m braided
                                   # line), 0.14 g for crazyflie_team's 20 g (a thread); the profile's cable is massless
    radius: float = 0.002          # m, the links' axial inertia only (nothing collides)
    engine_substeps: int = 4       # Bullet steps per firmware tick: 1600 Hz for a 400 Hz firmware
    solver_iterations: int = 50    # Bullet's constraint solver; fewer lets the chains stretch


def cable_mass(profile: Any, chain: Chain) -> float:
    """kg of one cable."""
    return chain.mass_ratio * profile.load.mass


class TeamState(NamedTuple):
    """What both engines report, in marlstack's conventions (quaternions w x y z, body rates in the body frame)."""
    pos: np.ndarray         # (N, 3) MAV centres of mass, world
    vel: np.ndarray         # (N, 3) world
    quat: np.ndarray        # (N, 4)
    omega: np.ndarray       # (N, 3) body rates
    load_pos: np.ndarray    # (3,)
    load_vel: np.ndarray    # (3,)
    load_quat: np.ndarray   # (4,)
    load_omega: np.ndarray  # (3,) load body rates
    tension: np.ndarray     # (N,) pull of each cable on the load [N]


def wxyz(q_xyzw: Any) -> np.ndarray:
    x, y, z, w = q_xyzw
    return np.array([w, x, y, z])


def xyzw(q_wxyz: Any) -> list[float]:
    w, x, y, z = (float(v) for v in q_wxyz)
    return [x, y, z, w]


def quat_from_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """(w x y z) of R = Rz(yaw) Ry(pitch) Rx(roll), radians (the deployment YAML's rpy_deg convention)."""
    return wxyz(pybullet.getQuaternionFromEuler([roll, pitch, yaw]))


def cable_spans(profile: Any, pos: np.ndarray, quat: np.ndarray, load_pos: np.ndarray, load_quat: np.ndarray) -> np.ndarray:
    """(..., N) distance from each MAV's hook to its attachment point on the load; below the cable's
    length the cable cannot be taut. pos (..., N, 3), quat (..., N, 4) w x y z, load_pos (..., 3), load_quat (..., 4)."""
    n = pos.shape[-2]
    hook = np.array([0.0, 0.0, -profile.quadrotor.cable_offset])
    attach = np.asarray(profile.team(n).attachment_points, np.float64)
    top = pos + np.einsum("...ij,j->...i", rotations(quat), hook)
    bottom = load_pos[..., None, :] + np.einsum("...ij,nj->...ni", rotations(load_quat), attach)
    return np.linalg.norm(top - bottom, axis=-1)


def rotations(q: Any) -> np.ndarray:
    """Unit quaternions (..., 4) w x y z -> rotation matrices (..., 3, 3), body to world."""
    w, x, y, z = np.moveaxis(np.asarray(q, np.float64), -1, 0)
    return np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
                     np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
                     np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], -2)


def start_hover(profile: Any, num_mavs: int, load_pos: Any) -> Hover:
    """The resting hover with inextensible cables (a chain does not stretch by k), load level at `load_pos`."""
    rigid = dataclasses.replace(profile, cable=dataclasses.replace(profile.cable, model="rigid"))
    return hover(rigid, num_mavs, tuple(float(v) for v in load_pos))


class PybulletCableTeam:
    """N MAVs hovering with the load level at `load_pos`; `step((N, 5) set-points)` flies one policy period.

    Set-points: world-frame acceleration (3) and roll/pitch body-rate references (2), clipped to the
    profile's action limits, yaw set-point 0 — what the MAV policy node sends its flight controller.
    """

    def __init__(self, profile: Any, num_mavs: int, load_pos: Any, chain: Chain = Chain()):
        if chain.segments < 1 or chain.engine_substeps < 1 or chain.mass_ratio <= 0:
            raise ValueError(f"a chain needs at least one segment, one engine substep and a positive mass, got {chain}")
        self.profile, self.n, self.chain = profile, num_mavs, chain
        q, c = profile.quadrotor, profile.control
        self.dt = 1.0 / c.physics_rate_hz                 # firmware tick
        self.engine_dt = self.dt / chain.engine_substeps
        self.limit = np.array([c.max_acceleration] * 3 + [c.max_rate_reference] * 2)
        geometry = quadrotor.allocation(q)                # rows: 1, y, -x, yaw torque per unit thrust
        self.rotors = np.stack([-geometry[2], geometry[1], np.zeros(4)], axis=1)  # (4, 3) body frame
        self.yaw_per_thrust = geometry[3]
        self.hook = np.array([0.0, 0.0, -q.cable_offset])
        self.attach = np.asarray(profile.team(num_mavs).attachment_points, np.float64)
        self.motor = 1.0 - math.exp(-self.engine_dt / q.motor_time_constant)
        self.client = pybullet.connect(pybullet.DIRECT)
        pybullet.setGravity(0, 0, -profile.gravity, physicsClientId=self.client)
        pybullet.setPhysicsEngineParameter(fixedTimeStep=self.engine_dt, numSolverIterations=chain.solver_iterations,
                                           numSubSteps=0, physicsClientId=self.client)
        h = start_hover(profile, num_mavs, load_pos)
        self.mavs = [self._body(q.mass, q.inertia, h.pos[i], h.quat[i]) for i in range(num_mavs)]
        self.load = self._body(profile.load.mass, profile.load.inertia, h.load_pos, h.load_quat)
        self.ends = [self._cable(i, h) for i in range(num_mavs)]  # the load-end constraint of each cable
        self.thrust = np.array(h.thrust, np.float64)      # actual rotor thrusts (after the motor lag)
        pull = -h.tension[:, None] * h.cable_dir / q.mass  # converged filters, as `CableEnv` starts
        zeros = np.zeros((num_mavs, 3))
        self.ctrl = quadrotor.init_state(zeros, zeros, self.thrust.copy(), pull)

    def _body(self, mass: float, inertia: Any, pos: Any, quat_wxyz: Any) -> int:
        body = pybullet.createMultiBody(mass, -1, -1, [float(v) for v in pos], xyzw(quat_wxyz),
                                        physicsClientId=self.client)
        pybullet.changeDynamics(body, -1, localInertiaDiagonal=[float(v) for v in inertia], linearDamping=0.0,
                                angularDamping=0.0, physicsClientId=self.client)
        return body

    def _cable(self, i: int, h: Hover) -> int:
        """Links from the load's attachment point straight up to MAV i's hook; returns the load-end constraint."""
        ch, length = self.chain, self.profile.cable.length
        seg, m = length / ch.segments, cable_mass(self.profile, ch) / ch.segments
        bottom = h.load_pos + self.attach[i]
        axis = h.cable_dir[i]
        quat = rot_to_quat(attitude_for(axis))               # link z along the cable
        across, along = m * seg ** 2 / 12, m * ch.radius ** 2 / 2
        parent, at, load_end = self.load, self.attach[i], None
        for k in range(ch.segments):
            link = self._body(m, (across, across, along), bottom + axis * seg * (k + 0.5), quat)
            cid = self._ball(parent, at, link, [0.0, 0.0, -seg / 2])
            load_end = cid if load_end is None else load_end
            parent, at = link, [0.0, 0.0, seg / 2]
        self._ball(parent, at, self.mavs[i], self.hook)
        return load_end

    def _ball(self, parent: int, at_parent: Any, child: int, at_child: Any) -> int:
        return pybullet.createConstraint(parent, -1, child, -1, pybullet.JOINT_POINT2POINT, [0, 0, 0],
                                         [float(v) for v in at_parent], [float(v) for v in at_child],
                                         physicsClientId=self.client)

    # ---- reading the world back ---------------------------------------------------------------
    def _pose_twist(self, body: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(position, world velocity, quaternion w x y z, body rates) of a body as Bullet has it now."""
        pos, orn = pybullet.getBasePositionAndOrientation(body, physicsClientId=self.client)
        vel, w_world = pybullet.getBaseVelocity(body, physicsClientId=self.client)
        quat = wxyz(orn)
        return np.asarray(pos), np.asarray(vel), quat, rotations(quat).T @ np.asarray(w_world)

    def state(self) -> TeamState:
        mavs = [self._pose_twist(b) for b in self.mavs]
        load = self._pose_twist(self.load)
        tension = [np.linalg.norm(pybullet.getConstraintState(c, physicsClientId=self.client)) for c in self.ends]
        return TeamState(*(np.stack(x) for x in zip(*mavs)), *load, np.asarray(tension))

    # ---- time ---------------------------------------------------------------------------------
    def _push(self, cmd: np.ndarray) -> None:
        """One Bullet step with the current rotor thrusts, then the motors move towards `cmd`."""
        for i, body in enumerate(self.mavs):
            pos, orn = pybullet.getBasePositionAndOrientation(body, physicsClientId=self.client)
            vel = np.asarray(pybullet.getBaseVelocity(body, physicsClientId=self.client)[0])
            rot = np.asarray(pybullet.getMatrixFromQuaternion(orn)).reshape(3, 3)
            pos, up = np.asarray(pos), rot[:, 2]
            for j, at in enumerate(pos + self.rotors @ rot.T):
                pybullet.applyExternalForce(body, -1, (up * self.thrust[i, j]).tolist(), at.tolist(),
                                            pybullet.WORLD_FRAME, physicsClientId=self.client)
            pybullet.applyExternalTorque(body, -1, (up * float(self.yaw_per_thrust @ self.thrust[i])).tolist(),
                                         pybullet.WORLD_FRAME, physicsClientId=self.client)
            pybullet.applyExternalForce(body, -1, (-self.profile.quadrotor.drag_coefficient * vel).tolist(),
                                        pos.tolist(), pybullet.WORLD_FRAME, physicsClientId=self.client)
        pybullet.stepSimulation(physicsClientId=self.client)
        self.thrust += self.motor * (cmd - self.thrust)

    def step(self, setpoints: Any) -> TeamState:
        """Fly (N, 5) set-points for one policy period: firmware ticks at the physics rate, Bullet below them."""
        sp = np.clip(np.asarray(setpoints, np.float64).reshape(self.n, 5), -self.limit, self.limit)
        acc, rate_ff = sp[:, :3], np.concatenate([sp[:, 3:], np.zeros((self.n, 1))], axis=1)
        for _ in range(self.profile.substeps):
            s = self.state()
            rot = rotations(s.quat)
            cmd, self.ctrl = quadrotor.step(self.ctrl, s.vel, rot, s.omega, self.thrust.copy(), acc, rate_ff, 0.0,
                                            self.profile, self.dt)
            for _ in range(self.chain.engine_substeps):
                self._push(cmd)
        return self.state()

    def close(self) -> None:
        pybullet.disconnect(physicsClientId=self.client)

    def __enter__(self) -> "PybulletCableTeam":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
