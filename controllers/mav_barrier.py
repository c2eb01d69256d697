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
* cables i, j (when the cable ends are given, `Cables`): d = the segments' distance − `safety.cable_separation`.
  Closest points xᵢ = topᵢ + s (bottomᵢ − topᵢ), xⱼ likewise at t, held fixed over the step: the hooks move
  with their MAVs (ẍ = (1 − s)·aᵢ), the load's attachment points move as a rigid body with constant linear
  and angular velocity (their acceleration is the centripetal term only: the load's response to the cables
  is not modelled). A MAV's authority over the distance is its weight (1 − s), so the braking budget is
  a_brake × the larger weight among the MAVs the filter commands;
* hook i against cable j (i ≠ j, with the cable ends): d = the point–segment distance − `cable_separation`, the
  same kinematics with the hook as a segment of length 0. The segments' distance is a minimum over pieces (the
  ends against the other cable, the interiors) whose closest points jump from piece to piece along
  near-parallel cables; a hook closing fast while its piece is not the minimum is seen only by its own row
  (without these rows the 64 × 10,000-step fuzz crossed cables in 674 / 842 steps at N = 3 / 4);
* cable angle of MAV i (with `cables` and `safety.max_cable_angle`): d = tan(θ_max)·e_z − |e_xy|, e = top − bottom,
  the distance (scaled) to the cone of cables within θ_max of vertical: d̈ = tan θ_max (a_z − ä_bottom,z) −
  û·(a_xy − ä_bottom,xy) − (|ė_xy|² − (û·ė_xy)²)/|e_xy|;
* limits, not barriers: |a| per axis ≤ `control.max_acceleration`, and the tilt cone |a_xy| ≤ tan(max_tilt)·(g + a_z)
  as 8 planes (an inscribed octagon, so the planes are stricter than the cone).

The cable rows (pairs, hooks, angles) are soft, since their assumption about the load can be wrong: the filter
first solves with every row held; only where that has no solution (the cable rows conflict with the hard rows
or the limits, or the iteration cap) does it solve again with one slack per cable row (`soften`, cost
`CABLE_SLACK_COST` per (m/s²)²), so a cable row gives way only in a conflict, never by a bias while nothing
conflicts; the slack is reported, never hidden.

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

from marlstack.controllers.arrays import xp

BRAKE_SHARE = 0.5  # of max_acceleration kept for braking, so a brake still fits inside the tilt cone
MIN_WEIGHT = 0.05  # floor of a cable row's authority (1 − s): both closest points at the load cannot be close
CABLE_SLACK_COST = 100.0  # a cable row's violation of 1 m/s² costs as much as a 10 m/s² change of the command
OCTAGON = np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1)


class MavBarrierSpec(NamedTuple):
    separation: float
    low: tuple[float, float, float]   # certified lower corner (floor included)
    high: tuple[float, float, float]
    gain: float
    max_acceleration: float
    tan_tilt: float
    gravity: float
    cable_separation: float           # 0: no cable pair rows
    tan_cable_angle: float            # 0: no cable angle rows


def mav_barrier_spec(profile: Any) -> MavBarrierSpec:
    """The certificate's numbers, all from the MAV team profile."""
    s, ws = profile.safety, profile.task.workspace
    low = (ws.low[0] + s.wall_margin, ws.low[1] + s.wall_margin, max(ws.low[2], s.floor))
    high = tuple(h - s.wall_margin for h in ws.high)
    return MavBarrierSpec(s.separation, low, high, s.gain, profile.control.max_acceleration,
                          math.tan(math.radians(profile.control.max_tilt)), profile.gravity, s.cable_separation,
                          math.tan(math.radians(s.max_cable_angle)))


class Cables(NamedTuple):
    """Each cable's two ends in the world frame, (N, 3) each: top at the MAV's hook, bottom at the load."""
    top: Any
    top_vel: Any
    bottom: Any
    bottom_vel: Any
    bottom_acc: Any   # the attachment's acceleration the rows assume: centripetal, ω × (ω × arm)


class CableGeometry(NamedTuple):
    hook: tuple[float, float, float]                     # in the MAV's body frame
    attach: tuple[tuple[float, float, float], ...]       # in the load frame, one per MAV


