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
from marlstack.controllers.barrier import solve_qp

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


# x × y = (x ⊗ y) flattened @ _LEVI: the Levi-Civita symbol, (9, 3)
_LEVI = np.zeros((3, 3, 3))
_LEVI[1, 2, 0] = _LEVI[2, 0, 1] = _LEVI[0, 1, 2] = 1.0
_LEVI[2, 1, 0] = _LEVI[0, 2, 1] = _LEVI[1, 0, 2] = -1.0
_LEVI = _LEVI.reshape(9, 3)


def _cross(x: Any, y: Any) -> Any:
    """x × y over the last axis of (K, 3) rows (numpy or jax; numpy's `cross` costs ~15 µs on a 3-vector, this
    two calls)."""
    outer = x[:, :, None] * y[:, None, :]
    return outer.reshape(-1, 9) @ _LEVI


def closest_params(p1: Any, q1: Any, p2: Any, q2: Any) -> tuple[Any, Any]:
    """(s, t) in [0, 1] of the closest points p1 + s (q1 − p1) and p2 + t (q2 − p2) of two segments (any
    leading dims; numpy or jax.numpy); parallel or degenerate segments get a valid closest pair."""
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    return _closest(xp(p1, p2), _dot(d1, d1), _dot(d1, d2), _dot(d1, r), _dot(d2, d2), _dot(d2, r))


def _closest(m: Any, a: Any, b: Any, c: Any, e: Any, f: Any) -> tuple[Any, Any]:
    """`closest_params` from the segments' dot products: a = d1·d1, b = d1·d2, c = d1·r, e = d2·d2, f = d2·r."""
    a_, e_ = m.maximum(a, 1e-12), m.maximum(e, 1e-12)
    denom = a * e - b * b
    unit = lambda x: m.minimum(m.maximum(x, 0.0), 1.0)  # noqa: E731
    s = unit((b * f - c * e) / m.maximum(denom, 1e-12)) * (denom > 1e-12)   # parallel or degenerate: s = 0
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
    fixed, lay = _fixed_rows(spec, n), _layout(spec, n, cables is not None, None)
    cast = lambda x: m.asarray(x, pos.dtype)  # noqa: E731
    (unit, r, rdot, drift, wi, wj), table = _distances(m, pos, vel, cables, lay)
    own = m.ones(n, pos.dtype) if controlled is None else m.asarray(controlled, pos.dtype)
    # the larger authority (1 − s) among the commanded MAVs sets the braking budget: one of them alone can brake
    weight = m.maximum(m.maximum(wi * own[lay.mavs[:, 0]], wj * own[lay.mavs[:, 1]]), MIN_WEIGHT)
    moved = wi + wj > 1e-6
    norm = m.where(moved, m.sqrt(wi * wi + wj * wj), 1.0)
    # d̈ = drift + unit·(wᵢ aᵢ − wⱼ aⱼ) ≥ least  ⇔  −wᵢ unit·aᵢ + wⱼ unit·aⱼ ≤ drift − least, scaled to unit norm
    coef = -wi[:, None] * cast(lay.one_i) + wj[:, None] * cast(lay.one_j)
    parts = [_Distances((coef[:, :, None] * unit[:, None, :]).reshape(-1, 3 * n) / norm[:, None], drift, norm,
                        m.where(moved, r - cast(lay.clearance), FREE), rdot, BRAKE_SHARE * spec.max_acceleration * weight)]
    if cables is not None and spec.tan_cable_angle > 0:
        parts.append(_angle_rows(m, spec, table[n:2 * n] - table[2 * n:]))
    # walls per axis: p − low (d̈ = a) and high − p (d̈ = −a), their rows in `fixed.a`
    walls = cast(fixed.walls)
    parts.append(_Distances(None, cast(fixed.wall_zero), cast(fixed.wall_one), walls @ pos.reshape(-1) + cast(fixed.wall_offset),
                            walls @ vel.reshape(-1), cast(fixed.wall_budget)))
    return _assemble(m, spec, parts, cast(fixed.a), cast(fixed.b))


