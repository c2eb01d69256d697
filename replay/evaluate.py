"""`replay eval`: run a policy on the logged sensor data, exactly as the policy node would have.

The node (`ros_nodes/policy_node.py`) feeds every robot's pose and its task input (its own goal;
coverage: the landmarks on `/landmarks`; rware: its own `task`, sent by the warehouse on a pick or drop) into a task adapter (`ros_nodes/adapters.py`) stamped with the receive time, runs the model as soon as its
own robot's pose arrives, and runs it again from a timer only when no pose came for a control
period. Replay rebuilds the same adapters from the bag, with log time as receive time.

Which inputs produced a logged command cannot be read off the log exactly: the recorder logs
when its callback runs, so under load a command can be logged before the pose that triggered
it, and a burst of poses can reach the node and the recorder in different orders. So each
logged `cmd_vel_nominal` is compared with the policy at every moment the node could have
computed it: the adapter state right after each pose logged within one control period of the
command, and the state at the command's own time (a timer step). When none matches, the node
may have held a newer pose of one robot and an older one of another than the recorder's order
suggests, so each robot's pose is also searched among those logged within three periods before
to one period after the command (`mixed_timing`) - only when most commands already agree
exactly, i.e. for the policy that was running (a different policy would merely be fitted). The closest is reported (`reordered` counts
commands where that is not the obvious "latest own pose" moment). A policy that differs from
the logged one matches none of them; with a different policy, the command shown is the one at
that best-matching timing, which is uncertain by about a control period.

A logged (0, 0) is the node's stop. When replay had every input at every candidate moment,
the node lacked one the recorder had (typically the latched goal or a first pose reaching
the recorder earlier at start-up, or a node short of CPU whose watchdog fired); such stops are
counted and listed as `unexplained_stops`. Likewise a mismatching command within three
periods after a pose the recorder provably missed (a header stamp every other robot's pose
carries), or one where replay finds the inputs stale or missing while the robot moved, is
listed under `inputs_missing_from_log`. Both are left out of the difference statistics rather
than hidden in them.
Inputs the adapter rejects (missing, stale, invalid) give the zero command the node publishes;
a logged pose or goal the conversions reject invalidates that input, as in the node.
"""
from __future__ import annotations

import bisect
import itertools
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from marlstack.ros_nodes import topics
from marlstack.ros_nodes.adapters import NEIGHBOUR_MAX_AGE_S, InputError, make_adapter
from marlstack.replay.bag import Bag
from marlstack.replay.fleet import FleetError, held, read_fleet

NEEDED = (topics.POSE.name, topics.CMD_VEL_NOMINAL.name)  # and the task: each goal or task, or the landmarks
GOAL, BAD_GOAL, POSE, BAD_POSE, COMMAND = range(5)  # order at equal log times: inputs before the command
AGREE_TOL = 1e-6  # |policy - logged| counted as the same command: float32 rounding of a model output
SEARCH_MIN_EXACT = 0.5  # share of agreeing commands that marks the evaluated policy as the one that ran
UNLOGGED_REACH_PERIODS = 3  # a pose missing from the log can have been the node's input for this long
MAX_COMBINATIONS = 1024  # mixed_timing tries every pose combination up to this many (4 robots x 5 poses: 625)
MIXED_SWEEPS = 3  # beyond that, coordinate-search passes over the robots
RANK_BATCH = 256  # commands whose candidate moments are ranked in one batched policy run
BATCH_ROUNDING = 1e-5  # a batched run's float32 rounding (measured up to 1.7e-6): the expected moment within it stays


def agrees(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.max(np.abs(a - b)) <= AGREE_TOL)


def open_runtime(policy: str | Path, config: Any | None) -> Any:
    """The checked runtime; with a deployment config, checked exactly like the node checks it."""
    from marlstack.hardware.profile import load_profile, profile_hash
    from marlstack.policies.runtime import PolicyRuntime
    if config is None:
        return PolicyRuntime(policy)
    return PolicyRuntime(policy, expect_scenario=config.scenario,
                         expect_profile_hash=profile_hash(load_profile(config.profile)), expect_rate_hz=config.rate_hz)


