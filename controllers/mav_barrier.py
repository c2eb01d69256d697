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

import functools
import math
from typing import Any, NamedTuple, Sequence

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


@functools.lru_cache(maxsize=32)
def pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j), i < j, of every MAV pair (cached: the onboard filter runs every period)."""
    iu, ju = np.triu_indices(n, 1)
    iu.flags.writeable = ju.flags.writeable = False
    return iu, ju


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
    """(A (M, 3N), b (M,)) with A a ≤ b for the stacked team command a (3N,); rows have unit norm.

    Order: pairs, lower walls, upper walls (per MAV and axis), then the state-independent limit and
    tilt rows (`_fixed_rows`, built once per team size)."""
    m = xp(pos, vel)
    n = pos.shape[0]
    fixed = _fixed_rows(spec, n)
    cast = lambda x: m.asarray(x, pos.dtype)  # noqa: E731
    dp, dv = cast(fixed.signs) @ pos, cast(fixed.signs) @ vel   # pᵢ − pⱼ, vᵢ − vⱼ per pair
    r = m.sqrt(m.sum(dp * dp, -1))
    safe_r = m.maximum(r, 1e-9)
    unit = dp / safe_r[:, None]
    rdot = m.sum(unit * dv, -1)
    curv = (m.sum(dv * dv, -1) - rdot * rdot) / safe_r  # the part of r̈ not due to the commands
    # every certified distance at once: pairs r − s; walls per axis p − low (d̈ = a) and high − p (d̈ = −a)
    walls = cast(fixed.walls)
    least = _least_ddot(m, m.concatenate([r - spec.separation, walls @ pos.reshape(-1) + cast(fixed.wall_offset)]),
                        m.concatenate([rdot, walls @ vel.reshape(-1)]), BRAKE_SHARE * spec.max_acceleration, spec.gain)
    # r̈ = curv + unit·(a_i − a_j) ≥ L   ⇔   −unit·a_i + unit·a_j ≤ curv − L; the row's norm is √2
    pairs_a = (cast(fixed.pair_coef)[:, :, None] * unit[:, None, :]).reshape(-1, 3 * n)
    npair = fixed.signs.shape[0]
    a = m.concatenate([pairs_a, cast(fixed.a)])
    b = m.concatenate([(curv - least[:npair]) / math.sqrt(2), -least[npair:], cast(fixed.b)])
    return a, b


class _Fixed(NamedTuple):
    signs: np.ndarray        # (P, N): +1 at i, −1 at j for each pair i < j
    pair_coef: np.ndarray    # (P, N): −signs / √2, a pair row's coefficient on each MAV's unit vector
    walls: np.ndarray        # (6N, 3N): wall distances = walls @ p + wall_offset (p − low, then high − p)
    wall_offset: np.ndarray  # (6N,)
    a: np.ndarray            # wall rows (−walls), limit rows (I, −I) and tilt rows, unit norm
    b: np.ndarray            # the limit and tilt rows' bounds


@functools.lru_cache(maxsize=32)
def _fixed_rows(spec: MavBarrierSpec, n: int) -> _Fixed:
    """What does not depend on the state, built once per team size: the pair signs, the wall maps, the
    wall rows, the limits |a| ≤ max_acceleration per axis and the tilt planes c·a_xy − tan·a_z ≤ tan·g."""
    iu, ju = pairs(n)
    signs = np.eye(n)[iu] - np.eye(n)[ju]
    eye = np.eye(3 * n)
    walls = np.concatenate([eye, -eye])
    offset = np.concatenate([-np.tile(spec.low, n), np.tile(spec.high, n)])
    tilt = np.zeros((n * 8, n, 3))
    for i in range(n):
        tilt[i * 8:(i + 1) * 8, i, :2] = OCTAGON
        tilt[i * 8:(i + 1) * 8, i, 2] = -spec.tan_tilt
    norm = math.sqrt(1 + spec.tan_tilt ** 2)
    a = np.concatenate([-walls, eye, -eye, tilt.reshape(n * 8, 3 * n) / norm])
    b = np.concatenate([np.full(6 * n, spec.max_acceleration), np.full(n * 8, spec.tan_tilt * spec.gravity / norm)])
    out = _Fixed(signs, -signs / math.sqrt(2), walls, offset, a, b)
    for x in out:
        x.flags.writeable = False
    return out


def barriers(spec: MavBarrierSpec, pos: Any) -> dict[str, Any]:
    """The certified quantities (≥ 0 means inside): closest MAV pair distance minus the separation, and
    the smallest distance to the certified box."""
    m = xp(pos)
    iu, ju = pairs(pos.shape[0])
    gap = m.min(m.linalg.norm(pos[iu] - pos[ju], axis=-1)) - spec.separation if iu.size else m.asarray(np.inf)
    box = m.minimum(m.min(pos - m.asarray(spec.low)), m.min(m.asarray(spec.high) - pos))
    return {"separation": gap, "box": box}


def restrict(a: np.ndarray, b: np.ndarray, controlled: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy: the rows for the controlled MAVs only, the others' accelerations fixed at `others` (N, 3)
    (zero for stopped MAVs: obstacles) and moved to the right-hand side. Rows that only involved fixed
    MAVs say nothing about the controlled ones and are dropped."""
    cols = np.repeat(controlled, 3)
    b = b - a[:, ~cols] @ others[~controlled].reshape(-1)
    a = a[:, cols]
    norm = np.sqrt(np.sum(a * a, -1))
    keep = norm > 1e-9
    return a[keep] / norm[keep, None], b[keep] / norm[keep]


def filter_team(spec: MavBarrierSpec, pos: np.ndarray, vel: np.ndarray, a_nom: np.ndarray,
                controlled: np.ndarray | None = None, others: np.ndarray | None = None,
                warm: Sequence[int] = (), max_iter: int = 64) -> tuple[np.ndarray | None, str, list[int]]:
    """numpy: (the safe accelerations (N_controlled, 3) of the controlled MAVs (all by default), or None
    when the QP has no solution — the caller then holds and says so; the solver's status; the active
    rows). Passing the previous call's active rows as `warm` (same team and mask) starts the solver
    there, as the ground filter does: a control loop then needs one or two iterations."""
    from controllers.barrier import solve_qp
    n = pos.shape[0]
    a, b = rows(spec, np.asarray(pos, np.float64), np.asarray(vel, np.float64))
    controlled = np.ones(n, bool) if controlled is None else np.asarray(controlled, bool)
    if not controlled.all():
        a, b = restrict(a, b, controlled, np.zeros((n, 3)) if others is None else np.asarray(others, np.float64))
    x, status, _, lam = solve_qp(a, b, np.asarray(a_nom, np.float64)[controlled].reshape(-1), max_iter, warm)
    return (None if x is None else x.reshape(-1, 3)), status, np.flatnonzero(lam > 0).tolist()
