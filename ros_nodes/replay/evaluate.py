"""`replay eval`: run a policy on the logged sensor data, exactly as the policy node would have.

The node (`ros_nodes/policy_node.py`) feeds every robot's pose and its own goal into a task
adapter (`ros_nodes/adapters.py`) stamped with the receive time, runs the model as soon as its
own robot's pose arrives, and runs it again from a timer only when no pose came for a control
period. Replay rebuilds the same adapters from the bag, with log time as receive time.

Which inputs produced a logged command cannot be read off the log exactly: the recorder logs
when its callback runs, so under load a command can be logged before the pose that triggered
it, and a burst of poses can reach the node and the recorder in different orders. So each
logged `cmd_vel_nominal` is compared with the policy at every moment the node could have
computed it: the adapter state right after each pose logged within one control period of the
command, and the state at the command's own time (a timer step). The closest one is reported
(`reordered` counts commands where that is not the obvious "latest own pose" moment). A
policy that differs from the logged one matches none of them; with a different policy, the
command shown is the one at that best-matching moment.

A logged (0, 0) is the node's stop. When replay had every input at every candidate moment,
the node lacked one the recorder had (typically the latched goal or a first pose reaching
the recorder earlier at start-up); such stops are counted and listed as `unexplained_stops`
and left out of the difference statistics rather than hidden in them.
Inputs the adapter rejects (missing, stale, invalid) give the zero command the node publishes;
a logged pose or goal the conversions reject invalidates that input, as in the node.
"""
from __future__ import annotations

import bisect
from pathlib import Path
from typing import Any

import numpy as np

from ros_nodes import topics
from ros_nodes.adapters import InputError, make_adapter
from ros_nodes.replay.bag import Bag
from ros_nodes.replay.fleet import FleetError, read_fleet

NEEDED = (topics.POSE.name, topics.GOAL.name, topics.CMD_VEL_NOMINAL.name)
GOAL, BAD_GOAL, POSE, BAD_POSE, COMMAND = range(5)  # order at equal log times: inputs before the command


def open_runtime(policy: str | Path, config: Any | None) -> Any:
    """The checked runtime; with a deployment config, checked exactly like the node checks it."""
    from hardware.profile import load_profile, profile_hash
    from policies.runtime import PolicyRuntime
    if config is None:
        return PolicyRuntime(policy)
    return PolicyRuntime(policy, expect_scenario=config.scenario,
                         expect_profile_hash=profile_hash(load_profile(config.profile)), expect_rate_hz=config.rate_hz)


