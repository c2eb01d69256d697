"""RWARE: robots fetch the items of requested shelves and bring them to a delivery zone, among shelves that
are obstacles.

JaxRobotarium's RWARE-style warehouse (after the robotic-warehouse benchmark), played by GRITSbots under the
Robotarium's arena, dynamics and barrier. Facts kept from theirs: 8 storage cells in two rows, a delivery zone
along the arena's right side, robots starting along the bottom. What differs: the shelves stay where they are
— they are static obstacles, and the barrier certifies that no robot enters their margin (`obstacles` feeds
`FleetEnv`'s barrier; `rware_spec.SHELVES`); a robot takes a requested shelf's item (not the shelf) by coming
within the pickup radius, with no pickup action, so continuous and discrete actions both serve; the episode
ends when every requested item is delivered (`num_requests`, 2 by default; theirs one per robot), so success
is a number; local observations (K nearest robots, the nearest requests, the nearest shelf), so one policy
runs any fleet size the start strip holds; per-robot shaping and penalties. Not modelled: returning a shelf to
an empty cell (nothing is carried back) and a request queue refilled after each delivery.
The observation layout is `rware_spec.obs_names`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from marlstack.sim.scenarios import hetero
from marlstack.sim.scenarios import navigation as nav
from marlstack.sim.scenarios import rware_spec as spec

SUCCESS_LABEL = "robots whose team delivered every requested item"


@dataclasses.dataclass(frozen=True)
class Params(nav.Params):
    """Navigation's constants plus the warehouse: `shelves` (x_min, x_max, y_min, y_max) m, the delivery strip
    x >= `delivery_x`, `num_requests` items to deliver (0: one per robot; at most one per shelf).

    Rewards: `pick_bonus` per item taken and `deliver_bonus` per item delivered, to every robot (team);
    `success_bonus` to every robot when the last one is delivered; `progress_gain` per metre a robot gains
    on its own target (the delivery zone while it carries, else the nearest waiting shelf); its own
    `collision_penalty`, `boundary_penalty` and `shelf_penalty` (per step its body overlaps a shelf: only
    without the barrier, which keeps robots out)."""
    shelves: tuple[tuple[float, float, float, float], ...] = spec.SHELVES
    delivery_x: float = spec.DELIVERY_X
    pick_radius: float = spec.PICK_RADIUS
    num_requests: int = spec.NUM_REQUESTS
    num_slots: int = spec.NUM_REQUEST_SLOTS
    robot_radius: float = 0.055  # m: half the profile's diameter (make_params sets it)
    pick_bonus: float = 1.0
    deliver_bonus: float = 2.0
    shelf_penalty: float = 1.0

    @property
    def requests(self) -> int:
        return self.num_requests or min(self.num_agents, len(self.shelves))

    @property
    def centres(self) -> np.ndarray:
        """(S, 2) shelf centres (numpy constants, also while a graph is traced)."""
        b = np.asarray(self.shelves, np.float64)
        return np.stack([(b[:, 0] + b[:, 1]) / 2, (b[:, 2] + b[:, 3]) / 2], -1)


def make_params(profile: Any, num_agents: int, **overrides: Any) -> Params:
    if "shelves" in overrides:
        overrides["shelves"] = tuple(tuple(float(v) for v in s) for s in overrides["shelves"])
    params = Params.from_profile(profile, num_agents, robot_radius=profile.diameter / 2, **overrides)
    b = np.asarray(params.shelves, float).reshape(-1, 4)
    if len(b) == 0 or b.shape != (len(params.shelves), 4) or np.any(b[:, 0] >= b[:, 1]) or np.any(b[:, 2] >= b[:, 3]):
        raise ValueError("shelves must be a non-empty list of (x_min, x_max, y_min, y_max) with min < max")
    if np.any(b[:, 0] < params.x_min) or np.any(b[:, 1] > params.delivery_x) or np.any(b[:, 2] < params.y_min) \
            or np.any(b[:, 3] > params.y_max):
        raise ValueError("every shelf must lie inside the arena, left of the delivery zone (delivery_x)")
    if not params.x_min < params.delivery_x < params.x_max:
        raise ValueError(f"delivery_x must be inside the arena ({params.x_min}, {params.x_max}), got {params.delivery_x}")
    if not 1 <= params.requests <= len(params.shelves):
        raise ValueError(f"num_requests must be in 1..{len(params.shelves)} (one per shelf), got {params.num_requests}")
    if params.num_slots < 1:
        raise ValueError(f"num_slots must be >= 1, got {params.num_slots}")
    return params


def obstacles(params: Params) -> tuple[tuple[float, float, float, float], ...]:
    """The static obstacles `FleetEnv` gives its barrier: the shelves."""
    return params.shelves


def start_arena(arena: Any, params: Params) -> Any:
    """Robots start in the bottom `START_DEPTH` m of the arena, below the shelves (`FleetEnv` places them)."""
    return dataclasses.replace(arena, y_max=arena.y_min + spec.START_DEPTH)


@struct.dataclass
class Task:
    waiting: jax.Array  # (S,) bool: requested and its item not yet taken
    load: jax.Array  # (N,) 1 while carrying an item
    delivered: jax.Array  # () items delivered so far
    shelf_centres: jax.Array  # (S, 2) for the pictures and the world state
    reached: jax.Array  # (N,) bool: every requested item delivered

    @property
    def goals(self) -> jax.Array:
        return self.shelf_centres


def obs_dim(params: Params) -> int:
    return spec.obs_dim(params.num_neighbors, params.num_slots)


def num_task_uniforms(placer: Any, params: Params) -> int:
    return len(params.shelves)


def reset_task(u: jax.Array, poses: jax.Array, placer: Any, params: Params) -> Task:
    """`requests` distinct shelves, uniformly: those whose uniform ranks among the lowest (no sort)."""
    s = len(params.shelves)
    lower = (u[None, :] < u[:, None]) | ((u[None, :] == u[:, None]) & (np.arange(s)[None, :] < np.arange(s)[:, None]))
    n = params.num_agents
    return Task(waiting=lower.sum(-1) < params.requests, load=jnp.zeros(n, u.dtype), delivered=jnp.zeros((), u.dtype),
                shelf_centres=jnp.asarray(params.centres, u.dtype), reached=jnp.zeros(n, bool))


def sense(state: Any, params: Params) -> dict[str, jax.Array]:
    """pose (N, 3), others (N, N-1, 3), load (N, 1), requests (N, S, 3) = every shelf [x, y, waiting]."""
    task, n = state.task, params.num_agents
    req = jnp.concatenate([task.shelf_centres, task.waiting.astype(state.poses.dtype)[:, None]], -1)
    return {"pose": state.poses, "others": nav.others_of(state.poses), "load": task.load[:, None],
            "requests": jnp.broadcast_to(req, (n, *req.shape))}


def observe(sensors: dict[str, jax.Array], params: Params) -> jax.Array:
    """Sensors with any leading batch axes (..., ·) -> observation (..., obs_dim), in `rware_spec.obs_names` order."""
    pose = sensors["pose"]
    x, y, th = pose[..., 0], pose[..., 1], pose[..., 2]
    c, s = jnp.cos(th), jnp.sin(th)
    own = nav.pose_features(x, y, c, s, params) + nav.neighbors(sensors["others"], x, y, th, c, s, params)
    gap = jnp.maximum(params.delivery_x - x, 0.0)  # the zone's nearest point is straight along +x
    b = jnp.asarray(np.asarray(params.shelves), x.dtype)
    # (..., S) broadcast explicitly: clip against (S,) bounds exported with wrong shapes (jax2onnx)
    xs, ys = x[..., None] + jnp.zeros_like(b[:, 0]), y[..., None] + jnp.zeros_like(b[:, 0])
    nearest_points = jnp.stack([jnp.minimum(jnp.maximum(xs, b[:, 0]), b[:, 1]),
                                jnp.minimum(jnp.maximum(ys, b[:, 2]), b[:, 3])], -1)
    (shelf,) = nav.nearest(nearest_points, x, y, 1, lambda p: nav.robot_frame(p, x, y, c, s), params.gather_above)
    task = [sensors["load"][..., 0], c * gap, -s * gap, gap, *shelf]
    requests = hetero.listed_points(sensors["requests"], x, y, c, s, params, min(params.num_slots, len(params.shelves)))
    pad = [jnp.full_like(x, v) for v in (0.0, 0.0, params.far, 0.0)] * max(0, params.num_slots - len(params.shelves))
    return hetero.assemble(own + task + requests + pad)


def world_features(task: Task, params: Params) -> jax.Array:
    """For the centralised critic: which shelves wait, every robot's load, the fraction delivered."""
    dtype = task.load.dtype
    return jnp.concatenate([task.waiting.astype(dtype), task.load, (task.delivered / params.requests)[None]])