def cable_geometry(profile: Any, num_mavs: int) -> CableGeometry:
    """Where the cables hang, from the profile: the hook `cable_offset` below each MAV, the team's attachments."""
    return CableGeometry((0.0, 0.0, -profile.quadrotor.cable_offset),
                         tuple(tuple(p) for p in profile.team(num_mavs).attachment_points))


def cable_ends(geom: CableGeometry, pos: Any, vel: Any, rot: Any, omega: Any, load_pos: Any, load_vel: Any,
               load_rot: Any, load_omega: Any) -> Cables:
    """The cable ends of a team (numpy or jax.numpy): MAV positions, world velocities (N, 3), rotations body to
    world (N, 3, 3), body rates (N, 3); the load's position, world velocity, rotation (3, 3) and body rates."""
    m = xp(pos, load_pos)
    hook_body, attach = _geometry_arrays(geom)
    hook = rot @ m.asarray(hook_body, pos.dtype)                                   # (N, 3)
    arm = m.asarray(attach, pos.dtype) @ load_rot.T                                # (N, 3)
    w = (rot @ omega[:, :, None])[:, :, 0]
    wl = load_rot @ load_omega
    spin = _cross(wl[None, :], arm)
    return Cables(pos + hook, vel + _cross(w, hook), load_pos + arm, load_vel + spin, _cross(wl[None, :], spin))


@functools.lru_cache(maxsize=32)
def _geometry_arrays(geom: CableGeometry) -> tuple[np.ndarray, np.ndarray]:
    """The hook and the attachments as arrays, converted once (nested tuples cost ~10 µs a call onboard)."""
    out = np.asarray(geom.hook, np.float64), np.asarray(geom.attach, np.float64)
    for x in out:
        x.flags.writeable = False
    return out


def _dot(x: Any, y: Any) -> Any:
    """Σ x·y over the last axis (numpy or jax; the array method: the onboard stage calls this ~20 times a step)."""
    return (x * y).sum(-1)


_NEXT, _LAST = np.array([1, 2, 0]), np.array([2, 0, 1])


def _cross(x: Any, y: Any) -> Any:
    """x × y over the last axis (numpy or jax; numpy's `cross` costs ~15 µs on a 3-vector)."""
    return x[..., _NEXT] * y[..., _LAST] - x[..., _LAST] * y[..., _NEXT]


def closest_params(p1: Any, q1: Any, p2: Any, q2: Any) -> tuple[Any, Any]:
    """(s, t) in [0, 1] of the closest points p1 + s (q1 − p1) and p2 + t (q2 − p2) of two segments (any
    leading dims; numpy or jax.numpy); parallel or degenerate segments get a valid closest pair."""
    m = xp(p1, p2)
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    a, e = _dot(d1, d1), _dot(d2, d2)
    b, c, f = _dot(d1, d2), _dot(d1, r), _dot(d2, r)
    a_, e_ = m.maximum(a, 1e-12), m.maximum(e, 1e-12)
    denom = a * e - b * b
    unit = lambda x: m.minimum(m.maximum(x, 0.0), 1.0)  # noqa: E731
    s = m.where(denom > 1e-12, unit((b * f - c * e) / m.where(denom > 1e-12, denom, 1.0)), 0.0)
    t = (b * s + f) / e_
    s = m.where(t < 0, unit(-c / a_), m.where(t > 1, unit((b - c) / a_), s))
    return s, unit(t)


def cable_gaps(cables: Cables) -> Any:
    """(P,) distance between every pair of cables (the pairs of `pairs`)."""
    m = xp(cables.top)
    iu, ju = pairs(cables.top.shape[0])
    top, bottom = cables.top, cables.bottom
    s, t = closest_params(top[iu], bottom[iu], top[ju], bottom[ju])
    x = top[iu] + (bottom[iu] - top[iu]) * s[:, None] - top[ju] - (bottom[ju] - top[ju]) * t[:, None]
    return m.sqrt(_dot(x, x))


@functools.lru_cache(maxsize=32)
def pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j), i < j, of every MAV pair (cached: the onboard filter runs every period)."""
    iu, ju = np.triu_indices(n, 1)
    iu.flags.writeable = ju.flags.writeable = False
    return iu, ju


@functools.lru_cache(maxsize=32)
def hook_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j), i ≠ j, of every MAV's hook i against every other cable j."""
    i, j = np.nonzero(~np.eye(n, dtype=bool))
    i.flags.writeable = j.flags.writeable = False
    return i, j


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


