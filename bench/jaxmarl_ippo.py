"""`marlstack bench jaxmarl_ippo`: our IPPO against JaxMARL's own IPPO on JaxMARL's MPE, same budget, side by side.

JaxMARL's IPPO is a script in its repository (`baselines/IPPO/ippo_ff_mpe.py` with
`config/ippo_ff_mpe.yaml`), not part of the `jaxmarl` package, and it imports distrax, hydra and wandb.
So it runs unmodified from a JaxMARL checkout (`--jaxmarl-repo`) in a venv that has those
(`--jaxmarl-python`; `--make-venv` builds one with the pinned JAX), in a subprocess: its `make_train`
with its own config file, only the budget and the seed count replaced, wandb disabled. Ours runs
`marlstack train` on the same environment with the same hyperparameters (learning rate and its
annealing, envs, rollout, epochs, minibatches, discount, GAE, clips, coefficients, 64-64 tanh), the
same budget and seeds. Both report every seed's per-agent episode return over the last tenth of the
updates (JaxMARL: its `returned_episode_returns`, which its MPE log wrapper multiplies by the number of
agents, divided back; ours: `return`, the per-agent mean) and
env-steps/s after compiling. The two run one after the other in the same bench run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from marlstack.bench.report import Row

ROOT = Path(__file__).resolve().parents[1]
SCRIPT, CONFIG = "baselines/IPPO/ippo_ff_mpe.py", "baselines/IPPO/config/ippo_ff_mpe.yaml"
# their config key -> ours (the same meaning; checked against their config file at run time)
SAME = {"LR": "lr", "NUM_ENVS": "num_envs", "NUM_STEPS": "num_steps", "UPDATE_EPOCHS": "update_epochs",
        "NUM_MINIBATCHES": "num_minibatches", "GAMMA": "gamma", "GAE_LAMBDA": "gae_lambda", "CLIP_EPS": "clip_eps",
        "ENT_COEF": "ent_coef", "VF_COEF": "vf_coef", "MAX_GRAD_NORM": "max_grad_norm", "ACTIVATION": "activation",
        "ANNEAL_LR": "anneal_lr", "ENV_NAME": "scenario"}
VENV_PACKAGES = ["jaxmarl", "six", "distrax", "hydra-core", "omegaconf", "wandb"]

# Runs in JaxMARL's venv: imports their script as a module and calls its make_train (nothing of theirs is
# copied here). Prints one JSON line: compile and run seconds, every seed's last-tenth return.
DRIVER = r"""
import importlib.util, json, sys, time
import jax, numpy as np, wandb
script, config = sys.argv[1], json.loads(sys.argv[2])
wandb.init(mode="disabled")  # their update step logs through wandb.log
spec = importlib.util.spec_from_file_location("jaxmarl_ippo_ff_mpe", script)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
keys = jax.random.split(jax.random.PRNGKey(config["SEED"]), config["NUM_SEEDS"])
train = jax.jit(jax.vmap(module.make_train(config)))
t0 = time.perf_counter(); compiled = train.lower(keys).compile(); compile_s = time.perf_counter() - t0
t0 = time.perf_counter(); out = jax.block_until_ready(compiled(keys)); run_s = time.perf_counter() - t0
import jaxmarl
# (seeds, updates); MPELogWrapper logs the reward times the number of agents ("as per on-policy codebase"):
# divided back to the per-agent return both trainers optimise
ret = np.asarray(out["metrics"]["returned_episode_returns"]) / jaxmarl.make(config["ENV_NAME"]).num_agents
tail = max(1, ret.shape[1] // 10)
print(json.dumps({"compile_s": compile_s, "run_s": run_s, "updates": int(ret.shape[1]),
                  "returns": ret[:, -tail:].mean(axis=1).tolist()}))
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jaxmarl-repo", type=Path, required=True,
                        help="a checkout of github.com/FLAIROx/JaxMARL (its baselines/IPPO is not on PyPI)")
    parser.add_argument("--jaxmarl-python", type=Path, default=ROOT / ".venv-jaxmarl" / "bin" / "python",
                        help="python of a venv with jaxmarl, distrax, hydra-core and wandb (default .venv-jaxmarl)")
    parser.add_argument("--make-venv", action="store_true",
                        help="create .venv-jaxmarl first (the pinned jax/jaxlib/flax/optax + JaxMARL's script's imports)")
    parser.add_argument("--total-steps", type=float, default=2e6, help="environment steps per seed (default 2e6)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds, trained side by side by both (default 3)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 seeds x 4 updates")


