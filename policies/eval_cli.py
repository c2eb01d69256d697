"""`marlstack eval DIR|CHECKPOINT`: deterministic episodes → JSON + table (+ trajectory GIF).

Every trained seed by default, on evaluation episodes no training or seed selection used, with the
median and the spread over seeds; one seed only when asked (`--seed-index K`, `--best-seed`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from marlstack.policies.config import ConfigError

ROWS = (("success_rate", "success rate"), ("collisions", "collisions (pair-steps)"),
        ("collision_episodes", "episodes with a collision"), ("boundary_exits", "boundary exits (robot-steps)"),
        ("mean_return", "mean return (per agent)"), ("mean_episode_length", "mean episode length (steps)"),
        ("time_to_goal_s", "time to goal (s, solved episodes)"),
        ("barrier_rate", "barrier changed (agent-steps)"), ("barrier_change", "barrier change (mean |du|)"))


def _cell(v: Any) -> str:
    return "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))


def table(result: dict[str, Any]) -> str:
    """One column for a single-seed result; one per seed, then median and [min, max], for `evaluate_seeds`'."""
    head = (f"{result['scenario']} · {result['num_agents']} agents · {result['episodes']} episodes (eval seed "
            f"{result['eval_seed']}) · barrier {result['barrier']} · run {result['run_id']}")
    if "seeds" not in result:
        lines = [f"{head} · seed {result['seed']}", "-" * len(head)]
        lines += [f"{label:<32} {_cell(result.get(key))}" for key, label in ROWS]
        return "\n".join(lines)
    cols = [("seed " + str(s["seed"]) + (" *" if s["seed"] == result["selected_seed"] else ""), s)
            for s in result["seeds"]]
    lines = [head, "-" * len(head),
             f"{'':<32}" + "".join(f"{c:>10}" for c, _ in cols) + f"{'median':>10}  spread [min, max]"]
    for key, label in ROWS:
        spread = result["spread"].get(key)
        lines.append(f"{label:<32}" + "".join(f"{_cell(s.get(key)):>10}" for _, s in cols)
                     + f"{_cell(result['median'].get(key)):>10}"
                     + (f"  [{_cell(spread[0])}, {_cell(spread[1])}]" if spread else ""))
    lines.append(f"* the seed export uses: {result['selection']['rule']}")
    return "\n".join(lines)


def evaluate_run(path: Path, episodes: int = 100, barrier: str | None = None, seed: int | None = None,
                 gif: bool | Path = True, as_json: bool = False, seed_index: int | None = None,
                 num_agents: int | None = None, failure: bool | None = None, best_seed: bool = False
                 ) -> dict[str, Any]:
    """Evaluate every seed (or `seed_index` / the selected seed with `best_seed`), write eval.json
    (+ trajectory.gif of the selected seed) next to the checkpoint, print table or JSON.

    On another fleet size the files are eval_<N>_agents.json / trajectory_<N>_agents.gif, so the
    run's own evaluation stays."""
    from marlstack.policies.checkpoint import checkpoint_path, load_policy
    from marlstack.policies.envs import is_cable
    from marlstack.policies.evaluate import EVAL_SEED, evaluate, evaluate_seeds, trajectory_gif
    from marlstack.policies.run_dir import EVAL_FILE

    policy = load_policy(path, seed_index)
    if is_cable(policy.scenario):
        return _evaluate_cable_run(path, episodes, 0 if seed is None else seed, gif, as_json, num_agents, failure)
    seed = EVAL_SEED if seed is None else seed
    _warn_if_seen(policy.config, seed)
    if seed_index is not None or best_seed:
        result = evaluate(policy, episodes=episodes, barrier=barrier, seed=seed, num_agents=num_agents)
    else:
        result = evaluate_seeds(path, episodes=episodes, barrier=barrier, seed=seed, num_agents=num_agents)
    folder = checkpoint_path(path).parent
    tag = "" if num_agents in (None, policy.num_agents) else f"_{num_agents}_agents"
    if gif:
        gif_path = gif if isinstance(gif, Path) else folder / f"trajectory{tag}.gif"
        written = trajectory_gif(policy, gif_path, barrier=barrier, seed=seed, num_agents=num_agents)
        result["gif"] = str(written) if written else None
    (folder / EVAL_FILE.replace(".json", f"{tag}.json")).write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2) if as_json else table(result))
    return result


def _warn_if_seen(config: dict[str, Any], seed: int) -> None:
    """A one-line warning when the evaluation episodes are ones training or seed selection drew from."""
    from marlstack.policies.evaluate import VALIDATION_SEED
    first, count = int(config["seed"]), int(config["num_seeds"])
    if first <= seed < first + count or seed == VALIDATION_SEED:
        print(f"marlstack eval: warning: evaluation seed {seed} is {'a training' if seed != VALIDATION_SEED else 'the validation'}"
              f" seed of this run; the numbers are not from unseen episodes", file=sys.stderr)


