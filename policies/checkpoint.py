"""Checkpoints (flax msgpack) and the export contract `load_policy`.

A checkpoint holds the complete training state of every seed (parameters, optimiser,
environments, observation statistics, PRNG keys), so `--resume` continues bit for bit,
plus a JSON header: the config, the environment's shapes and action limits, the run id
and which seed is best. `load_policy` needs only the header and the actor's parameters;
it never builds the environment unless `make_env()` is called.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from marlstack.policies.config import TrainConfig, coerce
from marlstack.policies.envs import EnvSpec
from marlstack.policies.normalize import normalize
from marlstack.policies.ppo import actor_input, build_actor, role_assignment

FORMAT = "marlstack-checkpoint-1"
FILENAME = "checkpoint.msgpack"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or does not fit the requested run."""


def checkpoint_path(path: str | Path) -> Path:
    """A run directory or a checkpoint file → the checkpoint file."""
    p = Path(path)
    return p / FILENAME if p.is_dir() else p


def save(path: str | Path, meta: dict[str, Any], state: Any) -> Path:
    """Write atomically (temp file + rename) so an interrupted save never leaves half a file."""
    path = checkpoint_path(path)
    blob = serialization.msgpack_serialize({"format": FORMAT, "meta": json.dumps(meta),
                                            "state": serialization.to_state_dict(jax.device_get(state))})
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, path)
    return path


