"""`replay eval` on a MAV team's bag: re-run the cable-team policy, and its safety stage, on the logged inputs.

A MAV policy node (ros_nodes/mav_policy_node.py) stamps each `setpoint` with the `/load/odom` sample
that triggered it, so the load input of every logged set-point is known exactly. The rest is what the
node held at that moment: the latched goal (latest logged before; one logged up to `GOAL_REACH_S` after
or, when a new goal reached the recorder first, the one before it, are tried too), its own last H
set-points (the action history, from the log; empty after a new start on `/load/start`, which the node may have
taken before the first or the second sample after it), and each MAV's latest odometry, which is the one of the
same sim tick or, when that one had not reached the node yet, one of the two before; when messages
bunch (a node short of CPU), the next tick's may already have been processed. When the same tick's
inputs disagree, every combination is tried in one batch and the closest is kept. Inputs are assembled
by the node's own `ros_nodes.mav_io.TeamInputs`.

**The safety stage.** With `safety: onboard` (the node's default) the node sends the policy's
acceleration after its barrier certificate (`ros_nodes.mav_safety.SafetyStage`), so the logged
set-point is the *filtered* command. Replay re-runs the same stage on the same odometry
(`mav_io.certify`, as the node calls it), cable rows included: the load's odometry is the set-point's
own sample, used by the cable rows when it was at most `mav_safety.MAX_AGE_PERIODS` periods old at the
node's clock, as the node decides. The stage
carries each position forward by its velocity over the odometry's age at the node's clock, which the
log does not hold: it lies between the newest input stamp and the set-point's log time, at most
the certified age after the oldest MAV odometry (older, the node held instead), and is searched there (a grid, then bisection on the closest). The stage passes the body-rate feed-forward
unchanged, so the policy's own rate outputs must match the logged ones exactly even where the stage
changed the acceleration: the combinations tried through the stage are those. Reported separately:
the policy's raw output against the log where the stage let it pass, and the re-run stage's
command against the log everywhere (interventions: count and largest change).

A set-point for which some input the model reads was older than the watchdog limit (by the stamps),
or that equals the node's position hold (`mav_io.hold_command`: its own clock found an input stale,
or the stage could not certify), or that no input reproduces and whose rate feed-forward is exactly
zero (a hold or landing command: the policy's rates are never exactly zero), is the node's hold, not
the policy's: counted, not compared. So is
a disagreeing set-point whose inputs the log cannot pin down: the one before it is missing (the
recorder's best-effort subscription dropped it, or the log starts in flight: the action history is
unknown) or it is a timer
step on the load sample of the step before, or an odometry sample the node may have used is missing
(another stream carries its stamp: the recorder dropped it).
"""
from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from marlstack.ros_nodes import mav_io, mav_safety, topics
from marlstack.replay.bag import Bag
from marlstack.replay.fleet import FleetError

AGREE_TOL = 1e-5  # the export's parity bound
GOAL_REACH_S = 0.1  # a goal logged this close to a set-point may (not) have reached the node yet
CANDIDATES = 3  # each MAV's odometry: the same tick's or one of the two before (a node short of CPU lags), or the next
NOW_GRID = 9  # the node's clock at the step: grid points between the newest input stamp and the log time
NOW_BISECT = 20  # then halvings of the interval around the closest grid point
MAX_STAGED = 8  # combinations run through the safety stage per set-point (those whose rates agree)
COLS = ("acc_x", "acc_y", "acc_z", "roll_rate", "pitch_rate")


def _series(bag: Bag, names: list[str]) -> dict[str, list[tuple[float, Any]]]:
    """topic -> [(log time s, decoded message)] for the topics present."""
    out: dict[str, list[tuple[float, Any]]] = {n: [] for n in names}
    for rec in bag.records(names):
        msg = bag.decode(rec)
        if msg is not None:
            out[rec.topic].append((rec.t_ns * 1e-9, msg))
    return out


