"""Sweeps: one training per (point, seed), each a Ray task, on a local Ray instance or a cluster.

The points are a grid (every combination of listed values), random draws from a search space
(`uniform`, `loguniform`, `randint`, `choice`; seeded, so a rerun draws the same points), or the grid
crossed with the draws.

Ray schedules the tasks (one CPU each by default, `cpus_per_trial` / `gpus_per_trial` otherwise) and
runs our own trainer (`train_cli.train`) in them, so a trial is exactly a `marlstack train` run with
`num_seeds: 1`: its run directory, metrics.csv and checkpoint under `OUT/trials/<point>/seed-<s>`. A
trial that finished leaves `trial.json` there; rerunning the same sweep skips those and resumes
trials that had saved a checkpoint (`--resume` of the trainer). The driver collects the
results into one table: every seed and the median per grid point.

On a cluster (`address`), the trials write their run directories on the machine that runs them, at
the same path: the results come back to the driver, but resuming needs OUT on a shared file system.
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from marlstack.policies.config import FIELDS, ConfigError, coerce, parse_value

SWEEP_FILE, RESULTS_FILE, TRIAL_FILE = "sweep.json", "results.json", "trial.json"
METRICS = ("eval_success", "train_success", "eval_return", "train_return", "barrier_rate")  # trial.json's numbers


def parse_grid(items: Iterable[str]) -> dict[str, list[Any]]:
    """`key=v1,v2` (lists in brackets: `hidden_sizes=[64,64],[128,128]`) → {key: [values]}, checked
    against the config's fields and types."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not text.strip():
            raise ConfigError(f"--grid expects KEY=V1,V2,..., got {item!r}")
        _check_key(key, "--grid", grid)
        grid[key] = [coerce(key, parse_value(v)) for v in _split_top_level(text)]
    return grid


def _check_key(key: str, option: str, seen: dict[str, Any]) -> None:
    if key not in FIELDS:
        raise ConfigError(f"{option}: unknown config key {key!r}")
    if key in ("seed", "num_seeds"):
        raise ConfigError(f"{option}: seeds are given with --seeds, not as a searched key")
    if key in seen:
        raise ConfigError(f"{option}: key {key!r} given twice")


def _split_top_level(text: str) -> list[str]:
    """Split at commas outside brackets and braces."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [p.strip() for p in parts + [current] if p.strip()]


DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")


def parse_space(items: Iterable[str]) -> dict[str, tuple[str, list[Any]]]:
    """`key=loguniform(1e-4,1e-3)`, `key=uniform(a,b)`, `key=randint(a,b)` (a ≤ v < b), `key=choice(v1,v2,...)`
    → {key: (distribution, arguments)}, checked against the config's fields and types."""
    space: dict[str, tuple[str, list[Any]]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        match = re.fullmatch(r"\s*(\w+)\((.*)\)\s*", text)
        if not sep or match is None or match[1] not in DISTRIBUTIONS:
            raise ConfigError(f"--sample expects KEY=DIST(ARGS) with DIST one of {', '.join(DISTRIBUTIONS)}, got {item!r}")
        _check_key(key, "--sample", space)
        dist, args = match[1], [parse_value(v) for v in _split_top_level(match[2])]
        if dist == "choice":
            if not args:
                raise ConfigError(f"--sample {key}: choice() needs at least one value")
            args = [coerce(key, v) for v in args]
        elif len(args) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in args) \
                or not args[0] < args[1] or (dist == "loguniform" and args[0] <= 0) \
                or (dist == "randint" and not all(isinstance(v, int) for v in args)):
            raise ConfigError(f"--sample {key}: {dist}(LOW,HIGH) needs numbers LOW < HIGH"
                              f"{' (> 0)' if dist == 'loguniform' else ' (integers)' if dist == 'randint' else ''}, "
                              f"got {text!r}")
        else:  # the key takes numbers of this kind: uniform draws are floats, randint draws integers
            coerce(key, float(args[0]) if dist != "randint" else args[0])
        space[key] = (dist, args)
    return space


