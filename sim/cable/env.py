"""`CableEnv`: N quadrotors carry a cable-suspended load to a goal pose (JaxMARL `MultiAgentEnv` duck type).

Each agent is one MAV with its own policy and no communication. Every 1/policy_rate_hz the policy
of MAV i sends a world-frame acceleration (3, m/s²) and roll/pitch body-rate references (2, rad/s),
clipped to the profile's `control.max_acceleration` / `control.max_rate_reference` (a trained policy
squashes with tanh into this box). Between two policy steps the low-level controller
(`controllers.quadrotor`, INDI or rate PID as the profile says) and the physics run
`profile.substeps` times inside the same jitted function.

Observation of MAV i (the paper's: load pose and twist, own state, the other MAVs' relative positions,
goal error, agent id, optional history), from `sense()` through the one `observe()`, in the order
`sim.cable.spec.OBS_LAYOUT` lists; it also carries the classical controller's command
(`sim.cable.carrot`), computed from the same sensors.

Residual actions (`residual > 0`): the policy's action is a correction of at most `residual` times the
action limits added to the classical controller's command (`command()`), the same sum an exported
policy computes.

Tasks: `hover` (hold the start pose), `move` (go to the profile's `task.move_offset` / `move_yaw`),
`random` (goal within ±goal_position_range, roll/pitch within ±goal_tilt_range, any yaw, kept only
where the goal's static equilibrium keeps the cables and MAVs inside the limits with a margin). The
team starts at rest, shifted by up to `task.start_position_range`. Success: the load within the
tolerance for `task.success_hold` seconds, which ends `move` and `random` episodes.
Optional failure: one MAV loses all thrust at a random step (between 20 % and 80 % of the episode)
and its cable is released. Optional `variation` (`sim.cable.variation`): each episode's true masses,
inertias, cable lengths and motors differ from the profile, the policy's sensors are noisy and its
commands arrive late (`"profile"`: the profile's `randomization:` ranges; a dict: ranges per factor).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from marlstack.controllers import quadrotor
from marlstack.controllers.mav_barrier import cable_ends, cable_geometry, closest_params
from marlstack.controllers.mav_barrier_jax import mav_barrier
from marlstack.hardware import load_profile
from marlstack.sim.cable import carrot, variation as var
from marlstack.sim.cable.dynamics import Bodies, cable_vectors, physics_step
from marlstack.sim.cable.equilibrium import hover
from marlstack.sim.cable.rotation import quat_angle, quat_from_euler, quat_integrate, quat_to_rot
from marlstack.sim.spaces import Box

TASKS = ("hover", "move", "random")
ACTION_DIM = 5
CRASH_CAUSES = ("ground", "cable_angle", "mav_distance", "cables_crossed", "workspace", "cable_push", "non_finite")
GOAL_CANDIDATES = 8  # random goals drawn per reset; the first feasible one is used


@struct.dataclass
class CableState:
    bodies: Bodies
    ctrl: quadrotor.CtrlState
    goal_pos: jnp.ndarray      # (3,)
    goal_quat: jnp.ndarray     # (4,)
    actions: jnp.ndarray       # (N, max(history, 1), 5) normalised actions, newest first
    step: jnp.ndarray          # () int32
    fail_agent: jnp.ndarray    # () int32, -1: no failure this episode; or (N,) each failed MAV's own index, -1 elsewhere
                               # (several MAVs cut at once: SITL's kills, ros_nodes/mav_sim.py)
    fail_step: jnp.ndarray     # () int32
    tension: jnp.ndarray       # (N,) at the last substep
    min_tension: jnp.ndarray   # (N,) smallest over the last policy step's substeps
    held: jnp.ndarray          # () int32, consecutive steps with the load inside the success tolerance
    variation: var.Variation | None = None  # this episode's true team and sensors (None: the profile's)
    pending: jnp.ndarray | None = None      # (L, N, 5) commands still on their way, newest first (latency)


def segment_distance(p1: jnp.ndarray, q1: jnp.ndarray, p2: jnp.ndarray, q2: jnp.ndarray) -> jnp.ndarray:
    """Shortest distance between segments p1q1 and p2q2 (any leading dims), clamped closest points."""
    s, t = closest_params(p1, q1, p2, q2)
    return jnp.linalg.norm(p1 + (q1 - p1) * s[..., None] - p2 - (q2 - p2) * t[..., None], axis=-1)


def observe(sensors: dict[str, jnp.ndarray], team: carrot.TeamConstants) -> jnp.ndarray:
    """Raw sensor tensors (any leading batch dims) → observation vectors (..., obs_dim), in the order of
    `sim.cable.spec.OBS_LAYOUT`; `team` holds the profile constants of the classical controller."""
    lead = sensors["pos"].shape[:-1]
    flat = lambda x: x.reshape(*lead, -1)  # noqa: E731
    load_rot, goal_rot = sensors["load_rot"], sensors["goal_rot"]
    rel_rot = jnp.einsum("...ji,...jk->...ik", load_rot, goal_rot)
    return jnp.concatenate([
        sensors["goal_pos"] - sensors["load_pos"], flat(load_rot), flat(rel_rot[..., :, :2]), sensors["load_vel"],
        sensors["load_omega"], sensors["pos"] - sensors["load_pos"], flat(sensors["rot"]), sensors["vel"],
        sensors["omega"], flat(sensors["others_pos"] - sensors["pos"][..., None, :]), classical(sensors, team),
        sensors["agent_id"], flat(sensors["past_actions"])], axis=-1)


def classical(sensors: dict[str, jnp.ndarray], team: carrot.TeamConstants) -> jnp.ndarray:
    """(..., 3) the classical controller's acceleration from the same sensors."""
    return carrot.carrot_acceleration(sensors["load_pos"], sensors["load_rot"], sensors["pos"], sensors["vel"],
                                      sensors["goal_pos"], sensors["goal_rot"], sensors["agent_id"], team)