@dataclass
class TeamLog:
    """A MAV team's logged streams as numbers: what the policy nodes read and what they sent."""
    mavs: list[str]
    load: dict[float, tuple[float, ...]]                    # header stamp -> load odometry (mav_io.WIDTH)
    goal_t: list[float]                                     # log times of the goals
    goals: list[tuple[float, ...]]
    goal_stamps: list[float]                                # their header stamps (log time when unstamped)
    odom: dict[str, tuple[list[float], list[tuple[float, ...]]]]  # mav -> (sorted stamps, odometry rows)
    setpoints: dict[str, list[tuple[float, float, np.ndarray]]]   # mav -> [(log time, stamp, command (5,))]
    t0: float
    start_stamps: list[float] = field(default_factory=list)  # header stamps of the new starts (/load/start)

    def __post_init__(self) -> None:
        # every sim tick / sensor sample seen on any stream: each MAV's odometry and the load's share them
        self.ticks = np.unique(np.concatenate([list(self.load)] + [self.odom[m][0] for m in self.mavs]))

    def unlogged(self, mav: str, since: float, until: float) -> bool:
        """Whether a sample of `mav`'s odometry stamped in (since, until] is missing from the log while
        another stream has that stamp: the recorder dropped one the node may have used."""
        ticks = self.ticks[(self.ticks > since) & (self.ticks <= until)]
        stamps = self.odom[mav][0]
        return any(stamps[min(bisect.bisect_left(stamps, x), len(stamps) - 1)] != x for x in ticks)


def team_mavs(bag: Bag, config: Any | None) -> list[str]:
    """The team in agent order: the config's, else the bag's `/<mav>/setpoint` namespaces."""
    if not bag.types:
        for _ in bag.records():
            pass
    mavs = list(config.mavs) if config is not None and hasattr(config, "mavs") else sorted(
        t.split("/")[1] for t in bag.types if t.endswith(f"/{topics.SETPOINT.name}") and t.count("/") == 2)
    if not mavs:
        have = [t for t in sorted(bag.types) if t in (topics.LOAD_ODOM.path(), topics.LOAD_GOAL.path())
                or t.endswith(f"/{topics.ODOM.name}")]
        raise FleetError(f"{bag.path}: not a MAV team's bag: re-running a MAV policy needs {topics.LOAD_ODOM.path()}, "
                         f"{topics.LOAD_GOAL.path()} and each MAV's /<mav>/{topics.ODOM.name} and "
                         f"/<mav>/{topics.SETPOINT.name}; it has {', '.join(have) or 'none of them'} (a flight "
                         f"controller's log holds neither the load's pose nor the set-points its companion computed)")
    return mavs


def read_team(bag: Bag, mavs: list[str]) -> TeamLog:
    names = [topics.LOAD_ODOM.path(), topics.LOAD_GOAL.path()] + [topics.ODOM.path(m) for m in mavs] \
        + [topics.SETPOINT.path(m) for m in mavs]
    logged = _series(bag, names + [topics.LOAD_START.path()])
    for n in (topics.LOAD_ODOM.path(), topics.LOAD_GOAL.path()):
        if not logged[n]:
            raise FleetError(f"{bag.path}: the policy needs {n}, which this bag lacks")
    load = {mav_io.stamp_or(m, t): mav_io.odometry(m) for t, m in logged[topics.LOAD_ODOM.path()]}
    odom = {}
    for m in mavs:
        rows = sorted((mav_io.stamp_or(msg, t), mav_io.odometry(msg)) for t, msg in logged[topics.ODOM.path(m)])
        odom[m] = ([s for s, _ in rows], [v for _, v in rows])
    setpoints = {}
    for m in mavs:
        setpoints[m] = []
        for t, msg in logged[topics.SETPOINT.path(m)]:
            v = mav_io.setpoint_values(msg)
            setpoints[m].append((t, mav_io.stamp_or(msg, t), np.array(v[:3] + v[3:5])))
    goal_msgs = logged[topics.LOAD_GOAL.path()]
    return TeamLog(mavs, load, [t for t, _ in goal_msgs], [mav_io.goal_pose(m) for _, m in goal_msgs],
                   [mav_io.stamp_or(m, t) for t, m in goal_msgs], odom, setpoints,
                   min(t for n in names for t, _ in logged[n][:1]),
                   sorted(mav_io.stamp_or(m, t) for t, m in logged[topics.LOAD_START.path()]))