def draw(space: dict[str, tuple[str, list[Any]]], samples: int, seed: int) -> list[dict[str, Any]]:
    """`samples` points drawn from `space` with numpy's generator seeded by `seed` (one empty point without a space)."""
    if not space:
        return [{}]
    import numpy as np
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(samples):
        point = {}
        for key, (dist, args) in space.items():
            if dist == "uniform":
                value = float(rng.uniform(args[0], args[1]))
            elif dist == "loguniform":
                value = float(np.exp(rng.uniform(np.log(args[0]), np.log(args[1]))))
            elif dist == "randint":
                value = int(rng.integers(args[0], args[1]))
            else:
                value = args[int(rng.integers(len(args)))]
            point[key] = coerce(key, value)
        out.append(point)
    return out


def points(grid: dict[str, list[Any]], draws: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every combination of the grid's values, each crossed with every random draw (one empty point without
    either), in JSON's types (lists, not tuples), so a point read back from a trial's trial.json compares equal."""
    keys = list(grid)
    combos = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    return json.loads(json.dumps([{**c, **d} for c in combos for d in (draws or [{}])]))


def point_name(point: dict[str, Any]) -> str:
    """A folder name that says which values the point has (hashed when it would be too long)."""
    text = "_".join(f"{k}-{json.dumps(v, separators=(',', ':'))}" for k, v in point.items()) or "base"
    name = re.sub(r"[^A-Za-z0-9._,=-]+", "", text.replace("[", "").replace("]", ""))
    if len(name) > 80:
        name = name[:60] + "-" + hashlib.sha1(text.encode()).hexdigest()[:10]
    return name


def trials(out: Path, base: dict[str, Any], pts: list[dict[str, Any]], seeds: list[int]) -> list[dict[str, Any]]:
    """One trial per (point, seed): its config overrides, run directory and identity."""
    return [{"point": p, "seed": s, "dir": str(out / "trials" / point_name(p) / f"seed-{s}"),
             "overrides": {**base, **p, "seed": s, "num_seeds": 1}}
            for p in pts for s in seeds]


def check_sweep(out: Path, base: dict[str, Any], pts: list[dict[str, Any]] | None = None,
                asha: dict[str, Any] | None = None) -> None:
    """Record the sweep's base config (random points, ASHA rungs) in OUT, or refuse OUT when it holds another
    sweep. A grid may grow between reruns; drawn points and rungs may not change."""
    path = out / SWEEP_FILE
    drawn = json.loads(json.dumps(pts or []))
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved["base"] != json.loads(json.dumps(base)):
            raise ConfigError(f"{out} holds a sweep of another config ({saved['base']}); choose another --out")
        if saved.get("points", []) != drawn:
            raise ConfigError(f"{out} holds a sweep of other random points (another --sample space, --samples or "
                              f"--search-seed); choose another --out")
        if saved.get("asha") != asha:
            raise ConfigError(f"{out} holds a sweep with {'ASHA rungs ' + str(saved['asha']) if saved.get('asha') else 'no ASHA'}"
                              f"; rerun it the same way or choose another --out")
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"base": base, "points": drawn, **({"asha": asha} if asha else {})}, indent=2),
                    encoding="utf-8")


def finished(trial: dict[str, Any]) -> dict[str, Any] | None:
    path = Path(trial["dir"]) / trial.get("file", TRIAL_FILE)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def split_finished(all_trials: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """({run dir: result} of the trials that left trial.json, the trials still to run)."""
    done = {t["dir"]: r for t in all_trials if (r := finished(t)) is not None}
    return done, [t for t in all_trials if t["dir"] not in done]


def run_trial(trial: dict[str, Any]) -> dict[str, Any]:
    """Train one trial (resuming its checkpoint if one was saved), evaluate it, write trial.json (or, for an
    ASHA rung short of the full budget, `trial["file"]` after `trial["until_steps"]` env steps)."""
    from marlstack.policies import checkpoint, run_dir
    from marlstack.policies.config import build_config
    from marlstack.policies.train_cli import train

    out = Path(trial["dir"])
    cfg = build_config(trial["overrides"])
    resume = (out / checkpoint.FILENAME).is_file()
    until = trial.get("until_steps")
    summary = train(cfg, out, resume=resume, progress=False,
                    until_updates=None if until is None else until // (cfg.num_envs * cfg.num_steps))
    tail = run_dir.last_tenth(run_dir.read_metrics(out), cfg.seed)
    result = {"point": trial["point"], "seed": trial["seed"], "run_dir": str(out), "resumed": resume,
              "env_steps": summary["env_steps_per_seed"], "train_s": summary["train_s"],
              "env_steps_per_s": summary["env_steps_per_s"],
              "train_success": run_dir.nanmean(r["success_rate"] for r in tail),
              "train_return": run_dir.nanmean(r["return"] for r in tail),
              "barrier_rate": run_dir.nanmean(r["barrier_rate"] for r in tail),
              **({"rung": trial["rung"]} if "rung" in trial else {}), **_evaluate(out, cfg)}
    result = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in result.items()}
    (out / trial.get("file", TRIAL_FILE)).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def _evaluate(out: Path, cfg: Any) -> dict[str, Any]:
    """Success and return on `eval_episodes` unseen episodes (fleet and JaxMARL scenarios; cable teams
    keep their training numbers: their evaluation runs the baselines too, `marlstack eval`)."""
    from marlstack.policies.envs import is_cable
    if cfg.eval_episodes <= 0 or is_cable(cfg.scenario):
        return {"eval_success": None, "eval_return": None}
    from marlstack.policies.checkpoint import load_policy
    from marlstack.policies.evaluate import evaluate
    result = evaluate(load_policy(out), episodes=cfg.eval_episodes)
    return {"eval_success": result["success_rate"], "eval_return": result["mean_return"]}


def run_sweep(out: Path, base: dict[str, Any], pts: list[dict[str, Any]], seeds: list[int],
              address: str | None = None, num_cpus: int | None = None, cpus_per_trial: float = 1.0,
              gpus_per_trial: float = 0.0, progress: bool = True,
              on_result: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run the trials not finished yet as Ray tasks; return every trial's result (finished ones read back,
    failed ones with an `error`).

    `address` None starts a local Ray instance on loopback with `num_cpus` CPUs (default: all);
    otherwise it joins that cluster ("auto", "HOST:PORT" or "ray://HOST:10001")."""
    from tqdm import tqdm

    all_trials = trials(out, base, pts, seeds)
    done, todo = split_finished(all_trials)
    bar = tqdm(total=len(all_trials), initial=len(done), unit="trial", disable=not progress, dynamic_ncols=True,
               desc=f"sweep {base.get('scenario', '')}")
    with bar:
        if todo:
            import ray
            with _ray_session(address, num_cpus):
                task = _task(cpus_per_trial, gpus_per_trial)
                pending = {task.remote(t): t for t in todo}
                while pending:
                    ready, _ = ray.wait(list(pending), num_returns=1)
                    trial = pending.pop(ready[0])
                    result = _collect(ready[0], trial)
                    done[trial["dir"]] = result
                    if on_result is not None:
                        on_result(result)
                    bar.update(1)
                    bar.set_postfix(failed=sum("error" in r for r in done.values()) or None, refresh=False)
    return [done[t["dir"]] for t in all_trials if t["dir"] in done]


