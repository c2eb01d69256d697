"""Navigation: every robot drives to its own goal without colliding.

`sense` extracts the raw per-robot tensors (physical units, world frame) a real robot would
receive; `observe` turns them into the policy's input vector. `observe` is the one observation
function: the exported ONNX graph contains it, so it uses only ops jax2onnx exports (trig,
elementwise, argmin rounds or top-k + gather, static slices; no loops, no dynamic shapes) and
works for any leading batch axes.
The observation layout is listed element by element in `navigation_spec.obs_names`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from marlstack.sim.angles import wrap_angle
from marlstack.sim.placement import place
from marlstack.sim.scenarios import navigation_spec as spec


SUCCESS_LABEL = "robots at their goals"  # what `success` counts, for summaries
SMALL_FLEET = 4  # up to this many candidates (others, landmarks), argmin rounds beat top-k + gather on XLA's CPU backend
ROUNDS_UP_TO = 24  # up to this many, argmin rounds over the row axis beat top-k there (1.6x at 19 others, 0.95x at 31)


@dataclasses.dataclass(frozen=True)
class Params:
    """Scenario constants (hashable, so jit can treat them as static). Arena bounds from the profile."""
    num_agents: int
    x_min: float
    x_max: float
    y_min: float
    y_max: float
    num_neighbors: int = spec.NUM_NEIGHBORS
    success_radius: float = spec.SUCCESS_RADIUS
    progress_gain: float = 10.0  # reward per metre of goal distance gained
    success_bonus: float = 5.0  # once per episode, on first arrival
    collision_penalty: float = 1.0  # per step in collision (0 turns it off)
    boundary_penalty: float = 1.0  # per step outside the arena
    # per step, × how far the barrier moved the robot's command (‖Δ(v, ω)‖ as fractions of the limits; only
    # with a barrier in the loop, applied by FleetEnv): a command the barrier overrides costs, so a policy
    # learns commands the barrier lets through instead of pushing into a wall or a robot and standing still
    intervention_penalty: float = 0.0
    # nearest-first selection: argmin rounds up to this many candidates, top-k + gather beyond. XLA's
    # CPU backend prefers rounds for a few; onnxruntime prefers top-k always (the exporter sets 0)
    gather_above: int = SMALL_FLEET
    # navigation's observe in a few wide operations over all rows (goal and others) instead of one array per
    # feature: the same numbers in 65 instead of 149 kernels of an exported 4-robot policy, which onnxruntime at
    # batch 1 runs 3x faster (the exporter sets it); XLA's CPU backend runs the per-feature form faster (docs/scale.md)
    wide: bool = False

    @property
    def far(self) -> float:
        """The distance given to padded neighbours: nothing in the arena is farther."""
        return math.hypot(self.x_max - self.x_min, self.y_max - self.y_min)

    @classmethod
    def from_profile(cls, profile: Any, num_agents: int, **overrides: Any) -> Params:
        """The arena bounds from the vehicle profile (subclasses, e.g. coverage's, inherit this)."""
        a = profile.arena
        return cls(num_agents=num_agents, x_min=a.x_min, x_max=a.x_max, y_min=a.y_min, y_max=a.y_max, **overrides)


def make_params(profile: Any, num_agents: int, **overrides: Any) -> Params:
    return Params.from_profile(profile, num_agents, **overrides)


@struct.dataclass
class Task:
    goals: jax.Array  # (N, 2) m, world frame
    reached: jax.Array  # (N,) bool: arrived at least once this episode (the bonus is paid once)


def obs_dim(params: Params) -> int:
    return spec.obs_dim(params.num_neighbors)


def num_task_uniforms(placer: Any, params: Params) -> int:
    """How many U(0, 1) numbers `reset_task` takes (the env draws them with its own, in one go)."""
    return placer.num_uniforms


def reset_task(u: jax.Array, poses: jax.Array, placer: Any, params: Params) -> Task:
    """Goals from the same separated placement as the robots, independently of the starts."""
    goals = place(u, placer)
    return Task(goals=goals, reached=jnp.zeros(params.num_agents, bool))


def sense(state: Any, params: Params) -> dict[str, jax.Array]:
    """Raw sensors per robot: pose (N, 3), others (N, N-1, 3), goal (N, 2); world frame, m and rad."""
    return {"pose": state.poses, "others": others_of(state.poses), "goal": state.task.goals}


def others_of(poses: jax.Array) -> jax.Array:
    """(N, 3) poses -> (N, N-1, 3): for each robot, the others in ascending index, self removed.

    others[i, j] = poses[j + (j >= i)]: a select between two shifted views (no gather, which
    XLA's CPU backend runs element by element).
    """
    n = poses.shape[0]
    after = np.arange(n - 1)[None, :] >= np.arange(n)[:, None]
    return jnp.where(after[..., None], poses[None, 1:, :], poses[None, :-1, :])


def observe(sensors: dict[str, jax.Array], params: Params) -> jax.Array:
    """Sensors with any leading batch axes (..., ·) -> observation (..., obs_dim).

    Every feature is computed as its own (...)-shaped array and the vector is assembled once at the
    end (stack on a new leading axis, then one transpose): on XLA's CPU backend, stacking or
    reducing along a short last axis costs many times the arithmetic, which dominated the step.
    """
    if params.wide:
        return observe_wide(sensors, params)
    pose, others, goal = sensors["pose"], sensors["others"], sensors["goal"]
    x, y, th = pose[..., 0], pose[..., 1], pose[..., 2]
    c, s = jnp.cos(th), jnp.sin(th)
    own = [*robot_frame(goal, x, y, c, s), *pose_features(x, y, c, s, params)]
    return jnp.moveaxis(jnp.stack(own + neighbors(others, x, y, th, c, s, params), axis=0), 0, -1)


def observe_wide(sensors: dict[str, jax.Array], params: Params) -> jax.Array:
    """`observe` with the goal and the others as rows of one array (`Params.wide`): each step below is one
    operation over every row, so the exported graph has few kernels. The arithmetic of every element is
    `robot_frame`'s / `pose_features`' / `relative_pose`'s, in the same order, so the two forms agree to the
    last bit but where XLA fuses a multiply-add differently (1 ulp, < 1e-6; tests/sim/test_navigation.py);
    the neighbours are picked by top-k (ties to the lower index).
    """
    pose, others, goal = sensors["pose"], sensors["others"], sensors["goal"]
    th = pose[..., 2:3]
    c, s = jnp.cos(th), jnp.sin(th)  # (..., 1)
    d = jnp.concatenate([goal[..., None, :2], others[..., :2]], axis=-2) - pose[..., None, :2]  # (..., 1 + m, 2)
    dx, dy = d[..., 0], d[..., 1]
    frame = jnp.stack([c * dx + s * dy, -s * dx + c * dy, jnp.sqrt(dx * dx + dy * dy)], axis=-1)  # (..., 1 + m, 3)
    # c, s, x, y and the wall distances as (c, s, x, y, x, x, y, y) * signs + offsets: x + (-x_min) is x - x_min exactly
    walls = jnp.concatenate([c, s, pose[..., np.array([0, 1, 0, 0, 1, 1])]], axis=-1)
    sign = np.array([1, 1, 1, 1, 1, -1, 1, -1], walls.dtype)
    offset = np.array([0, 0, 0, 0, -params.x_min, params.x_max, -params.y_min, params.y_max], walls.dtype)
    own = [frame[..., 0, :], walls * sign + offset]
    k, m = params.num_neighbors, others.shape[-2]
    real = min(k, m)
    if real:
        rows = jnp.concatenate([frame[..., 1:, :], wrap_angle(others[..., 2:3] - th[..., None, :]),
                                jnp.ones_like(frame[..., 1:, :1])], axis=-1)  # (..., m, 5): a neighbour slot each
        _, idx = jax.lax.top_k(-frame[..., 1:, 2], real)
        near = jnp.take_along_axis(rows, idx[..., None], axis=-2, mode="promise_in_bounds")  # no index wrapping
        own += [near[..., j, :] for j in range(real)]
    if k > real:
        own.append(jnp.zeros_like(th) + np.array([0.0, 0.0, params.far, 0.0, 0.0] * (k - real), th.dtype))
    return jnp.concatenate(own, axis=-1)


def pose_features(x: jax.Array, y: jax.Array, c: jax.Array, s: jax.Array, params: Params) -> list[jax.Array]:
    """Heading cos/sin, position and the four wall distances (`navigation_spec.POSE_FEATURES`)."""
    return [c, s, x, y, x - params.x_min, params.x_max - x, y - params.y_min, params.y_max - y]


def neighbors(others: jax.Array, x: jax.Array, y: jax.Array, th: jax.Array, c: jax.Array, s: jax.Array,
              params: Params) -> list[jax.Array]:
    """The K nearest others, nearest first: per slot (dx, dy, distance, relative heading, present).

    Slots beyond the N-1 real neighbours are static padding: nobody, far away.
    """
    k = params.num_neighbors
    real = min(k, others.shape[-2])
    slots = nearest(others, x, y, real, lambda o: relative_pose(o, x, y, th, c, s), params.gather_above)
    return padded_slots(slots, k, x, (0.0, 0.0, params.far, 0.0, 0.0))


def padded_slots(slots: list[tuple[jax.Array, ...]], k: int, x: jax.Array, pad: tuple[float, ...]) -> list[jax.Array]:
    """Flatten nearest-first slots, each followed by present = 1, then fill up to `k` slots with the
    constants `pad` (which end with present = 0)."""
    one = jnp.ones_like(x)
    return [f for slot in slots for f in (*slot, one)] + [jnp.full_like(x, v) for v in pad] * (k - len(slots))


def nearest(rows: jax.Array, x: jax.Array, y: jax.Array, k: int,
            features: Callable[[jax.Array], tuple[jax.Array, ...]], gather_above: int = SMALL_FLEET,
            ) -> list[tuple[jax.Array, ...]]:
    """The k of `rows` (..., m, F: world x, y first) nearest to (x, y), nearest first, as `features(row)`.

    `features` maps one row (..., F) to per-element arrays whose third is the distance to (x, y).
    Selection is tuned for XLA's CPU backend, where sorts, top-k and small reductions cost far more than
    their arithmetic: for a few rows (at most `gather_above`), k rounds of an unrolled elementwise argmin;
    up to `ROUNDS_UP_TO` rows, k rounds of argmin over the row axis and a gather (a reduction XLA computes
    once, where top-k's call costs ~100 ns a row: observations 1.2-1.6x faster at 6-20 robots); beyond,
    one top-k and a gather (faster at 32 and 50 robots). In onnxruntime top-k wins at every size (an exported
    4-robot policy: 87 vs 126 us per call), so the exporter traces with `gather_above = 0`, which means
    top-k always. All pick the same rows; ties go to the lower row index.
    """
    m = rows.shape[-2]
    if m > gather_above:
        dx, dy = rows[..., 0] - x[..., None], rows[..., 1] - y[..., None]
        dist = jnp.sqrt(dx * dx + dy * dy)
        if gather_above == 0 or m > ROUNDS_UP_TO:
            _, idx = jax.lax.top_k(-dist, k)  # the argmin paths' key, exactly
            near = jnp.take_along_axis(rows, idx[..., None], axis=-2)
            return [features(near[..., j, :]) for j in range(k)]
        slots = []
        for _ in range(k):
            i = jnp.argmin(dist, axis=-1)  # the first of equals: the lower index
            slots.append(features(jnp.take_along_axis(rows, i[..., None, None], axis=-2)[..., 0, :]))
            dist = jnp.where(np.arange(m) == i[..., None], jnp.inf, dist)
        return slots
    # the distances alone pick the rows; `features` then runs on the k picked rows, not on all m
    fields = [[rows[..., j, f] for f in range(rows.shape[-1])] for j in range(m)]
    dist = [jnp.sqrt((r[0] - x) * (r[0] - x) + (r[1] - y) * (r[1] - y)) for r in fields]
    slots = []
    for _ in range(k):
        best, arg = dist[0], jnp.zeros(x.shape, jnp.int32)
        for j in range(1, m):
            closer = dist[j] < best
            best, arg = jnp.where(closer, dist[j], best), jnp.where(closer, j, arg)
        picked = []
        for f in range(len(fields[0])):
            v = fields[0][f]
            for j in range(1, m):
                v = jnp.where(arg == j, fields[j][f], v)
            picked.append(v)
        slots.append(features(jnp.stack(picked, axis=-1)))
        dist = [jnp.where(arg == j, jnp.inf, d) for j, d in enumerate(dist)]
    return slots


def robot_frame(point: jax.Array, x: jax.Array, y: jax.Array, c: jax.Array, s: jax.Array) -> tuple[jax.Array, ...]:
    """A world point (..., ≥2) seen from (x, y) with heading (c, s) = (cos θ, sin θ): dx forward, dy left, distance."""
    dx, dy = point[..., 0] - x, point[..., 1] - y
    return c * dx + s * dy, -s * dx + c * dy, jnp.sqrt(dx * dx + dy * dy)


def relative_pose(other, x, y, th, c, s) -> tuple[jax.Array, ...]:
    """One other robot (..., 3) seen from (x, y, θ): robot-frame dx, dy, distance, wrapped Δθ."""
    return (*robot_frame(other, x, y, c, s), wrap_angle(other[..., 2] - th))


def goal_distance(poses: jax.Array, task: Task) -> jax.Array:
    # Components written out: XLA CPU sends a sum over a 2-long axis to a library kernel whose
    # call overhead dwarfs the arithmetic (it was half the cost of a step).
    dx, dy = poses[..., 0] - task.goals[..., 0], poses[..., 1] - task.goals[..., 1]
    return jnp.sqrt(dx * dx + dy * dy)


def reward(prev_poses: jax.Array, poses: jax.Array, task: Task, collisions: jax.Array,
           boundary: jax.Array, params: Params) -> tuple[jax.Array, Task, jax.Array, jax.Array]:
    """Progress toward the goal, a one-off arrival bonus, penalties for collisions and leaving the arena.

    Returns (rewards (N,), task, success (N,) = within the success radius now, episode solved: all at once).
    """
    dist = goal_distance(poses, task)
    success = dist <= params.success_radius
    arrived = success & ~task.reached
    r = (params.progress_gain * (goal_distance(prev_poses, task) - dist) + params.success_bonus * arrived
         - params.collision_penalty * (collisions > 0) - params.boundary_penalty * boundary)
    return r.astype(poses.dtype), task.replace(reached=task.reached | success), success, jnp.all(success)