def _safety_mode(config: Any | None) -> str:
    return getattr(config, "safety", "onboard") if config is not None else "onboard"  # the node's default


def _err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)))


class _Stage:
    """The node's safety stage re-run with the node's clock unknown within [lo, hi]."""

    def __init__(self, profile: Any, mavs: list[str], me: str, rate_hz: float):
        self.stage = mav_safety.SafetyStage(profile, mavs, me)
        self.certified_age = mav_safety.MAX_AGE_PERIODS / rate_hz  # the node's rule for the load (cable rows)

    def closest(self, team: np.ndarray, stamps: np.ndarray, load: np.ndarray, load_stamp: float, raw: np.ndarray,
                lo: float, hi: float, target: np.ndarray) -> tuple[np.ndarray | None, float]:
        """The stage's command closest to `target` over the node's clock in [lo, hi], and its distance. `team`:
        every MAV's odometry row (team order) stamped `stamps`; `load`: the load's row, stamped `load_stamp`,
        which the node's cable rows used if it was at most the certified age old at its clock."""
        def at(now: float) -> tuple[np.ndarray | None, float]:
            fresh = now - load_stamp <= self.certified_age
            safe, _ = mav_io.certify(self.stage, team, now - stamps, raw, load if fresh else None, now - load_stamp)
            return safe, (np.inf if safe is None else _err(safe, target))
        hi = max(hi, lo)
        first = at(hi)  # a step the stage let pass passes at any clock: one call
        if first[1] <= AGREE_TOL:
            return first
        nows = np.linspace(lo, hi, NOW_GRID) if hi > lo else np.array([lo])
        tried = [at(float(n)) for n in nows[:-1]] + [first]
        k = int(np.argmin([e for _, e in tried]))
        best = tried[k]
        if best[1] > AGREE_TOL and len(nows) > 1:  # bisect towards the closest between the neighbours
            a, b = float(nows[max(k - 1, 0)]), float(nows[min(k + 1, len(nows) - 1)])
            for _ in range(NOW_BISECT):
                m1, m2 = a + (b - a) / 3, b - (b - a) / 3
                r1, r2 = at(m1), at(m2)
                best = min(best, r1, r2, key=lambda r: r[1])
                if best[1] <= AGREE_TOL:
                    break
                a, b = (a, m2) if r1[1] <= r2[1] else (m1, b)
        return best


def evaluate_team(bag: Bag, runtime: Any, config: Any | None, policy: str) -> dict[str, Any]:
    """Per MAV: the logged set-points against the policy (and the safety stage) on their logged inputs."""
    from marlstack.hardware.profile import load_profile
    from marlstack.replay.team_arrays import read_team_arrays  # it builds on TeamLog: imported here, not at the top
    mavs = team_mavs(bag, config)
    arrays = read_team_arrays(bag, mavs)
    log = arrays.log()
    limit = np.asarray(next(e for e in runtime.spec["outputs"] if e["name"] == "cmd")["high"], float)
    rate = config.rate_hz if config is not None else runtime.control_rate_hz
    max_age = config.watchdog_periods / rate if config is not None else np.inf
    safety = _safety_mode(config)
    profile = load_profile(config.profile if config is not None else runtime.spec["profile"]["name"])
    per_mav, series = {}, {}
    for me in mavs:
        rows = _evaluate_mav(log, runtime, me, limit, rate, max_age,
                             _Stage(profile, mavs, me, rate) if safety == "onboard" else None)
        per_mav[me], series[me] = _summarise(rows)
    compared = [v for v in per_mav.values() if v["compared"]]
    return {"bag": str(bag.path), "policy": str(policy), "policy_run_id": runtime.spec["training_run_id"],
            "robots": mavs, "safety": safety, "max_abs_diff": max((v["max_abs_diff"] for v in compared), default=None),
            "mean_abs_diff": (float(np.average([v["mean_abs_diff"] for v in compared],
                                               weights=[v["compared"] for v in compared])) if compared else None),
            "per_mav": per_mav, "bag_problems": bag.status.stops + bag.status.warnings + arrays.problems,
            "series": series,
            **({"alignment": bag.alignment()} if hasattr(bag, "alignment") else {})}


