"""Level-based foraging: robots of different levels gather resources that need enough level around them.

JaxRobotarium's "foraging" (after MARBLER and LBF), played by the fleet: every robot has a level (its
capability class: 1 or 2 by default, alternating over the fleet, or `levels` from the deployment), every
resource a level drawn per episode from 1 .. `max_resource_level`. A resource is foraged — and vanishes —
the first step the levels of the robots within `forage_radius` of it sum to its level or more, so a
level-3 resource needs two robots at once. The episode is solved, and ends, when every resource is foraged.

What differs from the fleet: the task state (resources, their levels, which are foraged), what a robot
senses (its own and the others' levels, the resources), the observation (navigation's pose features and
K nearest neighbours, each with its level; the resources nearest first) and the reward. Improvements on
JaxRobotarium's version: local observations (K nearest robots instead of all, any fleet size), a
per-robot shaping term, collision penalties. The observation layout is `foraging_spec.obs_names`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from marlstack.sim.placement import place
from marlstack.sim.scenarios import foraging_spec as spec
from marlstack.sim.scenarios import hetero
from marlstack.sim.scenarios import navigation as nav

SUCCESS_LABEL = "robots whose team foraged every resource"


@dataclasses.dataclass(frozen=True)
class Params(nav.Params):
    """Navigation's constants (arena, neighbours, progress gain, penalties) plus the resources.

    `success_bonus` goes to every robot when the last resource is foraged; `forage_bonus` per level of
    every resource foraged in a step, to every robot (a team reward); `progress_gain` per metre a robot
    gains on the resource that was nearest to it (a per-robot shaping term)."""
    num_resources: int = spec.NUM_RESOURCES
    max_resource_level: int = spec.MAX_RESOURCE_LEVEL
    levels: tuple[int, ...] = ()  # per robot; () = spec.LEVELS repeated
    forage_radius: float = spec.FORAGE_RADIUS
    forage_bonus: float = 5.0

    @property
    def robot_levels(self) -> np.ndarray:
        levels = self.levels or tuple(spec.LEVELS[i % len(spec.LEVELS)] for i in range(self.num_agents))
        return np.asarray(levels, np.float32)


def make_params(profile: Any, num_agents: int, **overrides: Any) -> Params:
    if "levels" in overrides:
        overrides["levels"] = tuple(int(v) for v in overrides["levels"])
    params = Params.from_profile(profile, num_agents, **overrides)
    if params.levels and len(params.levels) != num_agents:
        raise ValueError(f"levels lists {len(params.levels)} robots, the fleet has {num_agents}")
    if not 1 <= params.num_resources <= num_agents:
        raise ValueError(f"num_resources must be in 1..{num_agents} (one placement cell each), got {params.num_resources}")
    if min(params.robot_levels) < 1 or params.max_resource_level < 1:
        raise ValueError("robot and resource levels must be at least 1")
    return params


@struct.dataclass
class Task:
    resources: jax.Array  # (R, 2) m, world frame
    resource_levels: jax.Array  # (R,) the level each needs
    foraged: jax.Array  # (R,) bool
    reached: jax.Array  # (N,) bool: every resource foraged (the team's success, per robot)

    @property
    def goals(self) -> jax.Array:
        """The points the pictures draw: the resources."""
        return self.resources


def obs_dim(params: Params) -> int:
    return spec.obs_dim(params.num_neighbors, params.num_resources)


def num_task_uniforms(placer: Any, params: Params) -> int:
    return placer.num_uniforms + params.num_resources


def reset_task(u: jax.Array, poses: jax.Array, placer: Any, params: Params) -> Task:
    """Resources on the separated placement (independent of the starts), levels uniform in
    1 .. min(max_resource_level, the whole team's level)."""
    top = min(params.max_resource_level, int(params.robot_levels.sum()))
    levels = 1 + jnp.minimum(jnp.floor(u[placer.num_uniforms:] * top), top - 1)
    return Task(resources=place(u[:placer.num_uniforms], placer)[:params.num_resources],
                resource_levels=levels.astype(u.dtype), foraged=jnp.zeros(params.num_resources, bool),
                reached=jnp.zeros(params.num_agents, bool))


def sense(state: Any, params: Params) -> dict[str, jax.Array]:
    """Raw sensors per robot: pose (N, 3), others (N, N-1, 3), level (N, 1), other_levels (N, N-1, 1),
    resources (N, R, 3) = [x, y, level or 0 once foraged]."""
    n, dtype = params.num_agents, state.poses.dtype
    levels = jnp.asarray(params.robot_levels, dtype)[:, None]
    task = state.task
    res = jnp.concatenate([task.resources, jnp.where(task.foraged, 0.0, task.resource_levels)[:, None]], -1)
    return {"pose": state.poses, "others": nav.others_of(state.poses), "level": levels,
            "other_levels": nav.others_of(levels), "resources": jnp.broadcast_to(res, (n, *res.shape))}


def observe(sensors: dict[str, jax.Array], params: Params) -> jax.Array:
    """Sensors with any leading batch axes (..., ·) -> observation (..., obs_dim), assembled like navigation's."""
    pose, others, res = sensors["pose"], sensors["others"], sensors["resources"]
    x, y, th = pose[..., 0], pose[..., 1], pose[..., 2]
    c, s = jnp.cos(th), jnp.sin(th)
    rows = jnp.concatenate([others, sensors["other_levels"]], -1)  # (..., N-1, 4): x, y, θ, level
    k = params.num_neighbors
    near = nav.nearest(rows, x, y, min(k, rows.shape[-2]),
                       lambda o: (*nav.relative_pose(o, x, y, th, c, s), o[..., 3]), params.gather_above)
    own = nav.pose_features(x, y, c, s, params) + [sensors["level"][..., 0]]
    neighbours = nav.padded_slots(near, k, x, (0.0, 0.0, params.far, 0.0, 0.0, 0.0))
    return jnp.moveaxis(jnp.stack(own + neighbours + _resources(res, x, y, c, s, params), axis=0), 0, -1)


def _resources(res: jax.Array, x, y, c, s, params: Params) -> list[jax.Array]:
    """Every resource, nearest first, foraged ones last as padding: (dx, dy, distance, level, present)."""
    rows = jnp.stack([res[..., 0], res[..., 1], res[..., 2], res[..., 2]], -1)  # x, y, present (level > 0), level
    return hetero.listed_points(rows, x, y, c, s, params)


def world_features(task: Task, params: Params) -> jax.Array:
    """What a centralised critic sees of the task beyond the poses: resources, their remaining levels, robot levels."""
    remaining = jnp.where(task.foraged, 0.0, task.resource_levels)
    return jnp.concatenate([task.resources.reshape(-1), remaining,
                            jnp.asarray(params.robot_levels, task.resources.dtype)])


def distances(poses: jax.Array, points: jax.Array) -> jax.Array:
    """(robots, points) distance matrix."""
    dx = poses[:, None, 0] - points[None, :, 0]
    dy = poses[:, None, 1] - points[None, :, 1]
    return jnp.sqrt(dx * dx + dy * dy)


def scripted_goals(state: Any, params: Params) -> jax.Array:
    """(N, 2) each robot's nearest resource still there: `marlstack sim foraging --policy scripted`."""
    d = jnp.where(state.task.foraged[None, :], jnp.inf, distances(state.poses, state.task.resources))
    return state.task.resources[jnp.argmin(d, axis=-1)]


def reward(prev_poses: jax.Array, poses: jax.Array, task: Task, collisions: jax.Array,
           boundary: jax.Array, params: Params) -> tuple[jax.Array, Task, jax.Array, jax.Array]:
    """Forage what has enough level around it; the team's bonus per level foraged and at the end, each
    robot's progress towards the resource nearest to it before the step, its own penalties.

    Returns (rewards (N,), task, success (N,) = every resource foraged, solved)."""
    levels = jnp.asarray(params.robot_levels, poses.dtype)
    d = distances(poses, task.resources)
    around = jnp.sum(jnp.where(d <= params.forage_radius, levels[:, None], 0.0), axis=0)
    newly = ~task.foraged & (around >= task.resource_levels)
    foraged = task.foraged | newly
    solved = jnp.all(foraged)
    before = jnp.where(task.foraged[None, :], jnp.inf, distances(prev_poses, task.resources))
    target = jnp.argmin(before, axis=-1)
    robots = jnp.arange(poses.shape[0])
    progress = jnp.where(jnp.isfinite(before[robots, target]), before[robots, target] - d[robots, target], 0.0)
    team = params.forage_bonus * jnp.sum(jnp.where(newly, task.resource_levels, 0.0)) + params.success_bonus * solved
    r = (params.progress_gain * progress + team
         - params.collision_penalty * (collisions > 0) - params.boundary_penalty * boundary)
    success = jnp.full(poses.shape[0], solved)
    return r.astype(poses.dtype), task.replace(foraged=foraged, reached=task.reached | success), success, solved