def evaluate(bag: Bag, policy: str | Path, config: Any | None = None) -> dict[str, Any]:
    """Per-robot comparison of logged nominal commands with the policy's on the logged inputs."""
    runtime = open_runtime(policy, config)
    if runtime.spec["vehicle_kind"] == "mav_team":  # a cable team's bag: replay/team.py
        from marlstack.replay.team import evaluate_team
        return evaluate_team(bag, runtime, config, str(policy))
    if not isinstance(bag, Bag):
        raise FleetError("several logs at once are read for MAV teams only; a ground fleet's run is one bag")
    scenario = runtime.spec["scenario"]
    if scenario not in topics.TASK_TOPIC:
        raise FleetError(f"no ROS task adapter for scenario {scenario!r}: replay cannot rebuild its inputs")
    task_topic = topics.TASK_TOPIC[scenario]  # each robot's goal or rware task, or the landmarks all read
    fleet = read_fleet(bag, config, need=NEEDED + ((task_topic.name,) if task_topic.per_robot else ()))
    robots = fleet.robots
    if task_topic.per_robot:  # held from its log time on, as the node holds the latest message it received
        task = fleet.goal if task_topic is topics.GOAL else fleet.task
        bad_task = {r: fleet.invalid.get((r, task_topic.name), []) for r in robots}
    elif fleet.landmarks is not None:
        task = dict.fromkeys(robots, fleet.landmarks)
        bad_task = dict.fromkeys(robots, fleet.invalid.get(("", topics.LANDMARKS.name), []))
    else:
        raise FleetError(f"{bag.path}: a {scenario} policy needs {topics.LANDMARKS.path()}, which this bag lacks")
    others = {e["name"]: e["shape"] for e in runtime.spec["inputs"]}.get("others")
    if others is not None and others[1] != len(robots) - 1:
        raise FleetError(f"the policy was exported for {others[1] + 1} robots, the bag has {len(robots)} "
                         f"({', '.join(robots)}); pass --config with the deployment's robot list")
    rate = config.rate_hz if config is not None else runtime.control_rate_hz
    max_age = config.watchdog_periods / rate if config is not None else np.inf
    # a neighbour's last good pose may be older than the robot's own, as in the nodes (adapters' availability rule)
    neighbour_age = max(max_age, NEIGHBOUR_MAX_AGE_S)
    adapters = {r: make_adapter(scenario, robots, r, max_age, neighbour_age) for r in robots}

    events = []
    for r in robots:
        events += [(t, GOAL, r, v) for t, v in zip(task[r].t, task[r].values)]
        events += [(t, POSE, r, v) for t, v in zip(fleet.pose[r].t, fleet.pose[r].values)]
        events += [(t, COMMAND, r, v) for t, v in zip(fleet.nominal[r].t, fleet.nominal[r].values)]
        events += [(t, BAD_GOAL, r, why) for t, why in bad_task[r]]
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
            adapters[r].update_task(v)
        elif kind == BAD_GOAL:
            adapters[r].invalidate_task(v)
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

    def policy_batch(feeds: dict[str, np.ndarray]) -> np.ndarray:
        out = np.asarray(runtime.run(feeds)["cmd"], dtype=np.float64).reshape(-1, 2)
        return np.where(np.isfinite(out).all(axis=1, keepdims=True), out, 0.0)

    period = 1.0 / rate
    unlogged_t = [q_t for _, q_t in fleet.unlogged_poses()]
    windows = []  # per command: the moments the node could have computed it at, and its inputs there
    for r, t, logged, at_command, last_own in commands:
        lo, hi = bisect.bisect_left(state_t, t - period), bisect.bisect_right(state_t, t + period)
        windows.append(([(i, r) for i in range(lo, hi)] + [None], [states[i][r] for i in range(lo, hi)] + [at_command]))
    first = []  # per command: (robot, t, logged, command, adapter refused, at a pose event, moment index, default)
    for c0 in range(0, len(commands), RANK_BATCH):
        chunk = list(zip(commands[c0:c0 + RANK_BATCH], windows[c0:c0 + RANK_BATCH]))
        # every moment of these commands in one batched run ranks them; the chosen one is then run alone, as the
        # node ran it (a batch rounds differently in float32, by up to ~2e-6)
        todo = [x for _, (_, inputs) in chunk for x in inputs if not isinstance(x, InputError)]
        ranked = iter(policy_batch({k: np.concatenate([x[k] for x in todo]) for k in todo[0]}) if todo else ())
        for (r, t, logged, at_command, last_own), (keys, inputs) in chunk:
            cmds = [np.zeros(2) if isinstance(x, InputError) else next(ranked) for x in inputs]
            err = [float(np.max(np.abs(c - logged))) for c in cmds]
            triggered = last_own is not None and t - state_t[last_own] <= period
            default = keys.index((last_own, r)) if triggered and (last_own, r) in keys else len(keys) - 1
            best = default if err[default] <= min(err) + BATCH_ROUNDING else int(np.argmin(err))
            first.append((r, t, logged, command_of(inputs[best], keys[best]), isinstance(inputs[best], InputError),
                          keys[best] is not None, best, default))
    # the pose-combination search explains timing, so it only runs for the policy that was running:
    # most of its commands already agree exactly (a different policy would just be fitted to the log)
    search = bool(first) and np.mean([agrees(row[3], row[2]) for row in first]) >= SEARCH_MIN_EXACT
    rows: dict[str, list[tuple[float, np.ndarray, np.ndarray, bool, bool, bool, bool, bool]]] = {r: [] for r in robots}
    for r, t, logged, chosen, failed, at_pose, best, default in first:
        if search and not agrees(chosen, logged) and np.any(logged):
            mixed = mixed_timing(fleet, task[r], r, t, period,
                                 lambda rs, me: make_adapter(scenario, rs, me, max_age, neighbour_age), policy_batch, logged)
            if mixed is not None and np.max(np.abs(mixed - logged)) < np.max(np.abs(chosen - logged)):
                chosen, failed, at_pose, best = mixed, False, True, -1
        exact = agrees(chosen, logged)
        # an exact (0, 0) is the node's stop; if replay had every input at every candidate moment,
        # the node lacked one the recorder had (e.g. the latched goal reached the recorder first)
        unexplained_stop = not np.any(logged) and not exact
        # the node moved on inputs replay lacks, or a pose it used is provably missing from the log
        unlogged = not exact and not unexplained_stop and (
            failed or any(q_t - period <= t <= q_t + UNLOGGED_REACH_PERIODS * period for q_t in unlogged_t))
        rows[r].append((t, logged, chosen, at_pose, failed, best != default, unexplained_stop, unlogged))

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
        unlogged = np.array([row[7] for row in rows[r]])
        ok = ~stops & ~unlogged
        diff = np.abs(pred - logged)[ok] if ok.any() else np.zeros((1, 2))
        k = int(np.argmax(diff.max(axis=1)))
        per_robot[r] = {
            "commands": int(len(t)),
            "compared": int(ok.sum()),
            "max_abs_diff": float(diff.max()),
            "mean_abs_diff": float(diff.mean()),
            "max_abs_diff_v": float(diff[:, 0].max()),
            "max_abs_diff_omega": float(diff[:, 1].max()),
            "worst_t_s": float(t[ok][k]) if ok.any() else None,
            "pose_triggered": int(sum(row[3] for row in rows[r])),
            "timer_steps": int(sum(not row[3] for row in rows[r])),
            "input_errors": int(sum(row[4] for row in rows[r])),
            "reordered": int(sum(row[5] for row in rows[r])),
            "unexplained_stops": int(stops.sum()),
            "unexplained_stop_times_s": [float(x) for x in t[stops]],
            "inputs_missing_from_log": int(unlogged.sum()),
            "inputs_missing_from_log_times_s": [float(x) for x in t[unlogged]],
        }
        status = np.where(stops, "unexplained_stop", np.where(unlogged, "inputs_missing_from_log", "compared"))
        series[r] = {"t": t, "logged": logged, "policy": pred, "status": status}
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


