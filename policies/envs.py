"""Scenario registry and the array view of a JaxMARL-style environment that the trainer uses.

Scenarios are our fleet scenarios (`sim.scenarios.SCENARIOS`, built as `sim.fleet.FleetEnv`), the
cable-load team's (`sim.cable.scenarios.SCENARIOS`, built as `sim.cable.env.CableEnv`) or any environment registered in JaxMARL (e.g. `MPE_simple_spread_v3`, built unchanged with
`jaxmarl.make`). `ArrayEnv` only uses the MultiAgentEnv duck type — per-agent dicts,
`dones["__all__"]`, auto-reset inside `step` — so both kinds train through the same code.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from marlstack.policies.config import ConfigError, TrainConfig

# per-agent info keys of fleet scenarios that the trainer and evaluator summarise per episode
EVENT_KEYS = ("collisions", "boundary_exits")
# a colliding pair is reported by both robots: count pair-steps, robot-steps for boundary exits
EVENT_SHARED = jnp.asarray([2.0, 1.0])
# a command the barrier certificate moved by more than this counts as changed: m/s and rad/s for ground
# robots ((v, ω), `info["barrier_intervention"]` of FleetEnv), m/s² for MAVs (CableEnv's acceleration)
BARRIER_TOL = 1e-3


def barrier_step(intervention: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(agents whose command the barrier changed by more than BARRIER_TOL, the sum of their changes) of one
    step, from the env's per-agent `info["barrier_intervention"]`."""
    change = jnp.asarray(intervention, jnp.float32).ravel()
    changed = change > BARRIER_TOL
    return changed.sum(dtype=jnp.float32), jnp.where(changed, change, 0.0).sum()


def barrier_summary(changed: Any, change: Any, agent_steps: Any) -> dict[str, jax.Array]:
    """Totals of `barrier_step` over `agent_steps` → `barrier_rate` (share of agent-steps changed) and
    `barrier_change` (mean change over the changed ones; NaN when none was)."""
    return {"barrier_rate": changed / agent_steps,
            "barrier_change": jnp.where(changed > 0, change / jnp.maximum(changed, 1), jnp.nan)}


def fleet_scenarios() -> list[str]:
    try:
        from marlstack.sim.scenarios import SCENARIOS
    except ImportError:
        return []
    return sorted(SCENARIOS)


def _jaxmarl() -> Any:
    """Import jaxmarl with its import-time chatter sent to stderr (keeps `--json` output clean).

    Redirected at the file-descriptor level: `contextlib.redirect_stdout` does not catch it here.
    """
    if "jaxmarl" in sys.modules:
        return sys.modules["jaxmarl"]
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        import jaxmarl
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    return jaxmarl


def cable_scenarios() -> list[str]:
    from marlstack.sim.cable.scenarios import SCENARIOS
    return sorted(SCENARIOS)


def is_cable(scenario: str) -> bool:
    return scenario in cable_scenarios()


def jaxmarl_scenarios() -> list[str]:
    try:
        return list(_jaxmarl().registered_envs)
    except ImportError:
        return []


def available_scenarios() -> list[str]:
    return fleet_scenarios() + cable_scenarios() + jaxmarl_scenarios()


def is_fleet(scenario: str) -> bool:
    return scenario in fleet_scenarios()


def make_env(cfg: TrainConfig, barrier: str | None = None) -> Any:
    """Build the raw multi-agent environment a config names (`barrier` overrides the config's)."""
    barrier = cfg.barrier if barrier is None else barrier
    kwargs = dict(cfg.env_kwargs)
    if cfg.num_agents:
        kwargs["num_agents"] = cfg.num_agents
    if cfg.max_steps:
        kwargs["max_steps"] = cfg.max_steps
    if is_fleet(cfg.scenario):
        from marlstack.sim.fleet import FleetEnv
        kwargs.update(profile=cfg.profile, scenario=cfg.scenario, action_type=cfg.action_type,
                      barrier=None if barrier in ("none", "", None) else barrier, world_state=cfg.algo == "mappo")
        return _construct(FleetEnv, cfg.scenario, kwargs)
    if is_cable(cfg.scenario):
        if barrier not in ("none", "", None):
            raise ConfigError(f"scenario {cfg.scenario!r} is a cable-load team: it has no ground-robot barrier")
        from marlstack.sim.cable.scenarios import make
        kwargs.update(profile=cfg.profile, world_state=cfg.algo == "mappo")
        return _construct(lambda **kw: make(cfg.scenario, **kw), cfg.scenario, kwargs)
    if cfg.scenario in jaxmarl_scenarios():
        if barrier not in ("none", "", None):
            raise ConfigError(f"scenario {cfg.scenario!r} is a JaxMARL environment: it has no barrier option")
        return _construct(lambda **kw: _jaxmarl().make(cfg.scenario, **kw), cfg.scenario, kwargs)
    known = ", ".join(fleet_scenarios() + ["MPE_simple_spread_v3", "... (any JaxMARL environment)"])
    raise ConfigError(f"unknown scenario {cfg.scenario!r} (available: {known})")