def distances(poses: jax.Array, points: jax.Array) -> jax.Array:
    """(robots, points) centre distances."""
    return jnp.hypot(poses[:, None, 0] - points[None, :, 0], poses[:, None, 1] - points[None, :, 1])


def in_shelf(poses: jax.Array, params: Params) -> jax.Array:
    """(N,) the robot's body overlaps a shelf (its centre within `robot_radius` of a footprint)."""
    return in_boxes(poses, params.shelves, params.robot_radius)


def in_boxes(poses: jax.Array, boxes: Any, radius: float) -> jax.Array:
    """(N,) a body of `radius` centred at each pose overlaps one of the boxes (x_min, x_max, y_min, y_max)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    dx = poses[:, 0, None] - jnp.clip(poses[:, 0, None], b[:, 0], b[:, 1])
    dy = poses[:, 1, None] - jnp.clip(poses[:, 1, None], b[:, 2], b[:, 3])
    return jnp.any(dx * dx + dy * dy < radius ** 2, -1)


def scripted_goals(state: Any, params: Params) -> jax.Array:
    """`marlstack sim rware --policy scripted`: carrying, straight right into the delivery zone; otherwise to the
    side facing the robot of the waiting shelf it is given (robot i: the (i mod W)-th of W), through the free
    column between the shelves and the zone (x = `delivery_x` − 0.1) when a row of shelves is in the way.
    Robots with nothing left to fetch or carry stay."""
    poses, task = state.poses, state.task
    x, y = poses[:, 0], poses[:, 1]
    centres = task.shelf_centres
    # robot i to the (i mod W)-th of the W waiting shelves, so robots do not crowd one shelf
    rank = jnp.cumsum(task.waiting) - 1
    mine = jnp.arange(x.shape[0]) % jnp.maximum(task.waiting.sum(), 1)
    chosen = task.waiting[None, :] & (rank[None, :] == mine[:, None])
    target = centres[jnp.argmax(chosen, -1)]
    side = jnp.where(y >= target[:, 1], 1.0, -1.0)
    pick = target + jnp.stack([jnp.zeros_like(x), side * (params.pick_radius - 0.07)], -1)
    rows = np.unique(np.asarray(params.shelves)[:, 2:], axis=0)  # (rows, 2) y extents of the shelf rows

    def band(v):  # which gap between shelf rows a y lies in
        return sum((v > hi).astype(jnp.int32) for _, hi in rows)

    column = params.delivery_x - 0.1
    detour = jnp.where((x < column - 0.05)[:, None], jnp.stack([jnp.full_like(x, column), y], -1),
                       jnp.stack([jnp.full_like(x, column), pick[:, 1]], -1))
    fetch = jnp.where((band(y) == band(pick[:, 1]))[:, None], pick, detour)
    deliver = jnp.stack([jnp.full_like(x, (params.delivery_x + params.x_max) / 2), y], -1)
    goal = jnp.where((task.load > 0)[:, None], deliver, fetch)
    return jnp.where((task.waiting.any() | (task.load > 0))[:, None], goal, poses[:, :2])


def reward(prev_poses: jax.Array, poses: jax.Array, task: Task, collisions: jax.Array,
           boundary: jax.Array, params: Params) -> tuple[jax.Array, Task, jax.Array, jax.Array]:
    """Deliver (carrying, inside the zone), then take items (not carrying, within the pickup radius of a
    waiting shelf: each robot its nearest, a shelf to the lowest-index robot), on the new poses; the team's
    bonuses, each robot's progress towards the target it had before the step, its own penalties.

    Returns (rewards (N,), task, success (N,) = every requested item delivered, solved)."""
    dtype = poses.dtype
    dropped = jnp.where((task.load > 0) & (poses[:, 0] >= params.delivery_x), task.load, 0.0)
    load = task.load - dropped
    d = distances(poses, task.shelf_centres)
    s = d.shape[1]
    near = jnp.where(task.waiting[None, :] & (d <= params.pick_radius) & (load <= 0)[:, None], d, jnp.inf)
    choice = jnp.argmin(near, -1)
    pick = jnp.isfinite(near).any(-1)[:, None] & (jnp.arange(s)[None, :] == choice[:, None])
    pick = pick & (jnp.cumsum(pick, axis=0) - pick == 0)  # a shelf's item goes to the lowest-index robot
    taken = pick.any(0)
    got = pick.any(1)
    load = load + got.astype(dtype)
    delivered = task.delivered + dropped.sum()
    solved = delivered >= params.requests
    # progress: on the delivery zone while carrying, else on the nearest waiting shelf (chosen before the step)
    before = jnp.where(task.waiting[None, :], distances(prev_poses, task.shelf_centres), jnp.inf)
    target = jnp.argmin(before, -1)
    rows = jnp.arange(poses.shape[0])
    fetch = jnp.where(jnp.isfinite(before[rows, target]), before[rows, target] - d[rows, target], 0.0)
    carry = jnp.maximum(params.delivery_x - prev_poses[:, 0], 0.0) - jnp.maximum(params.delivery_x - poses[:, 0], 0.0)
    progress = jnp.where(task.load > 0, carry, fetch)
    team = params.pick_bonus * got.sum() + params.deliver_bonus * dropped.sum() + params.success_bonus * solved
    r = (params.progress_gain * progress + team - params.collision_penalty * (collisions > 0)
         - params.boundary_penalty * boundary - params.shelf_penalty * in_shelf(poses, params))
    success = jnp.full(poses.shape[0], solved)
    task = task.replace(waiting=task.waiting & ~taken, load=load, delivered=delivered, reached=task.reached | success)
    return r.astype(dtype), task, success, solved
