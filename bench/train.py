"""`marlstack bench train`: training throughput (IPPO, MAPPO) next to the bare simulator's, same run.

For each scenario the baseline is the simulator alone: the same environments, `vmap`ped and
scanned with random actions, no networks. The ratio (training / simulator, < 1) is the
training overhead: how much of the simulator's speed survives the rollout networks, GAE and
the PPO epochs. Timings are best-of-`repeats` after compiling, so a shared CPU adds less noise.
"""
from __future__ import annotations

import argparse
import time
from typing import Any

from bench.report import Row

GOAL_ENV_STEPS_PER_S = 50_000  # issue 4: navigation, N = 4, this CPU
CASES = (  # (scenario, overrides)
    ("navigation", {"num_agents": 4, "barrier": "none"}),
    ("navigation", {"num_agents": 4, "barrier": "unicycle_walls"}),
    ("MPE_simple_spread_v3", {}),
    ("cable", {}),  # 3 MAVs carrying a load (policies/configs/cable.yaml: 256 envs, residual actions)
)
GOAL_TRAIN_SHARE = 0.5  # issue 12: cable training at >= 50 % of the bare environment's env-steps/s


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="fewer, shorter timings (a smoke run)")
    parser.add_argument("--num-envs", type=int, default=None, help="environments per run (default: scenario config)")
    parser.add_argument("--algos", default="ippo,mappo", help="comma-separated algorithms (default ippo,mappo)")


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def sim_steps_per_s(cfg: Any, steps: int, repeats: int) -> float:
    """Bare simulator: `num_envs` environments, `steps` random-action steps in one jitted scan."""
    import jax

    from policies.envs import make_env
    env = make_env(cfg)
    spaces = [env.action_space(a) for a in env.agents]

    def run(key):
        k_reset, k_run = jax.random.split(key)
        _, state = jax.vmap(env.reset)(jax.random.split(k_reset, cfg.num_envs))

        def step(state, k):
            k_act, k_env = jax.random.split(k)
            keys = jax.random.split(k_act, (len(spaces), cfg.num_envs))
            acts = {a: jax.vmap(s.sample)(keys[i]) for i, (a, s) in enumerate(zip(env.agents, spaces))}
            obs, state, rew, _, _ = jax.vmap(env.step)(jax.random.split(k_env, cfg.num_envs), state, acts)
            # consume observations and rewards, so XLA cannot drop what training needs
            return state, sum(obs[a].sum() + rew[a].sum() for a in env.agents)

        return jax.lax.scan(step, state, jax.random.split(k_run, steps))[1]

    compiled = jax.jit(run).lower(jax.random.PRNGKey(0)).compile()
    jax.block_until_ready(compiled(jax.random.PRNGKey(0)))
    return cfg.num_envs * steps / _best_of(lambda: jax.block_until_ready(compiled(jax.random.PRNGKey(1))), repeats)


def train_steps_per_s(cfg: Any, repeats: int) -> tuple[float, int]:
    """(training env-steps/s of one PPO update, number of agents)."""
    import jax

    from policies.ppo import Trainer
    trainer = Trainer(cfg)
    runners = trainer.init_seeds()
    compiled = trainer.chunk_fn().lower(runners).compile()
    state = {"r": compiled(runners)[0]}

    def once():
        state["r"], metrics = compiled(state["r"])
        jax.block_until_ready(metrics)

    once()
    per_call = cfg.num_seeds * cfg.num_envs * cfg.num_steps * cfg.updates_per_call
    return per_call / _best_of(once, repeats), trainer.spec.num_agents


def run(args: argparse.Namespace) -> list[Row]:
    import os
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from policies.config import build_config

    repeats = 2 if args.quick else 5
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    rows: list[Row] = []
    for scenario, overrides in CASES:
        base = {"scenario": scenario, **overrides, "num_seeds": 1, "updates_per_call": 1}
        if args.num_envs:
            base["num_envs"] = args.num_envs
        if args.quick:
            base.update(num_envs=min(args.num_envs or 32, 32), num_steps=32)
        cfg = build_config(base)
        sim = sim_steps_per_s(cfg, cfg.num_steps, repeats)
        params = {"scenario": scenario, "barrier": cfg.barrier, "num_envs": cfg.num_envs}
        for algo in algos:
            ours, n = train_steps_per_s(build_config({**base, "algo": algo}), repeats)
            extra = {"agent_steps_per_s": ours * n, "sim_env_steps_per_s": sim}
            if scenario == "navigation":
                extra["goal"] = GOAL_ENV_STEPS_PER_S
            if scenario == "cable":
                extra["goal_share_of_simulator"] = GOAL_TRAIN_SHARE
            rows.append(Row({**params, "algo": algo, "agents": n}, "train env-steps/s", "env-steps/s", ours, sim,
                            "bare simulator (random actions)", True, extra))
    return rows