def mixed_timing(fleet: Any, task: Any, me: str, t: float, period: float, new_adapter: Callable[[list[str], str], Any],
                 policy: Callable[[dict[str, np.ndarray]], np.ndarray], logged: np.ndarray) -> np.ndarray | None:
    """The command closest to `logged` when each robot's pose may be any one logged near `t`.

    The node may have held a newer pose of one robot and an older one of another than the
    recorder's order suggests (each pose travels on its own topic). Every robot's pose is taken
    from those logged within [t - 3 periods, t + 1 period]; all combinations are tried (in one
    batch) up to MAX_COMBINATIONS, beyond that a coordinate search robot by robot. `policy` maps
    batched inputs to (B, 2) commands.
    """
    robots = fleet.robots
    goal = held(task, np.array([t]))[0]  # `me`'s task stream: its goal or the landmarks
    if not np.isfinite(goal).all():
        return None
    lists = []
    for q in robots:
        times = fleet.pose[q].t
        idx = range(bisect.bisect_left(times, t - 3 * period), bisect.bisect_right(times, t + period))
        if not idx:
            return None
        lists.append(sorted(idx, key=lambda i: abs(times[i] - t)))

    adapter = new_adapter(robots, me)  # one adapter, each robot's pose overwritten per combination
    adapter.update_task(goal)
    held_now: list[int | None] = [None] * len(robots)

    def run_many(choices: list[tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
        """Commands (stops where the adapter refuses) and their distance to `logged`."""
        cmds, feeds, ok = np.zeros((len(choices), 2)), [], []
        for k, choice in enumerate(choices):
            for j, (q, i) in enumerate(zip(robots, choice)):
                if held_now[j] != i:
                    adapter.update_pose(q, *map(float, fleet.pose[q].values[i]), float(fleet.pose[q].t[i]))
                    held_now[j] = i
            try:
                feeds.append(adapter.inputs(max(float(fleet.pose[q].t[i]) for q, i in zip(robots, choice))))
                ok.append(k)
            except InputError:
                pass
        if feeds:
            cmds[ok] = policy({name: np.concatenate([f[name] for f in feeds]) for name in feeds[0]})
        return cmds, np.max(np.abs(cmds - logged), axis=1)

    if math.prod(map(len, lists)) <= MAX_COMBINATIONS:
        cmds, err = run_many(list(itertools.product(*lists)))
        return cmds[int(np.argmin(err))]
    choice = [opts[0] for opts in lists]
    best_cmd, best_err = (x[0] for x in run_many([tuple(choice)]))
    for _ in range(MIXED_SWEEPS):
        before = best_err
        for k, opts in enumerate(lists):
            cmds, err = run_many([tuple(choice[:k] + [i] + choice[k + 1:]) for i in opts])
            j = int(np.argmin(err))
            if err[j] < best_err:
                best_cmd, best_err, choice[k] = cmds[j], err[j], opts[j]
        if best_err in (0, before):
            break
    return best_cmd


def write_outputs(result: dict[str, Any], out: Path) -> None:
    """eval_commands.csv (every command: logged, policy's, whether it was compared) and eval_commands.png."""
    from marlstack.replay import plots
    out.mkdir(parents=True, exist_ok=True)
    if "per_mav" in result:
        from marlstack.replay.team import write_team_csv
        write_team_csv(result, out / "eval_commands.csv")
        plots.team_commands(result, out / "eval_commands.png")
        return
    with (out / "eval_commands.csv").open("w", encoding="utf-8") as f:
        f.write("t_s,robot,v_logged,omega_logged,v_policy,omega_policy,status\n")
        for r, s in result["series"].items():
            for t, lg, pr, st in zip(s["t"], s["logged"], s["policy"], s["status"]):
                f.write(f"{t:.6f},{r},{lg[0]:.9g},{lg[1]:.9g},{pr[0]:.9g},{pr[1]:.9g},{st}\n")
    if result["series"]:
        plots.commands(result, out / "eval_commands.png")


def format_result(result: dict[str, Any]) -> str:
    if "per_mav" in result:
        from marlstack.replay.team import format_team
        return format_team(result)
    lines = [f"policy {result['policy']} (run {result['policy_run_id']}) on {result['bag']}", ""]
    head = (f"{'robot':<12} {'commands':>8} {'max |diff|':>11} {'mean |diff|':>11} {'max dv':>10} "
            f"{'max domega':>10} {'input errors':>12} {'reordered':>9} {'not compared':>12}")
    lines += [head, "-" * len(head)]
    for r, v in result["per_robot"].items():
        if not v["commands"]:
            lines.append(f"{r:<12} {0:>8}  (no cmd_vel_nominal logged)")
            continue
        lines.append(f"{r:<12} {v['commands']:>8} {v['max_abs_diff']:>11.3g} {v['mean_abs_diff']:>11.3g} "
                     f"{v['max_abs_diff_v']:>10.3g} {v['max_abs_diff_omega']:>10.3g} {v['input_errors']:>12} "
                     f"{v['reordered']:>9} {v['commands'] - v['compared']:>12}")
    if result["max_abs_diff"] is not None:
        lines.append(f"\nall robots: max |diff| {result['max_abs_diff']:.3g}, mean |diff| {result['mean_abs_diff']:.3g}")
    odd = sum(v.get("unexplained_stops", 0) for v in result["per_robot"].values())
    missing = sum(v.get("inputs_missing_from_log", 0) for v in result["per_robot"].values())
    if odd:
        lines.append(f"not compared: {odd} logged stop(s) with every input present in the log: the node lacked "
                     f"an input the recorder had (start-up, or a node short of CPU)")
    if missing:
        lines.append(f"not compared: {missing} command(s) computed from inputs missing from the log (poses the "
                     f"recorder dropped, or a node moving on inputs replay finds stale or missing)")
    lines += [f"warning: {p}" for p in result["bag_problems"]]
    return "\n".join(lines)