def _construct(factory: Any, name: str, kwargs: dict[str, Any]) -> Any:
    try:
        return factory(**kwargs)
    except (TypeError, ValueError, AssertionError) as exc:
        raise ConfigError(f"scenario {name!r} rejected its arguments {sorted(kwargs)}: {exc}") from None


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Static shapes and limits, hashable so jitted functions can close over them."""
    num_agents: int
    agent_names: tuple[str, ...]
    obs_dim: int
    world_state_dim: int
    discrete: bool
    action_dim: int  # categories when discrete
    low: tuple[float, ...]
    high: tuple[float, ...]
    max_steps: int


@flax.struct.dataclass
class EpisodeLog:
    """Running and last-finished episode statistics (per env)."""
    env_state: Any
    ret: jax.Array  # (N,)
    length: jax.Array
    events: jax.Array  # (len(EVENT_KEYS),) counts in the running episode


class ArrayEnv:
    """Stacked-array view: obs (N, D), world_state (N, W), rewards (N,), done ().

    `step` also returns per-step scalars: `truncated` (the episode ended by its time limit, not in a
    terminal state: the env's `info["truncated"]`, else reaching `max_steps`), `ep_done`, and for a finished episode
    `ep_return` (mean over agents), `ep_length`, `ep_success` (all agents at their goal at
    the end), and one count per EVENT_KEYS entry. With a barrier certificate in the loop (the env's
    `barrier` attribute set and `info["barrier_intervention"]` per agent: ‖safe − policy command‖), also
    `barrier_changed` (agents whose command it changed by more than BARRIER_TOL this step) and
    `barrier_change` (the sum of those agents' changes).
    """

    def __init__(self, env: Any):
        self.env = env
        self.agents = tuple(env.agents)
        self.spec = self._spec()
        self.has_barrier = getattr(env, "barrier", None) not in (None, False, "", "none")

    def _spec(self) -> EnvSpec:
        env, a0 = self.env, self.agents[0]
        obs, state = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
        dims = {obs[a].shape for a in self.agents}
        if len(dims) != 1 or len(next(iter(dims))) != 1:
            raise ConfigError(f"every agent needs the same flat observation shape, got {sorted(dims)}")
        space = env.action_space(a0)
        discrete = hasattr(space, "n")
        if discrete:
            act_dim, low, high = int(space.n), (), ()
        else:
            act_dim = int(np.prod(space.shape))
            low = tuple(np.broadcast_to(np.asarray(space.low, np.float64), (act_dim,)).tolist())
            high = tuple(np.broadcast_to(np.asarray(space.high, np.float64), (act_dim,)).tolist())
        ws = jax.eval_shape(self._world_state, obs, state)
        return EnvSpec(len(self.agents), self.agents, int(next(iter(dims))[0]), int(ws.shape[-1]), discrete,
                       act_dim, low, high, int(getattr(env, "max_steps", 0) or 0))

    def _world_state(self, obs: dict, state: Any) -> jax.Array:
        """(N, W): the env's own world_state (from its obs dict when it put it there, built from the same
        observations; else recomputed from the state), or all observations concatenated."""
        n = len(self.agents)
        if "world_state" in obs:
            ws = jnp.asarray(obs["world_state"])
        elif hasattr(self.env, "world_state"):
            ws = jnp.asarray(self.env.world_state(state))
        else:
            ws = jnp.concatenate([obs[a].ravel() for a in self.agents])
        return jnp.broadcast_to(ws, (n, ws.shape[-1])) if ws.ndim == 1 else ws.reshape(n, -1)

    def _stack(self, obs: dict) -> jax.Array:
        return jnp.stack([obs[a] for a in self.agents]).astype(jnp.float32)

    def reset(self, key: jax.Array):
        obs, state = self.env.reset(key)
        log = EpisodeLog(state, jnp.zeros(len(self.agents)), jnp.zeros((), jnp.int32),
                         jnp.zeros(len(EVENT_KEYS)))
        return self._stack(obs), self._world_state(obs, state).astype(jnp.float32), log

    def step(self, key: jax.Array, log: EpisodeLog, actions: jax.Array):
        acts = {a: actions[i] for i, a in enumerate(self.agents)}
        obs, state, rew, dones, info = self.env.step(key, log.env_state, acts)
        reward = jnp.stack([rew[a] for a in self.agents]).astype(jnp.float32)
        done = jnp.asarray(dones["__all__"]).astype(jnp.bool_)
        n = len(self.agents)
        events = jnp.stack([jnp.sum(jnp.asarray(info[k], jnp.float32)) if k in info else jnp.zeros(())
                            for k in EVENT_KEYS]) / EVENT_SHARED
        at_goal = jnp.all(jnp.asarray(info["success"], bool)) if "success" in info else jnp.zeros((), bool)
        ret, length = log.ret + reward, log.length + 1
        events_total = log.events + events
        if "truncated" in info:  # the env tells a time-out from a terminal state
            truncated = jnp.any(jnp.asarray(info["truncated"], bool))
        else:  # it does not: an episode that ran to the time limit was cut by it
            truncated = length >= self.spec.max_steps if self.spec.max_steps else jnp.zeros((), bool)
        out = {"ep_done": done, "truncated": done & truncated, "ep_return": jnp.mean(ret), "ep_length": length,
               "ep_success": at_goal,
               **{f"ep_{k}": events_total[i] for i, k in enumerate(EVENT_KEYS)}}
        if self.has_barrier and "barrier_intervention" in info:
            out["barrier_changed"], out["barrier_change"] = barrier_step(info["barrier_intervention"])
        keep = 1 - done
        log = EpisodeLog(state, ret * keep, length * keep, events_total * keep)
        return (self._stack(obs), self._world_state(obs, state).astype(jnp.float32), log,
                reward.reshape(n), done, out)

