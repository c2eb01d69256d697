"""`marlstack train`: train IPPO / MAPPO on a fleet scenario or a JaxMARL environment.

The host loop calls one compiled function (`Trainer.chunk_fn`: `updates_per_call` PPO
updates for every seed) and, between calls, advances the progress bar, appends metrics
rows and writes the checkpoint. Ctrl-C stops after saving the last completed call.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any, Callable

from marlstack.policies.config import (HOST_ONLY, ConfigError, TrainConfig, add_config_arguments, build_config, coerce,
                             overrides_from_args)

# a runner's fields that describe the episodes in progress, not the learner: a resume may restart them
EPISODE_FIELDS = ("env_log", "obs", "world_state", "done", "actor_h", "critic_h")
# compiled chunk per config: a rerun in the same process (tests, benchmarks) skips compiling
_COMPILED: dict[str, Any] = {}


def compiled_chunk(cfg: TrainConfig, trainer: Any, runners: Any) -> tuple[Any, float]:
    """(compiled `trainer.chunk_fn()` for these runners, seconds spent compiling)."""
    key = cfg.compile_key()
    if key not in _COMPILED:
        t0 = time.perf_counter()
        _COMPILED[key] = (trainer.chunk_fn().lower(runners).compile(), time.perf_counter() - t0)
        return _COMPILED[key]
    return _COMPILED[key][0], 0.0


def train(cfg: TrainConfig, out: Path, resume: bool = False, progress: bool = True,
          after_call: Callable[[int], None] | None = None, until_updates: int | None = None) -> dict[str, Any]:
    """Train (or continue) a run in `out`; returns a summary. `after_call(updates_done)` is a test hook;
    `until_updates` stops (and saves) there, the schedules still those of the full budget (ASHA's rungs)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from tqdm import tqdm

    from marlstack.policies import checkpoint, distributed, run_dir
    from marlstack.policies.ppo import Trainer

    primary = distributed.is_primary()  # several processes: only the first writes the run directory
    if primary:
        out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(cfg)
    runners = trainer.init_seeds()
    updates = 0
    run_id = f"{cfg.scenario}-{cfg.algo}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"
    if resume:
        meta, raw = checkpoint.read(out)
        checkpoint.check_compatible(meta, cfg, trainer.spec, out)
        runners, restarted = checkpoint.restore_state(runners, raw, out, EPISODE_FIELDS)
        if restarted and primary:
            print(f"note: {out}'s environment state has another layout than this version's (a field added since): "
                  f"the learner, optimiser and normalisers continue, the episodes restart", file=sys.stderr)
        runners = runners.replace(total_updates=jnp.full_like(runners.total_updates, cfg.num_updates))
        run_id, updates = meta["run_id"], int(meta["updates"])
    runners = distributed.to_global(runners, trainer.runner_shardings())
    start = updates
    if primary:
        run_dir.start_metrics(out, updates if resume else None)
        run_dir.write_config(out, cfg)
    board = run_dir.TensorBoard(out, cfg) if primary and cfg.tensorboard else None

    compiled, compile_s = compiled_chunk(cfg, trainer, runners)
    per_call = cfg.num_seeds * cfg.num_envs * cfg.num_steps * cfg.updates_per_call
    calls = max(0, min(cfg.num_updates, until_updates or cfg.num_updates) - updates) // cfg.updates_per_call

    saved: list[int | None] = [updates if resume else None]  # the update of the last checkpoint

    def save() -> None:
        state = distributed.to_host(runners)  # a collective with several processes: all of them gather
        saved[0] = updates
        if primary:
            best = run_dir.best_seed(run_dir.read_metrics(out), cfg.seed, cfg.num_seeds)
            checkpoint.save(out, checkpoint.make_meta(cfg, trainer.spec, run_id, updates, best), state)

    bar = tqdm(total=cfg.num_updates, initial=updates, unit="upd", disable=not (progress and primary),
               dynamic_ncols=True, desc=f"{cfg.algo} {cfg.scenario}")
    interrupted, train_s = False, 0.0
    leave: tuple[int, str] | None = None  # (exit code, why) when a process of several must leave the job
    try:
        for call in range(calls):
            t_call = time.perf_counter()
            new_runners, metrics = compiled(runners)
            metrics = {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}  # waits for the call
            dt = time.perf_counter() - t_call
            train_s += dt
            runners = new_runners
            rows = []
            for u in range(cfg.updates_per_call):
                for s in range(cfg.num_seeds):
                    upd = updates + u + 1
                    rows.append({"update": upd, "env_steps": upd * cfg.num_envs * cfg.num_steps, "seed": cfg.seed + s,
                                 **{k: float(metrics[k][s, u]) for k in run_dir.METRIC_COLUMNS},
                                 "env_steps_per_s": per_call / dt, "wall_s": train_s})
            updates += cfg.updates_per_call
            if primary:
                run_dir.append_metrics(out, rows)
            if board is not None:
                board.add(rows)
            bar.update(cfg.updates_per_call)
            last = rows[-cfg.num_seeds:]
            barrier = run_dir.nanmean(r["barrier_rate"] for r in last)  # NaN: no barrier in the loop
            bar.set_postfix(ret=f"{run_dir.nanmean(r['return'] for r in last):.2f}",
                            succ=f"{run_dir.nanmean(r['success_rate'] for r in last):.2f}",
                            **({"barrier": f"{barrier:.3f}"} if barrier == barrier else {}),
                            sps=f"{per_call / dt:,.0f}", refresh=False)
            if (call + 1) % cfg.checkpoint_every == 0 or call == calls - 1:
                save()
            if after_call is not None:
                after_call(updates)
    except KeyboardInterrupt:
        interrupted = True
        if distributed.process_count() == 1:
            save()
        else:  # the gather is a collective: with the signal on this process alone it would wait forever
            leave = (130, "interrupted")
    except Exception as exc:  # a collective failed: another process of the job is gone
        if distributed.process_count() == 1:
            raise
        leave = (1, f"the job lost a process ({str(exc).splitlines()[0]})")
    finally:
        bar.close()
        if board is not None:
            board.close()
    if leave is not None:  # jax.distributed's shutdown at exit is a barrier too: the other processes will not reach it
        kept = "no checkpoint yet" if saved[0] is None else f"the checkpoint of update {saved[0]} in {out} stays"
        print(f"process {jax.process_index()}: {leave[1]}: leaving the job without saving (saving gathers from every "
              f"process); {kept}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(leave[0])
    if calls == 0:
        save()
    curve = None
    if primary:
        curve = run_dir.plot_curves(out, f"{cfg.algo.upper()} on {cfg.scenario} ({trainer.spec.num_agents} agents)")
    return {"run_dir": str(out), "run_id": run_id, "updates": updates,
            "env_steps_per_seed": updates * cfg.num_envs * cfg.num_steps, "compile_s": compile_s, "train_s": train_s,
            "env_steps_per_s": per_call * (updates - start) / cfg.updates_per_call / train_s if train_s else None,
            "interrupted": interrupted, "curve": str(curve) if curve else None}


def seed_summary(out: Path, cfg: TrainConfig) -> str:
    """Every seed's training success and return over its last tenth of updates, their median and spread
    (training episodes: the ones that ended in an update, which favours short solved ones; eval is the
    number to trust), and with a barrier in the loop how often and how much it changed the commands."""
    import math

    import numpy as np

    from marlstack.policies import run_dir
    rows = run_dir.read_metrics(out)
    lines = [f"training, last tenth of the updates, per seed ({cfg.num_seeds}):"]
    keys = ("success_rate", "return") + (("barrier_rate", "barrier_change") if any(
        math.isfinite(r["barrier_rate"]) for r in rows) else ())
    for key in keys:
        values = []
        for s in range(cfg.seed, cfg.seed + cfg.num_seeds):
            values.append(run_dir.nanmean(r[key] for r in run_dir.last_tenth(rows, s)))
        finite = [v for v in values if np.isfinite(v)]
        stats = (f"median {np.median(finite):.3g}, spread [{min(finite):.3g}, {max(finite):.3g}]" if finite
                 else "the barrier changed no command" if key == "barrier_change" else "no finished episodes")
        lines.append(f"  {key:<14} " + " ".join(f"{v:.3g}" for v in values) + f"  ({stats})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="marlstack train",
        description="Train decentralised policies with IPPO or MAPPO. Defaults come from "
                    "policies/configs/<scenario>.yaml; every config field can be overridden below.")
    p.add_argument("scenario", nargs="?", help="fleet scenario (e.g. navigation) or JaxMARL env (e.g. MPE_simple_spread_v3)")
    p.add_argument("--seeds", dest="cfg_num_seeds", metavar="K", default=None, help="seeds trained side by side (vmap)")
    p.add_argument("--out", "-o", type=Path, help="run directory (default runs/<scenario>-<algo>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    cable = p.add_argument_group("cable-load teams (scenario cable, cable_hover, cable_move, cable_random)")
    cable.add_argument("--mavs", type=int, metavar="N", help="team size (the profile needs an attachment layout: 3 or 4)")
    cable.add_argument("--cable", choices=("tension", "rigid"), help="cable model (default: the profile's)")
    cable.add_argument("--failure", action="store_true", help="one MAV loses thrust at a random time in every episode")
    hosts = p.add_argument_group("several machines (one process per machine; docs/scale.md)")
    hosts.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address, or 'auto' to read the cluster's "
                       "variables (SLURM, Open MPI, JAX_COORDINATOR_ADDRESS ...)")
    hosts.add_argument("--num-processes", type=int, metavar="N", help="processes in the job (with --coordinator)")
    hosts.add_argument("--process-id", type=int, metavar="I", help="this process's index, 0 … N-1 (0 writes the run)")
    add_config_arguments(p, skip=("scenario",))
    return p


def _resume_config(out: Path, scenario: str | None, overrides: dict[str, Any]) -> TrainConfig:
    from marlstack.policies import run_dir
    from marlstack.policies.checkpoint import CheckpointError
    from marlstack.policies.config import read_yaml
    saved = read_yaml(out / run_dir.CONFIG_FILE) if (out / run_dir.CONFIG_FILE).is_file() else None
    if saved is None:
        raise CheckpointError(f"--resume: {out} has no {run_dir.CONFIG_FILE}; is it a training run directory?")
    if scenario and scenario != saved.get("scenario"):
        raise CheckpointError(f"--resume: {out} trained scenario {saved.get('scenario')!r}, not {scenario!r}")
    changed = sorted(k for k, v in overrides.items()
                     if k not in HOST_ONLY and coerce(k, v) != coerce(k, saved.get(k)))
    if changed:
        raise ConfigError(f"--resume cannot change {', '.join(changed)} (only {', '.join(HOST_ONLY)})")
    return build_config({**saved, **overrides})


def cable_overrides(args: argparse.Namespace, overrides: dict[str, Any]) -> dict[str, Any]:
    """--mavs / --cable / --failure as config overrides; env_kwargs merge into the scenario's."""
    from marlstack.policies.config import scenario_defaults
    from marlstack.policies.envs import is_cable
    extra = {k: v for k, v in (("cable_model", args.cable), ("failure", args.failure or None)) if v is not None}
    if args.mavs is None and not extra:
        return overrides
    if not is_cable(args.scenario or ""):
        raise ConfigError("--mavs, --cable and --failure are for cable scenarios (e.g. `marlstack train cable`)")
    out = dict(overrides)
    if args.mavs is not None:
        out["num_agents"] = args.mavs
    if extra:
        base = overrides.get("env_kwargs", scenario_defaults(args.scenario).get("env_kwargs", {}))
        out["env_kwargs"] = {**base, **extra}
    return out


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from marlstack.policies import distributed
    try:  # before anything touches JAX (some modules build arrays when imported)
        distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    except ConfigError as exc:
        print(f"marlstack train: {exc}", file=sys.stderr)
        return 2
    from marlstack.hardware.profile import ProfileError
    from marlstack.policies.checkpoint import CheckpointError
    from marlstack.policies.envs import available_scenarios

    if args.list:
        print("\n".join(available_scenarios()))
        return 0
    try:
        overrides = cable_overrides(args, overrides_from_args(args))
        if args.resume:
            if args.out is None:
                raise ConfigError("--resume needs --out DIR (the run to continue)")
            cfg = _resume_config(args.out, args.scenario, overrides)
        else:
            if not args.scenario:
                raise ConfigError("name a scenario, e.g. `marlstack train navigation` (`--list` shows them)")
            cfg = build_config({"scenario": args.scenario, **overrides})
        out = args.out or Path("runs") / f"{cfg.scenario}-{cfg.algo}-{time.strftime('%Y%m%d-%H%M%S')}"
        summary = train(cfg, out, resume=args.resume, progress=not args.no_progress)
        if not distributed.is_primary():
            return 130 if summary["interrupted"] else 0
        if summary["interrupted"]:
            print(f"marlstack train: interrupted; kept the checkpoint and metrics of update {summary['updates']} "
                  f"in {out} (continue with --resume --out {out})", file=sys.stderr)
            return 130
        print(json.dumps({k: summary[k] for k in ("run_dir", "updates", "env_steps_per_seed", "compile_s",
                                                   "train_s", "env_steps_per_s")}))
        print(seed_summary(out, cfg))
        if cfg.eval_episodes > 0:
            from marlstack.policies.envs import is_cable
            from marlstack.policies.eval_cli import evaluate_run
            if not is_cable(cfg.scenario):  # cable runs keep the best training seed (their own evaluation)
                from marlstack.policies.evaluate import select_seed
                sel = select_seed(out, cfg.eval_episodes)
                print(f"export seed: {sel['seed']} (validation success per seed {sel['validation_success']}, "
                      f"{sel['episodes']} episodes of validation seed {sel['validation_seed']})")
            evaluate_run(out, episodes=cfg.eval_episodes, gif=False)
    except (ConfigError, CheckpointError, ProfileError) as exc:
        print(f"marlstack train: {exc}", file=sys.stderr)
        return 2
    return 0
