"""The barrier-certificate QP, built once for numpy (deployment) and jax.numpy (training).

Every form filters single-integrator velocities u (N, 2) of the *barrier points*: the robot
centres for single integrators, the projection points p + d·(cos θ, sin θ) for unicycles
(rps's diffeomorphism). The QP is

    minimise ‖u − û‖²   subject to   A u ≤ b,

with rows (each scaled to unit norm, which leaves the solution unchanged):

* pairs      h = ‖pᵢ − pⱼ‖² − D²,  ḣ ≥ −γ h³      ⇔  −2(pᵢ−pⱼ)·(uᵢ−uⱼ) ≤ γ h³
* walls      (walled forms) e.g. top: u_y ≤ wall_gain·γ·(y_max − D/2 − y)³, likewise per wall
* obstacles  (optional points o with velocity v_o)  −2(pᵢ−o)·uᵢ ≤ γ h³ − 2(pᵢ−o)·v_o
* boxes      (static axis-aligned boxes of the spec, e.g. shelves) the wall rule around a box:
             h = ‖pᵢ − cᵢ‖ − D/2 with cᵢ the box's point nearest pᵢ, n = (pᵢ − cᵢ)/‖pᵢ − cᵢ‖,
             −n·uᵢ ≤ wall_gain·γ·h³ (the distance to a convex set is convex with gradient n, so a
             held command cannot cross the margin in one step either: docs/barrier.md); inside a
             box, the signed distance through its nearest face, like a robot beyond a wall
* limits     (unicycle forms) the profile's actuator limits as linear rows in u:
             'wheel' saturation → |ω_left|, |ω_right| ≤ max_wheel_speed;
             'unicycle' saturation → |v| ≤ max_linear_speed, |ω| ≤ max_angular_speed.

D is rps's pair distance: safety_radius for single integrators and safety_radius +
projection_distance for unicycles (rps adds d when it builds the unicycle certificate).
u = 0 satisfies every row whenever the fleet is in its safe set, so the QP is feasible there.
û is the nominal command as the robot would execute it (`nominal`): saturated for unicycles,
scaled to ‖ûᵢ‖ ≤ max_linear_speed for single integrators (as rps does).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Any

import numpy as np

from marlstack.controllers.arrays import xp
from marlstack.controllers.unicycle import saturate, si_to_uni, uni_to_si, uni_to_si_states

FORMS = ("unicycle", "unicycle_walls", "single_integrator", "single_integrator_walls")


@dataclasses.dataclass(frozen=True)
class BarrierSpec:
    """Everything the QP needs, taken from a vehicle profile; hashable (a jit static argument)."""
    form: str
    gamma: float
    distance: float                 # pair distance D between barrier points
    projection_distance: float      # 0 for single integrators
    walls: tuple[float, float, float, float] | None   # (x_min, x_max, y_min, y_max) or None
    wall_gain: float
    saturation: str                 # 'wheel' | 'unicycle'
    max_linear_speed: float
    max_angular_speed: float
    max_wheel_speed: float
    wheel_radius: float
    base_length: float
    boxes: tuple[tuple[float, float, float, float], ...] = ()   # static obstacles (x_min, x_max, y_min, y_max)

    @property
    def unicycle(self) -> bool:
        return self.projection_distance > 0


def barrier_spec(profile: Any, form: str = "unicycle_walls", lookahead_s: float = 0.0,
                 boxes: Any = ()) -> BarrierSpec:
    """The QP parameters of `form` from a GroundProfile; raises ValueError on an unknown form.

    boxes: static axis-aligned obstacles (x_min, x_max, y_min, y_max) in m (a scenario's shelves,
    a deployment's fixed furniture): every barrier point keeps the wall margin D/2 from each.

    lookahead_s: the time from a pose's measurement to the end of the control period its command
    is held for (sense-to-actuate delay + one period). The pair distance grows by what two barrier
    points can close in that time at their top speed (2·v_bp·lookahead_s; the wall margin D/2 by
    one robot's share), so the condition certified on the measured poses holds for the true ones
    (docs/barrier.md, "Discrete time and delay"). 0 (default): rps's continuous-time certificate."""
    if form not in FORMS:
        raise ValueError(f"unknown barrier form {form!r}; choose one of {', '.join(FORMS)}")
    unicycle = form.startswith("unicycle")
    params = getattr(profile.barrier, "unicycle_walls" if form == "unicycle_walls" else
                     "unicycle" if unicycle else "single_integrator")
    d = params.projection_distance if unicycle else 0.0
    if unicycle and d <= 0:
        raise ValueError(f"profile {profile.name!r}: barrier form {form!r} needs projection_distance > 0")
    if not lookahead_s >= 0:
        raise ValueError(f"lookahead_s must be >= 0, got {lookahead_s}")
    boxes = checked_boxes(boxes)
    a = profile.arena
    reach = 2.0 * math.hypot(profile.max_linear_speed, d * profile.max_angular_speed) * lookahead_s
    return BarrierSpec(
        form=form, gamma=params.gamma, distance=params.safety_radius + d + reach, projection_distance=d,
        walls=(a.x_min, a.x_max, a.y_min, a.y_max) if form.endswith("walls") else None,
        wall_gain=profile.barrier.wall_gain, saturation=profile.saturation,
        max_linear_speed=profile.max_linear_speed, max_angular_speed=profile.max_angular_speed,
        max_wheel_speed=profile.max_wheel_speed, wheel_radius=profile.wheel_radius,
        base_length=profile.base_length, boxes=boxes)


def checked_boxes(boxes: Any) -> tuple[tuple[float, float, float, float], ...]:
    """Boxes as hashable float tuples; ValueError naming the bad one (not 4 finite numbers, min > max)."""
    out = []
    for k, box in enumerate(() if boxes is None else boxes):
        values = tuple(float(v) for v in np.asarray(box, float).reshape(-1))
        if len(values) != 4 or not all(map(math.isfinite, values)) or values[0] > values[1] or values[2] > values[3]:
            raise ValueError(f"obstacle box {k} must be (x_min, x_max, y_min, y_max) with min <= max, got {box!r}")
        out.append(values)
    return tuple(out)


@functools.lru_cache(maxsize=64)
def pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Robot index pairs (i < j) in rps's row order."""
    ij = np.array(list(itertools.combinations(range(n), 2)), dtype=np.int32).reshape(-1, 2)
    return ij[:, 0], ij[:, 1]


@functools.lru_cache(maxsize=64)
def _structure(spec: BarrierSpec, n: int) -> dict[str, np.ndarray]:
    """Position-independent parts of the rows, computed once per (form, fleet size)."""
    i, j = pairs(n)
    eye = np.eye(n)
    dirs = np.array([[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0]])
    g = _limit_rows(spec)
    return {"pair_sign": (eye[i] - eye[j])[:, :, None], "eye": eye,
            "walls": (eye[:, None, :, None] * dirs[None, :, None, :]).reshape(4 * n, n, 2),
            "limits_v": g[:, :1], "limits_w": g[:, 1:] / max(spec.projection_distance, 1e-12) * np.array([-1.0, 1.0])}


def row_robots(spec: BarrierSpec, n: int, num_obstacles: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """For each row of `qp_rows`, the (first, second) robot it involves (equal for one-robot rows)."""
    i, j = pairs(n)
    one = [np.repeat(np.arange(n), num_obstacles), np.repeat(np.arange(n), len(spec.boxes))]
    if spec.walls is not None:
        one.append(np.repeat(np.arange(n), 4))
    if spec.unicycle:
        one.append(np.repeat(np.arange(n), 4))
    single = np.concatenate(one).astype(np.int32)
    return np.concatenate([i, single]), np.concatenate([j, single])


def barrier_points(spec: BarrierSpec, poses: Any) -> Any:
    """(N, 3) poses (or (N, 2) positions for single integrators) → (N, 2) barrier points."""
    if spec.unicycle:
        return uni_to_si_states(poses, spec.projection_distance)
    return poses[..., :2]


def nominal(spec: BarrierSpec, u: Any) -> Any:
    """The nominal command as the robot would execute it: unicycles saturate like the profile
    says (rps 2.1: per wheel); single integrators scale to ‖uᵢ‖ ≤ max_linear_speed (as rps).

    Filtering this rather than the raw command matters: projecting an over-limit command onto
    the limit rows in the barrier's metric would drop its turn rate (ω is weighted by d²).
    """
    m = xp(u)
    if spec.unicycle:
        return m.stack(saturate(u[..., 0], u[..., 1], spec), axis=-1)
    norm = m.sqrt(m.sum(u * u, axis=-1, keepdims=True))
    return u * m.minimum(1.0, spec.max_linear_speed / m.maximum(norm, 1e-12))


def nominal_si(spec: BarrierSpec, poses: Any, u: Any) -> Any:
    """`nominal(u)` as barrier-point velocities (unicycles: through the projection point)."""
    un = nominal(spec, u)
    return uni_to_si(un, poses, spec.projection_distance) if spec.unicycle else un


def command(spec: BarrierSpec, poses: Any, u_si: Any) -> Any:
    """Barrier-point velocities → the robot's command ((v, ω) for unicycles)."""
    return si_to_uni(u_si, poses, spec.projection_distance) if spec.unicycle else u_si


_WALL_AXIS = np.array([1, 1, 0, 0])            # top, bottom, right, left: the coordinate each wall bounds
_WALL_SIGN = np.array([-1.0, 1.0, -1.0, 1.0])


def _wall_distances(spec: BarrierSpec, p: Any) -> Any:
    """(N, 4) distances of the barrier points to the wall margins (top, bottom, right, left)."""
    x_min, x_max, y_min, y_max = spec.walls
    c = spec.distance / 2
    return p[:, _WALL_AXIS] * _WALL_SIGN + np.array([y_max - c, -y_min - c, x_max - c, -x_min - c])


def box_normals(spec: BarrierSpec, p: Any) -> tuple[Any, Any]:
    """(N, B, 2) unit normals n pointing from each box towards each barrier point and (N, B) the signed
    distances (the wall rule's h + D/2): outside, from the box's nearest point; inside (negative),
    through the nearest face, as a wall's row pushes a robot back in."""
    m = xp(p)
    box = np.asarray(spec.boxes, p.dtype)                                 # (B, 4)
    lo, hi = box[:, [0, 2]], box[:, [1, 3]]
    q = p[:, None, :]
    gap = q - m.clip(q, lo[None], hi[None])
    dist = m.sqrt(m.sum(gap * gap, axis=-1))
    depth = m.concatenate([q - lo[None], hi[None] - q], axis=-1)          # (N, B, 4): x_min, y_min, x_max, y_max faces
    face = m.argmin(depth, axis=-1)
    faces = np.array([[-1.0, 0.0], [0.0, -1.0], [1.0, 0.0], [0.0, 1.0]], p.dtype)
    outside = dist > 0
    normal = m.where(outside[..., None], gap / m.where(outside, dist, 1.0)[..., None], m.asarray(faces)[face])
    return normal, m.where(outside, dist, -m.min(depth, axis=-1))


def _limit_rows(spec: BarrierSpec) -> np.ndarray:
    """(4, 2) rows g with g·(v, ω) ≤ 1: the profile's actuator box as half-planes."""
    if spec.saturation == "wheel":
        r, l = spec.wheel_radius, spec.base_length
        g = np.array([[1, -l / 2], [1, l / 2]]) / r            # left, right wheel speed
        lim = spec.max_wheel_speed
        return np.concatenate([g, -g]) / lim
    g = np.array([[1 / spec.max_linear_speed, 0.0], [0.0, 1 / spec.max_angular_speed]])
    return np.concatenate([g, -g])


def _unit(coef: Any, bound: Any) -> tuple[Any, Any]:
    """Scale rows given by their (..., 2) coefficient on one robot to unit norm; a row touching two
    robots (±coef) has norm √2·‖coef‖, so pass coef·√2 for those. Zero rows keep coefficient 0
    and get a bound of ±1e12·b, so a violated zero row (robots on one spot) stays infeasible."""
    m = xp(coef, bound)
    scale = 1.0 / m.maximum(m.sqrt(m.sum(coef * coef, axis=-1)), 1e-12)
    return coef * scale[..., None], bound * scale


def qp_rows(spec: BarrierSpec, poses: Any, obstacles: Any = None, obstacle_velocities: Any = None,
            obstacle_margins: Any = None) -> tuple[Any, Any]:
    """Constraint rows A (M, N, 2) and bounds b (M,) at `poses`, each row scaled to unit norm.

    obstacle_margins: optional (K,) extra distance (m) kept from each obstacle point on top of the
    pair distance D (an aged neighbour pose: how far it may have moved since it was measured).

    Row order: pairs (rps order), obstacles (robot-major), boxes (robot-major), walls (top, bottom, right, left per
    robot), limits (4 per robot). Works for numpy and jax.numpy alike.
    """
    m = xp(poses, obstacles)
    n = poses.shape[-2]
    p = barrier_points(spec, poses)
    const = _structure(spec, n)
    eye = const["eye"]
    blocks, bounds = [], []
    if n > 1:
        i, j = pairs(n)
        diff = p[i] - p[j]
        h = m.sum(diff * diff, axis=-1) - spec.distance ** 2
        coef, bound = _unit(-2.0 * math.sqrt(2.0) * diff, spec.gamma * h ** 3)
        blocks.append(const["pair_sign"] * (coef / math.sqrt(2.0))[:, None, :])
        bounds.append(bound)
    if obstacles is not None and obstacles.shape[0] > 0:
        k = obstacles.shape[0]
        diff = p[:, None, :] - obstacles[None, :, :]                         # (N, K, 2)
        reach = spec.distance if obstacle_margins is None else spec.distance + obstacle_margins[None, :]
        h = m.sum(diff * diff, axis=-1) - reach ** 2
        vel = m.zeros_like(obstacles) if obstacle_velocities is None else obstacle_velocities
        coef, bound = _unit(-2.0 * diff, spec.gamma * h ** 3 - 2.0 * m.sum(diff * vel[None], axis=-1))
        blocks.append((eye[:, None, :, None] * coef[:, :, None, :]).reshape(n * k, n, 2))
        bounds.append(bound.reshape(n * k))
    if spec.boxes:
        nb = len(spec.boxes)
        normal, dist = box_normals(spec, p)
        h = dist - spec.distance / 2
        blocks.append((eye[:, None, :, None] * -normal[:, :, None, :]).reshape(n * nb, n, 2))
        bounds.append((spec.wall_gain * spec.gamma * h ** 3).reshape(n * nb))
    if spec.walls is not None:
        blocks.append(const["walls"])
        bounds.append((spec.wall_gain * spec.gamma * _wall_distances(spec, p) ** 3).reshape(4 * n))
    if spec.unicycle:
        th = poses[:, 2:3]
        cs = m.concatenate([m.cos(th), m.sin(th)], axis=-1)                 # (N, 2)
        # (v, ω) = T u with T = [[c, s], [-s/d, c/d]], so a row g on (v, ω) is g·T on u:
        # g_v·(c, s) + (g_ω/d)·(−s, c)
        gu = const["limits_v"] * cs[:, None, :] + const["limits_w"] * cs[:, None, ::-1]   # (N, 4, 2)
        coef, bound = _unit(gu, m.ones((n, 4), dtype=p.dtype))
        blocks.append((eye[:, None, :, None] * coef[:, :, None, :]).reshape(4 * n, n, 2))
        bounds.append(bound.reshape(4 * n))
    if not blocks:
        return m.zeros((0, n, 2), dtype=p.dtype), m.zeros((0,), dtype=p.dtype)
    return m.concatenate(blocks, axis=0), m.concatenate(bounds, axis=0)


def fix_robots(a: Any, b: Any, active: Any) -> tuple[Any, Any]:
    """Rows (M, N, 2), bounds (M,) of `qp_rows` with the robots outside `active` (N,) fixed at zero
    velocity: their coefficients are dropped and each row re-scaled to unit norm, so a pair with
    one stopped robot becomes that robot's obstacle row (the moving one takes the whole
    avoidance) and rows of stopped robots only become empty (coefficient 0, bound 1: never
    binding). The numpy filter's `controlled` mask with zero obstacle velocities is the same QP."""
    m = xp(a, b)
    a = a * m.asarray(active, dtype=a.dtype)[None, :, None]
    norm = m.sqrt(m.sum(a * a, axis=(1, 2)))
    empty = norm < 1e-12
    scale = 1.0 / m.where(empty, 1.0, norm)
    return a * scale[:, None, None], m.where(empty, 1.0, b * scale)


def min_barrier(spec: BarrierSpec, poses: Any, obstacles: Any = None) -> Any:
    """Smallest barrier value at `poses` (< 0: unsafe): pairs and obstacle points ‖pᵢ − o‖² − D²
    (m²) and, for walled forms and boxes, each barrier point's distance to its wall / box margin (m)."""
    m = xp(poses, obstacles)
    p = barrier_points(spec, poses)
    n = p.shape[-2]
    vals = [m.full((1,), m.inf, dtype=p.dtype)]
    if n > 1:
        i, j = pairs(n)
        diff = p[i] - p[j]
        vals.append(m.sum(diff * diff, axis=-1) - spec.distance ** 2)
    if obstacles is not None and obstacles.shape[0] > 0:
        diff = p[:, None, :] - obstacles[None, :, :]
        vals.append((m.sum(diff * diff, axis=-1) - spec.distance ** 2).reshape(-1))
    if spec.boxes:
        vals.append((box_normals(spec, p)[1] - spec.distance / 2).reshape(-1))
    if spec.walls is not None:
        vals.append(_wall_distances(spec, p).reshape(-1))
    return m.min(m.concatenate(vals))