def make_venv(python: Path) -> None:
    """A venv for JaxMARL's script: our pinned JAX stack (constraints.txt) plus the script's imports."""
    venv = python.parent.parent
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c",
                    str(ROOT / "constraints.txt"), "jax", "jaxlib", "flax", "optax", *VENV_PACKAGES], check=True)


def their_config(repo: Path, total_steps: float, seeds: int) -> dict:
    path = repo / CONFIG
    if not (repo / SCRIPT).is_file() or not path.is_file():
        raise SystemExit(f"bench jaxmarl_ippo: {repo} has no {SCRIPT} / {CONFIG} (a JaxMARL checkout is needed)")
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    missing = sorted(set(SAME) - set(config))
    if missing:
        raise SystemExit(f"bench jaxmarl_ippo: {path} lacks {', '.join(missing)}: another JaxMARL version?")
    return {**config, "TOTAL_TIMESTEPS": int(total_steps), "NUM_SEEDS": seeds, "WANDB_MODE": "disabled"}


def run_theirs(python: Path, repo: Path, config: dict) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    proc = subprocess.run([str(python), "-c", DRIVER, str(repo / SCRIPT), json.dumps(config)], capture_output=True,
                          text=True, env=env, cwd=repo)
    if proc.returncode:
        tail = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        raise SystemExit(f"bench jaxmarl_ippo: JaxMARL's IPPO failed in {python}: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_ours(config: dict, out: Path) -> dict:
    from marlstack.policies import run_dir
    from marlstack.policies.config import build_config
    from marlstack.policies.train_cli import train
    cfg = build_config({**{ours: config[theirs] for theirs, ours in SAME.items()}, "algo": "ippo",
                        "hidden_sizes": [64, 64], "seed": config["SEED"], "num_seeds": config["NUM_SEEDS"],
                        "total_steps": config["TOTAL_TIMESTEPS"], "eval_episodes": 0,
                        "updates_per_call": max(1, config["TOTAL_TIMESTEPS"] // config["NUM_ENVS"]
                                                // config["NUM_STEPS"] // 10)})
    summary = train(cfg, out, progress=False)
    rows = run_dir.read_metrics(out)
    returns = [run_dir.nanmean(r["return"] for r in run_dir.last_tenth(rows, s))
               for s in range(cfg.seed, cfg.seed + cfg.num_seeds)]
    return {"compile_s": summary["compile_s"], "run_s": summary["train_s"], "updates": summary["updates"],
            "returns": returns}


def run(args: argparse.Namespace) -> list[Row]:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if args.make_venv:
        make_venv(args.jaxmarl_python)
    if not args.jaxmarl_python.is_file():
        raise SystemExit(f"bench jaxmarl_ippo: no python at {args.jaxmarl_python}; add --make-venv to build "
                         ".venv-jaxmarl, or point --jaxmarl-python at a venv with jaxmarl, distrax, hydra-core, wandb")
    seeds, total = (2, 4 * 16 * 128) if args.quick else (args.seeds, args.total_steps)
    config = their_config(args.jaxmarl_repo, total, seeds)
    steps = config["TOTAL_TIMESTEPS"] // (config["NUM_ENVS"] * config["NUM_STEPS"]) * config["NUM_ENVS"] \
        * config["NUM_STEPS"] * seeds
    t_wall = time.strftime("%H:%M", time.gmtime())
    theirs = run_theirs(args.jaxmarl_python, args.jaxmarl_repo.resolve(), config)
    with tempfile.TemporaryDirectory() as tmp:
        ours = run_ours(config, Path(tmp) / "run")
    params = {"env": config["ENV_NAME"], "env_steps_per_seed": steps // seeds, "seeds": seeds,
              "num_envs": config["NUM_ENVS"], "started_utc": t_wall}
    per_seed = {"ours_returns_per_seed": ours["returns"], "jaxmarl_returns_per_seed": theirs["returns"],
                "ours_compile_s": ours["compile_s"], "jaxmarl_compile_s": theirs["compile_s"]}
    return [Row(params, "env_steps_per_s", "env-steps/s", steps / ours["run_s"], steps / theirs["run_s"],
                "JaxMARL's ippo_ff_mpe.py, same config, budget and seeds", True, per_seed),
            # MPE returns are negative: the gap (ours - JaxMARL's, > 0 ours better), not a ratio
            Row(params, "median_return_gap", "return", statistics.median(ours["returns"])
                - statistics.median(theirs["returns"]), None, "median per-agent episode return, ours - JaxMARL's", True,
                {"ours_median_return": statistics.median(ours["returns"]),
                 "jaxmarl_median_return": statistics.median(theirs["returns"])})]
