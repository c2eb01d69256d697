"""`marlstack bench mav_team_step`: the MAV team policy node's step in one process, no DDS, part by part.

What `/load/odom` sample in → three set-points out costs inside ros_nodes/mav_team_policy_node.py, on recorded-like
inputs: a hovering 3-MAV team (the shipped tests/data/mav_team/cable3.onnx) given its four Odometry messages every
10 ms, each decoded and handed to the team (`receive`: the pilots' stamp judgement and bookkeeping), then the team's
step (inputs, one batched onnxruntime call, each MAV's barrier stage, its set-point message). The barrier stages'
own time (`mav_io.certify`, controllers/mav_barrier.py) is timed apart. Baseline, in the same run on the same
messages: each MAV's own pilot (`MavPilot`, what one per-MAV node computes: its own decode, judgement and model
call), the three summed. Every step is checked to be the policy's (no hold). The slowest 1 % of the team's steps
are listed (`extra.slowest`) with their CPU time (this thread's: far below the wall time, the process waited for a
core) and the garbage collector's passes in them (`gc.callbacks`), to say where a tail comes from.
"""
from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path
from typing import Any

import numpy as np

from marlstack.bench.report import Row
from marlstack.ros_nodes import mav_io

POS = np.array([[0.6, -0.35, 1.9], [0.0, 0.7, 1.9], [-0.6, -0.35, 1.9]])
LEVEL = (1.0, 0.0, 0.0, 0.0)
PERIOD = 0.01
MAVS = ["mav_0", "mav_1", "mav_2"]
POLICY = Path(__file__).resolve().parent.parent / "tests" / "data" / "mav_team" / "cable3.onnx"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", default=str(POLICY), help="exported 3-MAV cable team (default: the shipped cable3)")
    parser.add_argument("--steps", type=int, default=2000, help="timed steps (default 2000)")
    parser.add_argument("--warmup", type=int, default=200, help="steps before timing (default 200)")


class _Quiet:
    def info(self, text: str) -> None:
        pass

    warning = error = info


def _pilots(policy: str) -> tuple[Any, dict[str, Any]]:
    """The team and one pilot per MAV, each given the goal."""
    from marlstack.hardware.profile import load_profile
    from marlstack.policies.runtime import PolicyRuntime
    from marlstack.ros_nodes.mav_policy_node import MavPilot, parsed
    from marlstack.ros_nodes.mav_team_policy_node import MavTeam

    args = {"profile": load_profile("mav_corl25"), "mavs": MAVS, "period_s": PERIOD, "watchdog_s": 3 * PERIOD,
            "offset_s": 0.02, "safety": "onboard", "lost_after_s": 5.0, "fall_speed": 3.0, "descent_rate": 0.3}
    runtime = PolicyRuntime(policy, batch_size=1)
    team = MavTeam(runtime, policy, _Quiet(), **args)
    alone = {m: MavPilot(runtime, mav=m, log=_Quiet(), **args) for m in MAVS}
    goal = parsed(mav_io.goal_pose, mav_io.pose_msg([0.0, 0.0, 1.0], LEVEL, 1.0))
    for pilot in [team, *alone.values()]:
        pilot.goal(goal, 1.0)
    return team, alone


