"""`replay report` on a MAV team's bag: the load against its goals, the cables, the MAVs' set-point tracking.

Read as columns (`replay/team_arrays.py`: the same numbers as decoding message by message, at array speed).
Time base: the header stamps of `/load/odom` (the clock of the sensors: sim time in SITL, motion capture
on a real team), from the first load sample; the log's receive times only order the goals. Every MAV's
odometry and set-point is held (sample and hold) onto those stamps.

- **Load-pose error**: distance from the load's position to the goal in force, and the angle between
  its attitude and the goal's (deg). Per goal: final, smallest, and when the load was first within the
  profile's success tolerances (position and orientation together).
- **Cables**: each cable runs from its MAV's hook (`quadrotor.cable_offset` below the centre) to its
  attachment point on the load (`load.teams`); its length minus the rest length is its stretch.
  No tension sensor is logged, so tensions are **estimated from the load's force balance**:
  m_L (a_L + g e_z) = Σ T_i u_i with u_i the unit cable directions and a_L the central difference of
  the logged load velocity over ±`DIFF_SAMPLES` samples (T = pinv(U) f: exact for 3 cables, the
  least-norm split for more; the load's rotational balance is not used). A cable is **slack** while its
  estimated tension is below `SLACK_SHARE` of the mean share m_L g / N (cables of an asymmetric layout
  carry different static tensions) or its hook is closer to its attachment point than the rest length by
  more than `SLACK_STRETCH` (a load resting on the ground, where its force balance does not hold and
  the estimate means nothing); an event is entering that.
- **Set-point tracking**: each MAV's set-point acceleration (world, what the flight controller tracks)
  against its achieved acceleration (the same central difference of its odometry velocity); rms, median
  and largest error per axis over the whole log, so phases where the flight controller did not fly the
  set-points (its failsafe hold or descent, the landing at the end of a mission) count: the median is the
  robust figure, the picture shows which phase is which.
- **Separation**: the smallest MAV–MAV distance (centres), against `task.min_mav_distance`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from marlstack.ros_nodes import mav_io
from marlstack.replay.bag import Bag
from marlstack.replay.team import team_mavs
from marlstack.replay.team_arrays import TeamArrays, read_team_arrays

DIFF_SAMPLES = 3  # central differences over ±3 samples (60 ms at 100 Hz): velocity noise -> acceleration
SLACK_SHARE = 0.1  # slack: an estimated tension below this share of m_L g / N ...
SLACK_STRETCH = -0.01  # m: ... or a cable 1 cm shorter than its rest length (odometry noise is millimetres)
SNAPSHOTS = 6  # cables drawn in the 3-D picture at this many moments
FILES = ("summary.json", "team_3d.png", "load_error.png", "cables.png", "tracking.png")


def _rotations(rows: np.ndarray) -> np.ndarray:
    """(K, 3, 3) body-to-world rotations from odometry rows (quaternion x y z w at 3:7)."""
    return np.moveaxis(mav_io.rotation(*rows[:, 3:7].T), -1, 0)


def _held(times: np.ndarray, values: np.ndarray, t: np.ndarray) -> np.ndarray:
    idx = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 1)
    return values[idx]


def _derivative(t: np.ndarray, x: np.ndarray, k: int = DIFF_SAMPLES) -> np.ndarray:
    """Central difference over ±k samples (one-sided at the ends); NaN where time does not advance."""
    i = np.arange(len(t))
    lo, hi = np.maximum(i - k, 0), np.minimum(i + k, len(t) - 1)
    dt = (t[hi] - t[lo])[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(dt > 0, (x[hi] - x[lo]) / dt, np.nan)


def _events(flag: np.ndarray) -> int:
    return int(np.sum(flag[1:] & ~flag[:-1]) + (flag[0] if len(flag) else 0))


def _angle_deg(q_a: np.ndarray, q_b: np.ndarray) -> np.ndarray:
    dot = np.clip(np.abs(np.sum(q_a * q_b, axis=-1)), 0.0, 1.0)
    return np.degrees(2 * np.arccos(dot))


def team_series(log: TeamArrays, profile: Any) -> dict[str, Any]:
    """Everything the report draws, on the load's stamps."""
    stamps, load = log.load_stamps, log.load
    t = stamps - stamps[0]
    n = len(log.mavs)
    mav = np.stack([_held(*log.odom[m], stamps) for m in log.mavs], 1)
    goal_idx = np.clip(np.searchsorted(log.goal_stamps, stamps, side="right") - 1, 0, len(log.goals) - 1)
    goals = log.goals[goal_idx]
    pos_err = np.linalg.norm(load[:, 0:3] - goals[:, 0:3], axis=1)
    rot_err = _angle_deg(load[:, 3:7], goals[:, 3:7])
    r_load = _rotations(load)
    attach = np.einsum("kij,nj->kni", r_load, np.asarray(profile.team(n).attachment_points, float)) + load[:, None, 0:3]
    hook_offset = np.array([0.0, 0.0, -profile.quadrotor.cable_offset])
    hooks = np.stack([np.einsum("kij,j->ki", _rotations(mav[:, i]), hook_offset) for i in range(n)], 1) + mav[..., 0:3]
    cable = hooks - attach
    length = np.linalg.norm(cable, axis=-1)
    units = cable / length[..., None]
    acc_load = _derivative(stamps, load[:, 7:10])
    force = profile.load.mass * (acc_load + np.array([0.0, 0.0, profile.gravity]))
    ok = np.isfinite(force).all(axis=1)
    tension = np.full((len(t), n), np.nan)
    tension[ok] = np.einsum("knj,kj->kn", np.linalg.pinv(np.transpose(units[ok], (0, 2, 1))), force[ok])
    acc_mav = np.stack([_derivative(stamps, mav[:, i, 7:10]) for i in range(n)], 1)
    cmd = np.stack([_held(*log.setpoints[m][1:], stamps) if len(log.setpoints[m][0]) else np.full((len(t), 5), np.nan)
                    for m in log.mavs], 1)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    sep = np.stack([np.linalg.norm(mav[:, i, 0:3] - mav[:, j, 0:3], axis=1) for i, j in pairs], 1) \
        if pairs else np.full((len(t), 1), np.inf)
    return {"t": t, "stamp0": float(stamps[0]), "load": load, "mav": mav, "goals": goals, "goal_idx": goal_idx,
            "pos_err": pos_err, "rot_err": rot_err, "attach": attach, "hooks": hooks, "stretch": length - profile.cable.length,
            "tension": tension, "acc_mav": acc_mav, "cmd": cmd, "pairs": pairs, "separation": sep}