def rows(spec: MavBarrierSpec, pos: Any, vel: Any, cables: Cables | None = None,
         controlled: Any = None) -> tuple[Any, Any]:
    """(A (M, 3N), b (M,)) with A a ≤ b for the stacked team command a (3N,); rows have unit norm.

    Order: MAV pairs, cable pairs, hooks and cable angles (only with `cables`, a `cable_separation` / a
    `tan_cable_angle`; `cable_row_span` says where), lower walls, upper walls (per MAV and axis), then the
    state-independent limit and tilt rows (`_fixed_rows`, built once per team size). `controlled` (N,) bool: the MAVs the filter commands (all by
    default), whose authority sets a cable row's braking budget."""
    m = xp(pos, vel)
    n = pos.shape[0]
    fixed = _fixed_rows(spec, n)
    cast = lambda x: m.asarray(x, pos.dtype)  # noqa: E731
    dp, dv = cast(fixed.signs) @ pos, cast(fixed.signs) @ vel   # pᵢ − pⱼ, vᵢ − vⱼ per pair
    unit, r, rdot, curv = _separation(m, dp, dv)
    # r̈ = curv + unit·(a_i − a_j) ≥ L   ⇔   −unit·a_i + unit·a_j ≤ curv − L; the row's norm is √2
    parts = [_Distances((cast(fixed.pair_coef)[:, :, None] * unit[:, None, :]).reshape(-1, 3 * n), curv,
                        cast(fixed.pair_norm), r - spec.separation, rdot, cast(fixed.pair_budget))]
    if cables is not None and spec.cable_separation > 0:
        parts.append(_cable_rows(m, spec, cables, m.ones(n, bool) if controlled is None else controlled))
    if cables is not None and spec.tan_cable_angle > 0:
        parts.append(_angle_rows(m, spec, cables))
    # walls per axis: p − low (d̈ = a) and high − p (d̈ = −a), their rows in `fixed.a`
    walls = cast(fixed.walls)
    parts.append(_Distances(None, cast(fixed.wall_zero), cast(fixed.wall_one), walls @ pos.reshape(-1) + cast(fixed.wall_offset),
                            walls @ vel.reshape(-1), cast(fixed.wall_budget)))
    # every certified distance's least d̈ at once
    d, ddot, budget, drift, norm = (m.concatenate([getattr(x, k) for x in parts]) for k in ("d", "ddot", "budget", "drift", "norm"))
    least = _least_ddot(m, d, ddot, budget, spec.gain)
    return m.concatenate([x.a for x in parts[:-1]] + [cast(fixed.a)]), m.concatenate([(drift - least) / norm, cast(fixed.b)])


class _Distances(NamedTuple):
    """Rows a·x ≤ (drift − least d̈) / norm guarding distances d ≥ 0 closing at ḋ with a braking budget (`_least_ddot`);
    `a` is already divided by `norm`."""
    a: Any
    drift: Any
    norm: Any
    d: Any
    ddot: Any
    budget: Any


def cable_row_span(spec: MavBarrierSpec, n: int, cables: bool) -> tuple[int, int, int]:
    """(first, pair and hook rows, angle rows) of the cable rows in `rows`' output: the cable pairs (`pairs`
    order), the hooks (`hook_pairs` order), then the angles, contiguous."""
    p = n * (n - 1) // 2
    return p, (3 * p if cables and spec.cable_separation > 0 else 0), (n if cables and spec.tan_cable_angle > 0 else 0)


def _separation(m: Any, dp: Any, dv: Any) -> tuple[Any, Any, Any, Any]:
    """For separations dp (P, 3) changing at dv: the unit vectors, distances, their rates, and the part of the
    distance's second derivative that no acceleration causes ((|dv|² − ḋ²)/d)."""
    r = m.sqrt(_dot(dp, dp))
    safe_r = m.maximum(r, 1e-9)
    unit = dp / safe_r[:, None]
    rdot = _dot(unit, dv)
    return unit, r, rdot, (_dot(dv, dv) - rdot * rdot) / safe_r


