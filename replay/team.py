"""`replay eval` on a MAV team's bag: re-run the cable-team policy on the logged inputs of every set-point.

A MAV policy node (ros_nodes/mav_policy_node.py) stamps each `setpoint` with the `/load/odom` sample
that triggered it, so the load input of every logged set-point is known exactly. The rest is what the
node held at that moment: the latched goal (latest logged before, see below), its own last H set-points (the
action history, from the log), and each MAV's latest odometry, which is the one of the same sim tick
or, when that one had not reached the node yet, one of the two before; when messages bunch (a node
short of CPU), the next tick's may already have been processed. When the same tick's inputs
disagree, every combination is tried in one batch (64 for 3 MAVs) and the closest is kept. Inputs are assembled by the
node's own `ros_nodes.mav_io.TeamInputs`. A set-point for which some input the model reads was older
than the watchdog limit (by the stamps), or that equals the node's position hold (`mav_io.hold_command`:
its own clock found an input stale), is the node's hold, not the policy's: counted, not compared. So is a
disagreeing set-point whose inputs the log cannot pin down: the one before it is missing (the
recorder's best-effort subscription dropped it, so the action history is unknown) or it is a timer step
on the load sample of the step before. A goal logged up to `GOAL_REACH_S` after a set-point is tried too.
"""
from __future__ import annotations

import bisect
import itertools
from typing import Any

import numpy as np

from ros_nodes import mav_io, topics
from replay.bag import Bag
from replay.fleet import FleetError

AGREE_TOL = 1e-5  # the export's parity bound
GOAL_REACH_S = 0.1  # a new goal logged this long after a set-point may already have been the node's
CANDIDATES = 3  # each MAV's odometry: the same tick's or one of the two before (a node short of CPU lags), or the next


def _series(bag: Bag, names: list[str]) -> dict[str, list[tuple[float, Any]]]:
    """topic -> [(log time s, decoded message)] for the topics present."""
    out: dict[str, list[tuple[float, Any]]] = {n: [] for n in names}
    for rec in bag.records(names):
        msg = bag.decode(rec)
        if msg is not None:
            out[rec.topic].append((rec.t_ns * 1e-9, msg))
    return out


