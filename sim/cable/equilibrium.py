"""The resting hover: where each MAV sits and which rotor thrusts hold the load still (numpy, float64).

Cable forces are chosen closest (least squares) to equal pulls along cables leaning `cable_tilt`
away from the load centre, subject to exact force and torque balance on the load; each MAV then
tilts its thrust to carry its own weight plus its cable, and its rotors also cancel the torque of
a cable hooked below its centre of mass.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np

from marlstack.controllers.quadrotor import allocation_inverse


class Hover(NamedTuple):
    pos: np.ndarray        # (N, 3)
    quat: np.ndarray       # (N, 4)
    thrust: np.ndarray     # (N, 4) rotor thrusts
    tension: np.ndarray    # (N,)
    cable_dir: np.ndarray  # (N, 3) unit vectors from the load's attachment points up to the MAV hooks
    load_pos: np.ndarray   # (3,)
    load_quat: np.ndarray  # (4,)


def _skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])


def rot_to_quat(r: np.ndarray) -> np.ndarray:
    """Rotation matrix → unit quaternion (w, x, y, z), Shepperd's method (stable for every rotation)."""
    tr = np.trace(r)
    diag = np.diag(r)
    i = int(np.argmax([tr, *diag]))
    if i == 0:
        s = 2 * np.sqrt(1 + tr)
        q = [s / 4, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    else:
        a, b, c = (i - 1), i % 3, (i + 1) % 3
        s = 2 * np.sqrt(1 + r[a, a] - r[b, b] - r[c, c])
        q = np.zeros(4)
        q[0] = (r[c, b] - r[b, c]) / s
        q[1 + a] = s / 4
        q[1 + b] = (r[b, a] + r[a, b]) / s
        q[1 + c] = (r[c, a] + r[a, c]) / s
    q = np.asarray(q, np.float64)
    return q / np.linalg.norm(q) * np.sign(q[0] or 1.0)


def attitude_for(z_axis: np.ndarray, yaw: float = 0.0) -> np.ndarray:
    """Rotation with body z along `z_axis` and the body x heading `yaw` (projected)."""
    z = z_axis / np.linalg.norm(z_axis)
    y = np.cross(z, [np.cos(yaw), np.sin(yaw), 0.0])
    y /= np.linalg.norm(y)
    return np.stack([np.cross(y, z), y, z], axis=1)


@functools.lru_cache(maxsize=None)
def hover(profile: Any, num_mavs: int, load_pos: tuple[float, float, float] | None = None) -> Hover:
    """Static equilibrium with the load level at `load_pos` (default: the task's start pose)."""
    q, ld, cab = profile.quadrotor, profile.load, profile.cable
    team = profile.team(num_mavs)
    g = profile.gravity
    load_pos = np.array((0.0, 0.0, profile.task.start_height) if load_pos is None else load_pos, np.float64)
    arms = np.asarray(team.attachment_points, np.float64)
    tilt = np.deg2rad(team.cable_tilt)
    radial = arms[:, :2] / np.maximum(np.linalg.norm(arms[:, :2], axis=1, keepdims=True), 1e-9)
    lean = np.concatenate([np.sin(tilt) * radial, np.full((num_mavs, 1), np.cos(tilt))], axis=1)
    f_des = (ld.mass * g / (num_mavs * np.cos(tilt)) * lean).ravel()
    a = np.vstack([np.hstack([np.eye(3)] * num_mavs), np.hstack([_skew(r) for r in arms])])
    w = np.array([0.0, 0.0, ld.mass * g, 0.0, 0.0, 0.0])
    f = (f_des + np.linalg.pinv(a) @ (w - a @ f_des)).reshape(num_mavs, 3)
    tension = np.linalg.norm(f, axis=1)
    n = f / tension[:, None]
    if np.any(n[:, 2] <= 0.05):
        raise ValueError(f"profile {profile.name!r}: no hanging equilibrium with {num_mavs} MAVs and cable_tilt "
                         f"{team.cable_tilt} deg; lower the tilt")
    length = cab.length + (tension / cab.stiffness if cab.model == "tension" else np.zeros(num_mavs))
    top = load_pos + arms + length[:, None] * n
    ginv = allocation_inverse(q)
    hook = np.array([0.0, 0.0, -q.cable_offset])
    pos, quat, thrust = [], [], []
    for i in range(num_mavs):
        force = q.mass * g * np.array([0.0, 0.0, 1.0]) + tension[i] * n[i]
        rot = attitude_for(force)
        tau_cable = np.cross(hook, rot.T @ (-tension[i] * n[i]))
        rotors = ginv @ np.concatenate([[np.linalg.norm(force)], -tau_cable])
        if rotors.min() < q.min_rotor_thrust or rotors.max() > q.max_rotor_thrust:
            raise ValueError(f"profile {profile.name!r}: hovering with the load needs rotor thrusts "
                             f"{np.round(rotors, 3).tolist()} N, outside the rotor limits")
        pos.append(top[i] - rot @ hook)
        quat.append(rot_to_quat(rot))
        thrust.append(rotors)
    return Hover(np.array(pos), np.array(quat), np.array(thrust), tension, n, load_pos, np.array([1.0, 0.0, 0.0, 0.0]))