def command(sensors: dict[str, jnp.ndarray], action: jnp.ndarray, team: carrot.TeamConstants,
            residual: float, limit: np.ndarray) -> jnp.ndarray:
    """Policy action (..., 5) → the command sent to the vehicle, clipped to the action limits `limit` (5,):
    the action itself, or with `residual > 0` the classical controller's command plus the action, faded
    out near the goal (`carrot.fade`)."""
    if residual > 0:
        base = jnp.concatenate([classical(sensors, team), jnp.zeros((*action.shape[:-1], 2), action.dtype)], -1)
        weight = carrot.fade(sensors["load_pos"], sensors["load_rot"], sensors["goal_pos"], sensors["goal_rot"], team)
        action = base + weight * action
    lim = jnp.asarray(limit, jnp.float32)
    return jnp.clip(action, -lim, lim)


def noisy(b: Bodies, true: var.Variation | None, step: jnp.ndarray) -> Bodies:
    """What the sensors report: the bodies with the variation's Gaussian noise (fresh every step), or as is."""
    if true is None:
        return b
    k = jax.random.split(jax.random.fold_in(true.key, step), 8)
    s_pos, s_vel, s_att, s_rate = true.noise
    g = lambda i, x, s: x + s * jax.random.normal(k[i], x.shape, x.dtype)  # noqa: E731
    # a small random rotation about each body's own axes (integrating a rate over one unit of time)
    turn = lambda i, q, s: quat_integrate(q, s * jax.random.normal(k[i], q.shape[:-1] + (3,), q.dtype), 1.0)  # noqa: E731
    return b.replace(pos=g(0, b.pos, s_pos), vel=g(1, b.vel, s_vel), quat=turn(2, b.quat, s_att),
                     omega=g(3, b.omega, s_rate), load_pos=g(4, b.load_pos, s_pos), load_vel=g(5, b.load_vel, s_vel),
                     load_quat=turn(6, b.load_quat, s_att), load_omega=g(7, b.load_omega, s_rate))