def measure(policy: str, steps: int, warmup: int) -> dict[str, Any]:
    """Per step (ms): the team's whole step, its receive part, its barrier stages; the three pilots' summed."""
    from marlstack.ros_nodes.mav_policy_node import parsed

    team, alone = _pilots(policy)
    certify, stage_s = mav_io.certify, [0.0]

    def timed_certify(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return certify(*a, **k)
        finally:
            stage_s[0] += time.perf_counter() - t0

    gcs: list[tuple[int, float]] = []   # the collector's passes during the current step: (generation, s)
    gc_start = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            gcs.append((info["generation"], time.perf_counter() - gc_start[0]))

    def sent(step: Any, messages: dict[str, Any]) -> int:
        n = 0
        for m, (cmd, _) in step:
            if cmd is not None:
                messages[m] = mav_io.setpoint_msg(cmd, now, reuse=messages.get(m))
                n += 1
        return n

    rng = np.random.default_rng(0)
    team_msgs: dict[str, Any] = {}
    alone_msgs: dict[str, Any] = {}
    rows = []
    now = 2.0
    mav_io.certify = timed_certify
    gc.callbacks.append(on_gc)
    try:
        for k in range(warmup + steps):
            now += PERIOD
            pos = POS + 0.002 * np.sin(0.05 * k) + 1e-5 * rng.normal(size=POS.shape)
            msgs = [(m, mav_io.odometry_msg(pos[i], LEVEL, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), now, m))
                    for i, m in enumerate(MAVS)]
            msgs.append((mav_io.LOAD, mav_io.odometry_msg(pos.mean(0) - [0.0, 0.0, 0.9], LEVEL, (0.0, 0.0, 0.0),
                                                          (0.0, 0.0, 0.0), now, "load")))
            stage_s[0] = 0.0
            gcs.clear()
            c0, t0 = time.thread_time(), time.perf_counter()
            for key, msg in msgs:
                team.receive(key, parsed(mav_io.odometry, msg, key), now, now)
            t1 = time.perf_counter()
            n = sent(team.step(now), team_msgs)
            t2, c2 = time.perf_counter(), time.thread_time()
            team_stage, team_gc = stage_s[0], list(gcs)
            stage_s[0] = 0.0
            a0 = time.perf_counter()
            for m, pilot in alone.items():   # each MAV's own node: its own decode of every message, its own call
                for key, msg in msgs:
                    pilot.receive(key, parsed(mav_io.odometry, msg, key), now, now)
                n += sent([(m, pilot.step(now))], alone_msgs)
            a1 = time.perf_counter()
            if n != 2 * len(MAVS) or not all(p.dog.ok for p in [*team.pilots.values(), *alone.values()]):
                raise RuntimeError(f"step {k}: not every MAV flew the policy")
            if k >= warmup:
                rows.append((t2 - t0, t1 - t0, team_stage, c2 - c0, a1 - a0, stage_s[0], team_gc))
    finally:
        mav_io.certify = certify
        gc.callbacks.remove(on_gc)
    whole, receive, stages, cpu, three, three_stages = (np.array([r[i] for r in rows]) * 1e3 for i in range(6))
    slow = np.argsort(whole)[::-1][:max(1, steps // 100)]
    return {"whole": whole, "receive": receive, "stages": stages, "three": three, "three_stages": three_stages,
            "with_gc": sum(bool(r[6]) for r in rows),
            "slowest": [{"ms": round(float(whole[i]), 3), "cpu_ms": round(float(cpu[i]), 3),
                         "stages_ms": round(float(stages[i]), 3),
                         "gc": [(g, round(s * 1e3, 3)) for g, s in rows[i][6]]} for i in slow]}


def run(args: argparse.Namespace) -> list[Row]:
    m = measure(args.policy, args.steps, args.warmup)
    params = {"mavs": len(MAVS), "steps": args.steps}
    base = "each MAV's own pilot (3 per-MAV nodes' compute, summed)"
    out = []
    for q in (50, 99):
        p = lambda a: float(np.percentile(a, q))  # noqa: E731
        out += [Row(params, f"team step p{q}: 4 odometry in -> 3 set-points out", "ms", p(m["whole"]), p(m["three"]),
                    base, higher_is_better=False),
                Row(params, f"barrier stages p{q} (controllers/mav_barrier.py)", "ms", p(m["stages"]),
                    p(m["three_stages"]), base, higher_is_better=False),
                Row(params, f"outside the stages p{q}", "ms", p(m["whole"] - m["stages"]),
                    p(m["three"] - m["three_stages"]), base, higher_is_better=False)]
    out.append(Row(params, "receive p50: decode 4 odometry, hand to the pilots", "ms",
                   float(np.median(m["receive"])), None, "-", higher_is_better=False,
                   extra={"steps_with_gc": m["with_gc"], "slowest": m["slowest"]}))
    return out
