"""`marlstack sitl --config TEAM.yaml --runs 10 --compare-jax RUN`: the MAV team in SITL against the JAX
evaluation of the same policy on the same goals.

The goals are `marlstack eval RUN`'s own episodes (eval seed `--eval-seed`, `--episodes` of them, the
run's best seed, which is what `marlstack export` ships): run r flies episodes r·G … r·G+G−1
(G = `--goals-per-run`). Each run is one SITL mission over real DDS from the team config: take off
(when the config says so), then each episode's goal begun as the evaluation begins it: the MAV sim node
puts the team at rest in hover with the load at the episode's start (`CableEnv.reset`'s state,
`TeamSim.place`) and publishes the goal; then land. Every goal gets the evaluation's episode length as
its time-out, and the same success rule (0.1 m and 10° held 1 s, before any crash of
`CableEnv.terminated`). Sensor noise is drawn with seed r. The JAX side is
`policies.evaluate_cable.rollouts` on exactly those episodes: the same numbers `marlstack eval`
reports per episode. What differs is only the road: the ONNX graph, onboard decentralised barrier,
sensing noise, DDS and the asynchronous nodes (on the config's clock: simulated time by default), and
each policy node's action history, which carries over from the goal before (the evaluation's starts at zero).
SITL tooling: imports JAX.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import yaml


def quat_to_rpy_deg(q: np.ndarray) -> list[float]:
    """Z-Y-X Euler angles (deg) of a (w, x, y, z) quaternion: the inverse of `mav_sim_node.quat_from_rpy`."""
    w, x, y, z = (float(v) for v in q)
    roll = math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = math.asin(max(-1.0, min(1.0, 2 * (w * y - z * x))))
    yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return [math.degrees(a) for a in (roll, pitch, yaw)]


def episodes(model: str, count: int, seed: int) -> tuple[dict, dict[str, np.ndarray]]:
    """The evaluation's episodes (start load position, goal pose) and the JAX outcome of each, for the best seed."""
    import jax

    from marlstack.policies.checkpoint import load_policy
    from marlstack.policies.evaluate import agent_actions
    from marlstack.policies.evaluate_cable import _env, rollouts

    policy = load_policy(model)
    env = _env(policy, None)
    states = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(seed), count))[1]
    starts = np.asarray(states.bodies.load_pos, np.float64)
    goals = np.asarray(states.goal_pos, np.float64), np.asarray(states.goal_quat, np.float64)

    def act(params, obs, state):
        return agent_actions(policy, obs[None], None)[0][0]

    outcome = rollouts(env, act, count, seed)
    meta = {"model": str(model), "run_id": policy.run_id, "policy_seed_index": policy.seed_index, "eval_seed": seed,
            "episodes": count, "episode_seconds": env.max_steps * env.dt, "tilt_limit_deg": env.profile.task.goal_tilt_range}
    return meta, {"start": starts, "goal_pos": goals[0], "goal_quat": goals[1], **outcome}


def cached_episodes(out: Path, model: str, count: int, seed: int) -> tuple[dict, dict[str, np.ndarray]]:
    """`episodes`, kept in `out` (the JAX evaluation takes minutes on a 2-core CPU); recomputed when the
    checkpoint, the seed or the count differ."""
    from marlstack.policies.checkpoint import load_policy
    key = {"model": str(model), "run_id": load_policy(model).run_id, "eval_seed": seed, "episodes": count}
    meta_path, data_path = out / "jax_episodes.json", out / "jax_episodes.npz"
    if meta_path.exists() and data_path.exists():
        meta = json.loads(meta_path.read_text())
        if {k: meta.get(k) for k in key} == key:
            with np.load(data_path) as data:
                return meta, dict(data)
    meta, eps = episodes(model, count, seed)
    np.savez(data_path, **eps)
    meta_path.write_text(json.dumps(meta))
    return meta, eps


