"""`marlstack bench train`: training throughput (IPPO, MAPPO) next to the bare simulator's, same run.

For each scenario the baseline is the simulator alone: the same environments, `vmap`ped and
scanned with random actions, no networks. The ratio (training / simulator, < 1) is the
training overhead: how much of the simulator's speed survives the rollout networks, GAE and
the PPO epochs. Each row also says where an update's time goes (`sim_share`: the simulator's
steps, `rollout_share`: the whole rollout incl. the networks' forward passes; the rest is GAE and
the PPO epochs). `--against REV` also times the trainer as it was at git revision REV
(`policies/ppo.py` and `policies/envs.py` of that revision, everything else as now), alternating
with today's, so a change to the trainer shows its gain in one run. Timings are best-of-`repeats`
after compiling, so a shared CPU adds less noise.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable

from marlstack.bench.report import Row

GOAL_ENV_STEPS_PER_S = 100_000  # issue 18: navigation, N = 4, barrier in the loop, this CPU
CASES = {  # name -> (scenario, overrides)
    "navigation": ("navigation", {"num_agents": 4, "barrier": "none"}),
    "navigation_barrier": ("navigation", {"num_agents": 4, "barrier": "unicycle_walls"}),
    "mpe": ("MPE_simple_spread_v3", {}),
    "cable": ("cable", {}),  # 3 MAVs carrying a load (policies/configs/cable.yaml: 512 envs, residual actions)
}
GOAL_TRAIN_SHARE = 0.5  # issue 12: cable training at >= 50 % of the bare environment's env-steps/s
ROOT = Path(__file__).resolve().parents[1]
# where an old revision's ppo finds its envs (revisions before the marlstack.* namespace import `policies.envs`)
ENVS_NAMES = ("marlstack.policies.envs", "policies.envs")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="fewer, shorter timings (a smoke run)")
    parser.add_argument("--num-envs", type=int, default=None, help="environments per run (default: scenario config)")
    parser.add_argument("--algos", default="ippo,mappo", help="comma-separated algorithms (default ippo,mappo)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated cases (default: {','.join(CASES)})")
    parser.add_argument("--against", metavar="REV", default=None,
                        help="also time the trainer of git revision REV (its policies/ppo.py and policies/envs.py), "
                             "alternating with today's")


def _best_of(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Best wall time of each function, the functions called in turn `repeats` times."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def sim_fn(cfg: Any) -> Callable[[], Any]:
    """Bare simulator: `num_envs` environments, `num_steps` random-action steps in one jitted scan."""
    import jax

    from marlstack.policies.envs import make_env
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

        return jax.lax.scan(step, state, jax.random.split(k_run, cfg.num_steps))[1]

    compiled = jax.jit(run).lower(jax.random.PRNGKey(0)).compile()
    return lambda: jax.block_until_ready(compiled(jax.random.PRNGKey(1)))


def update_fns(trainer_cls: Any, cfg: Any, rollout: bool = True) -> tuple[Callable[[], Any], Callable[[], Any] | None, int]:
    """(one PPO update call, the rollout alone or None, number of agents) of a compiled trainer, one seed."""
    import jax
    trainer = trainer_cls(cfg)
    runners = trainer.init_seeds()
    compiled = trainer.chunk_fn().lower(runners).compile()
    state = {"r": compiled(runners)[0]}

    def update():
        state["r"], metrics = compiled(state["r"])
        jax.block_until_ready(metrics)

    if not rollout:
        return update, None, trainer.spec.num_agents
    scan = jax.jit(jax.vmap(lambda r: jax.lax.scan(trainer._rollout_step, r, None, length=cfg.num_steps)[1]))
    scan = scan.lower(runners).compile()
    return update, lambda: jax.block_until_ready(scan(state["r"])), trainer.spec.num_agents


def trainer_at(rev: str) -> Any:
    """`Trainer` as of git revision `rev`: that revision's policies/envs.py and policies/ppo.py, loaded
    as private modules (the rest of the code as it is now)."""
    modules = {}
    for name in ("envs", "ppo"):
        proc = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:policies/{name}.py"],
                              capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"bench train --against {rev}: cannot read policies/{name}.py at that revision "
                             f"({proc.stderr.strip() or 'git failed'})")
        module = types.ModuleType(f"marlstack.policies._at_{name}")
        real = {key: sys.modules.get(key) for key in ENVS_NAMES}
        sys.modules[module.__name__] = module
        if name == "ppo":  # the old ppo imports the old envs
            sys.modules.update(dict.fromkeys(ENVS_NAMES, modules["envs"]))
        try:
            exec(compile(proc.stdout, f"{rev}:policies/{name}.py", "exec"), module.__dict__)
        finally:
            for key, value in real.items():
                if value is None:
                    sys.modules.pop(key, None)
                else:
                    sys.modules[key] = value
        modules[name] = module
    return modules["ppo"].Trainer


def run(args: argparse.Namespace) -> list[Row]:
    import os
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from marlstack.policies.config import build_config
    from marlstack.policies.ppo import Trainer

    repeats = 1 if args.quick else 5
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        raise SystemExit(f"bench train: unknown case(s) {', '.join(unknown)} (choose from {', '.join(CASES)})")
    old_trainer = trainer_at(args.against) if args.against else None
    rows: list[Row] = []
    for scenario, overrides in (CASES[c] for c in cases):
        base = {"scenario": scenario, **overrides, "num_seeds": 1, "updates_per_call": 1}
        if args.num_envs:
            base["num_envs"] = args.num_envs
        if args.quick:
            base.update(num_envs=min(args.num_envs or 32, 32), num_steps=4)
        cfg = build_config(base)
        sim = sim_fn(cfg)
        params = {"scenario": scenario, "barrier": cfg.barrier, "num_envs": cfg.num_envs}
        for algo in algos:
            algo_cfg = build_config({**base, "algo": algo})
            # the rollout's own timing (a second compile) is left out of smoke runs
            update, rollout, n = update_fns(Trainer, algo_cfg, rollout=not args.quick)
            fns = {"sim": sim, "update": update, **({"rollout": rollout} if rollout else {})}
            if old_trainer is not None:
                fns["against"] = update_fns(old_trainer, algo_cfg)[0]
            best = _best_of(fns, repeats)
            steps = cfg.num_envs * cfg.num_steps
            ours, sim_rate = steps / best["update"], steps / best["sim"]
            extra = {"agent_steps_per_s": ours * n, "sim_env_steps_per_s": sim_rate,
                     "sim_share": best["sim"] / best["update"]}
            if rollout:
                extra["rollout_share"] = best["rollout"] / best["update"]
            if old_trainer is not None:
                extra.update(against=args.against, against_env_steps_per_s=steps / best["against"],
                             speedup_vs_against=best["against"] / best["update"])
            if scenario == "navigation" and cfg.barrier != "none":
                extra["goal"] = GOAL_ENV_STEPS_PER_S
            if scenario == "cable":
                extra["goal_share_of_simulator"] = GOAL_TRAIN_SHARE
            rows.append(Row({**params, "algo": algo, "agents": n}, "train env-steps/s", "env-steps/s", ours, sim_rate,
                            "bare simulator (random actions)", True, extra))
    return rows