def slack_of(s: dict[str, Any], share: float) -> np.ndarray:
    """(K, N) whether each cable is slack: low estimated tension, or clearly shorter than its rest length."""
    return (s["tension"] < SLACK_SHARE * share) | (s["stretch"] < SLACK_STRETCH)


def _stats(x: np.ndarray) -> dict[str, float | None]:
    x = x[np.isfinite(x)]
    return ({"min": float(x.min()), "mean": float(x.mean()), "max": float(x.max())} if len(x)
            else {"min": None, "mean": None, "max": None})


def summarise(log: TeamArrays, profile: Any, s: dict[str, Any]) -> dict[str, Any]:
    t, n, task = s["t"], len(log.mavs), profile.task
    goals = []
    for k in np.unique(s["goal_idx"]):
        on = s["goal_idx"] == k
        inside = on & (s["pos_err"] <= task.success_position) & (s["rot_err"] <= task.success_orientation)
        g = log.goals[k]
        goals.append({"position": g[0:3].round(4).tolist(), "quaternion_xyzw": g[3:7].round(4).tolist(),
                      "from_s": float(t[on][0]), "until_s": float(t[on][-1]),
                      "final_position_error_m": float(s["pos_err"][on][-1]),
                      "min_position_error_m": float(s["pos_err"][on].min()),
                      "final_orientation_error_deg": float(s["rot_err"][on][-1]),
                      "min_orientation_error_deg": float(s["rot_err"][on].min()),
                      "within_tolerance_at_s": float(t[inside][0]) if inside.any() else None})
    share = profile.load.mass * profile.gravity / n
    cables = {}
    for i, m in enumerate(log.mavs):
        slack = slack_of(s, share)[:, i]
        cables[m] = {"tension_estimate_n": _stats(s["tension"][:, i]), "mean_share_n": share,
                     "slack_samples": int(slack.sum()), "slack_fraction": float(slack.mean()),
                     "slack_events": _events(slack), "stretch_mm": _stats(1e3 * s["stretch"][:, i])}
    tracking = {}
    for i, m in enumerate(log.mavs):
        err = s["acc_mav"][:, i] - s["cmd"][:, i, 0:3]
        ok = np.isfinite(err).all(axis=1)
        tracking[m] = {"setpoints": len(log.setpoints[m][0]),
                       "rms_error_m_s2": (np.sqrt(np.mean(err[ok] ** 2, axis=0)).round(4).tolist() if ok.any() else None),
                       "median_abs_error_m_s2": np.median(np.abs(err[ok]), axis=0).round(4).tolist() if ok.any() else None,
                       "max_error_m_s2": float(np.abs(err[ok]).max()) if ok.any() else None}
    k = np.unravel_index(int(np.argmin(s["separation"])), s["separation"].shape)
    pair = s["pairs"][k[1]] if s["pairs"] else None
    return {"mavs": log.mavs, "duration_s": float(t[-1]), "samples": len(t), "time_base": "/load/odom header stamps",
            "goals": goals, "cables": cables, "tracking": tracking,
            "min_separation": {"distance_m": float(s["separation"][k]), "t_s": float(t[k[0]]),
                               "pair": [log.mavs[pair[0]], log.mavs[pair[1]]] if pair else None,
                               "limit_m": task.min_mav_distance,
                               "violated": bool(s["separation"][k] < task.min_mav_distance)}}


