"""`replay report` metrics: what happened in a logged run, under a vehicle profile's rules.

Definitions (docs/replay.md repeats them for users):
- Time base: every pose arrival (log time). At each one, every robot's pose is its latest
  logged pose (sample-and-hold); the run starts when every robot has a pose.
- Goal error: distance from a robot's centre to its latest goal (a coverage run, with `/landmarks`
  logged: to the nearest landmark, which is then the robot's goal in the series and pictures).
- Inter-robot distance: centre to centre; the report gives the minimum per time and overall.
- Collision: two robots whose collision centres (position + collision_offset along the heading)
  are at most collision_distance apart; an event is a pair entering that state; its duration
  adds the time to the next sample while it lasts.
- Boundary exit: a robot centre leaving the profile's arena rectangle; counted like collisions.
- Intervention (the safety node's own definition): a cmd_vel that differs from the nominal it
  was filtered from, after the profile's actuator saturation, by more than `intervention_tol`
  in v or omega; its size is max(|dv|, |domega|). The nominal is the closest one logged within
  a control period (log order is only approximate). An exact (0, 0) cmd_vel is a safety stop
  (watchdog, infeasible QP), counted apart.
- Saturation: a command the profile's actuator saturation would change.
- Latency: log time of a cmd_vel_nominal minus log time of the latest pose of the same robot.
"""
from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from marlstack.controllers.unicycle import saturate
from marlstack.ros_nodes.safety_node import INTERVENTION_TOL
from marlstack.replay.fleet import FleetError, FleetLog, Stream, held

SATURATION_TOL = 1e-9  # float round-off of the wheel-speed round trip
INTERVENTION_COLUMNS = ("t_s", "robot", "v_nominal", "omega_nominal", "v", "omega", "size", "kind")


def time_base(fleet: FleetLog) -> np.ndarray:
    all_t = np.unique(np.concatenate([s.t for s in fleet.pose.values()]))
    firsts = [s.t[0] for s in fleet.pose.values() if len(s.t)]
    if len(firsts) < len(fleet.robots):
        return np.zeros(0)
    return all_t[all_t >= max(firsts)]


def poses_on(fleet: FleetLog, t: np.ndarray) -> np.ndarray:
    """(T, N, 3) held poses."""
    return np.stack([held(fleet.pose[r], t) for r in fleet.robots], axis=1)


def _events(flag: np.ndarray, t: np.ndarray) -> tuple[list[tuple[float, float]], float]:
    """Intervals where `flag` holds: [(start, end)] and the summed duration (sample-to-next)."""
    dt = np.diff(t, append=t[-1]) if len(t) else t
    edges = np.diff(np.concatenate([[False], flag, [False]]).astype(np.int8))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # end: first sample without the flag
    spans = [(float(t[a]), float(t[min(b, len(t) - 1)])) for a, b in zip(starts, ends)]
    return spans, float(np.sum(dt[flag]))


def _stats(x: np.ndarray) -> dict[str, float | None]:
    if len(x) == 0:
        return {"mean": None, "p50": None, "p95": None, "max": None}
    return {"mean": float(np.mean(x)), "p50": float(np.percentile(x, 50)),
            "p95": float(np.percentile(x, 95)), "max": float(np.max(x))}


def _saturated(cmd: np.ndarray, profile: Any) -> np.ndarray:
    if len(cmd) == 0:
        return np.zeros(0, dtype=bool)
    v, w = saturate(cmd[:, 0], cmd[:, 1], profile)
    return np.hypot(v - cmd[:, 0], w - cmd[:, 1]) > SATURATION_TOL