def _assemble(m: Any, spec: MavBarrierSpec, parts: list["_Distances"], fixed_a: Any, fixed_b: Any) -> tuple[Any, Any]:
    """Every certified distance's least d̈ at once, its rows (the last part's are in `fixed_a`), then the fixed rows."""
    d, ddot, budget, drift, norm = (m.concatenate([getattr(x, k) for x in parts]) for k in ("d", "ddot", "budget", "drift", "norm"))
    least = _least_ddot(m, d, ddot, budget, spec.gain)
    return m.concatenate([x.a for x in parts[:-1]] + [fixed_a]), m.concatenate([(drift - least) / norm, fixed_b])


def _own_rows(spec: MavBarrierSpec, pos: np.ndarray, vel: np.ndarray, me: int,
              cables: Cables | None) -> tuple[np.ndarray, np.ndarray, int, int]:
    """numpy: `rows` restricted to MAV `me`, the others' accelerations zero, as `restrict` gets them before it
    scales them (A (M, 3), b), built from the pieces `me` is part of only (what the onboard stage solves every
    period: a third of the rows at N = 3, and no restriction to pay for); with the soft rows' first and count."""
    lay, own = _layout(spec, pos.shape[0], cables is not None, me), _own_fixed(spec)
    (unit, r, rdot, drift, wi, wj), table = _distances(np, pos, vel, cables, lay)
    mine = np.where(lay.first, wi, wj)
    moved = wi + wj > 1e-6
    norm = np.where(moved, np.sqrt(wi * wi + wj * wj), 1.0)
    parts = [_Distances(((lay.sign * mine)[:, None] * unit) / norm[:, None], drift, norm,
                        np.where(moved, r - lay.clearance, FREE), rdot,
                        BRAKE_SHARE * spec.max_acceleration * np.maximum(mine, MIN_WEIGHT))]
    angles = int(cables is not None and spec.tan_cable_angle > 0)
    if angles:
        n = pos.shape[0]
        parts.append(_angle_rows(np, spec, table[n + me:n + me + 1] - table[2 * n + me:2 * n + me + 1]))
    parts.append(_Distances(None, own.wall_zero, own.wall_one, np.concatenate([pos[me] - own.low, own.high - pos[me]]),
                            np.concatenate([vel[me], -vel[me]]), own.wall_budget))
    a, b = _assemble(np, spec, parts, own.a, own.b)
    first = pos.shape[0] - 1   # the MAV pairs come first
    return a, b, first, len(unit) - first + angles


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


class _Layout(NamedTuple):
    """The distances `rows` certifies as pieces (two segments each): the MAV pairs (segments of length 0 at the
    MAVs), then, with the cables, the cable pairs and the hooks (`_piece_ends`)."""
    ends: np.ndarray        # (K, 4) into (positions; tops; bottoms) (`_ends_table`)
    mavs: np.ndarray        # (K, 2) the two MAVs of each piece
    clearance: np.ndarray   # (K,) the certified distance: `separation` or `cable_separation`
    one_i: np.ndarray       # (K, N) one-hot of each piece's first MAV
    one_j: np.ndarray       # (K, N) and of its second
    first: np.ndarray       # (K,) bool, with `me`: `me` is the piece's first MAV
    sign: np.ndarray        # (K,) with `me`: −1 where first, +1 where second (the sign of its coefficient)
    segments: bool          # cable pieces are among them (else MAV pairs only)


@functools.lru_cache(maxsize=64)
def _layout(spec: MavBarrierSpec, n: int, cables: bool, me: int | None) -> _Layout:
    """The pieces of a team of n (only those of MAV `me` if given), built once per team size."""
    iu, ju = pairs(n)
    ends, mavs = [np.stack([iu, iu, ju, ju], 1)], [np.stack([iu, ju], 1)]
    clearance, cable = [np.full(len(iu), spec.separation)], [np.zeros(len(iu), bool)]
    if cables and spec.cable_separation > 0:
        piece_ends, piece_cables = _piece_ends(n)
        ends, mavs = ends + [piece_ends + n], mavs + [piece_cables]
        clearance.append(np.full(len(piece_ends), spec.cable_separation))
        cable.append(np.ones(len(piece_ends), bool))
    ends, mavs, clearance, cable = (np.concatenate(x) for x in (ends, mavs, clearance, cable))
    if me is not None:
        sel = (mavs == me).any(1)
        ends, mavs, clearance, cable = ends[sel], mavs[sel], clearance[sel], cable[sel]
    first = mavs[:, 0] == (-1 if me is None else me)
    out = _Layout(ends, mavs, clearance, np.eye(n)[mavs[:, 0]], np.eye(n)[mavs[:, 1]], first,
                  np.where(first, -1.0, 1.0), bool(cable.any()))
    for x in out[:-1]:
        x.flags.writeable = False
    return out


