"""Material transport: robots of different speeds and payloads carry material from a loading zone to an
unloading zone until none is left.

JaxRobotarium's (after MARBLER's) heterogeneous transport task, played by the fleet. Every robot has a class
(`material_transport_spec.CLASSES`: fast robots carry little, slow robots carry more); the fleet drives
each at its class's top speed. A robot inside its loading zone with room takes what is waiting there (robots
served in index order the same step); inside its unloading zone it drops its whole load. The episode is
solved, and ends, when nothing is waiting and nothing is carried. Each class has a zone pair (`class_zones`;
by default every class uses pair 0), which is all `warehouse` changes.

What differs from the fleet: the task state (material waiting per zone, each robot's load), what a robot
senses (its capabilities and the others', its load, its own loading and unloading zone), the observation
(`hetero.observe_team`'s first part, then its load and zones) and the reward: a team bonus per unit loaded
and per unit unloaded and at the end, each robot's progress towards the zone it needs now, its own penalties.
The observation layout is `material_transport_spec.obs_names`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from marlstack.sim.scenarios import hetero
from marlstack.sim.scenarios import material_transport_spec as spec

SUCCESS_LABEL = "robots whose team delivered all the material"
speed_factors = hetero.speed_factors


@dataclasses.dataclass(frozen=True)
class Params(hetero.Params):
    """The team's constants plus the zones: zone pair i is (`load_zones[i]`, `unload_zones[i]`), each a
    circle (x, y, radius) m; `class_zones` maps class -> pair (absent: pair 0); `material` (low, high): the
    units waiting in each loading zone, drawn per episode."""
    load_zones: tuple[tuple[float, float, float], ...] = spec.LOAD_ZONES
    unload_zones: tuple[tuple[float, float, float], ...] = spec.UNLOAD_ZONES
    class_zones: tuple[tuple[str, int], ...] = ()
    material: tuple[int, int] = spec.MATERIAL
    load_bonus: float = 1.0  # per unit loaded, to every robot
    unload_bonus: float = 2.0  # per unit unloaded, to every robot
    CAPABILITIES: ClassVar[tuple[str, ...]] = spec.CAPABILITIES

    @property
    def pair(self) -> np.ndarray:
        """(N,) each robot's zone pair, from its class."""
        zones = dict(self.class_zones)
        return np.asarray([zones.get(t, 0) for t in self.team], np.int32)


def make_params(profile: Any, num_agents: int, **overrides: Any) -> Params:
    return checked(hetero.make_params(Params, spec, profile, num_agents, **tuples(overrides)))


def tuples(overrides: dict[str, Any]) -> dict[str, Any]:
    """YAML lists -> the hashable tuples `Params` holds."""
    out = dict(overrides)
    for key in ("load_zones", "unload_zones"):
        if key in out:
            out[key] = tuple(tuple(float(v) for v in z) for z in out[key])
    if "class_zones" in out:
        out["class_zones"] = tuple((str(k), int(v)) for k, v in dict(out["class_zones"]).items())
    if "material" in out:
        out["material"] = tuple(int(v) for v in out["material"])
    return out


def checked(params: Params) -> Params:
    if len(params.load_zones) != len(params.unload_zones):
        raise ValueError("load_zones and unload_zones must come in pairs")
    if params.pair.max(initial=0) >= len(params.load_zones):
        raise ValueError(f"class_zones names pair {params.pair.max()}, there are {len(params.load_zones)}")
    lo, hi = params.material
    if not 0 < lo <= hi:
        raise ValueError(f"material must be (low, high) with 0 < low <= high, got {params.material}")
    if (params.column("capacity") <= 0).all():
        raise ValueError("no robot in the team can carry anything (capacity 0)")
    return params


@struct.dataclass
class Task:
    waiting: jax.Array  # (Z,) units still in each loading zone
    load: jax.Array  # (N,) units each robot carries
    delivered: jax.Array  # () units unloaded so far
    zones: jax.Array  # (2Z, 2) the loading zones' centres, then the unloading zones' (for pictures)
    reached: jax.Array  # (N,) bool: everything delivered

    @property
    def goals(self) -> jax.Array:
        return self.zones


def obs_dim(params: Params) -> int:
    return spec.obs_dim(params.num_neighbors)


def num_task_uniforms(placer: Any, params: Params) -> int:
    return len(params.load_zones)


def reset_task(u: jax.Array, poses: jax.Array, placer: Any, params: Params) -> Task:
    """Material per loading zone uniform in `material` (integers), nothing carried."""
    lo, hi = params.material
    waiting = lo + jnp.minimum(jnp.floor(u * (hi - lo + 1)), hi - lo)
    zones = jnp.asarray([z[:2] for z in params.load_zones + params.unload_zones], u.dtype)
    return Task(waiting=waiting.astype(u.dtype), load=jnp.zeros(params.num_agents, u.dtype),
                delivered=jnp.zeros((), u.dtype), zones=zones, reached=jnp.zeros(params.num_agents, bool))