def evaluate_team(bag: Bag, runtime: Any, config: Any | None, policy: str) -> dict[str, Any]:
    mavs = list(config.mavs) if config is not None else sorted(
        t.split("/")[1] for t in bag.types if t.endswith(f"/{topics.SETPOINT.name}") and t.count("/") == 2)
    if not mavs:
        raise FleetError(f"{bag.path}: no /<mav>/setpoint topics: not a MAV team's bag")
    limit = np.asarray(next(e for e in runtime.spec["outputs"] if e["name"] == "cmd")["high"], float)
    rate = config.rate_hz if config is not None else runtime.control_rate_hz
    max_age = config.watchdog_periods / rate if config is not None else np.inf
    names = [topics.LOAD_ODOM.path(), topics.LOAD_GOAL.path()] + [topics.ODOM.path(m) for m in mavs] \
        + [topics.SETPOINT.path(m) for m in mavs]
    logged = _series(bag, names)
    for n in (topics.LOAD_ODOM.path(), topics.LOAD_GOAL.path()):
        if not logged[n]:
            raise FleetError(f"{bag.path}: the policy needs {n}, which this bag lacks")
    load = {mav_io.stamp_or(m, t): mav_io.odometry(m) for t, m in logged[topics.LOAD_ODOM.path()]}
    goal_t = [t for t, _ in logged[topics.LOAD_GOAL.path()]]
    goals = [mav_io.goal_pose(m) for _, m in logged[topics.LOAD_GOAL.path()]]
    odom = {}
    for m in mavs:
        rows = sorted((mav_io.stamp_or(msg, t), mav_io.odometry(msg)) for t, msg in logged[topics.ODOM.path(m)])
        odom[m] = ([s for s, _ in rows], [v for _, v in rows])
    t0 = min(t for n in names for t, _ in logged[n][:1])
    per_mav, series = {}, {}
    for me in mavs:
        inputs = mav_io.TeamInputs(runtime.spec["inputs"], mavs, me, limit, np.inf)
        readers = [m for m in inputs.sources if m in mavs]
        rows, last_stamp, hold_at = [], None, None
        for t, msg in logged[topics.SETPOINT.path(me)]:
            v = mav_io.setpoint_values(msg)
            cmd = np.array(v[:3] + v[3:5])
            stamp = mav_io.stamp_or(msg, t)
            status, best = "compared", np.full(5, np.nan)
            choices = []
            for m in readers:  # the same tick's odometry or the one before
                stamps, _ = odom[m]
                i = bisect.bisect_right(stamps, stamp + 1e-9)
                near = [j for j in range(i - 1, i - 1 - CANDIDATES, -1) if j >= 0 and stamp - stamps[j] <= max_age]
                choices.append(near + ([i] if near and i < len(stamps) else []))
            g = bisect.bisect_right(goal_t, t) - 1
            if stamp not in load or any(not c for c in choices):
                status = "hold (inputs stale or missing)"
            else:
                inputs.put(mav_io.LOAD, load[stamp], stamp)
                # the latched goal: the latest logged before, or a new one the node got before the recorder did
                goal_options = [max(g, 0)] + [g + 1 for _ in [0] if g + 1 < len(goal_t) and goal_t[g + 1] - t < GOAL_REACH_S]
                def closest(combos: list[tuple[int, ...]]) -> np.ndarray:
                    feeds = []
                    for k, *combo in combos:
                        inputs.put(mav_io.GOAL, goals[k], stamp)
                        for m, j in zip(readers, combo):
                            inputs.put(m, odom[m][1][j], stamp)
                        feeds.append(inputs.inputs(stamp))
                    out = runtime.run({k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]})["cmd"]
                    return out[int(np.argmin(np.max(np.abs(out - cmd), axis=1)))].astype(float)
                # the same tick's inputs first (nearly always the node's); every combination only when they disagree
                best = closest([(goal_options[0], *(c[0] for c in choices))])
                if np.max(np.abs(best - cmd)) > AGREE_TOL:
                    best = closest(list(itertools.product(goal_options, *choices)))
                if np.max(np.abs(best - cmd)) > AGREE_TOL:  # the node's position hold (its clock saw a stale input)?
                    holds = [mav_io.hold_command(odom[me][1][j][0:3], odom[me][1][j][7:10],
                                                 hold_at if hold_at is not None else odom[me][1][j][0:3], limit)
                             for j in choices[readers.index(me)]]
                    k = int(np.argmin([np.max(np.abs(h - cmd)) for h in holds]))
                    if np.max(np.abs(holds[k] - cmd)) <= AGREE_TOL:
                        status, best = "hold (node watchdog)", holds[k]
                        hold_at = odom[me][1][choices[readers.index(me)][k]][0:3] if hold_at is None else hold_at
                if not status.startswith("hold"):
                    hold_at = None
                unsure = (rows and t - t0 - rows[-1][0] > 1.5 / rate) or stamp == last_stamp  # a timer step on the same load sample: other odometry than the stamp's
                if unsure and status == "compared" and np.max(np.abs(best - cmd)) > AGREE_TOL:
                    status = "inputs missing from log"  # the previous set-point (the history) or the goal's timing
            inputs.latest.sent(cmd)  # the node's action history is what it sent, policy or hold
            last_stamp = stamp
            rows.append((t - t0, cmd, best, status))
        ok = np.array([r[3] == "compared" for r in rows], bool)
        diff = np.abs(np.stack([r[2] - r[1] for r in rows]))[ok] if ok.any() else np.zeros((1, 5))
        per_mav[me] = {"commands": len(rows), "compared": int(ok.sum()),
                       "holds": sum(r[3].startswith("hold") for r in rows),
                       "inputs_missing_from_log": sum(r[3] == "inputs missing from log" for r in rows),
                       "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean())}
        series[me] = {"t": np.array([r[0] for r in rows]), "logged": np.stack([r[1] for r in rows]) if rows else None,
                      "policy": np.stack([r[2] for r in rows]) if rows else None, "status": [r[3] for r in rows]}
    compared = [v for v in per_mav.values() if v["compared"]]
    return {"bag": str(bag.path), "policy": str(policy), "policy_run_id": runtime.spec["training_run_id"],
            "robots": mavs, "max_abs_diff": max((v["max_abs_diff"] for v in compared), default=None),
            "mean_abs_diff": (float(np.average([v["mean_abs_diff"] for v in compared],
                                               weights=[v["compared"] for v in compared])) if compared else None),
            "per_mav": per_mav, "bag_problems": bag.status.stops + bag.status.warnings, "series": series}


def format_team(result: dict[str, Any]) -> str:
    lines = [f"policy {result['policy']} (run {result['policy_run_id']}) on {result['bag']}", "",
             f"{'mav':<10} {'set-points':>10} {'compared':>9} {'holds':>6} {'not pinned':>10} {'max |diff|':>11} "
             f"{'mean |diff|':>11}"]
    for m, v in result["per_mav"].items():
        lines.append(f"{m:<10} {v['commands']:>10} {v['compared']:>9} {v['holds']:>6} {v['inputs_missing_from_log']:>10} "
                     f"{v['max_abs_diff']:>11.3g} "
                     f"{v['mean_abs_diff']:>11.3g}")
    if result["max_abs_diff"] is not None:
        lines.append(f"\nall MAVs: max |diff| {result['max_abs_diff']:.3g} (m/s², rad/s), mean {result['mean_abs_diff']:.3g}")
    lines += [f"warning: {p}" for p in result["bag_problems"]]
    return "\n".join(lines)


def write_team_csv(result: dict[str, Any], path: Any) -> None:
    """eval_commands.csv: every logged set-point, the policy's command on its inputs, and whether it was compared."""
    cols = ("acc_x", "acc_y", "acc_z", "roll_rate", "pitch_rate")
    with open(path, "w", encoding="utf-8") as f:
        f.write("t_s,mav," + ",".join(f"{c}_logged" for c in cols) + "," + ",".join(f"{c}_policy" for c in cols)
                + ",status\n")
        for m, s in result["series"].items():
            for t, lg, pr, st in zip(s["t"], s["logged"], s["policy"], s["status"]):
                f.write(f"{t:.6f},{m}," + ",".join(f"{x:.9g}" for x in (*lg, *pr)) + f",{st}\n")