def _distances(m: Any, pos: Any, vel: Any, cables: Cables | None,
               lay: _Layout) -> tuple[tuple[Any, Any, Any, Any, Any, Any], Any]:
    """`_kinematics` of every piece of `lay`, and with `cables` the ends' table (`_ends_table`: MAVs, tops,
    bottoms)."""
    table = None
    if cables is not None:
        still = m.zeros_like(pos)
        table = _ends_table(m, [pos, cables.top, cables.bottom], [vel, cables.top_vel, cables.bottom_vel],
                            [still, still, cables.bottom_acc])
    if not lay.segments:   # MAV pairs only: two points each, no closest points to find
        dp, dv = pos[lay.mavs[:, 0]] - pos[lay.mavs[:, 1]], vel[lay.mavs[:, 0]] - vel[lay.mavs[:, 1]]
        r = m.sqrt(_dot(dp, dp))
        safe_r = m.maximum(r, 1e-9)
        unit = dp / safe_r[:, None]
        rdot = _dot(unit, dv)
        one = m.ones_like(r)
        return (unit, r, rdot, (_dot(dv, dv) - rdot * rdot) / safe_r, one, one), table
    return _kinematics(m, table[lay.ends]), table


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
    m = xp(c.top)
    table = _ends_table(m, [c.top, c.bottom], [c.top_vel, c.bottom_vel], [m.zeros_like(c.bottom_acc), c.bottom_acc])
    return _kinematics(m, table[_piece_ends(c.top.shape[0])[0]])


def _ends_table(m: Any, pos: list, vel: list, acc: list) -> Any:
    """(points, 9): each point's position, velocity and the acceleration the rows assume for it (`_kinematics`)."""
    return m.concatenate([m.concatenate(pos), m.concatenate(vel), m.concatenate(acc)], -1)