def _evaluate_mav(log: TeamLog, runtime: Any, me: str, limit: np.ndarray, rate: float, max_age: float,
                  stage: _Stage | None) -> list[tuple[float, np.ndarray, np.ndarray, np.ndarray, str]]:
    """(t from log start, logged, re-run node command, policy's raw output, status) per logged set-point."""
    mavs = log.mavs
    inputs = mav_io.TeamInputs(runtime.spec["inputs"], mavs, me, limit, np.inf)
    # the stage reads every MAV's odometry; the model those it has inputs for
    used = mavs if stage is not None else [m for m in inputs.sources if m in mavs]
    rows: list[tuple[float, np.ndarray, np.ndarray, np.ndarray, str]] = []
    last_stamp, hold_at = None, None
    empty = np.zeros_like(inputs.latest.past)
    after_start: dict[int, int] = {}  # index of a new start -> set-points answering samples since it, so far
    for t, stamp, cmd in log.setpoints[me]:
        status, best, raw = "compared", np.full(5, np.nan), np.full(5, np.nan)
        # the action history: the set-points sent before; a new start empties it, before the first sample after
        # the start or, when the start reached the node later (its own topic), before the second
        s = bisect.bisect_right(log.start_stamps, stamp) - 1
        if s >= 0:
            after_start[s] = after_start.get(s, -1) + 1
        n = after_start.get(s, 2)
        histories = {0: [empty, inputs.latest.past], 1: [inputs.latest.past, empty]}.get(n, [inputs.latest.past])
        inputs.latest.past = histories[0]
        choices = []
        for m in used:  # the same tick's odometry or the ones before, or the next
            stamps = log.odom[m][0]
            i = bisect.bisect_right(stamps, stamp + 1e-9)
            near = [j for j in range(i - 1, i - 1 - CANDIDATES, -1) if j >= 0 and stamp - stamps[j] <= max_age]
            choices.append(near + ([i] if near and i < len(stamps) else []))
        if stamp not in log.load or any(not c for c in choices):
            status = "hold (inputs stale or missing)"
        else:
            inputs.put(mav_io.LOAD, log.load[stamp], stamp)
            g = bisect.bisect_right(log.goal_t, t) - 1
            goal_options = [max(g, 0)]
            if g + 1 < len(log.goal_t) and log.goal_t[g + 1] - t < GOAL_REACH_S:
                goal_options.append(g + 1)  # the node got it before the recorder did
            if g >= 1 and t - log.goal_t[g] < GOAL_REACH_S:
                goal_options.append(g - 1)  # the recorder got the new one before the node did

            def closest(combos: list[tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray, int]:
                """(node command, raw policy output, history index) of the combination (goal, history, odometry...)
                closest to the logged set-point."""
                feeds = []
                for k, h, *combo in combos:
                    inputs.latest.past = histories[h]
                    inputs.put(mav_io.GOAL, log.goals[k], stamp)
                    for m, j in zip(used, combo):
                        inputs.put(m, log.odom[m][1][j], stamp)
                    feeds.append(inputs.inputs(stamp))
                out = np.asarray(runtime.run({k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]})["cmd"], float)
                if stage is None:
                    k = int(np.argmin(np.max(np.abs(out - cmd), axis=1)))
                    return out[k], out[k], combos[k][1]
                # the stage passes the rate feed-forward: only combinations whose rates agree can be the node's
                rate_err = np.max(np.abs(out[:, 3:] - cmd[3:]), axis=1)
                order = np.argsort(rate_err, kind="stable")[:MAX_STAGED]
                agree = [k for k in order if rate_err[k] <= AGREE_TOL]
                order = agree or list(order[:1])  # none agree: no clock makes it the node's; one stage call shows it
                found = (np.inf, out[order[0]], out[order[0]], combos[order[0]][1])
                for k in order:
                    team = np.array([log.odom[m][1][j] for m, j in zip(used, combos[k][2:])])
                    st = np.array([log.odom[m][0][j] for m, j in zip(used, combos[k][2:])])
                    # the node's clock: not before the newest input, not after the set-point's log time, and
                    # certifying only while every MAV's odometry was within the certified age (else it held)
                    lo, hi = max(stamp, float(st.max())), min(t, float(st.min()) + stage.certified_age)
                    safe, e = stage.closest(team, st, np.asarray(log.load[stamp]), stamp, out[k],
                                            lo if agree else max(lo, hi), hi, cmd)
                    if safe is not None and e < found[0]:
                        found = (e, safe, out[k], combos[k][1])
                    if found[0] <= AGREE_TOL:
                        break
                return found[1], found[2], found[3]
            # the same tick's inputs first (nearly always the node's); every combination only when they disagree
            best, raw, h = closest([(goal_options[0], 0, *(c[0] for c in choices))])
            if _err(best, cmd) > AGREE_TOL:
                best, raw, h = closest(list(itertools.product(goal_options, range(len(histories)), *choices)))
            inputs.latest.past = histories[h]
            if _err(best, cmd) > AGREE_TOL:  # the node's position hold (its clock saw a stale input)?
                own = log.odom[me]
                lo = bisect.bisect_left(own[0], stamp - CANDIDATES / rate)
                hi = bisect.bisect_right(own[0], t)  # any own odometry that reached the node by the log time
                holds = [(j, mav_io.hold_command(np.asarray(own[1][j][0:3]), np.asarray(own[1][j][7:10]),
                                                 hold_at if hold_at is not None else np.asarray(own[1][j][0:3]), limit))
                         for j in range(lo, hi)]
                if holds:
                    j, h = min(holds, key=lambda x: _err(x[1], cmd))
                    if _err(h, cmd) <= AGREE_TOL:
                        status, best, raw = "hold (node watchdog)", h, np.full(5, np.nan)
                        hold_at = np.asarray(own[1][j][0:3]) if hold_at is None else hold_at
                if not status.startswith("hold") and not np.any(cmd[3:]):
                    # exactly zero rate feed-forward: the node's hold (or landing), never the policy's output (the
                    # stage passes the policy's rates unchanged); its hold point or odometry not in the log
                    status, best, raw = "hold (node watchdog)", cmd, np.full(5, np.nan)
            if not status.startswith("hold"):
                hold_at = None
            unsure = (not rows  # a log that starts in flight: the action history before it is unknown
                      or t - log.t0 - rows[-1][0] > 1.5 / rate or stamp == last_stamp  # a timer step on the same load sample: other odometry than the stamp's
                      or any(log.unlogged(m, log.odom[m][0][min(c)], t) for m, c in zip(used, choices)))
            if unsure and status == "compared" and _err(best, cmd) > AGREE_TOL:
                status = "inputs missing from log"  # the previous set-point (the history) or the goal's timing
        inputs.latest.sent(cmd)  # the node's action history is what it sent, policy or hold
        last_stamp = stamp
        rows.append((t - log.t0, cmd, best, raw, status))
    return rows


