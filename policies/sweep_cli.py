"""`marlstack sweep CONFIG --grid KEY=V1,V2 --sample KEY=DIST(..) --seeds ...`: trainings as Ray tasks → one table.

Every (point, seed) is one `marlstack train` run (policies/sweep.py); the points are the grid, random
draws from the --sample space, or both crossed; the table has every seed and the median per point, in OUT/results.json and OUT/results.csv. Rerunning the same command
resumes: finished trials are read back, interrupted ones continue from their checkpoint.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

from marlstack.policies.config import ConfigError, build_config, read_yaml
from marlstack.policies.sweep import METRICS

SET_HELP = "override a config key for every trial (repeatable), e.g. --set total_steps=200000"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="marlstack sweep",
        description="Train every combination of --grid values (and/or --samples random draws from the --sample "
                    "space) for every seed, each training a Ray task (a local Ray instance on 127.0.0.1, or a cluster "
                    "with --address), and print one table: every seed and the median per point. Rerun the same "
                    "command to resume an interrupted sweep.")
    p.add_argument("config", help="a scenario (e.g. navigation) or a YAML config file with a 'scenario' key")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="config key and its values (repeatable; lists in brackets: hidden_sizes=[64,64],[128,128])")
    p.add_argument("--sample", action="append", default=[], metavar="KEY=DIST(ARGS)",
                   help="random search (repeatable): uniform(a,b), loguniform(a,b), randint(a,b) (a <= v < b) or "
                        "choice(v1,v2,...), e.g. lr=loguniform(1e-4,1e-3); crossed with --grid when both are given")
    p.add_argument("--samples", type=int, default=8, metavar="N", help="random points drawn (with --sample; default 8)")
    p.add_argument("--search-seed", type=int, default=0, metavar="S",
                   help="seed of the random draws (the same seed draws the same points: reruns resume them)")
    p.add_argument("--seeds", default=None, metavar="K|S1,S2",
                   help="K: seeds 0..K-1; or a comma-separated list (default: the config's seed..seed+num_seeds-1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    p.add_argument("--asha", type=int, default=None, metavar="MIN_STEPS",
                   help="ASHA early stopping: every point first trains MIN_STEPS env steps per seed, and only the best "
                        "1/ETA of those finished at a rung go on to ETA times the budget, up to total_steps")
    p.add_argument("--eta", type=int, default=3, help="ASHA's reduction factor (default 3)")
    p.add_argument("--out", "-o", type=Path, help="sweep directory (default runs/sweep-<scenario>-<time>)")
    p.add_argument("--metric", choices=METRICS,
                   help="the table's number (default: eval_success when the trials were evaluated, else train_success)")
    ray_opts = p.add_argument_group("Ray")
    ray_opts.add_argument("--address", default=None,
                          help="join a running Ray cluster: 'auto', HOST:PORT or ray://HOST:10001 (default: start a "
                               "local instance on 127.0.0.1)")
    ray_opts.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local instance (default: all)")
    ray_opts.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs Ray reserves per trial (default 1)")
    ray_opts.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs Ray reserves per trial (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    return p


def base_config(config: str, sets: list[str]) -> dict[str, Any]:
    """The overrides every trial shares: the YAML file's (or just the scenario), then --set."""
    from marlstack.policies.config import coerce, parse_value
    if config.endswith((".yaml", ".yml")) or Path(config).is_file():
        base = read_yaml(config)
        if "scenario" not in base:
            raise ConfigError(f"{config}: a sweep config needs a 'scenario' key")
    else:
        base = {"scenario": config}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key = key.strip().replace("-", "_")
        base[key] = coerce(key, parse_value(value))
    return base


def parse_seeds(text: str | None, base: dict[str, Any]) -> list[int]:
    if text is None:
        cfg = build_config(base)
        return list(range(cfg.seed, cfg.seed + cfg.num_seeds))
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--seeds expects K or S1,S2,... (integers), got {text!r}") from None
    seeds = list(range(values[0])) if len(values) == 1 and "," not in text else values
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: need at least one seed, none negative or repeated, got {text!r}")
    return seeds


