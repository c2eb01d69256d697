"""`python -m marlstack.bench.mav_team_step`: the MAV team policy node's step in one process, no DDS.

What `/load/odom` sample in → three set-points out costs inside ros_nodes/mav_team_policy_node.py, part by part,
on recorded-like inputs: a hovering 3-MAV team (the shipped tests/data/mav_team/cable3.onnx) given its four
Odometry messages every 10 ms, each decoded and handed to the team (`receive`: the pilots' stamp judgement and
bookkeeping), then the team's step (`step`: inputs, one batched onnxruntime call, each MAV's barrier stage, its
set-point message). The barrier stages' own time (`mav_io.certify`, controllers/mav_barrier.py) is timed apart.
Every step is checked to be the policy's (no hold). The slowest steps are listed with what ran in them (their
CPU time, this thread's: far below the wall time, the process waited for a core; the garbage collector's passes,
recorded through `gc.callbacks`), to say where a tail comes from.
"""
from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import numpy as np

from marlstack.ros_nodes import mav_io

POS = np.array([[0.6, -0.35, 1.9], [0.0, 0.7, 1.9], [-0.6, -0.35, 1.9]])
LEVEL = (1.0, 0.0, 0.0, 0.0)
PERIOD = 0.01


def team(policy: str) -> object:
    from marlstack.hardware.profile import load_profile
    from marlstack.policies.runtime import PolicyRuntime
    from marlstack.ros_nodes.mav_policy_node import parsed
    from marlstack.ros_nodes.mav_team_policy_node import MavTeam

    class Quiet:
        def info(self, text: str) -> None:
            pass

        warning = error = info

    args = {"profile": load_profile("mav_corl25"), "mavs": ["mav_0", "mav_1", "mav_2"], "period_s": PERIOD,
            "watchdog_s": 3 * PERIOD, "offset_s": 0.02, "safety": "onboard", "lost_after_s": 5.0, "fall_speed": 3.0,
            "descent_rate": 0.3}
    out = MavTeam(PolicyRuntime(policy, batch_size=1), policy, Quiet(), **args)
    out.goal(parsed(mav_io.goal_pose, mav_io.pose_msg([0.0, 0.0, 1.0], LEVEL, 1.0)), 1.0)
    return out


def measure(policy: str, steps: int, warmup: int) -> dict:
    from marlstack.ros_nodes.mav_policy_node import parsed

    t = team(policy)
    certify, stage_s = mav_io.certify, [0.0]

    def timed_certify(*a, **k):
        t0 = time.perf_counter()
        try:
            return certify(*a, **k)
        finally:
            stage_s[0] += time.perf_counter() - t0

    gcs: list[float] = []   # passes of the collector during the current step (s each)
    gc_start = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            gcs.append((info["generation"], time.perf_counter() - gc_start[0]))

    mav_io.certify = timed_certify
    gc.callbacks.append(on_gc)
    rng = np.random.default_rng(0)
    names = list(t.pilots)
    setpoints = dict.fromkeys(names)
    rows = []
    now = 2.0
    try:
        for k in range(warmup + steps):
            now += PERIOD
            pos = POS + 0.002 * np.sin(0.05 * k) + 1e-5 * rng.normal(size=POS.shape)
            msgs = [(m, mav_io.odometry_msg(pos[i], LEVEL, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), now, m))
                    for i, m in enumerate(names)]
            msgs.append((mav_io.LOAD, mav_io.odometry_msg(pos.mean(0) - [0.0, 0.0, 0.9], LEVEL, (0.0, 0.0, 0.0),
                                                          (0.0, 0.0, 0.0), now, "load")))
            stage_s[0] = 0.0
            gcs.clear()
            c0, t0 = time.thread_time(), time.perf_counter()
            for key, msg in msgs:
                t.receive(key, parsed(mav_io.odometry, msg, key), now, now)
            t1 = time.perf_counter()
            sent = 0
            for m, (cmd, _) in t.step(now):
                if cmd is not None:
                    setpoints[m] = mav_io.setpoint_msg(cmd, now, reuse=setpoints[m])
                    sent += 1
            t2, c2 = time.perf_counter(), time.thread_time()
            if sent != len(names) or not all(p.dog.ok for p in t.pilots.values()):
                raise RuntimeError(f"step {k}: not every MAV flew the policy: "
                                   f"{[p.dog.reason for p in t.pilots.values()]}")
            if k >= warmup:
                rows.append((t2 - t0, t1 - t0, t2 - t1, stage_s[0], c2 - c0, list(gcs)))
    finally:
        mav_io.certify = certify
        gc.callbacks.remove(on_gc)
    total, receive, step, stage, cpu = (np.array([r[i] for r in rows]) * 1e3 for i in range(5))
    q = lambda a, p: round(float(np.percentile(a, p)), 3)  # noqa: E731
    slow = np.argsort(total)[::-1][:max(1, steps // 100)]
    return {"steps": steps, **{f"{name}_ms": {"p50": q(a, 50), "p99": q(a, 99), "max": round(float(a.max()), 3)}
                               for name, a in [("whole", total), ("receive", receive), ("step", step),
                                               ("barrier_stages", stage), ("outside_stages", total - stage)]},
            "steps_with_gc": sum(bool(r[5]) for r in rows),
            "slowest": [{"ms": round(float(total[i]), 3), "cpu_ms": round(float(cpu[i]), 3),
                         "stages_ms": round(float(stage[i]), 3),
                         "gc": [(g, round(s * 1e3, 3)) for g, s in rows[i][5]]} for i in slow]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m marlstack.bench.mav_team_step", description=__doc__.split("\n")[0])
    parser.add_argument("--policy", default=str(Path(__file__).resolve().parent.parent / "tests" / "data" / "mav_team"
                                                / "cable3.onnx"), help="exported 3-MAV cable team (default: cable3)")
    parser.add_argument("--steps", type=int, default=2000, help="timed steps (default 2000)")
    parser.add_argument("--warmup", type=int, default=200, help="steps before timing (default 200)")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.policy, args.steps, args.warmup), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