def mission(base: dict, eps: dict[str, np.ndarray], idx: list[int], timeout_s: float, tilt_limit: float,
            seed: int) -> dict:
    """The team config for one run: the base config with the episodes' goals, each begun from rest with the load
    at its episode's start."""
    goals = []
    for i in idx:
        rpy = quat_to_rpy_deg(eps["goal_quat"][i])
        rpy[:2] = [max(-tilt_limit, min(tilt_limit, v)) for v in rpy[:2]]  # float round-off at the limit
        goals.append({"position": [float(v) for v in eps["goal_pos"][i]], "rpy_deg": rpy,
                      "start": [float(v) for v in eps["start"][i]]})
    sim = {**(base.get("sim") or {}), "seed": seed}
    return {**base, "start": [float(v) for v in eps["start"][idx[0]]], "goals": goals,
            "goal_timeout_s": timeout_s, "sim": sim}


def main(config: Path, args: argparse.Namespace) -> int:
    """Every run, its SITL and JAX success per goal, and the totals; exit 1 when a run failed to run."""
    from marlstack.ros_nodes.plan import PlanError, load_deployment
    from marlstack.ros_nodes.sitl import SitlError, parser, run

    from marlstack.ros_nodes.team_plan import TeamDeployment
    if not isinstance(load_deployment(config), TeamDeployment) or min(args.runs, args.goals_per_run) < 1:
        print(f"marlstack sitl: --compare-jax needs a MAV team config (a 'mavs:' list; {config} has none) and "
              f"--runs / --goals-per-run of at least 1")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load(config.read_text())
    policy = (config.parent / str(base["policy"])).resolve()
    base["policy"] = str(policy)
    g, runs = args.goals_per_run, args.runs
    dt = 1.0 / float(load_deployment(config).rate_hz)  # the evaluation's step: the team's policy period
    meta, eps = cached_episodes(out, args.compare_jax, max(args.episodes, g * runs), args.eval_seed)
    rows, failures = [], []
    previous = json.loads((out / "compare.json").read_text()).get("runs", []) if args.resume and (out / "compare.json").exists() else []
    kept = {row["run"]: row for row in previous if row["ok"] and row["landed"] and row.get("goals_per_run", g) == g}
    for r in range(runs):
        idx = list(range(r * g, (r + 1) * g))
        summary = out / f"run_{r}_logs" / "sim_summary.json"
        if r in kept and kept[r]["episodes"] == idx and summary.exists():  # --resume: flown and landed, not flown again
            rows.append(row_of(r, idx, eps, {"ok": True, "team": json.loads(summary.read_text())}, dt))
            print(format_row(rows[-1]) + "  (kept)", flush=True)
            continue
        path = out / f"run_{r}.yaml"
        path.write_text(yaml.safe_dump(mission(base, eps, idx, meta["episode_seconds"], meta["tilt_limit_deg"], r),
                                       sort_keys=False))
        try:
            dep = load_deployment(path)
            # take-off, every goal timed out, landing: simulated seconds; the limit is wall-clock seconds and a
            # loaded 2-core machine steps the team at a third of real time
            longest = 4 * (30.0 + g * meta["episode_seconds"])
            run_args = parser().parse_args(["--config", str(path), "--until-goals", "--duration", str(max(args.duration, longest)),
                                            "--logdir", str(out / f"run_{r}_logs")])  # every other option at its default
            report = run(dep, run_args, None)
        except (PlanError, SitlError) as exc:
            report = {"ok": False, "error": str(exc), "team": None}
        if report.get("interrupted"):
            print("marlstack sitl: interrupted; the runs so far are in " + str(out / "compare.json"))
            return 1
        row = row_of(r, idx, eps, report, dt)
        rows.append(row)
        if not report["ok"]:
            failures.append(f"run {r}: {report['error']}")
        print(format_row(row), flush=True)
        (out / "compare.json").write_text(json.dumps({**meta, "goals_per_run": g, "runs": rows}, indent=1))
    print(format_totals(rows, meta))
    for f in failures:
        print(f"marlstack sitl: {f}")
    return 1 if failures else 0


