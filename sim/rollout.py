"""Roll a FleetEnv out for one episode under a simple policy (random or scripted), for pictures and demos."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from marlstack.controllers.unicycle import position_controller, uni_to_diff
from marlstack.sim.fleet import FleetEnv, FleetState

Policy = Callable[[jax.Array, FleetState], jax.Array]  # (key, state) -> stacked actions


def random_policy(env: FleetEnv) -> Policy:
    def act(key, state):
        return jax.vmap(env.action_space(env.agents[0]).sample)(jax.random.split(key, env.num_agents))
    return act


def within_wheel_limits(u: jax.Array, profile) -> jax.Array:
    """Scale each (v, ω) down until both wheels are within the limit: keeps the path's curvature,
    unlike a per-wheel clip. The 1e-6 margin keeps round-off from tripping the actuator check."""
    left, right = uni_to_diff(u[:, 0], u[:, 1], profile.wheel_radius, profile.base_length)
    peak = jnp.maximum(jnp.abs(left), jnp.abs(right))
    return u * jnp.minimum(1.0, profile.max_wheel_speed * (1 - 1e-6) / jnp.maximum(peak, 1e-12))[:, None]


def scripted_policy(env: FleetEnv) -> Policy:
    """Go to the goal: rps's position controller scaled into the wheel limits (continuous), or the
    discrete step along the larger goal offset (stay once within the success radius)."""
    radius = env.params.success_radius
    targets = getattr(env.scenario, "scripted_goals", None)  # default: robot i to goal / landmark i

    def act(key, state):
        goals = state.task.goals if targets is None else targets(state, env.params)
        if env.action_type == "continuous":
            return within_wheel_limits(position_controller(state.poses, goals), env.profile)
        d = goals - state.poses[:, :2]
        along_x = jnp.abs(d[:, 0]) >= jnp.abs(d[:, 1])
        action = jnp.where(along_x, jnp.where(d[:, 0] > 0, 1, 2), jnp.where(d[:, 1] > 0, 3, 4))
        return jnp.where(jnp.linalg.norm(d, axis=-1) <= radius, 0, action)
    return act


POLICIES = {"random": random_policy, "scripted": scripted_policy}


@dataclass
class Episode:
    poses: np.ndarray  # (T + 1, N, 3), the start included
    goals: np.ndarray  # (N, 2)
    rewards: np.ndarray  # (T, N)
    collisions: np.ndarray  # (T, N)
    boundary_exits: np.ndarray  # (T, N)
    actuator_excess: np.ndarray  # (T, N)
    success: np.ndarray  # (T, N)
    solved: bool  # ended because every robot was at its goal

    @property
    def steps(self) -> int:
        return len(self.rewards)


def rollout(env: FleetEnv, policy: Policy, key: jax.Array, steps: int, state: FleetState | None = None) -> Episode:
    """Up to `steps` steps of one episode (stops early when it ends), without the auto-reset;
    from `state` (e.g. `start_state`) or a reset with `key`."""
    k_reset, k_run = jax.random.split(key)
    state = env.reset(k_reset)[1] if state is None else state

    @jax.jit
    def run(state, keys):
        def body(s, k):
            k_act, k_step = jax.random.split(k)
            _, s, r, done, info = env.step_env(k_step, s, policy(k_act, s))
            return s, (s.poses, r, done, info["collisions"], info["boundary_exits"], info["actuator_excess"], info["success"])
        return jax.lax.scan(body, state, keys)[1]

    poses, r, done, coll, bound, act, succ = map(np.asarray, run(state, jax.random.split(k_run, steps)))
    end = int(np.argmax(done)) + 1 if done.any() else steps
    return Episode(poses=np.concatenate([np.asarray(state.poses)[None], poses[:end]]), goals=np.asarray(state.task.goals),
                   rewards=r[:end], collisions=coll[:end], boundary_exits=bound[:end], actuator_excess=act[:end],
                   success=succ[:end], solved=bool(done[:end].any() and succ[end - 1].all()))


def start_state(env: FleetEnv, poses: np.ndarray, goals: np.ndarray) -> FleetState:
    """A fresh episode from given starts (N, 3) and goals (N, 2), e.g. a Robotarium run's."""
    _, state = env.reset(jax.random.PRNGKey(0))
    dtype = state.poses.dtype
    return state.replace(poses=jnp.asarray(poses, dtype), task=state.task.replace(
        goals=jnp.asarray(goals, dtype), reached=jnp.zeros(env.num_agents, bool)))


def policy_rollout(env: FleetEnv, run: Callable[[dict[str, np.ndarray]], np.ndarray], state: FleetState,
                   steps: int) -> Episode:
    """Up to `steps` steps from `state` under an exported policy: `run(sensors) -> (N, 2)` commands
    (onnxruntime, or a numpy translation), fed `env.sense` as float32 — what a robot's node feeds it.
    The environment's barrier and physics follow, as in training; stops when the episode ends."""
    step, sense = jax.jit(env.step_env), jax.jit(env.sense)
    key = jax.random.PRNGKey(0)
    poses, out = [np.asarray(state.poses)], []
    for _ in range(steps):
        sensors = {k: np.asarray(v, np.float32) for k, v in sense(state).items()}
        _, state, r, done, info = step(key, state, jnp.asarray(run(sensors), state.poses.dtype))
        poses.append(np.asarray(state.poses))
        out.append((r, info["collisions"], info["boundary_exits"], info["actuator_excess"], info["success"]))
        if bool(done):
            break
    r, coll, bound, act, succ = (np.asarray(x) for x in zip(*out))
    return Episode(poses=np.array(poses), goals=np.asarray(state.task.goals), rewards=r, collisions=coll,
                   boundary_exits=bound, actuator_excess=act, success=succ, solved=bool(succ[-1].all()))