def cable_kinematics(c: Cables) -> tuple[Any, Any, Any, Any, Any, Any]:
    """For every cable pair (`pairs` order): the unit vector between the closest points, their distance d, ḋ,
    the drift of d̈ (the part no MAV acceleration causes) and the weights (1 − s), (1 − t) of the two MAVs'
    accelerations in d̈ (numpy or jax.numpy).

    With Δx = xᵢ − xⱼ between the closest points (parameters z = (s, t)) and g = ½|Δx|², d = √(2 min g) has
    d̈ = (|Δẋ|² − ḋ² − g_zτᵀ H⁻¹ g_zτ)/d + unit·Δẍ over the free (not clamped) parameters, H = g_zz: the
    middle term is the closest points sliding along the cables (it only lowers d̈). Δẍ = (1 − s) aᵢ − (1 − t) aⱼ
    + s·ä_bottomᵢ − t·ä_bottomⱼ: the hooks move with their MAVs (the hook's lever arm's rotation is left out)."""
    p = len(pairs(c.top.shape[0])[0])
    return tuple(x[:p] for x in _pieces(c))


def _pieces(c: Cables) -> tuple[Any, Any, Any, Any, Any, Any]:
    """`cable_kinematics` then `hook_kinematics` in one pass (the rows' order)."""
    ends = _piece_ends(c.top.shape[0])
    m = xp(c.top)
    pts, vels = m.concatenate([c.top, c.bottom]), m.concatenate([c.top_vel, c.bottom_vel])
    acc = c.bottom_acc
    one = Cables(pts[ends[0]], vels[ends[0]], pts[ends[1]], vels[ends[1]], acc[ends[4]])
    two = Cables(pts[ends[2]], vels[ends[2]], pts[ends[3]], vels[ends[3]], acc[ends[5]])
    return _kinematics(one, two)


@functools.lru_cache(maxsize=32)
def _piece_ends(n: int) -> tuple[np.ndarray, ...]:
    """Indices into (tops; bottoms) of each piece's four ends, and its two cables: the cable pairs, then the
    hooks (a hook is a segment from the top to the top)."""
    iu, ju = pairs(n)
    hi, hj = hook_pairs(n)
    i, j = np.concatenate([iu, hi]), np.concatenate([ju, hj])
    return i, np.concatenate([iu + n, hi]), j, j + n, i, j


def hook_kinematics(c: Cables) -> tuple[Any, Any, Any, Any, Any, Any]:
    """As `cable_kinematics`, for each MAV's hook against each other cable (`hook_pairs` order): the
    point–segment distance, one piece of the cables' distance. The segment distance is a minimum over pieces
    whose closest points jump from one to another (near-parallel cables); a piece that closes fast while it is
    not the minimum is seen only by its own row."""
    p = len(pairs(c.top.shape[0])[0])
    return tuple(x[p:] for x in _pieces(c))


def _kinematics(one: Cables, two: Cables) -> tuple[Any, Any, Any, Any, Any, Any]:
    """`cable_kinematics` of the segments one[k] against two[k] (a segment may be a point: top == bottom)."""
    m = xp(one.top)
    s, t = closest_params(one.top, one.bottom, two.top, two.bottom)
    dot = _dot
    s_, t_ = s[:, None], t[:, None]
    dp = one.top * (1 - s_) + one.bottom * s_ - two.top * (1 - t_) - two.bottom * t_
    dv = one.top_vel * (1 - s_) + one.bottom_vel * s_ - two.top_vel * (1 - t_) - two.bottom_vel * t_
    unit, r, rdot, curv = _separation(m, dp, dv)
    d1, d2 = one.bottom - one.top, two.bottom - two.top
    v1, v2 = one.bottom_vel - one.top_vel, two.bottom_vel - two.top_vel
    free_s, free_t = (s > 1e-6) & (s < 1 - 1e-6), (t > 1e-6) & (t < 1 - 1e-6)
    gs = m.where(free_s, dot(dv, d1) + dot(dp, v1), 0.0)
    gt = m.where(free_t, -dot(dv, d2) - dot(dp, v2), 0.0)
    hss, htt = m.where(free_s, dot(d1, d1), 1.0), m.where(free_t, dot(d2, d2), 1.0)
    hst = m.where(free_s & free_t, -dot(d1, d2), 0.0)
    det = m.maximum(hss * htt - hst * hst, 0.01 * hss * htt)   # nearly parallel cables: an angle of ≥ 6° assumed
    slide = (htt * gs * gs - 2 * hst * gs * gt + hss * gt * gt) / det
    drift = curv - slide / m.maximum(r, 1e-9) + dot(unit, one.bottom_acc * s_ - two.bottom_acc * t_)
    return unit, r, rdot, drift, 1 - s, 1 - t


