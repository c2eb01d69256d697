"""Discovery: sensing robots find hidden targets, tagging robots tag the ones found.

JaxRobotarium's discovery (and, with prey that flee, `predator_capture_prey`), played by the fleet. Two
classes (`discovery_spec.CLASSES`): a *sensing* robot detects every target within its `sensing_radius`
but cannot tag; a *tagging* robot senses nothing itself and tags a target the team has found once it is
within its `reach`. What a sensing robot finds is shared with the team (the `targets` sensor lists the found,
untagged targets; the others read as absent), so taggers depend on the sensing robots. The team also shares
where it has searched: a tile of the `tile` m grid is searched once a sensing robot's radius covers its centre,
and every robot observes the nearest tile not yet searched (without it, a deterministic feed-forward policy has
nothing to search by: 1 % solved, docs/training.md). The episode is solved, and ends, when every target is tagged.

What differs from the fleet: the task state (targets, found, tagged, searched tiles), the sensors (capabilities,
the team's found targets and searched map), the observation (`hetero.observe_team`'s first part, the targets
nearest first with absent ones last as padding, the nearest unsearched tile) and the reward: a team bonus per
tile searched, per target found, per target tagged and at the end; each
robot's progress (a sensing robot towards the nearest unsearched tile, a tagging robot towards the nearest found
target: both in its observation), its own penalties. Layout: `discovery_spec.obs_names`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from marlstack.sim.placement import place
from marlstack.sim.scenarios import discovery_spec as spec
from marlstack.sim.scenarios import hetero

SUCCESS_LABEL = "robots whose team tagged every target"
speed_factors = hetero.speed_factors


@dataclasses.dataclass(frozen=True)
class Params(hetero.Params):
    """The team's constants plus the targets; `prey_step` m per step a target flees (0: still, discovery)."""
    num_targets: int = spec.NUM_TARGETS
    find_bonus: float = 2.0  # per target found, to every robot
    tag_bonus: float = 5.0  # per target tagged, to every robot
    search_bonus: float = 0.1  # per tile newly searched, to every robot
    prey_step: float = 0.0
    flee_radius: float = 0.0  # m: a target flees from a robot this close
    margin: float = 0.1  # m: a fleeing target stays this far inside the walls
    CAPABILITIES: ClassVar[tuple[str, ...]] = spec.CAPABILITIES


def make_params(profile: Any, num_agents: int, **overrides: Any) -> Params:
    return checked(hetero.make_params(Params, spec, profile, num_agents, **overrides), num_agents)


def checked(params: Params, num_agents: int) -> Params:
    if not 1 <= params.num_targets <= num_agents:
        raise ValueError(f"num_targets must be in 1..{num_agents} (one placement cell each), got {params.num_targets}")
    if (params.column("sensing_radius") <= 0).all() or (params.column("reach") <= 0).all():
        raise ValueError("the team needs a robot that senses (sensing_radius > 0) and one that tags (reach > 0)")
    return params


@struct.dataclass
class Task:
    targets: jax.Array  # (T, 2) m, world frame
    found: jax.Array  # (T,) bool: a sensing robot has been within its radius
    tagged: jax.Array  # (T,) bool
    searched: jax.Array  # (rows, cols) bool: a sensing robot's radius has covered the tile's centre
    reached: jax.Array  # (N,) bool: every target tagged

    @property
    def goals(self) -> jax.Array:
        return self.targets


def obs_dim(params: Params) -> int:
    return spec.obs_dim(params.num_neighbors, params.num_targets)


def num_task_uniforms(placer: Any, params: Params) -> int:
    return placer.num_uniforms


def reset_task(u: jax.Array, poses: jax.Array, placer: Any, params: Params) -> Task:
    """Targets on the separated placement, independent of the starts; none found; searched what the sensing
    robots cover at the start."""
    t = params.num_targets
    return Task(targets=place(u, placer)[:t], found=jnp.zeros(t, bool), tagged=jnp.zeros(t, bool),
                searched=hetero.covered(poses, params), reached=jnp.zeros(params.num_agents, bool))


def sense(state: Any, params: Params) -> dict[str, jax.Array]:
    """The team's sensors plus targets (N, T, 3) = [x, y, 1] for a found, untagged target, zeros otherwise, and
    searched (N, rows, cols) 1/0 (the same for every robot: what the team's sensing robots have shared)."""
    task, n = state.task, params.num_agents
    listed = task.found & ~task.tagged
    rows = jnp.where(listed[:, None], jnp.concatenate([task.targets, jnp.ones_like(task.targets[:, :1])], -1), 0.0)
    searched = task.searched.astype(rows.dtype)
    return hetero.team_sensors(state, params) | {"targets": jnp.broadcast_to(rows, (n, *rows.shape)),
                                                  "searched": jnp.broadcast_to(searched, (n, *searched.shape))}


def observe(sensors: dict[str, jax.Array], params: Params) -> jax.Array:
    """Sensors with any leading batch axes (..., ·) -> observation (..., obs_dim)."""
    (x, y, _, c, s), own = hetero.observe_team(sensors, params)
    searched = sensors["searched"]
    cx, cy = hetero.centres(params)
    # (..., tiles, 3) = [x, y, unsearched] stacked from static slices: no reshape over the batch axis, which
    # the exported graph got wrong
    tiles = jnp.stack([jnp.stack([jnp.full_like(x, cx[j]), jnp.full_like(x, cy[i]), 1.0 - searched[..., i, j]], -1)
                       for i in range(len(cy)) for j in range(len(cx))], -2)
    return hetero.assemble(own + hetero.listed_points(sensors["targets"], x, y, c, s, params)
                           + hetero.listed_points(tiles, x, y, c, s, params, k=1))