def _evaluate_cable_run(path: Path, episodes: int, seed: int, gif: bool | Path, as_json: bool,
                        num_agents: int | None, failure: bool | None) -> dict[str, Any]:
    """Cable teams: every trained seed beside the zero command and the classical controller (eval.json, or
    eval_failure.json / eval_no_failure.json when --failure / --no-failure differs from training), and a
    3-D GIF of the best seed's first episode."""
    from marlstack.policies.checkpoint import checkpoint_path
    from marlstack.policies.evaluate_cable import evaluate_cable, table as cable_table
    from marlstack.policies.run_dir import EVAL_FILE

    if num_agents is not None:
        raise ConfigError("--num-agents: a cable team's policy is trained for its team size; train another team")
    from marlstack.policies.checkpoint import load_policy
    trained = bool(load_policy(path).config["env_kwargs"].get("failure", False))
    failure = trained if failure is None else failure
    overrides = {"env_kwargs": {"failure": failure}}
    result = evaluate_cable(path, episodes=episodes, seed=seed, env_overrides=overrides)
    folder = checkpoint_path(path).parent
    if gif:
        from marlstack.policies.evaluate_cable import team_gif
        result["gif"] = str(team_gif(path, gif if isinstance(gif, Path) else folder / "trajectory.gif", seed, failure))
    name = EVAL_FILE if failure == trained else EVAL_FILE.replace(".json", "_failure.json" if failure else "_no_failure.json")
    (folder / name).write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2) if as_json else cable_table(result))
    return result


def robustness_run(path: Path, episodes: int, seed: int, as_json: bool) -> dict[str, Any]:
    """Cable teams: the robustness table (`policies.evaluate_cable.robustness`), written to robustness.json."""
    from marlstack.policies.checkpoint import checkpoint_path, load_policy
    from marlstack.policies.envs import is_cable
    from marlstack.policies.evaluate_cable import robustness, robustness_table
    policy = load_policy(path)
    if not is_cable(policy.scenario):
        raise ConfigError(f"--robustness is for cable teams; {path} trained {policy.scenario!r}")
    overrides = {"env_kwargs": {"failure": bool(policy.config["env_kwargs"].get("failure", False))}}
    result = robustness(path, episodes=episodes, seed=seed, env_overrides=overrides)
    (checkpoint_path(path).parent / "robustness.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2) if as_json else robustness_table(result))
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="marlstack eval", description="Evaluate a trained policy deterministically: "
                                "success rate, collisions, boundary exits, mean return, time to goal.")
    p.add_argument("path", type=Path, help="run directory or checkpoint.msgpack")
    p.add_argument("--episodes", "-k", type=int, default=100, help="episodes, run side by side (default 100)")
    p.add_argument("--barrier", default=None,
                   help="barrier certificate in the loop: a form (e.g. unicycle_walls) or 'none' (default: as trained)")
    p.add_argument("--seed", type=int, default=None,
                   help="evaluation seed: which episodes (default 1000; training uses seeds from 0, the exported seed "
                        "is chosen on 999's; cable teams: 0)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--seed-index", type=int, default=None,
                       help="evaluate only this trained seed (0 = the run's first; default: every seed)")
    which.add_argument("--best-seed", action="store_true",
                       help="evaluate only the seed export uses (chosen on validation episodes at the end of training)")
    p.add_argument("--num-agents", type=int, default=None,
                   help="evaluate on this many robots instead of the training fleet (policies whose agents share "
                        "parameters, e.g. a 4-robot navigation policy on 8 robots)")
    p.add_argument("--failure", action=argparse.BooleanOptionalAction, default=None,
                   help="cable teams: one MAV loses thrust at a random time in every episode (default: as trained)")
    p.add_argument("--robustness", action="store_true",
                   help="cable teams: every seed and the classical controller under each variation of the profile's "
                        "randomization ranges (heavier load, weaker motors, noise, latency, ...) -> robustness.json")
    p.add_argument("--gif", type=Path, default=None, help="trajectory GIF path (default DIR/trajectory.gif)")
    p.add_argument("--no-gif", action="store_true", help="skip the trajectory GIF")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.episodes < 1:
        print("marlstack eval: --episodes must be at least 1", file=sys.stderr)
        return 2
    from marlstack.policies.checkpoint import CheckpointError

    try:
        if args.robustness:
            robustness_run(args.path, args.episodes, 0 if args.seed is None else args.seed, args.json)
            return 0
        evaluate_run(args.path, args.episodes, args.barrier, args.seed, False if args.no_gif else (args.gif or True),
                     args.json, args.seed_index, args.num_agents, args.failure, args.best_seed)
    except (CheckpointError, ConfigError) as exc:
        print(f"marlstack eval: {exc}", file=sys.stderr)
        return 2
    return 0