def read(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, raw state dict of numpy arrays)."""
    path = checkpoint_path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path} (expected a run directory or a {FILENAME} file)")
    try:
        raw = serialization.msgpack_restore(path.read_bytes())
        if raw.get("format") != FORMAT:
            raise ValueError(raw.get("format"))
        return json.loads(raw["meta"]), raw["state"]
    except Exception as exc:  # noqa: BLE001 - any decoding failure means "not our checkpoint"
        raise CheckpointError(f"{path} is not a marlstack checkpoint ({type(exc).__name__}: {exc})") from None


def config_of(meta: dict[str, Any]) -> TrainConfig:
    return TrainConfig(**{k: coerce(k, v) for k, v in meta["config"].items()}).validate()


def spec_of(meta: dict[str, Any]) -> EnvSpec:
    s = dict(meta["env"])
    return EnvSpec(**{**s, "agent_names": tuple(s["agent_names"]), "low": tuple(s["low"]), "high": tuple(s["high"])})


def make_meta(cfg: TrainConfig, spec: EnvSpec, run_id: str, updates: int, best_seed: int) -> dict[str, Any]:
    return {"config": cfg.to_dict(), "env": dataclasses.asdict(spec), "run_id": run_id, "updates": updates,
            "env_steps": updates * cfg.num_envs * cfg.num_steps, "best_seed": best_seed,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def check_compatible(meta: dict[str, Any], cfg: TrainConfig, spec: EnvSpec, path: str | Path) -> None:
    """Refuse a checkpoint trained on a different scenario or with other shapes."""
    old_cfg, old = config_of(meta), spec_of(meta)
    problems = []
    if old_cfg.scenario != cfg.scenario:
        problems.append(f"scenario {old_cfg.scenario!r} != {cfg.scenario!r}")
    for name in ("num_agents", "obs_dim", "world_state_dim", "action_dim", "discrete"):
        if getattr(old, name) != getattr(spec, name):
            problems.append(f"{name} {getattr(old, name)} != {getattr(spec, name)}")
    for name in ("algo", "hidden_sizes", "recurrent", "gru_size", "agent_id", "roles", "num_envs", "num_seeds"):
        if getattr(old_cfg, name) != getattr(cfg, name):
            problems.append(f"{name} {getattr(old_cfg, name)} != {getattr(cfg, name)}")
    if problems:
        raise CheckpointError(f"checkpoint {checkpoint_path(path)} is incompatible: {'; '.join(problems)}")


def restore_state(template: Any, raw: dict[str, Any], path: str | Path,
                  episodes: tuple[str, ...] = ()) -> tuple[Any, bool]:
    """The saved state laid out as `template`, and whether the `episodes` fields were started afresh: when
    only they no longer match (an environment's state gained a field since the checkpoint), the learner,
    optimiser and normalisers are restored and the episodes restart from `template`'s."""
    restarted = False
    try:
        state = serialization.from_state_dict(template, raw)
    except (ValueError, KeyError) as exc:
        fresh = serialization.to_state_dict(template)
        try:
            if not episodes or not isinstance(raw, dict):
                raise exc
            state = serialization.from_state_dict(template, {k: fresh[k] if k in episodes else raw[k]
                                                             for k in fresh})
            restarted = True
        except (ValueError, KeyError):
            raise CheckpointError(f"checkpoint {checkpoint_path(path)} does not match this run's state: {exc}") from None
    mismatched = [jax.tree_util.keystr(p) for (p, a), b in zip(jax.tree_util.tree_leaves_with_path(template),
                                                             jax.tree_util.tree_leaves(state))
                  if np.shape(a) != np.shape(b)]
    if mismatched:
        raise CheckpointError(f"checkpoint {checkpoint_path(path)} has other shapes at {', '.join(mismatched[:3])}")
    return jax.tree.map(lambda a, b: jnp.asarray(b, dtype=a.dtype), template, state), restarted


@dataclasses.dataclass
class LoadedPolicy:
    """A trained policy, ready for evaluation and export.

    `act(params, obs)` (feed-forward) or `act(params, obs, h) -> (action, h_new)` (recurrent)
    is pure JAX: obs (B, obs_dim) raw observations → (B, act_dim) deterministic actions in
    physical units (normalisation, mean action, tanh squashing to [low, high], clipping),
    or (B,) integer actions for discrete policies. Policies trained with `agent_id` or
    `roles` depend on which agent acts: pass `agent_index=i` (a Python int) to `act`.
    """
    config: dict
    scenario: str
    profile: str
    num_agents: int
    agent_names: tuple[str, ...]
    run_id: str
    recurrent: bool
    params: dict
    act: Callable
    spec: EnvSpec
    seed_index: int
    path: Path

    @property
    def obs_dim(self) -> int:
        return self.spec.obs_dim

    @property
    def act_dim(self) -> int:
        return 1 if self.spec.discrete else self.spec.action_dim

    def init_hidden(self, batch: int) -> jax.Array:
        return jnp.zeros((batch, self.config["gru_size"]), jnp.float32)

    def make_env(self, barrier: str | None = None, **overrides: Any) -> Any:
        """The raw environment this policy was trained on (`barrier` overrides the training one)."""
        from marlstack.policies.envs import make_env
        return make_env(dataclasses.replace(config_of({"config": self.config}), **overrides), barrier)


def make_act(cfg: TrainConfig, spec: EnvSpec) -> Callable:
    actor = build_actor(cfg, spec.action_dim, spec.discrete)
    roles = role_assignment(cfg, spec.num_agents)
    low, high = np.asarray(spec.low, np.float32), np.asarray(spec.high, np.float32)

    def forward(params, obs, h, agent_index):
        x = jnp.asarray(obs, jnp.float32)
        if cfg.normalize_obs:
            x = normalize(x, params["obs_mean"], params["obs_var"])
        x = actor_input(cfg, x, agent_index, spec.num_agents)
        p = jax.tree.map(lambda a: a[roles[agent_index]], params["actor"])
        if cfg.recurrent:
            h, out, _ = actor.apply(p, x[None], h, jnp.zeros((1, x.shape[0]), bool))
            out = out[0]
        else:
            _, out, _ = actor.apply(p, x)
        if spec.discrete:
            return jnp.argmax(out, axis=-1), h
        return jnp.clip(low + (jnp.tanh(out) + 1.0) * 0.5 * (high - low), low, high), h

    if cfg.recurrent:
        def act(params, obs, h, agent_index: int = 0):
            return forward(params, obs, h, agent_index)
    else:
        def act(params, obs, agent_index: int = 0):
            return forward(params, obs, None, agent_index)[0]
    return act


def policy_params(raw: dict[str, Any], seed_index: int) -> dict[str, Any]:
    """The deployable parameters of one seed: actor weights (role axis first) + obs statistics."""
    pick = lambda a: jnp.asarray(np.asarray(a)[seed_index])  # noqa: E731
    return {"actor": jax.tree.map(pick, raw["params"]["actor"]),
            "obs_mean": pick(raw["obs_stats"]["mean"]), "obs_var": pick(raw["obs_stats"]["var"])}


def load_policy(path: str | Path, seed_index: int | None = None) -> LoadedPolicy:
    """The export contract: a run directory or checkpoint → LoadedPolicy (best seed by default)."""
    meta, raw = read(path)
    cfg, spec = config_of(meta), spec_of(meta)
    seed = meta["best_seed"] if seed_index is None else seed_index
    if not 0 <= seed < cfg.num_seeds:
        raise CheckpointError(f"seed index {seed} out of range: the checkpoint holds {cfg.num_seeds} seed(s)")
    return LoadedPolicy(config=cfg.to_dict(), scenario=cfg.scenario, profile=cfg.profile, num_agents=spec.num_agents,
                        agent_names=spec.agent_names, run_id=meta["run_id"], recurrent=cfg.recurrent,
                        params=policy_params(raw, seed), act=make_act(cfg, spec), spec=spec, seed_index=seed,
                        path=checkpoint_path(path))