def _task(cpus_per_trial: float, gpus_per_trial: float) -> Any:
    import ray
    return ray.remote(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial, max_retries=0)(run_trial)


def _collect(ref: Any, trial: dict[str, Any]) -> dict[str, Any]:
    """A finished task's result, or the trial with its error (kept out of trial.json: a rerun tries it again)."""
    import ray
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        return {"point": trial["point"], "seed": trial["seed"], "run_dir": trial["dir"],
                **({"rung": trial["rung"]} if "rung" in trial else {}),
                "error": (str(exc.cause or exc).strip().splitlines() or ["failed"])[-1]}


def run_asha(out: Path, base: dict[str, Any], pts: list[dict[str, Any]], seeds: list[int], rungs: list[int],
             eta: int, metric: str | None = None, address: str | None = None, num_cpus: int | None = None,
             cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0,
             progress: bool = True) -> list[dict[str, Any]]:
    """The sweep with ASHA early stopping (policies/asha.py): each point's seeds train rung by rung, as far
    as the promotion rule sends them. Returns every (point, seed)'s result at the highest rung it reached
    (`rung`, and `stopped` when short of the full budget). Rungs read back from OUT are not rerun."""
    from tqdm import tqdm

    from marlstack.policies.asha import Asha
    last = len(rungs) - 1

    def job(i: int, k: int) -> list[dict[str, Any]]:
        return [{**t, "until_steps": rungs[k], "rung": k, "file": TRIAL_FILE if k == last else f"rung-{k}.json"}
                for t in trials(out, base, [pts[i]], seeds)]

    def score(results: list[dict[str, Any]]) -> float | None:
        key = metric or default_metric(results)
        values = [r[key] for r in results if r.get(key) is not None]
        return _median(values) if values else None

    sched, reached = Asha(len(pts), rungs, eta), {}
    for i in range(len(pts)):  # what an earlier run of this sweep finished
        for k in range(len(rungs)):
            got = [finished(t) for t in job(i, k)]
            if all(r is not None for r in got):
                sched.report(i, k, score(got))
                reached[i] = got
    bar = tqdm(unit="run", disable=not progress, dynamic_ncols=True, desc=f"asha {base.get('scenario', '')}")
    nxt = sched.next_job()
    with bar:
        if nxt is not None:  # something left to train: Ray is started (or joined) only then
            import ray
            with _ray_session(address, num_cpus):
                task = _task(cpus_per_trial, gpus_per_trial)
                have = ray.cluster_resources()
                slots = int(have.get("CPU", 1) // cpus_per_trial) if cpus_per_trial else len(pts)
                if gpus_per_trial:
                    slots = min(slots, int(have.get("GPU", 0) // gpus_per_trial))
                slots = max(1, slots // len(seeds))  # jobs (a point's seeds at one rung) running at once
                pending: dict[Any, dict[str, Any]] = {}
                waiting: dict[tuple[int, int], list[dict[str, Any]]] = {}
                while nxt is not None or pending:
                    while nxt is not None and len(waiting) < slots:
                        waiting[nxt] = []
                        pending.update({task.remote(t): t for t in job(*nxt)})
                        nxt = sched.next_job()
                    ready, _ = ray.wait(list(pending), num_returns=1)
                    trial = pending.pop(ready[0])
                    i, k = pts.index(trial["point"]), trial["rung"]
                    waiting[(i, k)].append(_collect(ready[0], trial))
                    bar.update(1)
                    if len(waiting[(i, k)]) == len(seeds):
                        got = sorted(waiting.pop((i, k)), key=lambda r: seeds.index(r["seed"]))
                        sched.report(i, k, None if any("error" in r for r in got) else score(got))
                        reached[i] = got
                        nxt = nxt if nxt is not None else sched.next_job()
    return [{**r, "stopped": r.get("rung", last) < last} for i in sorted(reached) for r in reached[i]]


class SweepError(RuntimeError):
    """Ray could not be started or reached."""


@contextlib.contextmanager
def _ray_session(address: str | None, num_cpus: int | None) -> Iterator[None]:
    """Ray for the block: an instance already running or the cluster at `address` is used as it is; one started
    here (on loopback) is shut down after the block."""
    import ray
    started = _start_ray(address, num_cpus)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _start_ray(address: str | None, num_cpus: int | None, attempts: int = 3) -> bool:
    """Connect to `address` or start a local instance bound to 127.0.0.1; True when we started it.

    A local start is retried: Ray gives its raylet a fixed 30 s to register, which a loaded machine can miss."""
    import ray
    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "logging_level": "ERROR", "log_to_driver": False}
    # Ray's own memory monitor kills tasks when the machine (not the task) is short of memory; on a shared
    # workstation that is other programs' memory: leave that to the kernel unless the user set it
    os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")
    for attempt in range(1 if address else attempts):
        try:
            if address:
                ray.init(address=address, **quiet)
            else:
                ray.init(num_cpus=num_cpus, _node_ip_address="127.0.0.1", **quiet)
            return True
        except Exception as exc:  # noqa: BLE001 - Ray raises a bare Exception when its node does not start
            ray.shutdown()
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    where = f"the Ray cluster at {address}" if address else "a local Ray instance"
    raise SweepError(f"could not start or reach {where} ({reason})")


def table_rows(results: list[dict[str, Any]], pts: list[dict[str, Any]], seeds: list[int],
               metric: str) -> list[dict[str, Any]]:
    """One row per point: its values, `metric` for every seed (None: not finished) and their median."""
    rows = []
    for p in pts:
        mine = {r["seed"]: r.get(metric) for r in results if r["point"] == p}
        values = [v for v in mine.values() if v is not None and math.isfinite(v)]
        rows.append({**p, "per_seed": [mine.get(s) for s in seeds],
                     "median": float(_median(values)) if values else None, "seeds_done": len(values)})
    return rows


def _median(values: list[float]) -> float:
    ordered, n = sorted(values), len(values)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def default_metric(results: list[dict[str, Any]]) -> str:
    """Evaluation success when the trials were evaluated, else the training success."""
    return "eval_success" if any(r.get("eval_success") is not None for r in results) else "train_success"