class CableEnv:
    """A team of `num_agents` MAVs carrying a load; see the module docstring for spaces and tasks."""

    def __init__(self, profile: Any = "mav_corl25", num_agents: int = 3, task: str = "hover",
                 cable_model: str | None = None, inner_loop: str | None = None, failure: bool = False,
                 history: int = 1, world_state: bool = False, max_steps: int | None = None,
                 free_flight: bool = False, residual: float = 0.0, barrier: bool = False,
                 variation: str | dict | None = None):
        p = load_profile(profile) if isinstance(profile, str) else profile
        if cable_model is not None:
            p = dataclasses.replace(p, cable=dataclasses.replace(p.cable, model=cable_model))
        if inner_loop is not None:
            p = dataclasses.replace(p, control=dataclasses.replace(p.control, inner_loop=inner_loop))
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        p.team(num_agents)  # raises a clear error when the profile has no layout for this team size
        if not 0.0 <= residual <= 2.0:
            raise ValueError(f"residual must be within [0, 2] (a fraction of the action limits), got {residual}")
        self.profile, self.num_agents, self.task = p, num_agents, task
        self.failure, self.history, self.use_world_state = failure, history, world_state
        self.free_flight = free_flight  # cables released from the start (the benchmark's free-flyer baseline)
        self.residual = residual
        # the MAV barrier certificate on the commanded acceleration (controllers/mav_barrier.py), every step
        self.barrier = mav_barrier(p, num_agents) if barrier else None
        self.cable_geometry = cable_geometry(p, num_agents)
        if variation is not None and variation != "profile" and not isinstance(variation, dict):
            raise ValueError(f"variation must be 'profile', a dict of ranges per factor or None, got {variation!r}")
        self.variation = (var.profile_ranges(p) if variation == "profile" else var.check_ranges(variation)
                          if variation is not None else None)
        self.team_constants = carrot.team_constants(p, num_agents)
        self.hold_steps = max(1, int(round(p.task.success_hold * p.control.policy_rate_hz)))
        self.agents = [f"agent_{i}" for i in range(num_agents)]
        self.dt = 1.0 / p.control.policy_rate_hz
        self.max_steps = max_steps or int(round(p.task.episode_seconds * p.control.policy_rate_hz))
        c = p.control
        self.action_limit = np.array([c.max_acceleration] * 3 + [c.max_rate_reference] * 2)
        self.obs_dim = 3 + 9 + 6 + 3 + 3 + 3 + 9 + 3 + 3 + 3 * (num_agents - 1) + 3 + num_agents + ACTION_DIM * history
        self.world_state_dim = self.obs_dim + 18 + 18 * num_agents + 9
        # the policy's own box: the limits, or the residual's share of them
        self.policy_limit = self.action_limit * (residual if residual > 0 else 1.0)
        self._action_space = Box.make(-self.policy_limit, self.policy_limit, (ACTION_DIM,))
        self._obs_space = Box.make(-np.inf, np.inf, (self.obs_dim,))
        self.hover = hover(p, num_agents)
        self.latency_steps = var.max_latency_steps(self.variation, self.dt) if self.variation is not None else 0

    # ---- spaces -------------------------------------------------------------------------------
    def observation_space(self, agent: str) -> Box:
        return self._obs_space

    def action_space(self, agent: str) -> Box:
        return self._action_space

    # ---- reset / step -------------------------------------------------------------------------
    def _goal(self, key: jax.Array, start: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        t = self.profile.task
        if self.task == "hover":
            return start, jnp.asarray(self.hover.load_quat, jnp.float32)
        if self.task == "move":
            return start + jnp.asarray(t.move_offset, jnp.float32), quat_from_euler(0.0, 0.0, math.radians(t.move_yaw))
        pos, quat = self.sample_goals(key, start, GOAL_CANDIDATES)
        ok = self.goal_feasible(pos, quat)
        first = jnp.argmax(ok)  # the first feasible candidate; the level goal at candidate 0 if none is
        level = quat_from_euler(0.0, 0.0, 2 * jnp.arctan2(quat[0, 3], quat[0, 0]))
        return pos[first], jnp.where(jnp.any(ok), quat[first], level)

    def sample_goals(self, key: jax.Array, start: jnp.ndarray, count: int) -> tuple[jnp.ndarray, jnp.ndarray]:
        """`count` goal poses from the random task's box around `start` (before the feasibility check)."""
        t = self.profile.task
        k1, k2, k3 = jax.random.split(key, 3)
        pos = start + jax.random.uniform(k1, (count, 3), minval=-t.goal_position_range, maxval=t.goal_position_range)
        tilt = math.radians(t.goal_tilt_range)
        rp = jax.random.uniform(k2, (count, 2), minval=-tilt, maxval=tilt)
        yaw = jax.random.uniform(k3, (count,), minval=-math.pi, maxval=math.pi)
        return pos, quat_from_euler(rp[:, 0], rp[:, 1], yaw)

    def goal_feasible(self, pos: jnp.ndarray, quat: jnp.ndarray) -> jnp.ndarray:
        """(...,) True where the load can rest at the pose: its static equilibrium keeps every cable
        `goal_cable_margin` below the cable-angle limit, the MAVs `goal_distance_margin` beyond their
        separation limit and everything above the ground clearance."""
        t, c = self.profile.task, self.team_constants
        rot = quat_to_rot(quat)
        mavs = carrot.places(pos, rot, c)
        cable = mavs - jnp.asarray([0.0, 0.0, c.hook]) - (pos[..., None, :] + jnp.einsum("...ij,nj->...ni", rot, c.arms))
        cos = cable[..., 2] / jnp.linalg.norm(cable, axis=-1)
        steep = jnp.any(cos < math.cos(math.radians(t.max_cable_angle - t.goal_cable_margin)), -1)
        iu, ju = np.triu_indices(self.num_agents, 1)
        gap = jnp.linalg.norm(mavs[..., iu, :] - mavs[..., ju, :], axis=-1)
        close = jnp.any(gap < t.min_mav_distance + t.goal_distance_margin, -1)
        low = jnp.any(mavs[..., 2] < t.ground_clearance, -1) | (pos[..., 2] < t.ground_clearance + 0.3)
        return ~(steep | close | low)

    def _rest(self) -> tuple[Bodies, quadrotor.CtrlState]:
        """The resting hover at the start pose and converged controller memory (numpy constants)."""
        h, n, p = self.hover, self.num_agents, self.profile
        f32 = lambda x: jnp.asarray(np.asarray(x, np.float32))  # noqa: E731
        zeros = np.zeros((n, 3))
        bodies = Bodies(pos=f32(h.pos), vel=f32(zeros), quat=f32(h.quat), omega=f32(zeros), thrust=f32(h.thrust),
                        load_pos=f32(h.load_pos), load_vel=f32(zeros[0]), load_quat=f32(h.load_quat),
                        load_omega=f32(zeros[0]))
        # the filters start converged, as after hovering for a while: a_ext = cable pull / mass
        pull = -h.tension[:, None] * h.cable_dir / p.quadrotor.mass
        ctrl = quadrotor.init_state(f32(zeros), f32(zeros), bodies.thrust, f32(pull))
        return bodies, ctrl

    def reset(self, key: jax.Array) -> tuple[dict[str, jnp.ndarray], CableState]:
        n, t = self.num_agents, self.profile.task
        bodies, ctrl = self._rest()
        k_goal, k_agent, k_step, k_start, k_var = jax.random.split(key, 5)
        span = jnp.asarray([1.0, 1.0, 0.5], jnp.float32) * t.start_position_range
        shift = jax.random.uniform(k_start, (3,), minval=-span, maxval=span) if self.task == "random" else jnp.zeros(3)
        bodies = bodies.replace(pos=bodies.pos + shift, load_pos=bodies.load_pos + shift)
        goal_pos, goal_quat = self._goal(k_goal, bodies.load_pos)
        fail_agent = jax.random.randint(k_agent, (), 0, n) if self.failure else jnp.array(-1, jnp.int32)
        fail_step = jax.random.randint(k_step, (), int(0.2 * self.max_steps), int(0.8 * self.max_steps) + 1)
        state = CableState(bodies=bodies, ctrl=ctrl, goal_pos=goal_pos, goal_quat=goal_quat,
                           actions=jnp.zeros((n, max(self.history, 1), ACTION_DIM), jnp.float32),
                           step=jnp.array(0, jnp.int32), fail_agent=fail_agent, fail_step=fail_step,
                           tension=jnp.asarray(self.hover.tension, jnp.float32),
                           min_tension=jnp.asarray(self.hover.tension, jnp.float32),
                           held=jnp.array(0, jnp.int32))
        if self.variation is not None:
            state = state.replace(variation=var.sample(k_var, self.variation, n, self.dt),
                                  pending=jnp.zeros((self.latency_steps, n, ACTION_DIM), jnp.float32))
        return self.get_obs(state), state

    def working(self, state: CableState) -> jnp.ndarray:
        """(N,) True for MAVs that still fly (False once failed: no thrust, cable released); `fail_agent` may be
        one index or one per MAV (elementwise against each MAV's index)."""
        failed = (jnp.arange(self.num_agents) == state.fail_agent) & (state.step >= state.fail_step)
        return ~failed

    def step_physics(self, state: CableState, actions: jnp.ndarray) -> CableState:
        """Advance one policy step with actions (N, 5) in physical units (clipped to the action box)."""
        p = self.profile
        lim = jnp.asarray(self.action_limit, jnp.float32)
        act = jnp.clip(actions.astype(jnp.float32), -lim, lim)
        ok = self.working(state)
        acc_des = act[:, :3]
        rate_ff = jnp.concatenate([act[:, 3:], jnp.zeros((self.num_agents, 1), jnp.float32)], axis=-1)
        dt = 1.0 / p.control.physics_rate_hz
        true = state.variation
        # rotor thrust per command: the controller believes the profile's, the motors make the true one
        gain = 1.0 if true is None else true.motor_constant[:, None]

        def substep(carry, _):
            b, ctrl = carry
            cmd, ctrl = quadrotor.step(ctrl, b.vel, quat_to_rot(b.quat), b.omega, b.thrust / gain, acc_des, rate_ff,
                                       jnp.float32(0.0), p, dt)
            b, acc = physics_step(b, jnp.where(ok[:, None], cmd * gain, 0.0), p, ok & (not self.free_flight), dt,
                                  true)
            return (b, ctrl), acc.tension

        (bodies, ctrl), tensions = jax.lax.scan(substep, (state.bodies, state.ctrl), None, length=p.substeps)
        past = jnp.concatenate([(act / lim)[:, None], state.actions[:, :-1]], axis=1)
        return state.replace(bodies=bodies, ctrl=ctrl, actions=past, step=state.step + 1,
                             tension=tensions[-1], min_tension=jnp.min(tensions, axis=0))

    def step(self, key: jax.Array, state: CableState, actions: dict[str, jnp.ndarray] | jnp.ndarray,
             auto_reset: bool = True):
        """JaxMARL step: per-agent dicts in and out, `dones["__all__"]`, automatic reset when done (`auto_reset=False`:
        the ended episode's state steps on, for evaluations that stop counting at the end: the reset is most of
        the graph to compile and, under `vmap`, runs every step)."""
        act = jnp.stack([actions[a] for a in self.agents]) if isinstance(actions, dict) else actions
        lim = jnp.asarray(self.policy_limit, jnp.float32)
        act = jnp.clip(act.astype(jnp.float32), -lim, lim)
        cmd = self.command(self.sense(state), act)
        cmd, shield = self.shield(state, cmd)
        cmd, pending = self.delay(state, cmd)
        nxt = self.step_physics(state, cmd).replace(pending=pending)
        causes = jnp.stack(list(self.crash_causes(nxt).values()))
        terminated = jnp.any(causes)
        e_pos, e_rot = self.errors(nxt)
        inside = self._inside(e_pos, e_rot) & ~terminated
        nxt = nxt.replace(held=jnp.where(inside, state.held + 1, 0))
        solved = (nxt.held >= self.hold_steps) & (self.task != "hover")
        truncated = nxt.step >= self.max_steps
        done = terminated | solved | truncated
        reward = self.reward(nxt, state, act / lim, terminated, solved)
        # 0: no crash, else 1 + the index of the first cause in CRASH_CAUSES
        cause = jnp.where(terminated, 1 + jnp.argmax(causes), 0)
        # a time-out, not a terminal state: the trainer bootstraps the value there
        timeout = truncated & ~terminated & ~solved
        info = {**self.info(nxt), **shield, "crash_cause": jnp.broadcast_to(cause, (self.num_agents,)),
                "truncated": jnp.broadcast_to(timeout, (self.num_agents,))}
        state_out = nxt
        if auto_reset:
            _, state_re = self.reset(key)
            state_out = jax.tree.map(lambda a, b: jnp.where(done, a, b), state_re, nxt)
        obs_out = self.get_obs(state_out)
        rewards = {a: reward[i] for i, a in enumerate(self.agents)}
        dones = {a: done for a in self.agents} | {"__all__": done}
        return obs_out, state_out, rewards, dones, info

    def shield(self, state: CableState, cmd: jnp.ndarray) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
        """The barrier certificate on the commands' accelerations (failed MAVs are obstacles, their cables
        released), cable rows included, when enabled; info: per-MAV `barrier_intervention` (m/s²), `barrier_ok`
        and `barrier_cable_slack` (m/s²: how far the soft cable rows gave way this step, 0 when they held)."""
        n = self.num_agents
        if self.barrier is None:
            return cmd, {"barrier_intervention": jnp.zeros(n), "barrier_ok": jnp.ones(n, bool),
                         "barrier_cable_slack": jnp.zeros(n)}
        b = state.bodies
        cables = cable_ends(self.cable_geometry, b.pos, b.vel, quat_to_rot(b.quat), b.omega, b.load_pos, b.load_vel,
                            quat_to_rot(b.load_quat), b.load_omega)
        acc, info = self.barrier(b.pos, b.vel, cmd[:, :3], self.working(state), cables)
        return (jnp.concatenate([acc, cmd[:, 3:]], -1),
                {"barrier_intervention": info["intervention"], "barrier_ok": jnp.broadcast_to(info["status"] == 0, (n,)),
                 "barrier_cable_slack": jnp.broadcast_to(info["cable_slack"], (n,))})

    def delay(self, state: CableState, cmd: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray | None]:
        """The command that reaches the vehicles this step (sent `variation.latency` steps ago) and the queue."""
        if not self.latency_steps:
            return cmd, state.pending
        queue = jnp.concatenate([cmd[None], state.pending], 0)
        return queue[state.variation.latency], queue[:-1]

    def command(self, sensors: dict[str, jnp.ndarray], action: jnp.ndarray) -> jnp.ndarray:
        """(N, 5) policy actions → commands in physical units (see module `command`)."""
        return command(sensors, action, self.team_constants, self.residual, self.action_limit)

    def observe(self, sensors: dict[str, jnp.ndarray]) -> jnp.ndarray:
        """`observe` with this team's constants: what an exported policy runs."""
        return observe(sensors, self.team_constants)

    # ---- sensing and observing ----------------------------------------------------------------
    def sense(self, state: CableState) -> dict[str, jnp.ndarray]:
        """Raw per-agent tensors in physical units, world frame (see sim/cable/spec.py); noisy under a variation."""
        b, n = noisy(state.bodies, state.variation, state.step), self.num_agents
        rep = lambda x: jnp.broadcast_to(x, (n, *x.shape))  # noqa: E731
        others = np.array([[j for j in range(n) if j != i] for i in range(n)], np.int32).reshape(n, n - 1)
        return {"load_pos": rep(b.load_pos), "load_rot": rep(quat_to_rot(b.load_quat)),
                "load_vel": rep(b.load_vel), "load_omega": rep(b.load_omega), "pos": b.pos,
                "rot": quat_to_rot(b.quat), "vel": b.vel, "omega": b.omega, "others_pos": b.pos[others],
                "goal_pos": rep(state.goal_pos),
                "goal_rot": rep(quat_to_rot(state.goal_quat)), "agent_id": jnp.eye(n, dtype=jnp.float32),
                "past_actions": state.actions[:, :self.history]}

    def observations(self, state: CableState) -> jnp.ndarray:
        """(N, obs_dim): `observe(sense(state))`, the same function an exported policy runs."""
        return self.observe(self.sense(state))

    def get_obs(self, state: CableState) -> dict[str, jnp.ndarray]:
        o = self.observations(state)
        obs = {a: o[i] for i, a in enumerate(self.agents)}
        if self.use_world_state:
            obs["world_state"] = self._world_state(state, o)
        return obs

    def world_state(self, state: CableState) -> jnp.ndarray:
        """(N, world_state_dim) for a centralised critic: each MAV's own observation, then the load pose
        and twist, every MAV's state and the goal error (as the fleet's `world_state`)."""
        return self._world_state(state, self.observations(state))

    def _world_state(self, state: CableState, obs: jnp.ndarray) -> jnp.ndarray:
        b = state.bodies
        load_rot, goal_rot = quat_to_rot(b.load_quat), quat_to_rot(state.goal_quat)
        mavs = jnp.concatenate([b.pos - b.load_pos, quat_to_rot(b.quat).reshape(self.num_agents, 9), b.vel, b.omega], -1)
        glob = jnp.concatenate([b.load_pos, load_rot.ravel(), b.load_vel, b.load_omega, mavs.ravel(),
                                state.goal_pos - b.load_pos, (load_rot.T @ goal_rot)[:, :2].ravel()])
        return jnp.concatenate([obs, jnp.broadcast_to(glob, (self.num_agents, glob.shape[0]))], axis=-1)

    # ---- task -------------------------------------------------------------------------------
    def errors(self, state: CableState) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Load position error (m) and orientation error (rad) to the goal."""
        b = state.bodies
        return jnp.linalg.norm(state.goal_pos - b.load_pos), quat_angle(b.load_quat, state.goal_quat)

    def _inside(self, e_pos: jnp.ndarray, e_rot: jnp.ndarray) -> jnp.ndarray:
        t = self.profile.task
        return (e_pos < t.success_position) & (e_rot < math.radians(t.success_orientation))

    def reward(self, state: CableState, prev: CableState, action: jnp.ndarray, terminated: jnp.ndarray,
               solved: jnp.ndarray) -> jnp.ndarray:
        """Per-agent reward: shared progress, tolerance and success terms (and the paper's bounded tracking
        terms, if weighted) minus each MAV's own penalties. `action` is the normalised policy action."""
        w, t, b, n = self.profile.reward, self.profile.task, state.bodies, self.num_agents
        e_pos, e_rot = self.errors(state)
        p_pos, p_rot = self.errors(prev)
        track = w.position * jnp.exp(-e_pos / w.position_scale) + w.orientation * jnp.exp(-e_rot / w.orientation_scale)
        progress = w.progress_position * (p_pos - e_pos) + w.progress_orientation * (p_rot - e_rot)
        # holding the goal pays in_tolerance in total over success_hold, and leaving it takes that back (a
        # potential on the hold counter: a policy cannot farm it by stepping in and out of the tolerance)
        hold = w.in_tolerance * (state.held - prev.held) / self.hold_steps
        shared = track + progress + hold + w.success * solved - w.termination * terminated
        sent = state.actions[:, 0]
        smooth = w.smoothness * jnp.sum((sent - prev.actions[:, 0]) ** 2, -1)
        rate = w.body_rate * jnp.sum(b.omega ** 2, -1)
        effort = w.effort * jnp.sum(sent[:, :3] ** 2, -1)
        residual = w.residual * jnp.sum(action ** 2, -1) if self.residual > 0 else 0.0
        # downwash: a MAV above another MAV or the load, weighted by horizontal closeness
        below = jnp.concatenate([b.pos, b.load_pos[None]], 0)
        dxy = jnp.sum((b.pos[:, None, :2] - below[None, :, :2]) ** 2, -1)
        under = (below[None, :, 2] < b.pos[:, None, 2]) & ~jnp.eye(n, n + 1, dtype=bool)
        down = w.downwash * jnp.sum(jnp.where(under, jnp.exp(-dxy / w.downwash_radius ** 2), 0.0), -1)
        # closing in on the separation limits that end an episode: MAV-MAV and cable-cable distances
        gap = jnp.linalg.norm(b.pos[:, None] - b.pos[None], axis=-1) + jnp.eye(n) * 1e3
        top, bottom = cable_vectors(b, self.profile)
        ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        cables = segment_distance(top[ii], bottom[ii], top[jj], bottom[jj]) + jnp.eye(n) * 1e3
        near = w.proximity * jnp.sum(jnp.exp(-(gap - t.min_mav_distance) / w.proximity_scale)
                                     + jnp.exp(-(cables - t.min_cable_distance) / w.proximity_scale), -1)
        return shared - smooth - rate - effort - residual - down - near

    def terminated(self, state: CableState) -> jnp.ndarray:
        """Any of the `crash_causes`."""
        return jnp.any(jnp.stack(list(self.crash_causes(state).values())))

    def crash_causes(self, state: CableState) -> dict[str, jnp.ndarray]:
        """What ends an episode early, each a () bool: ground contact, a cable too steep, MAVs or cables
        too close, leaving the workspace, a rigid cable that would have to push, a non-finite state."""
        t, b, n = self.profile.task, state.bodies, self.num_agents
        ok = self.working(state)
        ground = (b.load_pos[2] < t.ground_clearance) | jnp.any(ok & (b.pos[:, 2] < t.ground_clearance))
        top, bottom = cable_vectors(b, self.profile)
        cable = top - bottom
        cos_angle = cable[:, 2] / jnp.linalg.norm(cable, axis=-1)
        steep = jnp.any(ok & (cos_angle < math.cos(math.radians(t.max_cable_angle))))
        iu, ju = np.triu_indices(n, 1)
        both = ok[iu] & ok[ju]
        close = jnp.any(both & (jnp.linalg.norm(b.pos[iu] - b.pos[ju], axis=-1) < t.min_mav_distance))
        tangled = jnp.any(both & (segment_distance(top[iu], bottom[iu], top[ju], bottom[ju]) < t.min_cable_distance))
        lo, hi = jnp.asarray(t.workspace.low), jnp.asarray(t.workspace.high)
        outside = lambda x: jnp.any((x < lo) | (x > hi), -1)  # noqa: E731
        left = outside(b.load_pos) | jnp.any(ok & outside(b.pos))
        pushing = jnp.any(ok & (state.min_tension < 0)) if self.profile.cable.model == "rigid" else jnp.array(False)
        finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(b)]))
        return dict(zip(CRASH_CAUSES, (ground, steep, close, tangled, left, pushing, ~finite)))

    def info(self, state: CableState) -> dict[str, jnp.ndarray]:
        e_pos, e_rot = self.errors(state)
        held = (state.held >= self.hold_steps) if self.task != "hover" else self._inside(e_pos, e_rot)
        ok = self.working(state)
        return {"tension": state.tension, "slack": ok & (state.tension <= 0.0),
                "success": jnp.broadcast_to(held, (self.num_agents,)), "failed": ~ok,
                "position_error": jnp.broadcast_to(e_pos, (self.num_agents,)),
                "orientation_error": jnp.broadcast_to(e_rot, (self.num_agents,))}