def own_zones(params: Params, dtype: Any) -> tuple[jax.Array, jax.Array]:
    """(N, 3) each robot's loading zone and (N, 3) its unloading zone, (x, y, radius)."""
    pair = params.pair
    return (jnp.asarray(np.asarray(params.load_zones)[pair], dtype),
            jnp.asarray(np.asarray(params.unload_zones)[pair], dtype))


def sense(state: Any, params: Params) -> dict[str, jax.Array]:
    """The team's sensors plus load (N, 1), load_zone (N, 3) = [x, y, units waiting], unload_zone (N, 2)."""
    dtype = state.poses.dtype
    load_zone, unload_zone = own_zones(params, dtype)
    waiting = state.task.waiting[params.pair]
    return hetero.team_sensors(state, params) | {
        "load": state.task.load[:, None], "load_zone": jnp.concatenate([load_zone[:, :2], waiting[:, None]], -1),
        "unload_zone": unload_zone[:, :2]}


def observe(sensors: dict[str, jax.Array], params: Params) -> jax.Array:
    """Sensors with any leading batch axes (..., ·) -> observation (..., obs_dim)."""
    (x, y, _, c, s), own = hetero.observe_team(sensors, params)
    lz, uz = sensors["load_zone"], sensors["unload_zone"]
    task = ([sensors["load"][..., 0]] + hetero.point_features(lz, x, y, c, s) + [lz[..., 2]]
            + hetero.point_features(uz, x, y, c, s))
    return hetero.assemble(own + task)


def world_features(task: Task, params: Params) -> jax.Array:
    """For the centralised critic: units waiting per zone, every robot's load, the team's capabilities."""
    return jnp.concatenate([task.waiting, task.load, hetero.world_columns(params, task.load.dtype)])


def inside(poses: jax.Array, zones: jax.Array) -> jax.Array:
    """(N,) robot i inside circle zones[i] (x, y, radius)."""
    return jnp.hypot(poses[:, 0] - zones[:, 0], poses[:, 1] - zones[:, 1]) <= zones[:, 2]


def targets(poses: jax.Array, task: Task, params: Params) -> tuple[jax.Array, jax.Array]:
    """((N, 2) where each robot should head now, (N,) whether it has anywhere to go): its unloading zone
    when it carries something, its loading zone while material waits there, nowhere otherwise."""
    load_zone, unload_zone = own_zones(params, poses.dtype)
    carrying = task.load > 0
    waiting = task.waiting[params.pair] > 0
    can = jnp.asarray(params.column("capacity") > 0)
    goal = jnp.where(carrying[:, None], unload_zone[:, :2], load_zone[:, :2])
    return goal, carrying | (waiting & can)


def scripted_goals(state: Any, params: Params) -> jax.Array:
    """`marlstack sim material_transport --policy scripted`: each robot to the zone it needs now (or stay)."""
    goal, active = targets(state.poses, state.task, params)
    return jnp.where(active[:, None], goal, state.poses[:, :2])


def reward(prev_poses: jax.Array, poses: jax.Array, task: Task, collisions: jax.Array,
           boundary: jax.Array, params: Params) -> tuple[jax.Array, Task, jax.Array, jax.Array]:
    """Unload, then load (robots in index order share what waits), on the new poses; the team's bonuses,
    each robot's progress towards the zone it needed before the step, its own penalties.

    Returns (rewards (N,), task, success (N,) = everything delivered, solved)."""
    dtype = poses.dtype
    load_zone, unload_zone = own_zones(params, dtype)
    dropped = jnp.where(inside(poses, unload_zone), task.load, 0.0)
    load = task.load - dropped
    want = jnp.where(inside(poses, load_zone), jnp.asarray(params.column("capacity"), dtype) - load, 0.0)
    pair = jnp.asarray(params.pair)
    take = jnp.zeros_like(load)
    waiting = task.waiting
    for z in range(len(params.load_zones)):  # static: a few zones
        mine = jnp.where(pair == z, want, 0.0)
        before = jnp.cumsum(mine) - mine  # what robots of lower index take first
        got = jnp.clip(waiting[z] - before, 0.0, mine)
        take, waiting = take + got, waiting.at[z].add(-got.sum())
    load = load + take
    solved = jnp.all(waiting <= 0) & jnp.all(load <= 0)
    goal, active = targets(prev_poses, task, params)
    team = (params.load_bonus * take.sum() + params.unload_bonus * dropped.sum() + params.success_bonus * solved)
    r = (params.progress_gain * hetero.progress(prev_poses, poses, goal, active) + team
         - params.collision_penalty * (collisions > 0) - params.boundary_penalty * boundary)
    success = jnp.full(poses.shape[0], solved)
    task = task.replace(waiting=waiting, load=load, delivered=task.delivered + dropped.sum(),
                        reached=task.reached | success)
    return r.astype(dtype), task, success, solved