@functools.lru_cache(maxsize=32)
def _piece_ends(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each piece's four ends (top, bottom of one; top, bottom of two) as indices into (tops; bottoms), (K, 4),
    and its two cables (K, 2): the cable pairs, then the hooks (a hook is a segment from the top to the top)."""
    iu, ju = pairs(n)
    hi, hj = hook_pairs(n)
    i, j = np.concatenate([iu, hi]), np.concatenate([ju, hj])
    out = np.stack([i, np.concatenate([iu + n, hi]), j, j + n], 1), np.stack([i, j], 1)
    for x in out:
        x.flags.writeable = False
    return out


def hook_kinematics(c: Cables) -> tuple[Any, Any, Any, Any, Any, Any]:
    """As `cable_kinematics`, for each MAV's hook against each other cable (`hook_pairs` order): the
    point–segment distance, one piece of the cables' distance. The segment distance is a minimum over pieces
    whose closest points jump from one to another (near-parallel cables); a piece that closes fast while it is
    not the minimum is seen only by its own row."""
    p = len(pairs(c.top.shape[0])[0])
    return tuple(x[p:] for x in _pieces(c))


# (d1, d2, r) = (q1 − p1, q2 − p2, p1 − p2) of the ends (p1, q1, p2, q2)
_SEGMENTS = np.array([[-1.0, 1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 1.0], [1.0, 0.0, -1.0, 0.0]])


def _kinematics(m: Any, ends: Any) -> tuple[Any, Any, Any, Any, Any, Any]:
    """`cable_kinematics` of segments k given their ends (K, 4, 9) (top, bottom of one; top, bottom of two; a
    segment may be a point: top == bottom), each end's position | velocity | assumed acceleration (zero but at
    the load's attachments). Every product comes from a few batched matrix products: the onboard stage's cost is
    the number of numpy calls, not flops."""
    x = m.asarray(_SEGMENTS, ends.dtype) @ ends           # (K, 3, 9): d1, d2, r of positions | velocities | accelerations
    d = x[:, :, :3]
    g = d @ m.swapaxes(d, 1, 2)
    s, t = _closest(m, g[:, 0, 0], g[:, 0, 1], g[:, 0, 2], g[:, 1, 1], g[:, 1, 2])
    # r + s d1 − t d2: the closest points' difference dp | its rate dv | s äᵢ − t äⱼ
    y = (m.concatenate([s[:, None], -t[:, None], m.ones_like(s)[:, None]], 1)[:, None, :] @ x)[:, 0]
    dp = y[:, :3]
    both = y[:, None, :6].reshape(-1, 2, 3)                 # dp, dv
    h = both @ m.swapaxes(m.concatenate([both, d[:, :2], x[:, :2, 3:6], y[:, None, 6:]], 1), 1, 2)   # against dp, dv, d1, d2, v1, v2, ä
    r = m.sqrt(h[:, 0, 0])
    safe_r = m.maximum(r, 1e-9)
    rdot = h[:, 0, 1] / safe_r
    curv = (h[:, 1, 1] - rdot * rdot) / safe_r
    free_s, free_t = (s > 1e-6) & (s < 1 - 1e-6), (t > 1e-6) & (t < 1 - 1e-6)
    gs = m.where(free_s, h[:, 1, 2] + h[:, 0, 4], 0.0)
    gt = m.where(free_t, -h[:, 1, 3] - h[:, 0, 5], 0.0)
    hss, htt = m.where(free_s, g[:, 0, 0], 1.0), m.where(free_t, g[:, 1, 1], 1.0)
    hst = m.where(free_s & free_t, -g[:, 0, 1], 0.0)
    det = m.maximum(hss * htt - hst * hst, 0.01 * hss * htt)   # nearly parallel cables: an angle of ≥ 6° assumed
    slide = (htt * gs * gs - 2 * hst * gs * gt + hss * gt * gt) / det
    return dp / safe_r[:, None], r, rdot, curv + (h[:, 0, 6] - slide) / safe_r, 1 - s, 1 - t


def cable_angle_gaps(spec: MavBarrierSpec, cables: Cables) -> Any:
    """(N,) each cable's distance d = tan θ_max·e_z − |e_xy| to the certified cone (m; ≥ 0 inside)."""
    m = xp(cables.top)
    e = cables.top - cables.bottom
    return spec.tan_cable_angle * e[:, 2] - m.sqrt(_dot(e[:, :2], e[:, :2]))


def _angle_rows(m: Any, spec: MavBarrierSpec, x: Any) -> "_Distances":
    """One row per cable keeping it within the certified angle of vertical (see the module docstring), given each
    cable's top minus bottom in `_ends_table` (K, 9): e | ė | −ä_bottom; braking budget a_brake, which one MAV
    has in any direction."""
    k = x.shape[0]
    tan = spec.tan_cable_angle
    flat_part = x.reshape(k, 3, 3)[:, :, :2]                        # e_xy, ė_xy, −ä_xy
    g = flat_part[:, :2] @ m.swapaxes(flat_part, 1, 2)            # e_xy and ė_xy against all three
    flat = m.sqrt(g[:, 0, 0])
    safe = m.maximum(flat, 1e-6)
    flat_dot = g[:, 0, 1] / safe
    curv = (g[:, 1, 1] - flat_dot * flat_dot) / safe
    drift = tan * x[:, 8] - g[:, 0, 2] / safe - curv
    coef = m.concatenate([flat_part[:, 0] / safe[:, None], -tan * m.ones((k, 1), x.dtype)], -1)   # −(d̈'s coefficients on aᵢ)
    norm = math.sqrt(1 + tan * tan)
    a = (coef if k == 1 else (m.asarray(np.eye(k), x.dtype)[:, :, None] * coef[:, None, :]).reshape(k, 3 * k)) / norm
    full = m.ones(k, x.dtype)
    return _Distances(a, drift, norm * full, tan * x[:, 2] - flat, tan * x[:, 5] - flat_dot,
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
    walls: np.ndarray        # (6N, 3N): wall distances = walls @ p + wall_offset (p − low, then high − p)
    wall_offset: np.ndarray  # (6N,)
    wall_zero: np.ndarray    # (6N,): a wall's drift
    wall_one: np.ndarray     # (6N,): a wall row's norm
    wall_budget: np.ndarray  # (6N,): a_brake
    a: np.ndarray            # wall rows (−walls), limit rows (I, −I) and tilt rows, unit norm
    b: np.ndarray            # the limit and tilt rows' bounds


def _readonly(x: NamedTuple) -> NamedTuple:
    for v in x:
        v.flags.writeable = False
    return x


@functools.lru_cache(maxsize=32)
def _fixed_rows(spec: MavBarrierSpec, n: int) -> _Fixed:
    """What does not depend on the state, built once per team size: the wall maps, the wall rows, the limits
    |a| ≤ max_acceleration per axis and the tilt planes c·a_xy − tan·a_z ≤ tan·g."""
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
    return _readonly(_Fixed(walls, offset, np.zeros(6 * n), np.ones(6 * n),
                            np.full(6 * n, BRAKE_SHARE * spec.max_acceleration), a, b))


class _OwnFixed(NamedTuple):
    low: np.ndarray          # (3,) the certified box
    high: np.ndarray
    wall_zero: np.ndarray    # (6,)
    wall_one: np.ndarray     # (6,)
    wall_budget: np.ndarray  # (6,)
    a: np.ndarray            # one MAV's wall, limit and tilt rows (26, 3): `_fixed_rows`' for one MAV
    b: np.ndarray            # its limit and tilt rows' bounds (14,)


@functools.lru_cache(maxsize=32)
def _own_fixed(spec: MavBarrierSpec) -> _OwnFixed:
    """`_fixed_rows` of one MAV (`_own_rows`)."""
    team = _fixed_rows(spec, 1)
    return _readonly(_OwnFixed(np.asarray(spec.low), np.asarray(spec.high), team.wall_zero, team.wall_one,
                               team.wall_budget, team.a, team.b))


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
    return _unit_rows(a[:, cols], b - a[:, ~cols] @ others[~controlled].reshape(-1))


def _unit_rows(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows scaled to unit norm, those without a coefficient left dropped, and which were kept."""
    norm = np.sqrt(np.sum(a * a, -1))
    keep = norm > 1e-9
    if keep.all():
        return a / norm[:, None], b / norm, keep
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
    n = pos.shape[0]
    controlled = np.ones(n, bool) if controlled is None else np.asarray(controlled, bool)
    cab = None if cables is None else Cables(*(np.asarray(x, np.float64) for x in cables))
    pos, vel = np.asarray(pos, np.float64), np.asarray(vel, np.float64)
    keep = None   # which rows are left (all unless restricted); with one MAV commanded, rows of `_own_rows`
    if np.count_nonzero(controlled) == 1 and (others is None or not np.asarray(others).any()):   # the onboard stage's case
        a, b, first, count = _own_rows(spec, pos, vel, int(np.argmax(controlled)), cab)
        a, b, keep = _unit_rows(a, b)
    else:
        a, b = rows(spec, pos, vel, cab, controlled)
        first, npair, nangle = cable_row_span(spec, n, cab is not None)
        count = npair + nangle
        if not controlled.all():
            a, b, keep = restrict(a, b, controlled, np.zeros((n, 3)) if others is None else np.asarray(others, np.float64))
    soft = np.zeros(len(b) if keep is None else len(keep), bool)
    soft[first:first + count] = True
    kept = None if keep is None or keep.all() else np.flatnonzero(keep)
    if kept is not None:
        soft = soft[keep]
    nominal = np.asarray(a_nom, np.float64)[controlled].reshape(-1)
    count, slack = int(np.count_nonzero(soft)), 0.0
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
    return TeamFilter(None if x is None else x.reshape(-1, 3), status, (lam > 0).nonzero()[0].tolist(), slack, conflict)


def _renumber(rows_: Sequence[int], kept: np.ndarray | None) -> np.ndarray | None:
    """Rows of `rows` (before the restriction) as indices of the kept rows; None if any was dropped or none given."""
    if not len(rows_):
        return None
    rows_ = np.asarray(rows_)
    if kept is None:
        return rows_
    at = np.searchsorted(kept, rows_)
    return at if np.all(at < kept.size) and np.array_equal(kept[np.minimum(at, kept.size - 1)], rows_) else None