def _cable_rows(m: Any, spec: MavBarrierSpec, c: Cables, controlled: Any) -> "_Distances":
    """The cable pairs' rows and the hooks' rows (`cable_kinematics`, `hook_kinematics`), d̈ ≥ least; the
    braking budget scales with the larger weight (1 − s) among the commanded MAVs, so that one of them alone
    can brake."""
    n = c.top.shape[0]
    unit, r, rdot, drift, wi, wj = _pieces(c)
    i, j = _piece_ends(n)[4:]
    own = m.asarray(controlled, r.dtype)
    weight = m.maximum(m.maximum(wi * own[i], wj * own[j]), MIN_WEIGHT)
    # −wᵢ unit·aᵢ + wⱼ unit·aⱼ ≤ drift − least, scaled to unit norm
    one_i, one_j = _onehots(n)
    coef = -wi[:, None] * m.asarray(one_i, r.dtype) + wj[:, None] * m.asarray(one_j, r.dtype)
    # both closest points at the load's attachments: no MAV moves them, the load's shape keeps them apart (a
    # distance of FREE binds nothing)
    moved = wi + wj > 1e-6
    norm = m.where(moved, m.sqrt(wi * wi + wj * wj), 1.0)
    a = (coef[:, :, None] * unit[:, None, :]).reshape(-1, 3 * n) / norm[:, None]
    return _Distances(a, drift, norm, m.where(moved, r - spec.cable_separation, FREE), rdot,
                      BRAKE_SHARE * spec.max_acceleration * weight)


