"""Arctic transport: ice and water robots cross a field of ice and water tiles to the goal zone, drones map it.

JaxRobotarium's (after MARBLER's) arctic transport, played by the fleet. The arena is a grid of square tiles
(`tile` m), each ice or water, drawn per episode. Three classes (`arctic_transport_spec.CLASSES`): an *ice*
robot is fast on ice and slow on water, a *water* robot the other way round, a *drone* is fast everywhere and
senses far but need not arrive. The fleet drives each robot at its class's speed for the tile under it. The
team shares one map: a tile becomes known once a robot's sensing radius covers its centre. Solved, and
ended, when every robot that must arrive (class `goal` 1) is in the goal zone (the top `goal_depth` m) at once.

What differs from the fleet: the task state (terrain, the team's map), the speed per tile, the sensors
(capabilities, the map), the observation (`hetero.observe_team`'s first part, the distance to the goal zone,
the 3 x 3 tiles of the map around the robot's tile) and the reward: each ground robot's progress towards the
goal zone (a drone is paid the ground robots' mean progress), a team bonus per tile mapped and at the end,
each robot's own penalties. Layout: `arctic_transport_spec.obs_names`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from marlstack.sim.scenarios import arctic_transport_spec as spec
from marlstack.sim.scenarios import hetero

SUCCESS_LABEL = "robots whose team's ground robots all reached the goal zone"


@dataclasses.dataclass(frozen=True)
class Params(hetero.Params):
    """The team's constants plus the terrain on the `tile` m grid: `ice_fraction` of them ice on average, the
    goal zone the top `goal_depth` m, `map_bonus` per tile newly mapped (to every robot)."""
    ice_fraction: float = 0.5
    goal_depth: float = spec.GOAL_DEPTH
    map_bonus: float = 0.2
    CAPABILITIES: ClassVar[tuple[str, ...]] = spec.CAPABILITIES

    @property
    def goal_y(self) -> float:
        return self.y_max - self.goal_depth


def make_params(profile: Any, num_agents: int, **overrides: Any) -> Params:
    params = hetero.make_params(Params, spec, profile, num_agents, **overrides)
    if not params.column("goal").any():
        raise ValueError("no robot in the team must reach the goal (every class has goal 0)")
    if not 0 < params.goal_depth < params.y_max - params.y_min:
        raise ValueError(f"goal_depth must be inside the arena's height, got {params.goal_depth}")
    return params


@struct.dataclass
class Task:
    terrain: jax.Array  # (rows, cols) +1 ice, -1 water
    known: jax.Array  # (rows, cols) bool: mapped by the team
    ends: jax.Array  # (2, 2) the goal zone's lower edge, left and right end (for pictures)
    reached: jax.Array  # (N,) bool: in the goal zone now, or not needed there

    @property
    def goals(self) -> jax.Array:
        return self.ends


def obs_dim(params: Params) -> int:
    return spec.obs_dim(params.num_neighbors)


def num_task_uniforms(placer: Any, params: Params) -> int:
    rows, cols = params.grid
    return rows * cols


def reset_task(u: jax.Array, poses: jax.Array, placer: Any, params: Params) -> Task:
    """Each tile ice with probability `ice_fraction`; the map holds what the robots sense at the start."""
    terrain = jnp.where(u.reshape(params.grid) < params.ice_fraction, 1.0, -1.0).astype(u.dtype)
    ends = jnp.asarray([[params.x_min, params.goal_y], [params.x_max, params.goal_y]], u.dtype)
    return Task(terrain=terrain, known=hetero.covered(poses, params), ends=ends,
                reached=reached(poses, params))


def start_arena(arena: Any, params: Params) -> Any:
    """Robots start in the bottom `START_DEPTH` m of the arena, the goal zone's far side (`FleetEnv` places them)."""
    return dataclasses.replace(arena, y_max=arena.y_min + spec.START_DEPTH)


