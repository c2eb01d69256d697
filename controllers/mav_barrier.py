"""Barrier certificate for a MAV team on the commanded world-frame acceleration (numpy or jax.numpy).

Model: each MAV is a double integrator, p̈ = a, where a is the command the rate controller tracks
(INDI cancels the cable's pull, `controllers.quadrotor`). Every certified distance d ≥ 0 is guarded by
a braking-distance barrier, h = d − max(0, −ḋ)² / (2·a_brake) ≥ 0 with ḣ ≥ −k h (k = `safety.gain`,
a_brake = `BRAKE_SHARE` × `control.max_acceleration`): a MAV that still closes in can always stop in
time with a_brake, so the constraint is feasible whenever the state is certified, even at the
acceleration limits (a plain second-order barrier, ḧ + 2kḣ + k²h ≥ 0, is not: with bounded
acceleration it went infeasible in 60 % of fuzzed steps). The rows are linear in a:

* separation of MAVs i, j: d = |pᵢ − pⱼ| − s (one MAV alone brakes: the other may be a stopped obstacle);
* workspace: d = p − low (floor: `safety.floor`) and d = high − p per axis, `safety.wall_margin` inside;
* limits, not barriers: |a| per axis ≤ `control.max_acceleration`, and the tilt cone |a_xy| ≤ tan(max_tilt)·(g + a_z)
  as 8 planes (an inscribed octagon, so the planes are stricter than the cone).

The filter solves min Σ‖aᵢ − âᵢ‖² subject to every row for the whole team (fleet form), or for some
MAVs with the others' accelerations fixed (`controlled`): stopped MAVs are obstacles with zero
acceleration. `rows` builds the constraints for both array libraries; `filter_team` solves with numpy
(onboard); `controllers.mav_barrier_jax` is the batched training form.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from controllers.arrays import xp

BRAKE_SHARE = 0.5  # of max_acceleration kept for braking, so a brake still fits inside the tilt cone
OCTAGON = np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1)


class MavBarrierSpec(NamedTuple):
    separation: float
    low: tuple[float, float, float]   # certified lower corner (floor included)
    high: tuple[float, float, float]
    gain: float
    max_acceleration: float
    tan_tilt: float
    gravity: float


def mav_barrier_spec(profile: Any) -> MavBarrierSpec:
    """The certificate's numbers, all from the MAV team profile."""
    s, ws = profile.safety, profile.task.workspace
    low = (ws.low[0] + s.wall_margin, ws.low[1] + s.wall_margin, max(ws.low[2], s.floor))
    high = tuple(h - s.wall_margin for h in ws.high)
    return MavBarrierSpec(s.separation, low, high, s.gain, profile.control.max_acceleration,
                          math.tan(math.radians(profile.control.max_tilt)), profile.gravity)


def pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, 1)


FREE = 1e6  # a lower bound on d̈ that binds nothing


def _least_ddot(m: Any, d: Any, ddot: Any, brake: float, k: float) -> Any:
    """The smallest d̈ the certificate allows for a distance d ≥ 0 closing at ḋ.

    Closing (ḋ < 0), h = d − ḋ²/(2·brake): ḣ = ḋ(1 − d̈/brake) ≥ −k h  ⇔  d̈ ≥ brake·(1 + k h/ḋ), capped at
    `brake` (outside the safe set, e.g. after a discretisation step, a full brake is what can be done).
    Not closing: nothing while d ≥ 0; outside, a PD push back in (−kḋ − k²d), again capped at `brake`."""
    closing = ddot < 0
    h = d - m.where(closing, ddot * ddot, 0.0) / (2 * brake)
    safe_ddot = m.where(closing, ddot, -1.0)
    braking = m.minimum(brake * (1 + k * h / safe_ddot), brake)
    recover = m.where(d < 0, m.minimum(-k * ddot - k * k * d, brake), -FREE)
    return m.where(closing, braking, recover)