def evaluate(bag: Bag, policy: str | Path, config: Any | None = None) -> dict[str, Any]:
    """Per-robot comparison of logged nominal commands with the policy's on the logged inputs."""
    runtime = open_runtime(policy, config)
    fleet = read_fleet(bag, config, need=NEEDED)
    robots = fleet.robots
    others = {e["name"]: e["shape"] for e in runtime.spec["inputs"]}.get("others")
    if others is not None and others[1] != len(robots) - 1:
        raise FleetError(f"the policy was exported for {others[1] + 1} robots, the bag has {len(robots)} "
                         f"({', '.join(robots)}); pass --config with the deployment's robot list")
    rate = config.rate_hz if config is not None else runtime.control_rate_hz
    max_age = config.watchdog_periods / rate if config is not None else np.inf
    adapters = {r: make_adapter(runtime.spec["scenario"], robots, r, max_age) for r in robots}

    events = []
    for r in robots:
        events += [(t, GOAL, r, v) for t, v in zip(fleet.goal[r].t, fleet.goal[r].values)]
        events += [(t, POSE, r, v) for t, v in zip(fleet.pose[r].t, fleet.pose[r].values)]
        events += [(t, COMMAND, r, v) for t, v in zip(fleet.nominal[r].t, fleet.nominal[r].values)]
        events += [(t, BAD_GOAL, r, why) for t, why in fleet.invalid.get((r, topics.GOAL.name), [])]
        events += [(t, BAD_POSE, r, why) for t, why in fleet.invalid.get((r, topics.POSE.name), [])]
    events.sort(key=lambda e: (e[0], e[1]))

    def snapshot(r: str, now: float) -> dict[str, np.ndarray] | InputError:
        try:
            return adapters[r].inputs(now)
        except InputError as exc:
            return exc

    state_t: list[float] = []  # log time of every pose event
    states: list[dict[str, Any]] = []  # every robot's inputs right after that event
    own: dict[str, int] = {}  # robot -> index of its latest own-pose event
    commands: list[tuple[str, float, np.ndarray, Any, int | None]] = []
    for t, kind, r, v in events:
        if kind == GOAL:
            adapters[r].update_goal(float(v[0]), float(v[1]))
        elif kind == BAD_GOAL:
            adapters[r].invalidate_goal(v)
        elif kind in (POSE, BAD_POSE):  # every node hears every pose; a rejected one invalidates it
            for a in adapters.values():
                if kind == POSE:
                    a.update_pose(r, float(v[0]), float(v[1]), float(v[2]), t)
                else:
                    a.invalidate_pose(r, v)
            state_t.append(t)
            states.append({q: snapshot(q, t) for q in robots})
            own[r] = len(states) - 1
        else:
            commands.append((r, t, v, snapshot(r, t), own.get(r)))

    cache: dict[tuple[int, str], np.ndarray] = {}

    def command_of(inputs: Any, key: tuple[int, str] | None) -> np.ndarray:
        """The node's command for these inputs: the policy's, or a stop for rejected inputs."""
        if isinstance(inputs, InputError):
            return np.zeros(2)
        if key is not None and key in cache:
            return cache[key]
        out = np.asarray(runtime.run(inputs)["cmd"], dtype=np.float64).reshape(-1)
        cmd = out if out.shape == (2,) and np.isfinite(out).all() else np.zeros(2)
        if key is not None:
            cache[key] = cmd
        return cmd

    period = 1.0 / rate
    rows: dict[str, list[tuple[float, np.ndarray, np.ndarray, bool, bool, bool, bool]]] = {r: [] for r in robots}
    for r, t, logged, at_command, last_own in commands:
        lo, hi = bisect.bisect_left(state_t, t - period), bisect.bisect_right(state_t, t + period)
        keys: list[tuple[int, str] | None] = [(i, r) for i in range(lo, hi)] + [None]
        inputs = [states[i][r] for i in range(lo, hi)] + [at_command]
        cmds = [command_of(x, k) for x, k in zip(inputs, keys)]
        err = [float(np.max(np.abs(c - logged))) for c in cmds]
        triggered = last_own is not None and t - state_t[last_own] <= period
        default = keys.index((last_own, r)) if triggered and (last_own, r) in keys else len(keys) - 1
        best = default if err[default] <= min(err) else int(np.argmin(err))
        # an exact (0, 0) is the node's stop; if replay had every input at every candidate moment,
        # the node lacked one the recorder had (e.g. the latched goal reached the recorder first)
        unexplained_stop = not np.any(logged) and err[best] > 0
        rows[r].append((t, logged, cmds[best], keys[best] is not None, isinstance(inputs[best], InputError),
                        best != default, unexplained_stop))

    t0 = fleet.t0
    per_robot, series = {}, {}
    for r in robots:
        if not rows[r]:
            per_robot[r] = {"commands": 0}
            continue
        t = np.array([row[0] for row in rows[r]]) - t0
        logged = np.stack([row[1] for row in rows[r]])
        pred = np.stack([row[2] for row in rows[r]])
        stops = np.array([row[6] for row in rows[r]])
        diff = np.abs(pred - logged)[~stops] if not stops.all() else np.zeros((1, 2))
        k = int(np.argmax(diff.max(axis=1)))
        per_robot[r] = {
            "commands": int(len(t)),
            "compared": int((~stops).sum()),
            "max_abs_diff": float(diff.max()),
            "mean_abs_diff": float(diff.mean()),
            "max_abs_diff_v": float(diff[:, 0].max()),
            "max_abs_diff_omega": float(diff[:, 1].max()),
            "worst_t_s": float(t[~stops][k]) if not stops.all() else None,
            "pose_triggered": int(sum(row[3] for row in rows[r])),
            "timer_steps": int(sum(not row[3] for row in rows[r])),
            "input_errors": int(sum(row[4] for row in rows[r])),
            "reordered": int(sum(row[5] for row in rows[r])),
            "unexplained_stops": int(stops.sum()),
            "unexplained_stop_times_s": [float(x) for x in t[stops]],
        }
        series[r] = {"t": t, "logged": logged, "policy": pred}
    compared = [v for v in per_robot.values() if v["commands"] and v["compared"]]
    return {
        "bag": str(bag.path),
        "policy": str(policy),
        "policy_run_id": runtime.spec["training_run_id"],
        "robots": robots,
        "max_abs_diff": max((v["max_abs_diff"] for v in compared), default=None),
        "mean_abs_diff": (float(np.average([v["mean_abs_diff"] for v in compared],
                                           weights=[v["compared"] for v in compared])) if compared else None),
        "per_robot": per_robot,
        "bag_problems": bag.status.stops + bag.status.warnings,
        "series": series,
    }


def write_outputs(result: dict[str, Any], out: Path) -> None:
    """eval_commands.csv (every command, logged vs policy) and eval_commands.png."""
    from ros_nodes.replay import plots
    out.mkdir(parents=True, exist_ok=True)
    with (out / "eval_commands.csv").open("w", encoding="utf-8") as f:
        f.write("t_s,robot,v_logged,omega_logged,v_policy,omega_policy\n")
        for r, s in result["series"].items():
            for t, lg, pr in zip(s["t"], s["logged"], s["policy"]):
                f.write(f"{t:.6f},{r},{lg[0]:.9g},{lg[1]:.9g},{pr[0]:.9g},{pr[1]:.9g}\n")
    if result["series"]:
        plots.commands(result, out / "eval_commands.png")


def format_result(result: dict[str, Any]) -> str:
    lines = [f"policy {result['policy']} (run {result['policy_run_id']}) on {result['bag']}", ""]
    head = (f"{'robot':<12} {'commands':>8} {'max |diff|':>11} {'mean |diff|':>11} {'max dv':>10} "
            f"{'max domega':>10} {'input errors':>12} {'reordered':>9} {'odd stops':>9}")
    lines += [head, "-" * len(head)]
    for r, v in result["per_robot"].items():
        if not v["commands"]:
            lines.append(f"{r:<12} {0:>8}  (no cmd_vel_nominal logged)")
            continue
        lines.append(f"{r:<12} {v['commands']:>8} {v['max_abs_diff']:>11.3g} {v['mean_abs_diff']:>11.3g} "
                     f"{v['max_abs_diff_v']:>10.3g} {v['max_abs_diff_omega']:>10.3g} {v['input_errors']:>12} "
                     f"{v['reordered']:>9} {v['unexplained_stops']:>9}")
    if result["max_abs_diff"] is not None:
        lines.append(f"\nall robots: max |diff| {result['max_abs_diff']:.3g}, mean |diff| {result['mean_abs_diff']:.3g}")
    odd = sum(v.get("unexplained_stops", 0) for v in result["per_robot"].values())
    if odd:
        lines.append(f"{odd} logged stop(s) with every input present in the log (left out of the statistics): "
                     f"the node lacked an input the recorder had, usually at start-up")
    lines += [f"warning: {p}" for p in result["bag_problems"]]
    return "\n".join(lines)