def interventions(safe: Stream, nominal: Stream, profile: Any, window_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(nominal the safety node filtered, size) for each of one robot's cmd_vel messages.

    The size is what the safety node counts: how far the barrier moved the command beyond the
    actuator saturation the robot applies anyway, max(|dv|, |domega|) against the saturated
    nominal. Which nominal a cmd_vel was filtered from is not certain from log times (the
    recorder logs when its callback runs), so every nominal logged within `window_s` of it, and
    the latest one before it, are candidates and the closest is taken (the earliest of equals).
    NaN before any nominal.
    """
    nom = np.full((len(safe.t), 2), np.nan)
    size = np.full(len(safe.t), np.nan)
    if not len(nominal.t) or not len(safe.t):
        return nom, size
    sat = np.stack(saturate(nominal.values[:, 0], nominal.values[:, 1], profile), axis=-1)
    latest = np.searchsorted(nominal.t, safe.t, side="right") - 1
    lo = np.searchsorted(nominal.t, safe.t - window_s)
    hi = np.searchsorted(nominal.t, safe.t + window_s, side="right")
    first = np.where(latest >= 0, np.minimum(lo, latest), lo)  # the candidates are first .. hi - 1, in a row
    width = int(np.max(hi - first))
    if width <= 0:
        return nom, size
    cand = first[:, None] + np.arange(width)  # (n, width)
    valid = cand < hi[:, None]
    err = np.max(np.abs(sat[np.minimum(cand, len(sat) - 1)] - safe.values[:, None, :]), axis=2)
    best = np.argmin(np.where(valid, err, np.inf), axis=1)
    has = valid[:, 0]
    pick = cand[np.arange(len(cand)), best]
    nom[has], size[has] = nominal.values[pick[has]], err[np.arange(len(cand)), best][has]
    return nom, size


def latency(fleet: FleetLog, robot: str) -> np.ndarray:
    """Per nominal command: its log time minus the latest pose's log time (commands before any pose dropped)."""
    pose_t, cmd_t = fleet.pose[robot].t, fleet.nominal[robot].t
    idx = np.searchsorted(pose_t, cmd_t, side="right") - 1
    return cmd_t[idx >= 0] - pose_t[idx[idx >= 0]]


def task_goals(fleet: FleetLog, t: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """(T, N, 2): each robot's latest goal, or (coverage) its nearest landmark; NaN before any."""
    if fleet.landmarks is None or not len(fleet.landmarks.t):
        return np.stack([held(fleet.goal[r], t) for r in fleet.robots], axis=1)
    marks = held(fleet.landmarks, t).reshape(len(t), -1, 2)  # (T, L, 2)
    gaps = np.linalg.norm(poses[:, :, None, :2] - marks[:, None], axis=3)  # (T, N, L)
    nearest = np.where(np.isnan(gaps), np.inf, gaps).argmin(2)  # all NaN -> 0, still NaN below
    return np.take_along_axis(marks, np.repeat(nearest[:, :, None], 2, axis=2), axis=1)


def compute(fleet: FleetLog, profile: Any, safety_radius: float, period_s: float,
            intervention_tol: float = INTERVENTION_TOL) -> dict[str, Any]:
    """All report metrics; `series` holds the time series the CSVs and plots are drawn from."""
    t = time_base(fleet)
    if len(t) == 0:
        raise FleetError("not every robot has a logged pose; nothing to measure")
    n, robots, t0 = len(fleet.robots), fleet.robots, t[0]
    poses = poses_on(fleet, t)
    goals = task_goals(fleet, t, poses)  # (T, N, 2)
    goal_err = np.hypot(poses[:, :, 0] - goals[..., 0], poses[:, :, 1] - goals[..., 1])
    final_goals = goals[-1].copy()
    del goals  # (T, N, 2): only the last row is drawn; a long log's arrays are kept to what is written

    pairs = list(combinations(range(n), 2))
    # (N, T) rows, one robot each: centres and collision centres (position + collision_offset along the heading)
    px, py, th = (np.ascontiguousarray(poses[:, :, k].T) for k in range(3))
    cx, cy = px + profile.collision_offset * np.cos(th), py + profile.collision_offset * np.sin(th)
    del th
    dist = {p: np.hypot(px[p[0]] - px[p[1]], py[p[0]] - py[p[1]]) for p in pairs}
    min_dist = np.full(len(t), np.inf if pairs else np.nan)
    for d in dist.values():  # pair by pair: a reduce over the list would first stack it into one (pairs, T) copy
        np.minimum(min_dist, d, out=min_dist)

    collisions, collision_time = [], 0.0
    for p in pairs:
        touching = np.hypot(cx[p[0]] - cx[p[1]], cy[p[0]] - cy[p[1]]) <= profile.collision_distance
        spans, dur = _events(touching, t)
        collision_time += dur
        collisions += [{"robots": [robots[p[0]], robots[p[1]]], "start_s": s - t0, "end_s": e - t0} for s, e in spans]
    del cx, cy

    a = profile.arena
    outside = ((px < a.x_min) | (px > a.x_max) | (py < a.y_min) | (py > a.y_max)).T  # (T, N)
    del px, py

    per_robot: dict[str, Any] = {}
    inter_cols: list[tuple] = []
    hit_sizes = []
    for i, r in enumerate(robots):
        spans, out_time = _events(outside[:, i], t)
        ts = fleet.safe[r].t
        nom, size = interventions(fleet.safe[r], fleet.nominal[r], profile, period_s)
        # an exact (0, 0) is the safety node's stop (watchdog, infeasible QP), not a barrier correction
        stop = ~np.any(fleet.safe[r].values, axis=1) & (size > intervention_tol)
        hit = (size > intervention_tol) & ~stop
        hit_sizes.append(size[hit])
        kind = np.where(stop, "safety_stop", np.where(hit, "intervention", ""))
        inter_cols.append((ts - t0, np.full(len(ts), r), nom[:, 0], nom[:, 1], fleet.safe[r].values[:, 0],
                           fleet.safe[r].values[:, 1], size, kind))
        lat = latency(fleet, r)
        valid_err = goal_err[:, i][np.isfinite(goal_err[:, i])]
        per_robot[r] = {
            "poses": int(len(fleet.pose[r].t)),
            "final_goal_error": float(valid_err[-1]) if len(valid_err) else None,
            "min_goal_error": float(valid_err.min()) if len(valid_err) else None,
            "boundary_exits": len(spans),
            "time_outside_s": out_time,
            "exits": [{"start_s": s - t0, "end_s": e - t0} for s, e in spans],
            "commands": int(len(ts)),
            "interventions": int(hit.sum()),
            "safety_stops": int(stop.sum()),
            "intervention_fraction": float(hit.mean()) if len(hit) else 0.0,
            "intervention_size": _stats(size[hit]),
            "saturated_nominal": int(_saturated(fleet.nominal[r].values, profile).sum()),
            "saturated_cmd_vel": int(_saturated(fleet.safe[r].values, profile).sum()),
            "nominal_commands": int(len(fleet.nominal[r].t)),
            "latency_s": _stats(lat),
        }

    k_min = int(np.nanargmin(min_dist)) if pairs else 0
    closest = min(pairs, key=lambda p: dist[p][k_min]) if pairs else None
    all_lat = np.concatenate([latency(fleet, r) for r in robots])
    summary = {
        "robots": robots,
        "profile": profile.name,
        "duration_s": float(t[-1] - t0),
        "samples": int(len(t)),
        "min_distance": float(min_dist[k_min]) if pairs else None,
        "min_distance_pair": [robots[closest[0]], robots[closest[1]]] if closest else None,
        "min_distance_t_s": float(t[k_min] - t0) if pairs else None,
        "collision_distance": profile.collision_distance,
        "safety_radius": safety_radius,
        "collision_events": len(collisions),
        "collision_time_s": collision_time,
        "collisions": collisions,
        "boundary_exits": int(sum(v["boundary_exits"] for v in per_robot.values())),
        "interventions": int(sum(v["interventions"] for v in per_robot.values())),
        "safety_stops": int(sum(v["safety_stops"] for v in per_robot.values())),
        "intervention_size": _stats(np.concatenate(hit_sizes)),
        "intervention_tol": intervention_tol,
        "saturated_nominal": int(sum(v["saturated_nominal"] for v in per_robot.values())),
        "saturated_cmd_vel": int(sum(v["saturated_cmd_vel"] for v in per_robot.values())),
        "latency_s": _stats(all_lat),
        "rejected_messages": dict(fleet.rejected),
        "per_robot": per_robot,
    }
    series = {"t": t - t0, "poses": poses, "final_goals": final_goals, "goal_error": goal_err, "min_distance": min_dist,
              "pair_distance": {f"{robots[p[0]]}-{robots[p[1]]}": dist[p] for p in pairs},
              # every cmd_vel, robot after robot: t_s, robot, v_nominal, omega_nominal, v, omega, size, kind
              "interventions": dict(zip(INTERVENTION_COLUMNS, map(np.concatenate, zip(*inter_cols))))}
    return {"summary": summary, "series": series}
