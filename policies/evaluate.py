"""Deterministic evaluation of a trained policy: K episodes side by side, one jitted scan.

Each environment runs until its first episode ends (the auto-reset after that is ignored).
An episode succeeds when the scenario declares it solved (navigation: every robot at its goal
at once), which ends it early; `time_to_goal_s` is the mean length of the successful ones.

`evaluate_seeds` runs every trained seed of a run on the same episodes (one compiled scan,
vmapped over the seeds) and reports each seed, the median and the spread: a run is judged by its
median seed, not its best. Three disjoint streams of episodes: training uses PRNG seeds
`seed … seed + num_seeds − 1`, the seed that `export` deploys is chosen on `VALIDATION_SEED`'s
episodes, and `marlstack eval` reports on `EVAL_SEED`'s, which neither of the others has seen.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from marlstack.policies.checkpoint import CheckpointError, LoadedPolicy, load_policy, policy_params, read
from marlstack.policies.envs import EVENT_KEYS, ArrayEnv, barrier_summary

EVAL_SEED = 1000  # `marlstack eval`'s episodes (PRNGKey(1000)); training seeds count up from 0
VALIDATION_SEED = 999  # the episodes the exported seed is chosen on, disjoint from both
MEDIAN_KEYS = ("success_rate", "collisions", "boundary_exits", "mean_return", "mean_episode_length", "time_to_goal_s",
               "barrier_rate", "barrier_change")


def agent_actions(policy: LoadedPolicy, obs: jax.Array, h: jax.Array | None):
    """obs (B, N, D) → actions (B, N, ...) for all agents, batching them when they are interchangeable."""
    b, n, d = obs.shape
    cfg = policy.config
    if not cfg["agent_id"] and len(set(cfg["roles"])) <= 1:
        flat_h = None if h is None else h.reshape(b * n, -1)
        out = policy.act(policy.params, obs.reshape(b * n, d), flat_h) if policy.recurrent else \
            policy.act(policy.params, obs.reshape(b * n, d))
        if policy.recurrent:
            out, flat_h = out
            h = flat_h.reshape(b, n, -1)
        return out.reshape(b, n, *out.shape[1:]), h
    outs, hs = [], []
    for i in range(n):
        if policy.recurrent:
            a, hi = policy.act(policy.params, obs[:, i], h[:, i], agent_index=i)
            hs.append(hi)
        else:
            a = policy.act(policy.params, obs[:, i], agent_index=i)
        outs.append(a)
    return jnp.stack(outs, 1), (jnp.stack(hs, 1) if hs else h)


def check_env(policy: LoadedPolicy, env: ArrayEnv, same_fleet: bool = True) -> None:
    ps, es = policy.spec, env.spec
    for name in ("num_agents", "obs_dim", "action_dim", "discrete")[0 if same_fleet else 1:]:
        if getattr(ps, name) != getattr(es, name):
            raise CheckpointError(f"policy {policy.path} does not fit this environment: {name} "
                                  f"{getattr(ps, name)} (trained) != {getattr(es, name)} (environment)")


def fleet_env(policy: LoadedPolicy, num_agents: int | None, barrier: str | None = None) -> Any:
    """The training environment, or the same scenario with `num_agents` robots when the policy can run
    them: every agent shares one parameter set and observes as many real neighbours at both sizes
    (the exporter's rule, `policies.export.check_fleet_size`)."""
    if num_agents is None or num_agents == policy.num_agents:
        return policy.make_env(barrier)
    from marlstack.policies.export import ExportError, check_fleet_size
    if policy.config["agent_id"] or len(set(policy.config["roles"])) > 1:
        raise CheckpointError("--num-agents needs a policy whose agents share parameters without an agent id")
    env = policy.make_env(barrier, num_agents=num_agents)
    try:
        check_fleet_size(policy.num_agents, env)
    except ExportError as exc:
        raise CheckpointError(str(exc).replace("export", "evaluate")) from None
    return env


# compiled evaluations by (config, spec, episodes, barrier, fleet size, seeds vmapped): the selection and the
# evaluation at the end of training, and repeated `evaluate` calls in one process, compile once
_COMPILED: dict[str, tuple[Any, ArrayEnv, Callable]] = {}


def _compiled(policy: LoadedPolicy, episodes: int, barrier: str | None, env: Any | None, num_agents: int | None,
              over_seeds: bool) -> tuple[Any, ArrayEnv, Callable[[Any, jax.Array], dict]]:
    """`_setup`'s run jitted (vmapped over stacked seeds when `over_seeds`), reused for the same policy shape."""
    key = None if env is not None else repr((sorted(policy.config.items()), policy.spec, episodes, barrier,
                                              num_agents, over_seeds))
    if key in _COMPILED:
        return _COMPILED[key]
    raw_env, aenv, run = _setup(policy, episodes, barrier, env, num_agents)
    out = (raw_env, aenv, jax.jit(jax.vmap(run, in_axes=(0, None)) if over_seeds else run))
    if key is not None:
        _COMPILED[key] = out
    return out


def _setup(policy: LoadedPolicy, episodes: int, barrier: str | None, env: Any | None,
           num_agents: int | None) -> tuple[Any, ArrayEnv, Callable[[Any, jax.Array], dict]]:
    """(raw env, array env, `run(params, key)` -> per-episode stats) for `policy`'s network."""
    raw_env = env if env is not None else fleet_env(policy, num_agents, barrier)
    aenv = ArrayEnv(raw_env)
    check_env(policy, aenv, same_fleet=env is not None or num_agents is None)
    horizon = aenv.spec.max_steps + 1  # JaxMARL's MPE ends an episode one step after max_steps
    if horizon < 2:
        raise CheckpointError(f"scenario {policy.scenario!r} has no max_steps: cannot bound an evaluation episode")
    return raw_env, aenv, lambda params, key: _episodes(dataclasses.replace(policy, params=params), aenv, episodes,
                                                         horizon, key)


def _summary(stats: dict[str, Any], dt: float | None) -> dict[str, Any]:
    """Per-episode stats of one policy -> the plain-number summary."""
    stats = {k: np.asarray(v) for k, v in stats.items()}
    solved = stats["success"].astype(bool)
    lengths = stats["length"]
    return {
        "success_rate": float(solved.mean()),
        "unfinished_episodes": int((lengths == 0).sum()),
        "collisions": float(stats["collisions"].sum()),
        "collision_episodes": int((stats["collisions"] > 0).sum()),
        "boundary_exits": float(stats["boundary_exits"].sum()),
        "mean_return": float(stats["return"].mean()),
        "mean_episode_length": float(lengths.mean()),
        "time_to_goal_s": (float(lengths[solved].mean() * dt) if solved.any() and dt else None),
        "time_to_goal_steps": float(lengths[solved].mean()) if solved.any() else None,
        **barrier_rates(stats),
    }


def barrier_rates(stats: dict[str, Any]) -> dict[str, float | None]:
    """Share of agent-steps whose command the barrier changed and the mean change (policies.envs.barrier_summary),
    when the evaluation ran with a barrier."""
    if "barrier_changed" not in stats:
        return {}
    rates = barrier_summary(*(np.sum(stats[k]) for k in ("barrier_changed", "barrier_change", "agent_steps")))
    return {k: float(v) if np.isfinite(v) else None for k, v in rates.items()}


def _header(policy: LoadedPolicy, raw_env: Any, aenv: ArrayEnv, episodes: int, seed: int) -> dict[str, Any]:
    return {"scenario": policy.scenario, "run_id": policy.run_id, "episodes": episodes, "eval_seed": seed,
            "barrier": getattr(raw_env, "barrier", None) or "none", "num_agents": aenv.spec.num_agents}


def _dt(raw_env: Any) -> float | None:
    return getattr(getattr(raw_env, "profile", None), "dt", None)


def evaluate(policy: LoadedPolicy, episodes: int = 64, barrier: str | None = None, seed: int = EVAL_SEED,
             env: Any | None = None, num_agents: int | None = None) -> dict[str, Any]:
    """Run `episodes` deterministic episodes of one policy (one seed); returns the summary (plain numbers).

    `num_agents` evaluates on another fleet size (see `fleet_env`); `env` overrides the environment."""
    raw_env, aenv, run = _compiled(policy, episodes, barrier, env, num_agents, over_seeds=False)
    stats = run(policy.params, jax.random.PRNGKey(seed))
    return {**_header(policy, raw_env, aenv, episodes, seed), "seed": int(policy.config["seed"]) + policy.seed_index,
            **_summary(stats, _dt(raw_env))}


def evaluate_seeds(path: str | Path, episodes: int = 64, barrier: str | None = None, seed: int = EVAL_SEED,
                   num_agents: int | None = None) -> dict[str, Any]:
    """Every trained seed of a run on the same `episodes` episodes: `seeds` (one summary each, in seed
    order), `median` (the median over seeds of each summary number), `spread` ([min, max] over seeds) and
    `selected_seed` (the one `load_policy` / `export` use by default, and how it was chosen)."""
    meta, raw = read(path)
    policy = load_policy(path)
    count = int(policy.config["num_seeds"])
    raw_env, aenv, run = _compiled(policy, episodes, barrier, None, num_agents, over_seeds=True)
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *[policy_params(raw, s) for s in range(count)])
    stats = run(stacked, jax.random.PRNGKey(seed))
    first = int(policy.config["seed"])
    seeds = [{"seed": first + s, **_summary(jax.tree.map(lambda a: a[s], stats), _dt(raw_env))} for s in range(count)]
    median, spread = {}, {}
    for key in MEDIAN_KEYS:
        values = [s[key] for s in seeds if s.get(key) is not None]
        median[key] = float(np.median(values)) if values else None
        spread[key] = [float(min(values)), float(max(values))] if values else None
    return {**_header(policy, raw_env, aenv, episodes, seed), "training_seeds": [first, first + count - 1],
            "seeds": seeds, "median": median, "spread": spread, "median_success_rate": median["success_rate"],
            "selected_seed": first + policy.seed_index, "selection": meta.get("seed_selection", {
                "rule": "best final training success (metrics.csv; the run was not validated)"})}