def write_team_report(bag: Bag, out: Path, profile: Any, config: Any | None = None, pictures: bool = True,
                      log: TeamArrays | None = None) -> dict[str, Any]:
    """summary.json and the four PNGs of FILES in `out`; returns the summary. `log`: the team's streams when
    already read (the bench times the message-by-message read this way)."""
    log = log if log is not None else read_team_arrays(bag, team_mavs(bag, config))
    s = team_series(log, profile)
    summary = {"bag": str(bag.path), "profile": profile.name, **summarise(log, profile, s),
               "rejected_messages": log.rejected, "bag_complete": bag.status.complete,
               "bag_problems": bag.status.stops + bag.status.warnings + log.problems}
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    if pictures:
        from marlstack.replay import plots
        plots.team_3d(s, log.mavs, out / "team_3d.png", SNAPSHOTS)
        plots.load_error(s, profile.task, out / "load_error.png")
        share = profile.load.mass * profile.gravity / len(log.mavs)
        plots.cables(s, log.mavs, share, slack_of(s, share), out / "cables.png")
        plots.tracking(s, log.mavs, out / "tracking.png")
    return summary


def format_team_summary(s: dict[str, Any]) -> str:
    lines = [f"{len(s['mavs'])} MAVs, {s['duration_s']:.2f} s ({s['samples']} load samples, {s['time_base']})"]
    for k, g in enumerate(s["goals"]):
        at = f"within tolerance at {g['within_tolerance_at_s']:.2f} s" if g["within_tolerance_at_s"] is not None \
            else "never within tolerance"
        lines.append(f"goal {k} {g['position']}: final {g['final_position_error_m']:.3f} m / "
                     f"{g['final_orientation_error_deg']:.1f} deg, {at}")
    sep = s["min_separation"]
    lines.append(f"min separation {sep['distance_m']:.3f} m ({'-'.join(sep['pair'] or [])} at {sep['t_s']:.2f} s; "
                 f"limit {sep['limit_m']} m)")
    for m in s["mavs"]:
        c, tr = s["cables"][m], s["tracking"][m]
        lines.append(f"{m}: tension est. {c['tension_estimate_n']['mean']:.2f} N mean (mean share {c['mean_share_n']:.2f} N), "
                     f"slack {100 * c['slack_fraction']:.1f} % ({c['slack_events']} events); set-point tracking error "
                     f"median {tr['median_abs_error_m_s2']}, rms {tr['rms_error_m_s2']} m/s²")
    lines += [f"warning: {p}" for p in s["bag_problems"]]
    return "\n".join(lines)
