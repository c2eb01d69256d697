"""Coverage: N robots spread out to cover N landmarks together (the Robotarium analogue of MPE simple spread).

No landmark belongs to a robot: the robots must split the landmarks among themselves. Training pays
each robot for approaching the landmark a greedy pairing gives it (see `reward`). Each robot
sees every landmark with how close its nearest *other* robot is, which tells it which ones are taken.
`sense`/`observe` follow navigation's split (DESIGN contract 2) and reuse its pose, neighbour and
nearest-first selection code, so `observe` exports with jax2onnx the same way. The observation
layout is listed element by element in `coverage_spec.obs_names`.
"""
from __future__ import annotations

import dataclasses
from functools import reduce
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from marlstack.sim.placement import place
from marlstack.sim.scenarios import coverage_spec as spec
from marlstack.sim.scenarios import navigation as nav

SUCCESS_LABEL = "landmarks covered"


@dataclasses.dataclass(frozen=True)
class Params(nav.Params):
    """Navigation's constants (arena, neighbours, reward weights) plus the landmark slots observed.

    `success_bonus` is paid to every robot when the episode is solved (which ends it).
    """
    num_landmarks: int = spec.NUM_LANDMARKS


def make_params(profile: Any, num_agents: int, **overrides: Any) -> Params:
    return Params.from_profile(profile, num_agents, **overrides)


@struct.dataclass
class Task:
    landmarks: jax.Array  # (N, 2) m, world frame
    reached: jax.Array  # (N,) bool: landmark covered at least once this episode

    @property
    def goals(self) -> jax.Array:
        """The task's points, under the name FleetEnv's world state and sim.rollout's pictures and
        scripted policy (landmark i for robot i) read."""
        return self.landmarks


def obs_dim(params: Params) -> int:
    return spec.obs_dim(params.num_neighbors, params.num_landmarks)


num_task_uniforms = nav.num_task_uniforms  # the same draw: one placement


def reset_task(u: jax.Array, poses: jax.Array, placer: Any, params: Params) -> Task:
    """Landmarks from the same separated placement as the robots (two diameters apart, a diameter
    from the walls), independently of the starts."""
    return Task(landmarks=place(u, placer), reached=jnp.zeros(params.num_agents, bool))


def sense(state: Any, params: Params) -> dict[str, jax.Array]:
    """Raw sensors per robot: pose (N, 3), others (N, N-1, 3), landmarks (N, N, 2); world frame, m and rad."""
    n = params.num_agents
    return {"pose": state.poses, "others": nav.others_of(state.poses),
            "landmarks": jnp.broadcast_to(state.task.landmarks, (n, n, 2))}


def observe(sensors: dict[str, jax.Array], params: Params) -> jax.Array:
    """Sensors with any leading batch axes (..., ·) -> observation (..., obs_dim).

    Own pose features and the K nearest others exactly as navigation's, then the L nearest
    landmarks: robot-frame dx, dy, distance, the distance from the landmark to its nearest other
    robot, present. Assembled like navigation's (one stack, one transpose) for the same reason.
    """
    pose, others, landmarks = sensors["pose"], sensors["others"], sensors["landmarks"]
    x, y, th = pose[..., 0], pose[..., 1], pose[..., 2]
    c, s = jnp.cos(th), jnp.sin(th)
    own = nav.pose_features(x, y, c, s, params) + nav.neighbors(others, x, y, th, c, s, params)
    return jnp.moveaxis(jnp.stack(own + _landmarks(landmarks, others, x, y, c, s, params), axis=0), 0, -1)


def _landmarks(landmarks, others, x, y, c, s, params: Params) -> list[jax.Array]:
    """The L nearest landmarks, nearest first: per slot (dx, dy, distance, other robot's distance, present)."""
    k = params.num_landmarks
    real = min(k, landmarks.shape[-2])

    def features(point):
        # The nearest other robot as a running elementwise minimum (no reduction over a short axis).
        dx = [point[..., 0] - others[..., j, 0] for j in range(others.shape[-2])]
        dy = [point[..., 1] - others[..., j, 1] for j in range(others.shape[-2])]
        gaps = [jnp.sqrt(a * a + b * b) for a, b in zip(dx, dy)]
        taken = reduce(jnp.minimum, gaps) if gaps else jnp.full_like(x, params.far)
        return (*nav.robot_frame(point, x, y, c, s), taken)

    slots = nav.nearest(landmarks, x, y, real, features, params.gather_above)
    return nav.padded_slots(slots, k, x, (0.0, 0.0, params.far, 0.0, 0.0))


def landmark_gaps(poses: jax.Array, landmarks: jax.Array) -> jax.Array:
    """(N,) distance from each landmark to its nearest robot."""
    return distances(poses, landmarks).min(-1)


def distances(poses: jax.Array, landmarks: jax.Array) -> jax.Array:
    """(landmarks, robots) distance matrix."""
    dx = landmarks[:, None, 0] - poses[None, :, 0]
    dy = landmarks[:, None, 1] - poses[None, :, 1]
    return jnp.sqrt(dx * dx + dy * dy)


def greedy_assignment(d: jax.Array) -> jax.Array:
    """(robots,) landmark index per robot: repeatedly pair the closest free robot and landmark.

    Within a few percent of the optimal assignment for the fleets we train, O(N^3) instead of N!."""
    n = d.shape[0]

    def pick(_, carry):
        d, owner = carry
        k = jnp.argmin(d)
        landmark, robot = k // n, k % n
        return d.at[landmark, :].set(jnp.inf).at[:, robot].set(jnp.inf), owner.at[robot].set(landmark)
    return jax.lax.fori_loop(0, n, pick, (d, jnp.zeros(n, jnp.int32)))[1]


def reward(prev_poses: jax.Array, poses: jax.Array, task: Task, collisions: jax.Array,
           boundary: jax.Array, params: Params) -> tuple[jax.Array, Task, jax.Array, jax.Array]:
    """Each robot's progress towards the landmark a greedy robot-landmark pairing gives it, a team
    bonus when all are covered, each robot's own collision and boundary penalties.

    A team reward alone (the summed landmark gaps, MPE simple spread's) pays nothing to a robot that
    is nobody's nearest and lets two robots share a landmark: 2 or 3 of 4 landmarks covered after
    4M steps (docs/training.md). The pairing is made on the previous poses, so a robot is paid for
    moving towards one landmark per step; it is training-only (no robot needs it at run time).
    Returns (rewards (N,), task, success (N,) = landmark i covered now, episode solved: all covered at once).
    """
    gaps = landmark_gaps(poses, task.landmarks)
    covered = gaps <= params.success_radius
    solved = jnp.all(covered)
    before = distances(prev_poses, task.landmarks)
    mine = greedy_assignment(before)
    robots = jnp.arange(poses.shape[0])
    progress = before[mine, robots] - distances(poses, task.landmarks)[mine, robots]
    r = (params.progress_gain * progress + params.success_bonus * solved
         - params.collision_penalty * (collisions > 0) - params.boundary_penalty * boundary)
    return r.astype(poses.dtype), task.replace(reached=task.reached | covered), covered, solved
