"""The Robotarium-style fleet simulator: differential-drive robots in a walled arena, in pure JAX.

Physics is rps's `step()` exactly (forward Euler on the unicycle, heading wrapped with
arctan2(sin, cos), the profile's saturation), and each step counts the three violations rps
accumulates, judged like rps: on the poses *before* the move and on the command as the robot
receives it. `FleetEnv` wraps it in JaxMARL's `MultiAgentEnv` contract (duck-typed): per-agent
dicts, auto-reset inside `step`, spaces, `world_state`. All state lives in `FleetState`
(a flax.struct dataclass), so `jit`, `vmap` and `lax.scan` apply directly.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from marlstack.controllers.unicycle import position_controller, saturate, wheel_excess
from marlstack.hardware import load_profile
from marlstack.sim import scenarios
from marlstack.sim.angles import wrap_angle
from marlstack.sim.placement import make_placer, place, uniforms
from marlstack.sim.spaces import Box, Discrete
from marlstack.sim.waypoints import NUM_ACTIONS, waypoints


@struct.dataclass
class Violations:
    """Per-robot counts for one step (rps's error kinds)."""
    collisions: jax.Array  # (N,) int: how many other robots this one collides with (a pair counts for both)
    boundary_exits: jax.Array  # (N,) int 0/1: outside the arena
    actuator_excess: jax.Array  # (N,) int 0/1: the command asks a wheel for more than max_wheel_speed


@struct.dataclass
class FleetState:
    poses: jax.Array  # (N, 3) [x m, y m, theta rad], world frame
    task: Any  # the scenario's task state (navigation: goals, reached)
    step: jax.Array  # () int32, steps taken in this episode
    episode_returns: jax.Array  # (N,) running sum of rewards
    returned_episode_returns: jax.Array  # (N,) return of the last finished episode
    returned_episode_lengths: jax.Array  # (N,) length of the last finished episode
    returned_episode_success: jax.Array  # (N,) bool: reached its goal during the last finished episode
    barrier_memory: Any = None  # the barrier's right-hand-rule memory (`deadlock_hold_s` > 0), else None


def float_dtype() -> Any:
    """float32, or float64 when JAX's x64 mode is on."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def violations(profile: Any, poses: jax.Array, u: jax.Array) -> Violations:
    """rps's `_validate` per robot: poses (N, 3) before the move, u (N, 2) as received (see `physics_step`)."""
    a = profile.arena
    x, y, th = poses[..., 0], poses[..., 1], poses[..., 2]
    outside = (x < a.x_min) | (x > a.x_max) | (y < a.y_min) | (y > a.y_max)
    cx = x + profile.collision_offset * jnp.cos(th) if profile.collision_offset else x
    cy = y + profile.collision_offset * jnp.sin(th) if profile.collision_offset else y
    dx, dy = cx[..., :, None] - cx[..., None, :], cy[..., :, None] - cy[..., None, :]
    n = poses.shape[-2]
    close = (jnp.sqrt(dx * dx + dy * dy) <= profile.collision_distance) & ~jnp.eye(n, dtype=bool)
    return Violations(collisions=close.sum(-1).astype(jnp.int32), boundary_exits=outside.astype(jnp.int32),
                      actuator_excess=wheel_excess(u[..., 0], u[..., 1], profile).astype(jnp.int32))


def physics_step(profile: Any, poses: jax.Array, u: jax.Array, noise: jax.Array | None = None
                 ) -> tuple[jax.Array, Violations, jax.Array]:
    """One step of rps: saturate, validate (old poses), Euler-integrate, wrap the heading.

    The actuator check sees the command as rps stores it: after set_velocities' v/ω clip for
    'unicycle' saturation (PyPI rps), before the wheel clip for 'wheel' saturation (rps 2.1).
    `noise` (N, 2), if given, is added to the saturated command (actuators that do not track exactly).
    Returns (new poses, violations, applied command (N, 2)).
    """
    v_sat, w_sat = saturate(u[..., 0], u[..., 1], profile)
    applied = jnp.stack([v_sat, w_sat], axis=-1)
    viol = violations(profile, poses, u if profile.saturation == "wheel" else applied)
    if noise is not None:
        applied = applied + noise
    v, w = applied[..., 0], applied[..., 1]
    x, y, th = poses[..., 0], poses[..., 1], poses[..., 2]
    # Same operation order as rps (dt * cos(theta) * v) so float64 results agree to the last bits.
    x = x + profile.dt * jnp.cos(th) * v
    y = y + profile.dt * jnp.sin(th) * v
        # Heading wrapped like rps's arctan2(sin θ, cos θ), without its three transcendentals (the
    # step's costliest ops): agrees to rounding (~1e-16 rad), exact for θ already in range.
    return jnp.stack([x, y, wrap_angle(th + profile.dt * w)], axis=-1), viol, applied


def scale_forward(u: jax.Array, factor: jax.Array) -> jax.Array:
    """(..., 2) [v, ω] with v times each robot's top-speed factor (...): a heterogeneous team's nominal command
    (its class, its terrain), here and in the exported graph (`policies.export.sensed_speed`)."""
    return jnp.stack([u[..., 0] * factor, u[..., 1]], axis=-1)


def waypoint_commands(profile: Any, poses: jax.Array, actions: jax.Array) -> jax.Array:
    """Discrete actions (...,) at poses (..., 3) -> nominal unicycle commands (..., 2) [v, ω]: the waypoint
    0.2 m that way, kept half a diameter inside the walls, tracked by rps's position controller (within
    the profile's v/ω limits: at most 0.16 m/s and 0.6 rad/s). The exported graph of a discrete policy
    ends with this same function, so a robot receives (v, ω) whichever action type was trained."""
    targets = waypoints(poses[..., :2], jnp.asarray(actions, jnp.int32), profile.arena, profile.diameter / 2)
    return position_controller(poses, targets)


class FleetEnv:
    """A fleet of `num_agents` robots on one scenario (JaxMARL MultiAgentEnv duck type).

    action_type 'continuous': (v m/s, ω rad/s) per robot, Box ±profile limits (saturated like the robot);
    'discrete': 0 stay, 1 +x, 2 −x, 3 +y, 4 −y — a waypoint 0.2 m that way, kept inside the walls,
    tracked by rps's unicycle position controller.
    barrier: None or a form of `controllers.barrier_jax.unicycle_barrier` ('unicycle_walls', ...);
    the filter is applied to the unicycle command every step, before saturation.
    deadlock_hold_s: > 0 adds the deployment's right-hand rule to the barrier (the safety node's parameter
    of that name, `controllers.barrier_jax.deadlock_free_barrier`); its memory is in FleetState.
    actuation_noise: std of Gaussian noise added to the applied (v, ω), as a fraction of the limits.
    world_state: also put `world_state(state)` (N, D) into the obs dict, as JaxMARL's MAPPO expects.
    """

    def __init__(self, profile: Any = "gritsbot_x", num_agents: int = 4, scenario: str = "navigation",
                 action_type: str = "continuous", max_steps: int = 500, barrier: str | None = None,
                 actuation_noise: float = 0.0, world_state: bool = False, deadlock_hold_s: float = 0.0,
                 **scenario_params: Any):
        self.profile = load_profile(profile) if isinstance(profile, str) else profile
        if not 1 <= num_agents <= self.profile.max_robots:
            raise ValueError(f"num_agents must be in 1..{self.profile.max_robots} for profile "
                             f"{self.profile.name!r}, got {num_agents}")
        if action_type not in ("continuous", "discrete"):
            raise ValueError(f"action_type must be 'continuous' or 'discrete', got {action_type!r}")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.num_agents = num_agents
        self.agents = [f"agent_{i}" for i in range(num_agents)]
        self.name = scenario
        self.action_type = action_type
        self.max_steps = max_steps
        self.actuation_noise = float(actuation_noise)
        self.with_world_state = world_state
        self.scenario = scenarios.get(scenario)
        self.params = self.scenario.make_params(self.profile, num_agents, **scenario_params)
        # Starts and goals: separated by two robot diameters, a diameter from the walls; in the scenario's
        # `start_arena` where it has one (arctic transport: the bottom of the arena).
        start_arena = getattr(self.scenario, "start_arena", None)
        arena = self.profile.arena if start_arena is None else start_arena(self.profile.arena, self.params)
        self.placer = make_placer(arena, 2 * self.profile.diameter, self.profile.diameter, num_agents)
        self.barrier = barrier
        # Static obstacles (RWARE's shelves), from the scenario only: the barrier's box rows and the pictures.
        boxes = getattr(self.scenario, "obstacles", None)
        self.obstacles = () if boxes is None else tuple(boxes(self.params))
        self._barrier_fn = None
        self.deadlock_hold_s = float(deadlock_hold_s)
        if self.deadlock_hold_s > 0 and barrier is None:
            raise ValueError("deadlock_hold_s needs a barrier (the right-hand rule turns the barrier's nominal)")
        if barrier is not None and self.deadlock_hold_s > 0:
            from marlstack.controllers.barrier_jax import deadlock_free_barrier
            self._barrier_fn = deadlock_free_barrier(self.profile, num_agents, self.profile.dt, barrier,
                                                     boxes=self.obstacles, hold_s=self.deadlock_hold_s)
        elif barrier is not None:  # the barrier module validates the form (ValueError naming the choices)
            from marlstack.controllers.barrier_jax import unicycle_barrier
            self._barrier_fn = unicycle_barrier(self.profile, num_agents, barrier, boxes=self.obstacles)
        p = self.profile
        if action_type == "continuous":
            space = Box.make([-p.max_linear_speed, -p.max_angular_speed], [p.max_linear_speed, p.max_angular_speed], (2,))
        else:
            space = Discrete(NUM_ACTIONS)
        self.action_spaces = {a: space for a in self.agents}
        obs_space = Box.make(-jnp.inf, jnp.inf, (self.scenario.obs_dim(self.params),))
        self.observation_spaces = {a: obs_space for a in self.agents}

    # --- JaxMARL interface -------------------------------------------------------------------
    def observation_space(self, agent: str) -> Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> Box | Discrete:
        return self.action_spaces[agent]

    @partial(jax.jit, static_argnums=0)
    def reset(self, key: jax.Array) -> tuple[dict[str, jax.Array], FleetState]:
        state = self._initial_state(key)
        return self.get_obs(state), state

    @partial(jax.jit, static_argnums=0)
    def step(self, key: jax.Array, state: FleetState, actions: dict[str, jax.Array] | jax.Array
             ) -> tuple[dict[str, jax.Array], FleetState, dict[str, jax.Array], dict[str, jax.Array], dict[str, jax.Array]]:
        """One step; when the episode ends, the returned obs and state are already the next episode's."""
        stepped, rewards, done, info = self._transition(key, state, actions)
        fresh = self._initial_state(key)  # the transition draws from fold_in(key, 1): independent
        state = jax.tree_util.tree_map(lambda new, old: jnp.where(done, new, old), fresh, stepped)
        # The last episode's statistics survive the reset.
        state = state.replace(returned_episode_returns=stepped.returned_episode_returns,
                              returned_episode_lengths=stepped.returned_episode_lengths,
                              returned_episode_success=stepped.returned_episode_success)
        dones = {a: done for a in self.agents} | {"__all__": done}
        # Observations are a function of the state: computed once, after the reset choice.
        return self.get_obs(state), state, {a: rewards[i] for i, a in enumerate(self.agents)}, dones, info

    def get_obs(self, state: FleetState) -> dict[str, jax.Array]:
        obs = self.observations(state)
        out = {a: obs[i] for i, a in enumerate(self.agents)}
        if self.with_world_state:
            out["world_state"] = self._world_state(state, obs)
        return out

    def world_state(self, state: FleetState) -> jax.Array:
        """(N, obs_dim + 6 N + 1): each robot's own observation, then every robot's
        (x, y, cos θ, sin θ, goal x, goal y) and the episode's elapsed fraction — for centralised critics.
        A scenario with `world_features(task, params)` (foraging) gives every robot's (x, y, cos θ, sin θ),
        then those features, instead of the goal columns."""
        return self._world_state(state, self.observations(state))

    # --- pieces -------------------------------------------------------------------------------
    def sense(self, state: FleetState) -> dict[str, jax.Array]:
        return self.scenario.sense(state, self.params)

    def observations(self, state: FleetState) -> jax.Array:
        """(N, obs_dim): `observe(sense(state))`, the same function the exported policy runs."""
        return self.scenario.observe(self.sense(state), self.params)

    def _world_state(self, state: FleetState, obs: jax.Array) -> jax.Array:
        p = state.poses
        features = getattr(self.scenario, "world_features", None)  # scenarios whose task is not one goal per robot
        if features is None:
            glob = jnp.concatenate([p[:, :2], jnp.cos(p[:, 2:]), jnp.sin(p[:, 2:]), state.task.goals], -1).reshape(-1)
        else:
            glob = jnp.concatenate([jnp.concatenate([p[:, :2], jnp.cos(p[:, 2:]), jnp.sin(p[:, 2:])], -1).reshape(-1),
                                    features(state.task, self.params).astype(p.dtype)])
        glob = jnp.concatenate([glob, (state.step / self.max_steps).astype(p.dtype)[None]])
        return jnp.concatenate([obs, jnp.broadcast_to(glob, (self.num_agents, glob.shape[0]))], axis=-1)

    def _initial_state(self, key: jax.Array) -> FleetState:
        dtype, n = float_dtype(), self.num_agents
        m = self.placer.num_uniforms
        # One hashed draw for the whole reset: it runs every step for every env (auto-reset).
        u = uniforms(key, m + n + self.scenario.num_task_uniforms(self.placer, self.params), dtype)
        theta = (2 * u[m:m + n] - 1) * jnp.pi
        poses = jnp.concatenate([place(u[:m], self.placer), theta[:, None]], axis=-1)
        zeros = jnp.zeros(n, dtype)
        return FleetState(poses=poses, task=self.scenario.reset_task(u[m + n:], poses, self.placer, self.params),
                          step=jnp.zeros((), jnp.int32), episode_returns=zeros, returned_episode_returns=zeros,
                          returned_episode_lengths=jnp.zeros(n, jnp.int32),
                          returned_episode_success=jnp.zeros(n, bool), barrier_memory=self._barrier_memory())

    def _barrier_memory(self) -> Any:
        """An episode's fresh right-hand-rule memory, or None without the rule."""
        if self.deadlock_hold_s <= 0:
            return None
        from marlstack.controllers.barrier_jax import deadlock_memory
        return deadlock_memory(self.num_agents)

    def commands(self, state: FleetState, actions: dict[str, jax.Array] | jax.Array) -> jax.Array:
        """Actions (per-agent dict or stacked array) -> nominal unicycle commands (N, 2)."""
        if isinstance(actions, dict):
            actions = jnp.stack([jnp.asarray(actions[a]) for a in self.agents])
        if self.action_type == "continuous":
            return jnp.asarray(actions, state.poses.dtype).reshape(self.num_agents, 2)
        return waypoint_commands(self.profile, state.poses, jnp.asarray(actions).reshape(self.num_agents))

    def _override(self, nominal: jax.Array, safe: jax.Array) -> jax.Array:
        """(N,) how far the barrier moved each robot's command: ‖Δ(v, ω)‖ with v and ω as fractions of the
        profile's limits (‖Δ‖ in raw units would be almost all ω, whose limit is 18× v's)."""
        p = self.profile
        dv, dw = (safe[:, 0] - nominal[:, 0]) / p.max_linear_speed, (safe[:, 1] - nominal[:, 1]) / p.max_angular_speed
        return jnp.sqrt(dv * dv + dw * dw).astype(nominal.dtype)

    def step_env(self, key: jax.Array, state: FleetState, actions: dict[str, jax.Array] | jax.Array):
        """One step without the auto-reset: (obs, state, rewards (N,), done, info)."""
        state, rewards, done, info = self._transition(key, state, actions)
        return self.get_obs(state), state, rewards, done, info

    def _transition(self, key: jax.Array, state: FleetState, actions: dict[str, jax.Array] | jax.Array):
        """Commands, barrier, physics, reward and episode bookkeeping: (state, rewards (N,), done, info)."""
        u = self.commands(state, actions)
        info: dict[str, jax.Array] = {}
        # Heterogeneous teams: each robot's own top speed (its class, the terrain under it) as a fraction of
        # the profile's; the nominal command is scaled by it and the barrier's output clipped to it.
        factors = getattr(self.scenario, "speed_factors", None)
        speed = None if factors is None else factors(state.poses, state.task, self.params)
        if speed is not None:
            u = scale_forward(u, speed)
        nominal = u
        memory = state.barrier_memory
        if self._barrier_fn is not None:
            if memory is None:
                u, barrier_info = self._barrier_fn(state.poses, u)
            else:
                u, barrier_info, memory = self._barrier_fn(state.poses, u, memory)
            # Per-robot entries as they are, fleet-wide scalars (status, residual) repeated per robot.
            info |= {f"barrier_{k}": jnp.broadcast_to(v, (self.num_agents,)) for k, v in barrier_info.items()
                     if jnp.shape(v) in ((), (self.num_agents,))}
            if speed is not None:
                top = speed * self.profile.max_linear_speed
                u = jnp.stack([jnp.clip(u[:, 0], -top, top), u[:, 1]], axis=-1)
        noise = None
        if self.actuation_noise:
            p = self.profile
            scale = jnp.asarray([p.max_linear_speed, p.max_angular_speed], u.dtype) * self.actuation_noise
            noise = jax.random.normal(jax.random.fold_in(key, 1), u.shape, u.dtype) * scale
        poses, viol, _ = physics_step(self.profile, state.poses, u, noise)
        # Materialise the new poses once: otherwise XLA re-computes the physics (trig included)
        # inside every fusion that reads them, which doubled the cost of a step.
        poses, viol = jax.lax.optimization_barrier((poses, viol))
        rewards, task, success, solved = self.scenario.reward(state.poses, poses, state.task, viol.collisions,
                                                              viol.boundary_exits, self.params)
        if self._barrier_fn is not None and self.params.intervention_penalty:
            rewards = rewards - self.params.intervention_penalty * self._override(nominal, u)
        step = state.step + 1
        timeout = step >= self.max_steps
        done = solved | timeout
        returns = state.episode_returns + rewards
        state = state.replace(
            poses=poses, task=task, step=step, episode_returns=returns, barrier_memory=memory,
            returned_episode_returns=jnp.where(done, returns, state.returned_episode_returns),
            returned_episode_lengths=jnp.where(done, step, state.returned_episode_lengths),
            returned_episode_success=jnp.where(done, task.reached, state.returned_episode_success))
        n = self.num_agents
        info |= {"collisions": viol.collisions, "boundary_exits": viol.boundary_exits,
                 "actuator_excess": viol.actuator_excess, "success": success,
                 # the episode ended by its time limit, not solved: a truncation (trainers bootstrap the value)
                 "truncated": jnp.full(n, timeout & ~solved),
                 "returned_episode": jnp.full(n, done), "returned_episode_returns": state.returned_episode_returns,
                 "returned_episode_lengths": state.returned_episode_lengths,
                 "returned_episode_success": state.returned_episode_success}
        return state, rewards, done, info
