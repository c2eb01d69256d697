"""`replay eval`: run a policy on the logged sensor data, exactly as the policy node would have.

The node (`ros_nodes/policy_node.py`) feeds every robot's pose and its own goal into a task
adapter (`ros_nodes/adapters.py`) stamped with the receive time, runs the model as soon as its
own robot's pose arrives, and runs it again from a timer only when no pose came for a control
period. Replay rebuilds the same adapters from the bag, with log time as receive time, and
for each logged `cmd_vel_nominal` picks the moment the node computed it:
- the first command after a robot's own pose used the adapter state right after that pose;
- any further command before the next own pose was a timer step: state at the command's time.
Inputs the adapter rejects (missing, stale, invalid) give the zero command the node publishes;
a logged pose or goal the conversions reject invalidates that input, as in the node.
"""
from __future__ import annotations

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

    pending: dict[str, Any] = {}
    rows: dict[str, list[tuple[float, np.ndarray, np.ndarray, bool, bool]]] = {r: [] for r in robots}
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
            pending[r] = snapshot(r, t)
        else:
            triggered = r in pending
            inputs = pending.pop(r) if triggered else snapshot(r, t)
            cmd, failed = np.zeros(2), isinstance(inputs, InputError)
            if not failed:
                out = np.asarray(runtime.run(inputs)["cmd"], dtype=np.float64).reshape(-1)
                cmd = out if out.shape == (2,) and np.isfinite(out).all() else np.zeros(2)
            rows[r].append((t, v, cmd, triggered, failed))

    t0 = fleet.t0
    per_robot, series = {}, {}
    for r in robots:
        if not rows[r]:
            per_robot[r] = {"commands": 0}
            continue
        t = np.array([row[0] for row in rows[r]]) - t0
        logged = np.stack([row[1] for row in rows[r]])
        pred = np.stack([row[2] for row in rows[r]])
        diff = np.abs(pred - logged)
        k = int(np.argmax(diff.max(axis=1)))
        per_robot[r] = {
            "commands": int(len(t)),
            "max_abs_diff": float(diff.max()),
            "mean_abs_diff": float(diff.mean()),
            "max_abs_diff_v": float(diff[:, 0].max()),
            "max_abs_diff_omega": float(diff[:, 1].max()),
            "worst_t_s": float(t[k]),
            "pose_triggered": int(sum(row[3] for row in rows[r])),
            "timer_steps": int(sum(not row[3] for row in rows[r])),
            "input_errors": int(sum(row[4] for row in rows[r])),
        }
        series[r] = {"t": t, "logged": logged, "policy": pred}
    compared = [v for v in per_robot.values() if v["commands"]]
    return {
        "bag": str(bag.path),
        "policy": str(policy),
        "policy_run_id": runtime.spec["training_run_id"],
        "robots": robots,
        "max_abs_diff": max((v["max_abs_diff"] for v in compared), default=None),
        "mean_abs_diff": (float(np.average([v["mean_abs_diff"] for v in compared],
                                           weights=[v["commands"] for v in compared])) if compared else None),
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
    head = f"{'robot':<12} {'commands':>8} {'max |diff|':>11} {'mean |diff|':>11} {'max dv':>10} {'max domega':>10} {'input errors':>12}"
    lines += [head, "-" * len(head)]
    for r, v in result["per_robot"].items():
        if not v["commands"]:
            lines.append(f"{r:<12} {0:>8}  (no cmd_vel_nominal logged)")
            continue
        lines.append(f"{r:<12} {v['commands']:>8} {v['max_abs_diff']:>11.3g} {v['mean_abs_diff']:>11.3g} "
                     f"{v['max_abs_diff_v']:>10.3g} {v['max_abs_diff_omega']:>10.3g} {v['input_errors']:>12}")
    if result["max_abs_diff"] is not None:
        lines.append(f"\nall robots: max |diff| {result['max_abs_diff']:.3g}, mean |diff| {result['mean_abs_diff']:.3g}")
    lines += [f"warning: {p}" for p in result["bag_problems"]]
    return "\n".join(lines)