def select_seed(path: str | Path, episodes: int, seed: int = VALIDATION_SEED) -> dict[str, Any]:
    """Choose the seed `load_policy` / `export` use by default: the best success rate (then mean return) on
    `episodes` validation episodes, which no reported evaluation uses, so it is a median-or-better seed
    chosen without looking at the evaluation episodes. Written into the checkpoint's header
    (`best_seed`, `seed_selection`); returns the selection."""
    from marlstack.policies.checkpoint import save
    result = evaluate_seeds(path, episodes, seed=seed)
    scores = [(s["success_rate"], s["mean_return"]) for s in result["seeds"]]
    best = max(range(len(scores)), key=lambda i: scores[i])
    meta, raw = read(path)
    selection = {"rule": "best success rate (then mean return) on the validation episodes",
                 "validation_seed": seed, "episodes": episodes, "seed": result["seeds"][best]["seed"],
                 "validation_success": [s["success_rate"] for s in result["seeds"]],
                 "validation_median": result["median_success_rate"]}
    save(path, {**meta, "best_seed": best, "seed_selection": selection}, raw)
    return selection


def _episodes(policy: LoadedPolicy, aenv: ArrayEnv, k: int, horizon: int, key: jax.Array):
    k_reset, k_run = jax.random.split(key)
    obs, _, log = jax.vmap(aenv.reset)(jax.random.split(k_reset, k))
    h = jnp.zeros((k, aenv.spec.num_agents, policy.config["gru_size"])) if policy.recurrent else None
    zeros = jnp.zeros(k)
    result = {"return": zeros, "length": zeros, "success": zeros, **{e: zeros for e in EVENT_KEYS}}
    if aenv.has_barrier:  # summed over each episode: how often and how much the barrier changed the commands
        result |= {"barrier_changed": zeros, "barrier_change": zeros, "agent_steps": zeros}

    def step(carry, step_key):
        obs, log, h, alive, result = carry
        actions, h = agent_actions(policy, obs, h)
        obs, _, log, _, done, out = jax.vmap(aenv.step)(jax.random.split(step_key, k), log, actions)
        first = alive & done
        fields = {"return": out["ep_return"], "length": out["ep_length"], "success": out["ep_success"],
                  **{e: out[f"ep_{e}"] for e in EVENT_KEYS}}
        totals = {}
        if aenv.has_barrier:
            live = alive.astype(jnp.float32)
            totals = {"barrier_changed": result["barrier_changed"] + live * out["barrier_changed"],
                      "barrier_change": result["barrier_change"] + live * out["barrier_change"],
                      "agent_steps": result["agent_steps"] + live * aenv.spec.num_agents}
        result = {**{n: jnp.where(first, f.astype(jnp.float32), result[n]) for n, f in fields.items()}, **totals}
        return (obs, log, h, alive & ~done, result), None

    carry = (obs, log, h, jnp.ones(k, bool), result)
    (_, _, _, _, result), _ = jax.lax.scan(step, carry, jax.random.split(k_run, horizon))
    return result


def trajectory_gif(policy: LoadedPolicy, path: str | Path, barrier: str | None = None, seed: int = EVAL_SEED,
                   num_agents: int | None = None) -> Path | None:
    """One episode of a fleet scenario drawn with `sim.render`; None for scenarios without poses."""
    from marlstack.policies.envs import is_fleet
    if not is_fleet(policy.scenario) or policy.recurrent:
        return None  # no poses to draw / sim.rollout's policies are stateless (no GRU state to thread)
    from marlstack.sim.render import animate
    from marlstack.sim.rollout import rollout

    env = fleet_env(policy, num_agents, barrier)

    def act(_key, state):
        return agent_actions(policy, env.observations(state)[None], None)[0][0]

    ep = rollout(env, act, jax.random.PRNGKey(seed), env.max_steps)
    title = (f"{policy.scenario}: {env.num_agents} robots, {policy.config['algo']} seed "
             f"{int(policy.config['seed']) + policy.seed_index}, "
             f"{'solved' if ep.solved else 'not solved'} in {ep.steps} steps")
    return animate(ep.poses, env.profile, path, ep.goals, title)