def rows(spec: MavBarrierSpec, pos: Any, vel: Any) -> tuple[Any, Any]:
    """(A (M, 3N), b (M,)) with A a ≤ b for the stacked team command a (3N,); rows have unit norm."""
    m = xp(pos, vel)
    n = pos.shape[0]
    k, brake = spec.gain, BRAKE_SHARE * spec.max_acceleration
    iu, ju = pairs(n)
    dp, dv = pos[iu] - pos[ju], vel[iu] - vel[ju]
    r = m.sqrt(m.sum(dp * dp, -1))
    unit = dp / m.maximum(r, 1e-9)[:, None]
    rdot = m.sum(unit * dv, -1)
    curv = (m.sum(dv * dv, -1) - rdot * rdot) / m.maximum(r, 1e-9)  # the part of r̈ not due to the commands
    # r̈ = curv + unit·(a_i − a_j) ≥ L   ⇔   −unit·a_i + unit·a_j ≤ curv − L
    pair_a = _scatter(m, m.zeros((iu.size, n, 3), dtype=pos.dtype), iu, ju, -unit)
    pair_b = curv - _least_ddot(m, r - spec.separation, rdot, brake, k)
    low, high = m.asarray(spec.low, pos.dtype), m.asarray(spec.high, pos.dtype)
    # walls per axis: d = p − low (d̈ = a: −a ≤ −L) and d = high − p (d̈ = −a: a ≤ −L)
    lo_b = -_least_ddot(m, (pos - low).reshape(-1), vel.reshape(-1), brake, k)
    hi_b = -_least_ddot(m, (high - pos).reshape(-1), -vel.reshape(-1), brake, k)
    eye = np.eye(3 * n)
    lim_b = m.full((3 * n,), spec.max_acceleration, dtype=pos.dtype)
    # tilt planes per MAV: c·a_xy − tan·a_z ≤ tan·g
    tilt = np.zeros((n * 8, n, 3))
    for i in range(n):
        tilt[i * 8:(i + 1) * 8, i, :2] = OCTAGON
        tilt[i * 8:(i + 1) * 8, i, 2] = -spec.tan_tilt
    tilt_b = m.full((n * 8,), spec.tan_tilt * spec.gravity, dtype=pos.dtype)
    cast = lambda x: m.asarray(x, pos.dtype)  # noqa: E731
    a = m.concatenate([pair_a.reshape(iu.size, 3 * n), cast(-eye), cast(eye), cast(eye), cast(-eye),
                       cast(tilt.reshape(n * 8, 3 * n))])
    b = m.concatenate([pair_b, lo_b, hi_b, lim_b, lim_b, tilt_b])
    norm = m.sqrt(m.sum(a * a, -1))
    return a / norm[:, None], b / norm


def _scatter(m: Any, out: Any, iu: np.ndarray, ju: np.ndarray, coef: Any) -> Any:
    """out[r, iu[r]] = coef[r], out[r, ju[r]] = -coef[r] (one pair per row)."""
    onehot_i = np.eye(out.shape[1])[iu][:, :, None]
    onehot_j = np.eye(out.shape[1])[ju][:, :, None]
    return out + m.asarray(onehot_i - onehot_j, coef.dtype) * coef[:, None, :]


def barriers(spec: MavBarrierSpec, pos: Any) -> dict[str, Any]:
    """The certified quantities (≥ 0 means inside): closest MAV pair distance minus the separation, and
    the smallest distance to the certified box."""
    m = xp(pos)
    iu, ju = pairs(pos.shape[0])
    gap = m.min(m.linalg.norm(pos[iu] - pos[ju], axis=-1)) - spec.separation if iu.size else m.asarray(np.inf)
    box = m.minimum(m.min(pos - m.asarray(spec.low)), m.min(m.asarray(spec.high) - pos))
    return {"separation": gap, "box": box}


def restrict(a: Any, b: Any, n: int, controlled: np.ndarray, others: Any) -> tuple[Any, Any]:
    """Rows for the controlled MAVs only: the others' accelerations are fixed at `others` (N, 3)
    (zero for stopped MAVs: obstacles), moved to the right-hand side."""
    m = xp(a, b)
    cols = np.repeat(controlled, 3)
    fixed = m.where(m.asarray(np.repeat(~controlled, 3)), others.reshape(-1), 0.0)
    b = b - a @ fixed
    a = a[:, cols]
    norm = m.sqrt(m.sum(a * a, -1))
    keep = norm > 1e-9  # rows that only involved fixed MAVs say nothing about the controlled ones
    safe = m.where(keep, norm, 1.0)
    return a / safe[:, None], m.where(keep, b / safe, m.maximum(b, 0.0))


def filter_team(spec: MavBarrierSpec, pos: np.ndarray, vel: np.ndarray, a_nom: np.ndarray,
                controlled: np.ndarray | None = None, others: np.ndarray | None = None,
                max_iter: int = 64) -> tuple[np.ndarray | None, str]:
    """numpy: the safe accelerations (N, 3) of the controlled MAVs (all by default), or (None, status)
    when the QP has no solution — the caller then holds (and says so)."""
    from controllers.barrier import solve_qp
    n = pos.shape[0]
    a, b = rows(spec, np.asarray(pos, np.float64), np.asarray(vel, np.float64))
    controlled = np.ones(n, bool) if controlled is None else np.asarray(controlled, bool)
    if not controlled.all():
        a, b = restrict(a, b, n, controlled, np.zeros((n, 3)) if others is None else np.asarray(others, np.float64))
    x, status, _, _ = solve_qp(a, b, np.asarray(a_nom, np.float64)[controlled].reshape(-1), max_iter)
    return (None if x is None else x.reshape(-1, 3)), status
