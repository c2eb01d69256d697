"""What every heterogeneous-team scenario shares: the team in its parameters, capabilities as sensors, and
the observation's first part (navigation's pose features, own capabilities, the K nearest others with theirs).

The classes and their capabilities are `sim.scenarios.team`'s (JAX-free, for the specs); the scenarios
(`material_transport`, `warehouse`, `discovery`, `predator_capture_prey`, `arctic_transport`) add their task.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from marlstack.sim.scenarios import navigation as nav
from marlstack.sim.scenarios import team as tm


@dataclasses.dataclass(frozen=True)
class Params(nav.Params):
    """Navigation's constants plus the team: `team` (class per robot) and `classes` (name, RobotClass)."""
    team: tuple[str, ...] = ()
    classes: tuple[tuple[str, tm.RobotClass], ...] = ()
    tile: float = tm.TILE  # m: the square tiles of a team map (arctic transport's terrain, discovery's searched area)
    CAPABILITIES: ClassVar[tuple[str, ...]] = ("speed",)  # what a robot observes of itself and its neighbours

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, columns) of tiles covering the arena."""
        return (math.ceil((self.y_max - self.y_min) / self.tile - 1e-9),
                math.ceil((self.x_max - self.x_min) / self.tile - 1e-9))

    def column(self, field: str) -> np.ndarray:
        """(N,) one capability of every robot."""
        return tm.capabilities(self.team, self.classes, (field,))[:, 0]

    @property
    def capability_table(self) -> np.ndarray:
        """(N, C) the observed capabilities of every robot."""
        return tm.capabilities(self.team, self.classes, self.CAPABILITIES)


def make_params(cls: type[Params], spec: Any, profile: Any, num_agents: int, **overrides: Any) -> Params:
    """`cls` from the profile, with the team resolved against `spec.CLASSES` / `spec.TEAM` (bad names: ValueError)."""
    classes = tm.resolve_classes(overrides.pop("classes", None), spec.CLASSES)
    team = tm.resolve_team(overrides.pop("team", ()), dict(classes), spec.TEAM, num_agents)
    return cls.from_profile(profile, num_agents, team=team, classes=classes, **overrides)


def speed_factors(poses: jax.Array, task: Any, params: Params) -> jax.Array:
    """(N,) each robot's top speed as a fraction of the profile's: its class's (`FleetEnv` applies it)."""
    return jnp.asarray(params.column("speed"), poses.dtype)


def team_sensors(state: Any, params: Params) -> dict[str, jax.Array]:
    """pose (N, 3), others (N, N-1, 3), capabilities (N, C), other_capabilities (N, N-1, C)."""
    caps = jnp.asarray(params.capability_table, state.poses.dtype)
    return {"pose": state.poses, "others": nav.others_of(state.poses), "capabilities": caps,
            "other_capabilities": nav.others_of(caps)}


def observe_team(sensors: dict[str, jax.Array], params: Params) -> tuple[tuple[jax.Array, ...], list[jax.Array]]:
    """((x, y, θ, cos θ, sin θ), features): the pose features, own capabilities, then the K nearest others,
    nearest first, each (dx, dy, distance, relative heading, its capabilities..., present); padded slots
    have navigation's padding and capabilities 0."""
    pose, others, caps = sensors["pose"], sensors["others"], sensors["capabilities"]
    x, y, th = pose[..., 0], pose[..., 1], pose[..., 2]
    c, s = jnp.cos(th), jnp.sin(th)
    rows = jnp.concatenate([others, sensors["other_capabilities"]], -1)  # (..., N-1, 3 + C)
    k, nc = params.num_neighbors, caps.shape[-1]
    near = nav.nearest(rows, x, y, min(k, rows.shape[-2]),
                       lambda o: (*nav.relative_pose(o, x, y, th, c, s), *(o[..., 3 + j] for j in range(nc))),
                       params.gather_above)
    own = nav.pose_features(x, y, c, s, params) + [caps[..., j] for j in range(nc)]
    return (x, y, th, c, s), own + nav.padded_slots(near, k, x, (0.0, 0.0, params.far, 0.0) + (0.0,) * nc + (0.0,))