def _summarise(rows: list[tuple[float, np.ndarray, np.ndarray, np.ndarray, str]]) -> tuple[dict, dict]:
    ok = np.array([r[4] == "compared" for r in rows], bool)
    logged = np.stack([r[1] for r in rows]) if rows else np.zeros((0, 5))
    node = np.stack([r[2] for r in rows]) if rows else np.zeros((0, 5))
    raw = np.stack([r[3] for r in rows]) if rows else np.zeros((0, 5))
    diff = np.abs(node - logged)[ok] if ok.any() else np.zeros((1, 5))
    change = np.linalg.norm(node[:, :3] - raw[:, :3], axis=1) if rows else np.zeros(0)
    stepped = ok & (change > mav_safety.INTERVENED)  # the re-run stage changed the policy's acceleration
    passed = ok & ~stepped
    raw_diff = np.abs(raw - logged)[passed] if passed.any() else np.zeros((1, 5))
    summary = {"commands": len(rows), "compared": int(ok.sum()),
               "holds": sum(r[4].startswith("hold") for r in rows),
               "inputs_missing_from_log": sum(r[4] == "inputs missing from log" for r in rows),
               "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
               "interventions": int(stepped.sum()),
               "max_intervention": float(change[stepped].max()) if stepped.any() else 0.0,
               "max_abs_diff_interventions": float(np.abs(node - logged)[stepped].max()) if stepped.any() else None,
               "policy_max_abs_diff": float(raw_diff.max())}
    return summary, {"t": np.array([r[0] for r in rows]), "logged": logged if rows else None,
                     "policy": node if rows else None, "raw": raw if rows else None, "status": [r[4] for r in rows]}