def reached(poses: jax.Array, params: Params) -> jax.Array:
    """(N,) in the goal zone, or not needed there (drones)."""
    return (poses[:, 1] >= params.goal_y) | jnp.asarray(params.column("goal") <= 0)


def speed_factors(poses: jax.Array, task: Task, params: Params) -> jax.Array:
    """(N,) the class's speed on the tile under each robot (ice or water)."""
    ice = hetero.tile_values(task.terrain, poses[:, 0], poses[:, 1], params) >= 0
    return jnp.where(ice, jnp.asarray(params.column("speed"), poses.dtype),
                     jnp.asarray(params.column("water_speed"), poses.dtype))


def sense(state: Any, params: Params) -> dict[str, jax.Array]:
    """The team's sensors plus map (N, rows, cols): +1 ice, -1 water, 0 not yet mapped (the same for everyone)."""
    task = state.task
    shared = jnp.where(task.known, task.terrain, 0.0)
    return hetero.team_sensors(state, params) | {"map": jnp.broadcast_to(shared, (params.num_agents, *shared.shape))}


def observe(sensors: dict[str, jax.Array], params: Params) -> jax.Array:
    """Sensors with any leading batch axes (..., ·) -> observation (..., obs_dim)."""
    (x, y, _, _, _), own = hetero.observe_team(sensors, params)
    patch = [hetero.tile_values(sensors["map"], x, y, params, di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)]
    return hetero.assemble(own + [jnp.maximum(params.goal_y - y, 0.0)] + patch)


def world_features(task: Task, params: Params) -> jax.Array:
    """For the centralised critic: the whole terrain, the map, the team's capabilities."""
    dtype = task.terrain.dtype
    return jnp.concatenate([task.terrain.reshape(-1), task.known.reshape(-1).astype(dtype),
                            hetero.world_columns(params, dtype)])


def scripted_goals(state: Any, params: Params) -> jax.Array:
    """`marlstack sim arctic_transport --policy scripted`: ground robots straight up into the goal zone,
    drones a tile ahead of the ground robot nearest to them (mapping its way)."""
    poses = state.poses
    ground = jnp.asarray(params.column("goal") > 0)
    up = jnp.stack([poses[:, 0], jnp.full_like(poses[:, 1], params.goal_y + params.goal_depth / 2)], -1)
    d = jnp.where(ground[None, :], jnp.hypot(poses[:, None, 0] - poses[None, :, 0], poses[:, None, 1] - poses[None, :, 1]), jnp.inf)
    lead = poses[jnp.argmin(d, -1), :2] + jnp.asarray([0.0, params.tile], poses.dtype)
    lead = lead.at[:, 1].set(jnp.minimum(lead[:, 1], params.y_max - params.tile / 2))
    return jnp.where(ground[:, None], up, lead)


def reward(prev_poses: jax.Array, poses: jax.Array, task: Task, collisions: jax.Array,
           boundary: jax.Array, params: Params) -> tuple[jax.Array, Task, jax.Array, jax.Array]:
    """Map what the robots sense now; each ground robot's progress towards the goal zone (drones: the ground
    robots' mean), the team's bonuses per tile mapped and at the end, its own penalties.

    Returns (rewards (N,), task, success (N,) = in the goal zone or not needed there, solved: all at once)."""
    ground = jnp.asarray(params.column("goal") > 0)
    gap = lambda p: jnp.maximum(params.goal_y - p[:, 1], 0.0)  # noqa: E731
    gained = jnp.where(ground, gap(prev_poses) - gap(poses), 0.0)
    mean_ground = gained.sum() / ground.sum()
    known = task.known | hetero.covered(poses, params)
    success = reached(poses, params)
    solved = jnp.all(success)
    team = params.map_bonus * jnp.sum(known & ~task.known) + params.success_bonus * solved
    r = (params.progress_gain * jnp.where(ground, gained, mean_ground) + team
         - params.collision_penalty * (collisions > 0) - params.boundary_penalty * boundary)
    return r.astype(poses.dtype), task.replace(known=known, reached=task.reached | success), success, solved