def assemble(features: list[jax.Array]) -> jax.Array:
    """Per-feature (...) arrays -> (..., F), one stack and one transpose (navigation's reason)."""
    return jnp.moveaxis(jnp.stack(features, axis=0), 0, -1)


def point_features(point: jax.Array, x, y, c, s) -> list[jax.Array]:
    """A world point (..., ≥2) from the robot: robot-frame dx, dy, distance."""
    return list(nav.robot_frame(point, x, y, c, s))


def progress(prev_poses: jax.Array, poses: jax.Array, targets: jax.Array, active: jax.Array) -> jax.Array:
    """(N,) metres each robot gained on its own target (N, 2) over the step, 0 where not `active`."""
    before = jnp.hypot(prev_poses[:, 0] - targets[:, 0], prev_poses[:, 1] - targets[:, 1])
    after = jnp.hypot(poses[:, 0] - targets[:, 0], poses[:, 1] - targets[:, 1])
    return jnp.where(active, before - after, 0.0)


def world_columns(params: Params, dtype: Any) -> jax.Array:
    """The team's observed capabilities, flattened: for the centralised critic's world features."""
    return jnp.asarray(params.capability_table, dtype).reshape(-1)


def listed_points(rows: jax.Array, x, y, c, s, params: nav.Params, k: int | None = None) -> list[jax.Array]:
    """The `k` (default: every) rows (..., M, 3 + V) = [x, y, present, values...] nearest first, absent ones last
    as padding: per slot (dx, dy, distance, values..., present); an absent row reads (0, 0, arena diagonal, 0..., 0)."""
    present = rows[..., 2] > 0
    # absent rows move far out of the arena, so either selection path sorts them last
    shifted = rows.at[..., 0].add(jnp.where(present, 0.0, 10 * params.far))

    def features(row):
        here = row[..., 2] > 0
        dx, dy, dist = nav.robot_frame(row, x, y, c, s)
        values = tuple(jnp.where(here, row[..., 3 + j], 0.0) for j in range(row.shape[-1] - 3))
        return (jnp.where(here, dx, 0.0), jnp.where(here, dy, 0.0), jnp.where(here, dist, params.far), *values,
                here.astype(x.dtype))

    slots = nav.nearest(shifted, x, y, rows.shape[-2] if k is None else k, features, params.gather_above)
    return [f for slot in slots for f in slot]


def centres(params: Params) -> tuple[np.ndarray, np.ndarray]:
    """(cols,) tile centre x and (rows,) tile centre y: constants (numpy), also while a graph is traced."""
    rows, cols = params.grid
    return (params.x_min + params.tile * (np.arange(cols) + 0.5), params.y_min + params.tile * (np.arange(rows) + 0.5))


def covered(poses: jax.Array, params: Params) -> jax.Array:
    """(rows, cols) tiles whose centre is within some robot's sensing radius."""
    cx, cy = centres(params)
    radius = jnp.asarray(params.column("sensing_radius"), poses.dtype)
    d2 = (poses[:, 0, None, None] - cx[None, None, :]) ** 2 + (poses[:, 1, None, None] - cy[None, :, None]) ** 2
    return jnp.any(d2 <= radius[:, None, None] ** 2, 0)


def tile_values(grid: jax.Array, x: jax.Array, y: jax.Array, params: Params, di: int = 0, dj: int = 0) -> jax.Array:
    """(...) the value of the tile (di rows, dj columns) from the one under (x, y); 0 outside the arena.
    One-hot products instead of a gather: elementwise and sums, which export as they are."""
    rows, cols = params.grid
    i = jnp.floor((y - params.y_min) / params.tile) + di
    j = jnp.floor((x - params.x_min) / params.tile) + dj
    row_hot = (i[..., None] == jnp.arange(rows, dtype=x.dtype)).astype(x.dtype)  # (..., rows)
    col_hot = (j[..., None] == jnp.arange(cols, dtype=x.dtype)).astype(x.dtype)  # (..., cols)
    return jnp.sum(jnp.sum(grid * row_hot[..., :, None], -2) * col_hot, -1)