def row_of(r: int, idx: list[int], eps: dict[str, np.ndarray], report: dict, dt: float = 0.01) -> dict:
    """One run's outcome per scored goal beside the JAX evaluation's (`dt`: its step, for the time to success)."""
    goals = (report.get("team") or {}).get("goals", [])
    scored = [k for k, x in enumerate(goals) if x["scored"]]
    n = len(idx)
    sitl = [bool(goals[k]["success"]) for k in scored] + [False] * (n - len(scored))  # goals never reached: failed
    team = report.get("team") or {}
    return {"run": r, "episodes": idx, "goals_per_run": n, "ok": report["ok"], "error": report.get("error"),
            "sitl_success": sitl, "sitl_crashed": [goals[k]["crashed_after_s"] is not None for k in scored],
            "jax_success": [bool(eps["success"][i]) for i in idx],
            "jax_crashed": [bool(eps["crashed"][i]) for i in idx],
            "min_mav_separation_m": team.get("min_mav_separation_m"), "separation_violated": team.get("separation_violated"),
            "max_tilt_deg": team.get("max_tilt_deg"), "landed": team.get("landed"),
            "success_after_s": [goals[k]["success_after_s"] for k in scored], "crash": [goals[k].get("crash") for k in scored],
            "jax_success_after_s": [round(float(eps["steps"][i]) * dt, 3) if eps["success"][i] else None for i in idx]
            if "steps" in eps else None,
            "clock": team.get("clock"), "real_time_factor": team.get("real_time_factor"),
            "lockstep_timeouts": (team.get("lockstep") or {}).get("timeouts"),
            "hold_steps": {m: x.get("hold_steps") for m, x in (report.get("robots") or {}).items()},
            "setpoints_refused": {m: x.get("setpoints_refused") for m, x in (report.get("robots") or {}).items()}}


def format_row(row: dict) -> str:
    flag = lambda xs: "".join("1" if x else "0" for x in xs)  # noqa: E731
    return (f"run {row['run']:>2}  episodes {row['episodes'][0]}-{row['episodes'][-1]}  SITL {flag(row['sitl_success'])} "
            f"({sum(row['sitl_success'])}/{len(row['sitl_success'])}, crashes {sum(row['sitl_crashed'])}, held after "
            f"{row['success_after_s']} s)  "
            f"JAX {flag(row['jax_success'])} ({sum(row['jax_success'])}/{len(row['jax_success'])}, crashes "
            f"{sum(row['jax_crashed'])}, held after {row.get('jax_success_after_s')} s)  min separation {row['min_mav_separation_m']} m  max tilt {row['max_tilt_deg']} deg"
            f"  landed {row['landed']}{'' if row['ok'] else '  RUN FAILED'}")


def totals(rows: list[dict]) -> dict:
    per_run = lambda key: [float(np.mean(r[key])) for r in rows]  # noqa: E731
    sitl, jax_ = [x for r in rows for x in r["sitl_success"]], [x for r in rows for x in r["jax_success"]]
    return {"goals": len(sitl), "sitl_success_rate": float(np.mean(sitl)), "jax_success_rate": float(np.mean(jax_)),
            "gap_points": round(100 * (float(np.mean(sitl)) - float(np.mean(jax_))), 1),
            "sitl_median_per_run": float(np.median(per_run("sitl_success"))),
            "jax_median_per_run": float(np.median(per_run("jax_success"))),
            "same_outcome_goals": sum(a == b for r in rows for a, b in zip(r["sitl_success"], r["jax_success"])),
            "mav_mav_violations": sum(bool(r["separation_violated"]) for r in rows),
            "min_mav_separation_m": min((r["min_mav_separation_m"] for r in rows if r["min_mav_separation_m"] is not None),
                                        default=None)}


def format_totals(rows: list[dict], meta: dict) -> str:
    t = totals(rows)
    return (f"== {len(rows)} runs, {t['goals']} goals (marlstack eval {meta['model']} episodes, eval seed {meta['eval_seed']}, "
            f"policy seed {meta['policy_seed_index']}) ==\n"
            f"success: SITL {t['sitl_success_rate']:.3f}, JAX {t['jax_success_rate']:.3f} (gap {t['gap_points']:+.1f} points; "
            f"goal within 5); median per run: SITL {t['sitl_median_per_run']:.3f}, JAX {t['jax_median_per_run']:.3f}\n"
            f"same outcome on {t['same_outcome_goals']} of {t['goals']} goals; runs with a MAV-MAV separation violation: "
            f"{t['mav_mav_violations']} (goal 0), smallest separation {t['min_mav_separation_m']} m")