def table(rows: list[dict[str, Any]], keys: list[str], seeds: list[int], metric: str) -> str:
    def cell(v: Any) -> str:
        return "-" if v is None else f"{v:.3g}" if isinstance(v, float) else json.dumps(v) if isinstance(v, list) else str(v)

    head = [*keys, *(f"seed {s}" for s in seeds), f"median {metric}"]
    body = [[cell(r[k]) for k in keys] + [cell(v) for v in r["per_seed"]] + [cell(r["median"])] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in [head, *body])


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from marlstack.policies import asha, sweep
    try:
        base = base_config(args.config, args.set)
        grid, space = sweep.parse_grid(args.grid), sweep.parse_space(args.sample)
        if set(grid) & set(space):
            raise ConfigError(f"--grid and --sample both set {', '.join(sorted(set(grid) & set(space)))}")
        if space and args.samples < 1:
            raise ConfigError(f"--samples must be at least 1, got {args.samples}")
        seeds = parse_seeds(args.seeds, base)
        draws = sweep.draw(space, args.samples, args.search_seed)
        pts = sweep.points(grid, draws)
        for point in pts:  # refuse a bad value before any trial starts
            build_config({**base, **point})
        rungs = None
        if args.asha is not None:
            if any("total_steps" in point for point in pts):
                raise ConfigError("--asha sets each point's budget: do not sweep total_steps with it")
            try:
                rungs = asha.rung_budgets(args.asha, build_config(base).total_steps, args.eta)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        out = args.out or Path("runs") / f"sweep-{base['scenario']}-{time.strftime('%Y%m%d-%H%M%S')}"
        sweep.check_sweep(out, base, draws if space else None,
                          {"rungs": rungs, "eta": args.eta} if rungs is not None else None)
    except ConfigError as exc:
        print(f"marlstack sweep: {exc}", file=sys.stderr)
        return 2
    try:
        if rungs is None:
            results = sweep.run_sweep(out, base, pts, seeds, args.address, args.num_cpus, args.cpus_per_trial,
                                      args.gpus_per_trial, progress=not args.no_progress)
        else:
            results = sweep.run_asha(out, base, pts, seeds, rungs, args.eta, args.metric, args.address, args.num_cpus,
                                     args.cpus_per_trial, args.gpus_per_trial, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"marlstack sweep: interrupted; rerun the same command to resume ({out})", file=sys.stderr)
        return 130
    except sweep.SweepError as exc:
        print(f"marlstack sweep: {exc}", file=sys.stderr)
        return 1
    metric = args.metric or sweep.default_metric(results)
    rows = sweep.table_rows(results, pts, seeds, metric)
    keys = [*grid, *space]
    if rungs is not None:  # how far ASHA let each point train
        for row, point in zip(rows, pts):
            row["steps"] = max((r.get("env_steps") or 0 for r in results if r["point"] == point), default=0)
        keys.append("steps")
    failed = [r for r in results if "error" in r]
    summary = {"out": str(out), "base": base, "grid": grid, "space": space, "seeds": seeds, "metric": metric,
               **({"asha": {"rungs": rungs, "eta": args.eta}} if rungs is not None else {}),
               "table": rows, "trials": results}
    (out / sweep.RESULTS_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    with (out / "results.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([*keys, *(f"seed_{s}" for s in seeds), f"median_{metric}"])
        writer.writerows([[json.dumps(r[k]) for k in keys] + ["" if v is None else v for v in r["per_seed"]]
                          + ["" if r["median"] is None else r["median"]] for r in rows])
    print(json.dumps(summary, indent=2) if args.json else table(rows, keys, seeds, metric))
    for r in failed:
        print(f"marlstack sweep: trial {r['run_dir']} failed: {r['error']}", file=sys.stderr)
    return 1 if failed else 0