def world_features(task: Task, params: Params) -> jax.Array:
    """For the centralised critic: every target's position, found and tagged flags, the searched tiles, the
    team's capabilities."""
    dtype = task.targets.dtype
    return jnp.concatenate([task.targets.reshape(-1), task.found.astype(dtype), task.tagged.astype(dtype),
                            task.searched.reshape(-1).astype(dtype), hetero.world_columns(params, dtype)])


def distances(poses: jax.Array, points: jax.Array) -> jax.Array:
    """(robots, points) distance matrix."""
    return jnp.hypot(poses[:, None, 0] - points[None, :, 0], poses[:, None, 1] - points[None, :, 1])


def nearest_open(poses: jax.Array, points: jax.Array, open_: jax.Array) -> tuple[jax.Array, jax.Array]:
    """((N, 2) each robot's nearest point among the `open_` ones, (N,) whether there is one)."""
    d = jnp.where(open_[None, :], distances(poses, points), jnp.inf)
    return points[jnp.argmin(d, -1)], jnp.isfinite(d.min(-1))


def tile_points(params: Params) -> np.ndarray:
    """(rows * cols, 2) every tile centre, in the order of `searched.reshape(-1)` (row from y_min, then column)."""
    cx, cy = hetero.centres(params)
    return np.stack([np.tile(cx, len(cy)), np.repeat(cy, len(cx))], -1)


def targets_for(poses: jax.Array, task: Task, params: Params) -> tuple[jax.Array, jax.Array]:
    """Where each robot's work is, from what the team knows: a sensing robot's the nearest tile centre not yet
    searched (its observation's `unsearched` slot), a tagging robot's the nearest found, untagged target.
    ((N, 2), (N,) whether it has one)."""
    senses = jnp.asarray(params.column("sensing_radius") > 0)
    to_search, any_search = nearest_open(poses, jnp.asarray(tile_points(params), poses.dtype), ~task.searched.reshape(-1))
    to_tag, any_tag = nearest_open(poses, task.targets, task.found & ~task.tagged)
    return jnp.where(senses[:, None], to_search, to_tag), jnp.where(senses, any_search, any_tag)


def scripted_goals(state: Any, params: Params) -> jax.Array:
    """`marlstack sim discovery --policy scripted`: `targets_for` (a greedy search a robot could run: it uses
    only what the team's sensors share), or stay."""
    goal, active = targets_for(state.poses, state.task, params)
    return jnp.where(active[:, None], goal, state.poses[:, :2])


def flee(poses: jax.Array, task: Task, params: Params) -> jax.Array:
    """(T, 2) the targets after one step away from their nearest robot when it is within `flee_radius`."""
    if params.prey_step <= 0:
        return task.targets
    d = distances(poses, task.targets)  # (N, T)
    near = poses[jnp.argmin(d, 0), :2]
    away = task.targets - near
    norm = jnp.maximum(jnp.hypot(away[:, 0], away[:, 1]), 1e-6)
    moving = (~task.tagged) & (d.min(0) <= params.flee_radius)
    moved = task.targets + jnp.where(moving[:, None], params.prey_step * away / norm[:, None], 0.0)
    m = params.margin
    return jnp.stack([jnp.clip(moved[:, 0], params.x_min + m, params.x_max - m),
                      jnp.clip(moved[:, 1], params.y_min + m, params.y_max - m)], -1)


def reward(prev_poses: jax.Array, poses: jax.Array, task: Task, collisions: jax.Array,
           boundary: jax.Array, params: Params) -> tuple[jax.Array, Task, jax.Array, jax.Array]:
    """Targets flee (predator-capture-prey), then are found and tagged, tiles searched, on the new poses; the team's bonuses,
    each robot's progress towards its work before the step, its own penalties.

    Returns (rewards (N,), task, success (N,) = every target tagged, solved)."""
    dtype = poses.dtype
    goal, active = targets_for(prev_poses, task, params)
    gained = hetero.progress(prev_poses, poses, goal, active)
    moved = task.replace(targets=flee(poses, task, params))
    d = distances(poses, moved.targets)
    sensing = jnp.asarray(params.column("sensing_radius"), dtype)[:, None]
    reach = jnp.asarray(params.column("reach"), dtype)[:, None]
    found = moved.found | jnp.any(d <= sensing, 0)
    tagged = moved.tagged | (found & jnp.any(d <= reach, 0))
    searched = task.searched | hetero.covered(poses, params)
    solved = jnp.all(tagged)
    team = (params.find_bonus * jnp.sum(found & ~task.found) + params.tag_bonus * jnp.sum(tagged & ~task.tagged)
            + params.search_bonus * jnp.sum(searched & ~task.searched) + params.success_bonus * solved)
    r = (params.progress_gain * gained + team
         - params.collision_penalty * (collisions > 0) - params.boundary_penalty * boundary)
    success = jnp.full(poses.shape[0], solved)
    task = moved.replace(found=found, tagged=tagged, searched=searched, reached=task.reached | success)
    return r.astype(dtype), task, success, solved
