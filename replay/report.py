"""`replay report`: metrics.json, time-series CSVs and pictures for one logged run."""
from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

from marlstack.ros_nodes import topics
from marlstack.replay import metrics, plots, table_csv
from marlstack.replay.bag import Bag
from marlstack.replay.fleet import read_fleet

NEEDED = (topics.POSE.name, topics.CMD_VEL_NOMINAL.name, topics.CMD_VEL.name)
FILES = ("metrics.json", "goal_errors.csv", "distances.csv", "interventions.csv",
         "trajectories.png", "distances.png", "interventions.png", "run.gif")


def write_report(bag: Bag, out: Path, profile: Any, safety_radius: float, config: Any | None = None,
                 intervention_tol: float = metrics.INTERVENTION_TOL, progress: Any = None,
                 pictures: bool = True) -> dict[str, Any]:
    """Compute everything and write FILES into `out` (the JSON and CSVs only, without `pictures`);
    returns the summary written to metrics.json."""
    fleet = read_fleet(bag, config, need=NEEDED)
    gc.collect()  # the read's intermediate blocks (as large as the log's payloads) before the metrics' arrays
    period = 1.0 / config.rate_hz if config is not None else profile.dt
    result = metrics.compute(fleet, profile, safety_radius, period, intervention_tol)
    summary, series = result["summary"], result["series"]
    summary["bag"] = str(bag.path)
    summary["bag_complete"] = bag.status.complete
    summary["bag_problems"] = bag.status.stops + bag.status.warnings
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    robots, t = fleet.robots, series["t"]
    table_csv.write(out / "goal_errors.csv", ["t_s", *robots], [t, *series["goal_error"].T])
    pairs = list(series["pair_distance"])
    table_csv.write(out / "distances.csv", ["t_s", "min_distance", *pairs],
                    [t, series["min_distance"], *series["pair_distance"].values()])
    inter = series["interventions"]
    table_csv.write(out / "interventions.csv", list(inter), list(inter.values()))
    steps = [(plots.trajectories, (series, robots, profile, out / "trajectories.png")),
             (plots.distances, (series, summary, out / "distances.png")),
             (plots.interventions, (series, robots, intervention_tol, out / "interventions.png")),
             (plots.animation, (series, robots, profile, out / "run.gif"))]
    for draw, args in steps if pictures else []:
        draw(*args)
        if progress is not None:
            progress.update(1)
    return summary


def format_summary(s: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = [f"run: {len(s['robots'])} robots, {s['duration_s']:.2f} s, profile {s['profile']}",
             f"min inter-robot distance {fmt(s['min_distance'])} m ({' / '.join(s['min_distance_pair'] or [])} "
             f"at t={fmt(s['min_distance_t_s'])} s); collision distance {s['collision_distance']} m",
             f"collisions {s['collision_events']} ({s['collision_time_s']:.2f} s), boundary exits {s['boundary_exits']}, "
             f"interventions {s['interventions']} (max size {fmt(s['intervention_size']['max'])}), "
             f"safety stops {s['safety_stops']}, "
             f"saturated nominal commands {s['saturated_nominal']}",
             f"pose -> command latency: mean {fmt(s['latency_s']['mean'])} s, p95 {fmt(s['latency_s']['p95'])} s", ""]
    head = f"{'robot':<12} {'final goal err':>14} {'exits':>6} {'interv.':>8} {'saturated':>10} {'latency p50':>12}"
    lines += [head, "-" * len(head)]
    for r, v in s["per_robot"].items():
        lines.append(f"{r:<12} {fmt(v['final_goal_error']):>14} {v['boundary_exits']:>6} {v['interventions']:>8} "
                     f"{v['saturated_nominal']:>10} {fmt(v['latency_s']['p50']):>12}")
    lines += [f"warning: {p}" for p in s["bag_problems"]]
    return "\n".join(lines)