@functools.lru_cache(maxsize=32)
def _onehots(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(pieces, N) one-hot rows of each piece's two MAVs (`_piece_ends`)."""
    i, _, j, _, _, _ = _piece_ends(n)
    out = np.eye(n)[i], np.eye(n)[j]
    for x in out:
        x.flags.writeable = False
    return out


def cable_angle_gaps(spec: MavBarrierSpec, cables: Cables) -> Any:
    """(N,) each cable's distance d = tan θ_max·e_z − |e_xy| to the certified cone (m; ≥ 0 inside)."""
    m = xp(cables.top)
    e = cables.top - cables.bottom
    return spec.tan_cable_angle * e[:, 2] - m.sqrt(_dot(e[:, :2], e[:, :2]))


def _angle_rows(m: Any, spec: MavBarrierSpec, c: Cables) -> "_Distances":
    """One row per MAV keeping its cable within the certified angle of vertical (see the module docstring);
    braking budget a_brake, which one MAV has in any direction."""
    n = c.top.shape[0]
    e, ev = c.top - c.bottom, c.top_vel - c.bottom_vel
    tan = spec.tan_cable_angle
    flat = m.sqrt(_dot(e[:, :2], e[:, :2]))
    safe = m.maximum(flat, 1e-6)
    u = e[:, :2] / safe[:, None]
    flat_dot = _dot(u, ev[:, :2])
    curv = (_dot(ev[:, :2], ev[:, :2]) - flat_dot * flat_dot) / safe
    drift = -tan * c.bottom_acc[:, 2] + _dot(u, c.bottom_acc[:, :2]) - curv
    coef = m.concatenate([u, -tan * m.ones((n, 1), e.dtype)], -1)        # −(d̈'s coefficients on aᵢ)
    norm = math.sqrt(1 + tan * tan)
    a = (m.asarray(np.eye(n), e.dtype)[:, :, None] * coef[:, None, :]).reshape(n, 3 * n) / norm
    full = m.ones(n, e.dtype)
    return _Distances(a, drift, norm * full, tan * e[:, 2] - flat, tan * ev[:, 2] - flat_dot,
                      BRAKE_SHARE * spec.max_acceleration * full)


def soften(a: Any, b: Any, first: int, count: int) -> tuple[Any, Any]:
    """The rows [first, first + count) made soft: one slack column each (appended after the commands), whose
    value σ' costs like a command change, so σ'/√CABLE_SLACK_COST is the row's violation in m/s²; rows re-scaled
    to unit norm. Solve with the slacks' nominal at zero, and only where the rows held hard have no solution
    (a soft row always gives way by push / CABLE_SLACK_COST while a command pushes against it)."""
    m = xp(a)
    cols = m.zeros((a.shape[0], count), a.dtype)
    idx = np.arange(count)
    scale = -1.0 / math.sqrt(CABLE_SLACK_COST)
    if m is np:
        cols[first + idx, idx] = scale
    else:
        cols = cols.at[first + idx, idx].set(scale)
    a = m.concatenate([a, cols], 1)
    norm = m.sqrt(_dot(a, a))
    norm = m.where(norm > 1e-9, norm, 1.0)
    return a / norm[:, None], b / norm


class _Fixed(NamedTuple):
    signs: np.ndarray        # (P, N): +1 at i, −1 at j for each pair i < j
    pair_coef: np.ndarray    # (P, N): −signs / √2, a pair row's coefficient on each MAV's unit vector
    pair_norm: np.ndarray    # (P,): √2
    pair_budget: np.ndarray  # (P,): a_brake
    walls: np.ndarray        # (6N, 3N): wall distances = walls @ p + wall_offset (p − low, then high − p)
    wall_offset: np.ndarray  # (6N,)
    wall_zero: np.ndarray    # (6N,): a wall's drift
    wall_one: np.ndarray     # (6N,): a wall row's norm
    wall_budget: np.ndarray  # (6N,): a_brake
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
    brake = BRAKE_SHARE * spec.max_acceleration
    npair = len(iu)
    out = _Fixed(signs, -signs / math.sqrt(2), np.full(npair, math.sqrt(2)), np.full(npair, brake), walls, offset,
                 np.zeros(6 * n), np.ones(6 * n), np.full(6 * n, brake), a, b)
    for x in out:
        x.flags.writeable = False
    return out


def barriers(spec: MavBarrierSpec, pos: Any, cables: Cables | None = None) -> dict[str, Any]:
    """The certified quantities (≥ 0 means inside): closest MAV pair distance minus the separation, the
    smallest distance to the certified box and, with `cables`, the closest cable pair's distance minus the
    certified cable separation and the smallest distance to the certified cable-angle cone."""
    m = xp(pos)
    iu, ju = pairs(pos.shape[0])
    gap = m.min(m.linalg.norm(pos[iu] - pos[ju], axis=-1)) - spec.separation if iu.size else m.asarray(np.inf)
    box = m.minimum(m.min(pos - m.asarray(spec.low)), m.min(m.asarray(spec.high) - pos))
    out = {"separation": gap, "box": box}
    if cables is not None:
        out["cables"] = m.min(cable_gaps(cables)) - spec.cable_separation if iu.size else m.asarray(np.inf)
        out["cable_angle"] = m.min(cable_angle_gaps(spec, cables))
    return out


def restrict(a: np.ndarray, b: np.ndarray, controlled: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy: the rows for the controlled MAVs only, the others' accelerations fixed at `others` (N, 3)
    (zero for stopped MAVs: obstacles) and moved to the right-hand side. Rows that only involved fixed
    MAVs say nothing about the controlled ones and are dropped; the third value says which rows were kept."""
    cols = np.repeat(controlled, 3)
    b = b - a[:, ~cols] @ others[~controlled].reshape(-1)
    a = a[:, cols]
    norm = np.sqrt(np.sum(a * a, -1))
    keep = norm > 1e-9
    return a[keep] / norm[keep, None], b[keep] / norm[keep], keep


class TeamFilter(NamedTuple):
    acc: np.ndarray | None   # (N_controlled, 3) safe accelerations, None when the QP has no solution
    status: str              # the solver's
    active: list[int]        # the active rows: pass as `warm` next time (same team, mask and cable rows)
    cable_slack: float       # m/s²: the largest violation the soft cable rows had to accept (0: all held exactly)
    conflict: list[int]      # rows (of `rows`) whose hard form had no common point: pass as `conflict` next time


PROOF_MARGIN = 1e-7   # m/s²: how far b·y must stay below 0 for rows to count as proven in conflict


def in_conflict(a: np.ndarray, b: np.ndarray, rows_: Sequence[int]) -> bool:
    """Whether the rows `rows_` of a x ≤ b provably have no common point (Farkas: some y ≥ 0 on them has
    aᵀy = 0 and b·y < 0; y is the least-squares solution of aᵀy = 0, Σy = 1, accepted only where it solves
    them to round-off). A cheap check (one small solve) that a previous call's conflict still holds."""
    ar = a[rows_]
    m = np.concatenate([ar.T, np.ones((1, len(rows_)))])
    rhs = np.zeros(m.shape[0])
    rhs[-1] = 1.0
    y = np.linalg.lstsq(m, rhs, rcond=None)[0]
    return bool(y.min() >= 0.0 and np.abs(m @ y - rhs).max() <= 1e-10 and b[rows_] @ y < -PROOF_MARGIN)


def filter_team(spec: MavBarrierSpec, pos: np.ndarray, vel: np.ndarray, a_nom: np.ndarray,
                controlled: np.ndarray | None = None, others: np.ndarray | None = None,
                warm: Sequence[int] = (), max_iter: int = 64, cables: Cables | None = None,
                conflict: Sequence[int] = ()) -> TeamFilter:
    """numpy: the controlled MAVs' (all by default) certified accelerations; None when the QP has no solution
    (the caller then holds and says so). With `cables`, the cable rows join as soft rows (held exactly unless
    they conflict with the hard rows: then a second solve with their slacks). Passing the previous
    call's active rows as `warm` (same team and mask) starts the solver there, as the ground filter does: a
    control loop then needs one or two iterations; passing its `conflict` skips the solve with every row held
    while the rows that proved the conflict still prove it (`in_conflict`: conflicts last for several calls,
    and finding one costs the solver four to six iterations)."""
    from marlstack.controllers.barrier import solve_qp
    n = pos.shape[0]
    controlled = np.ones(n, bool) if controlled is None else np.asarray(controlled, bool)
    cab = None if cables is None else Cables(*(np.asarray(x, np.float64) for x in cables))
    a, b = rows(spec, np.asarray(pos, np.float64), np.asarray(vel, np.float64), cab, controlled)
    first, npair, nangle = cable_row_span(spec, n, cab is not None)
    count = npair + nangle
    soft = np.zeros(len(b), bool)
    soft[first:first + count] = True
    kept = None   # which of `rows`' rows are left (all unless restricted)
    if not controlled.all():
        a, b, keep = restrict(a, b, controlled, np.zeros((n, 3)) if others is None else np.asarray(others, np.float64))
        soft, kept = soft[keep], np.flatnonzero(keep)
    nominal = np.asarray(a_nom, np.float64)[controlled].reshape(-1)
    count, slack = int(soft.sum()), 0.0
    proof = _renumber(conflict, kept) if count else None
    if proof is not None and proof.max() < b.size and in_conflict(a, b, proof):
        x, status = None, "infeasible"   # the previous call's conflict still holds: no need to find it again
    else:
        x, status, _, lam = solve_qp(a, b, nominal, max_iter, warm, farkas=bool(count))   # every row held
        proof = np.flatnonzero(lam > 0) if x is None and status == "infeasible" else None
    if x is None and count:   # the soft rows conflict with the hard ones (or the cap): they give way
        a, b = soften(a, b, int(np.argmax(soft)), count)   # the kept soft rows are contiguous: restrict keeps the order
        x, status, _, lam = solve_qp(a, b, np.concatenate([nominal, np.zeros(count)]), max_iter, warm)
        k = nominal.size
        slack = 0.0 if x is None else max(float(np.max(x[k:])) / math.sqrt(CABLE_SLACK_COST), 0.0)
        x = None if x is None else x[:k]
    conflict = [] if proof is None else (proof if kept is None else kept[proof]).tolist()
    return TeamFilter(None if x is None else x.reshape(-1, 3), status, np.flatnonzero(lam > 0).tolist(), slack,
                      conflict)


def _renumber(rows_: Sequence[int], kept: np.ndarray | None) -> np.ndarray | None:
    """Rows of `rows` (before the restriction) as indices of the kept rows; None if any was dropped or none given."""
    if not len(rows_):
        return None
    rows_ = np.asarray(rows_)
    if kept is None:
        return rows_
    at = np.searchsorted(kept, rows_)
    return at if np.all(at < kept.size) and np.array_equal(kept[np.minimum(at, kept.size - 1)], rows_) else None
