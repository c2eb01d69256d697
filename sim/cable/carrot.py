"""The classical decentralised baseline ("carrot"): each MAV flies to its place in the static equilibrium
of a reference load pose that moves at most `step_pos` / `step_rot` from the current load pose towards
the goal. No communication: every MAV solves the same small equilibrium from the load pose it senses.

The equilibrium: cable forces f_i closest (least squares) to equal pulls along cables leaning
`cable_tilt` away from the load centre, subject to exact force and torque balance on the load at the
reference pose (`sim.cable.equilibrium.hover` does the same for a level load in numpy). The 6x6 normal
equations are solved by an unrolled Cholesky factorisation, so the function traces into ONNX too.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np


class CarrotGains(NamedTuple):
    step_pos: float = 0.5   # m, how far the reference pose leads the load
    step_rot: float = 0.25  # rad
    kp: float = 4.0         # 1/s², MAV position loop
    kd: float = 3.0         # 1/s


class TeamConstants(NamedTuple):
    """Numbers every MAV knows from the profile (numpy, so they are constants in a traced graph)."""
    arms: np.ndarray        # (N, 3) attachment points in the load frame
    lean_tilt: float        # rad, resting cable tilt
    load_weight: float      # N
    cable_length: float     # m
    stiffness: float        # N/m (inf for rigid cables)
    hook: float             # m, cable hook below each MAV's centre of mass
    fade_position: float    # m, a residual policy's correction fades out inside these load errors
    fade_orientation: float  # rad


FADE = 3.0  # residual corrections fade out within this many success tolerances of the goal


def team_constants(profile: Any, num_mavs: int) -> TeamConstants:
    team, task = profile.team(num_mavs), profile.task
    stiff = profile.cable.stiffness if profile.cable.model == "tension" else math.inf
    return TeamConstants(np.asarray(team.attachment_points, np.float32), math.radians(team.cable_tilt),
                         profile.load.mass * profile.gravity, profile.cable.length, stiff,
                         profile.quadrotor.cable_offset, FADE * task.success_position,
                         FADE * math.radians(task.success_orientation))


def fade(load_pos: jnp.ndarray, load_rot: jnp.ndarray, goal_pos: jnp.ndarray, goal_rot: jnp.ndarray,
         c: TeamConstants) -> jnp.ndarray:
    """(..., 1) weight of a residual correction: 1 far from the goal, falling linearly to 0 at it, so the
    classical controller alone makes the final, precise approach."""
    e_pos = jnp.linalg.norm(goal_pos - load_pos, axis=-1)
    cos = (jnp.einsum("...ij,...ij->...", load_rot, goal_rot) - 1) / 2  # trace(R_loadᵀ R_goal) = Σ elementwise
    e_rot = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
    return jnp.clip(jnp.maximum(e_pos / c.fade_position, e_rot / c.fade_orientation), 0.0, 1.0)[..., None]


def _skew(v: jnp.ndarray) -> jnp.ndarray:
    z = jnp.zeros_like(v[..., 0])
    return jnp.stack([jnp.stack([z, -v[..., 2], v[..., 1]], -1), jnp.stack([v[..., 2], z, -v[..., 0]], -1),
                      jnp.stack([-v[..., 1], v[..., 0], z], -1)], -2)


def spd_solve(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """Solve a x = b for a symmetric positive-definite (..., n, n) `a` by an unrolled Cholesky."""
    n = a.shape[-1]
    low = [[None] * n for _ in range(n)]
    for j in range(n):
        s = a[..., j, j] - sum(low[j][k] ** 2 for k in range(j))
        low[j][j] = jnp.sqrt(jnp.maximum(s, 1e-12))
        for i in range(j + 1, n):
            low[i][j] = (a[..., i, j] - sum(low[i][k] * low[j][k] for k in range(j))) / low[j][j]
    y = []
    for i in range(n):
        y.append((b[..., i] - sum(low[i][k] * y[k] for k in range(i))) / low[i][i])
    x = [None] * n
    for i in reversed(range(n)):
        x[i] = (y[i] - sum(low[k][i] * x[k] for k in range(i + 1, n))) / low[i][i]
    return jnp.stack(x, -1)


def _rotate_towards(rot: jnp.ndarray, goal: jnp.ndarray, max_angle: float) -> jnp.ndarray:
    """`rot` turned towards `goal` about their relative axis by at most `max_angle` (rad)."""
    rel = jnp.einsum("...ji,...jk->...ik", rot, goal)  # rotᵀ goal, in the load frame
    vee = jnp.stack([rel[..., 2, 1] - rel[..., 1, 2], rel[..., 0, 2] - rel[..., 2, 0],
                     rel[..., 1, 0] - rel[..., 0, 1]], -1)
    cos = jnp.clip((jnp.trace(rel, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)
    sin_norm = jnp.linalg.norm(vee, axis=-1)
    angle = jnp.arctan2(sin_norm / 2, cos)
    # near a half turn the skew part vanishes: take the axis from the symmetric part's largest column
    sym = (rel + jnp.swapaxes(rel, -1, -2)) / 2 - cos[..., None, None] * jnp.eye(3)
    col = jnp.take_along_axis(sym, jnp.argmax(jnp.linalg.norm(sym, axis=-2), -1)[..., None, None]
                              .repeat(3, -2), -1)[..., 0]
    axis = jnp.where((sin_norm > 1e-3)[..., None], vee, col)
    axis = axis / jnp.maximum(jnp.linalg.norm(axis, axis=-1, keepdims=True), 1e-9)
    step = jnp.minimum(angle, max_angle)
    k = _skew(axis)
    turn = jnp.eye(3) + jnp.sin(step)[..., None, None] * k + (1 - jnp.cos(step))[..., None, None] * (k @ k)
    return rot @ turn


def places(load_pos: jnp.ndarray, load_rot: jnp.ndarray, c: TeamConstants) -> jnp.ndarray:
    """(..., N, 3) MAV positions that hold the load still at pose (load_pos (..., 3), load_rot (..., 3, 3))."""
    n = c.arms.shape[0]
    arms = jnp.einsum("...ij,nj->...ni", load_rot, jnp.asarray(c.arms))  # world-frame lever arms
    horiz = arms * jnp.asarray([1.0, 1.0, 0.0])
    radial = horiz / jnp.maximum(jnp.linalg.norm(horiz, axis=-1, keepdims=True), 1e-6)
    lean = radial * math.sin(c.lean_tilt) + jnp.asarray([0.0, 0.0, math.cos(c.lean_tilt)])
    f_des = (c.load_weight / (n * math.cos(c.lean_tilt))) * lean  # (..., N, 3)
    # A = [I ... I; [r_1]x ... [r_N]x] (6 x 3N); f = f_des + Aᵀ (A Aᵀ)⁻¹ (w - A f_des)
    blocks = jnp.concatenate([jnp.broadcast_to(jnp.eye(3), (*arms.shape[:-1], 3, 3)), _skew(arms)], -2)  # (..., N, 6, 3)
    af = jnp.einsum("...nij,...nj->...i", blocks, f_des)
    w = jnp.asarray([0.0, 0.0, c.load_weight, 0.0, 0.0, 0.0])
    aat = jnp.einsum("...nij,...nkj->...ik", blocks, blocks)
    lam = spd_solve(aat, w - af)
    f = f_des + jnp.einsum("...nij,...i->...nj", blocks, lam)
    tension = jnp.linalg.norm(f, axis=-1, keepdims=True)
    cable_dir = f / jnp.maximum(tension, 1e-6)
    stretch = 0.0 if math.isinf(c.stiffness) else tension / c.stiffness
    top = load_pos[..., None, :] + arms + (c.cable_length + stretch) * cable_dir
    return top + jnp.asarray([0.0, 0.0, c.hook])


def carrot_acceleration(load_pos: jnp.ndarray, load_rot: jnp.ndarray, pos: jnp.ndarray, vel: jnp.ndarray,
                        goal_pos: jnp.ndarray, goal_rot: jnp.ndarray, agent: jnp.ndarray, c: TeamConstants,
                        gains: CarrotGains = CarrotGains()) -> jnp.ndarray:
    """(..., 3) world-frame acceleration of MAV `agent` (one-hot (..., N)) from what it senses."""
    err = goal_pos - load_pos
    dist = jnp.linalg.norm(err, axis=-1, keepdims=True)
    ref_pos = load_pos + err * jnp.minimum(1.0, gains.step_pos / jnp.maximum(dist, 1e-9))
    ref_rot = _rotate_towards(load_rot, goal_rot, gains.step_rot)
    place = jnp.einsum("...n,...ni->...i", agent, places(ref_pos, ref_rot, c))
    return gains.kp * (place - pos) - gains.kd * vel