def format_team(result: dict[str, Any]) -> str:
    lines = [f"policy {result['policy']} (run {result['policy_run_id']}) on {result['bag']}, "
             f"safety stage {result['safety']}", "",
             f"{'mav':<10} {'set-points':>10} {'compared':>9} {'holds':>6} {'not pinned':>10} {'max |diff|':>11} "
             f"{'mean |diff|':>11} {'stage steps':>11} {'max change':>10} {'policy alone':>12}"]
    for m, v in result["per_mav"].items():
        lines.append(f"{m:<10} {v['commands']:>10} {v['compared']:>9} {v['holds']:>6} {v['inputs_missing_from_log']:>10} "
                     f"{v['max_abs_diff']:>11.3g} {v['mean_abs_diff']:>11.3g} {v['interventions']:>11} "
                     f"{v['max_intervention']:>10.3g} {v['policy_max_abs_diff']:>12.3g}")
    if result["max_abs_diff"] is not None:
        lines.append(f"\nall MAVs: max |diff| {result['max_abs_diff']:.3g} (m/s², rad/s), mean {result['mean_abs_diff']:.3g}"
                     f" (set-point against policy + re-run safety stage; 'policy alone': the raw output where the "
                     f"stage let it pass; 'stage steps': set-points the stage changed, by up to 'max change' m/s²)")
    if "alignment" in result:
        lines.append(f"\nlogs on one clock ({result['alignment']['method']}):")
        lines += [f"  {r['log']} ({r['vehicle'] or 'no set-points'}): {r['offset_s']:+.6f} s"
                  for r in result["alignment"]["logs"]]
    lines += [f"warning: {p}" for p in result["bag_problems"]]
    return "\n".join(lines)


def write_team_csv(result: dict[str, Any], path: Any) -> None:
    """eval_commands.csv: every logged set-point, the policy's raw output and the node's command re-run
    (policy + safety stage) on its inputs, and whether it was compared."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("t_s,mav," + ",".join(f"{c}_{k}" for k in ("logged", "rerun", "policy") for c in COLS) + ",status\n")
        for m, s in result["series"].items():
            for t, lg, pr, raw, st in zip(s["t"], s["logged"], s["policy"], s["raw"], s["status"]):
                f.write(f"{t:.6f},{m}," + ",".join(f"{x:.9g}" for x in (*lg, *pr, *raw)) + f",{st}\n")
