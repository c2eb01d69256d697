"""`marlstack bench ros`: sensor-to-command latency over ROS 2, against a bare rclpy ping-pong.

Ours: a SITL fleet (`marlstack sitl`, fleet-mode safety by default) where the sim node stamps
each robot's pose as it publishes it and measures when that robot's `cmd_vel` comes back, after
the policy node (onnxruntime) and the safety node (barrier QP), three DDS hops. Each arrangement
(`--arrangement`: every node its own process; the policy and safety nodes in one fleet container,
ros_nodes/container.py; or one fleet policy node for every robot with one batched ONNX call per tick,
ros_nodes/fleet_policy_node.py) runs in the same run, one after the other. Baseline, in the same run
and namespace: two bare rclpy processes, one publishing a PoseStamped at the same rate and timing the
Twist the other sends back (two hops, no work). Both use the same QoS (best effort, depth 1). Also
reported: each node's CPU share while the fleet runs. Policy: the scripted go-to-goal controller
exported like a trained one. `--runs K` repeats everything (a fresh baseline, then each case) and
reports the median with every run. Goal (issue 6): p50 <= 2 ms and p99 <= 5 ms at 10 robots.
`ros2 launch` and `marlstack sitl` start one policy process per robot unless the config says otherwise
(each latency row says which launcher uses its arrangement in `used_by`).

The MAV chain (`--mavs`, issue 13): a SITL team (`launch/cable3.yaml`, holding the load at its start):
the MAV sim node stamps `/load/odom` and times each MAV's first `setpoint` answering that stamp,
through the MAV policy nodes (onnxruntime, then the barrier certificate's output stage; an untrained
residual cable policy, so the classical controller in the graph flies); also the achieved sim-loop and
set-point rates, the policy node's own time per step and CPU per node. `--runs K` repeats each case
(a fresh team and a fresh baseline at the chain's 100 Hz each time) and reports the median with every run.
Each arrangement of the team runs in the same run: one policy node per MAV (each MAV's computer), those in one
fleet container, or one team policy node for every MAV with one batched ONNX call per load sample
(ros_nodes/mav_team_policy_node.py, a ground computer). Goal: p50 <= 2 ms, p99 <= 5 ms for 3 MAVs. The rate controller node (the flight controller's loop where
it runs in a ROS node) is measured alone against a stand-in MAV: achieved rate and jitter of
`rotor_thrust`, and set-point -> first thrust command that uses it.

Every case (a baseline, a fleet or team in one arrangement, the rate controller) prints one progress line to
stderr when it ends, with its wall time; a case that has not ended `CASE_TIMEOUT_S` after its `--duration` is
stopped (SIGINT, then SIGKILL) and reported as timed out: its rows leave it out and count it in `timed_out`.
"""
from __future__ import annotations

import argparse
import bisect
import contextlib
import itertools
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import yaml

from marlstack.bench.report import Row
from marlstack.ros_nodes.plan import ARRANGEMENTS

GOAL_P50_MS, GOAL_P99_MS = 2.0, 5.0
USED_BY = {"process_per_node": "ros2 launch and sitl by default", "fleet_container": "sitl when configured",
           "fleet_policy": "ros2 launch and sitl when configured (a central computer)"}
CASE_TIMEOUT_S = 240.0  # a case's allowance beyond --duration: start-up (sitl's own limit 120 s), discovery, teardown
STOP_GRACE_S = 30.0     # after the timeout's SIGINT, how long a case may take to stop before SIGKILL
RATE_HZ = 1 / 0.033  # the fleet baseline's rate: gritsbot_x's control rate (the fleet takes it from the profile)
MAV_RATE_HZ = 100.0  # the MAV chain's (mav_corl25's policy rate)
RATE_PROFILE = "mav_corl25"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--robots", type=int, nargs="*", default=[4, 10], help="fleet sizes (default 4 10; none: skip)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of steady running per case (default 20)")
    parser.add_argument("--mavs", type=int, nargs="*", default=[3],
                        help="MAV team sizes for the MAV chain, /load/odom -> setpoint (default 3; none: skip)")
    parser.add_argument("--runs", type=int, default=1,
                        help="runs of every case, each run with its own baseline; rows give the median and every run "
                             "(default 1)")
    parser.add_argument("--arrangement", choices=ARRANGEMENTS, nargs="+", default=list(ARRANGEMENTS),
                        help="process arrangements to compare, in the same run (default: all three; for a MAV "
                             "team fleet_policy is one team policy node for every MAV)")
    parser.add_argument("--safety", choices=["fleet", "onboard"], default="fleet", help="safety mode (default fleet)")
    parser.add_argument("--executor", choices=["events", "single"], nargs="+", default=["events"],
                        help="rclpy executor(s) the nodes spin in (ros_nodes/runner.py); give both to compare "
                             "(default events)")


def fleet_config(n: int, policy: Path, safety: str, path: Path) -> Path:
    """n robots in two facing columns, each driving 0.8 m toward the middle (no crossings)."""
    rows = (n + 1) // 2
    ys = [0.8 - 1.6 * i / max(rows - 1, 1) for i in range(rows)]
    robots = []
    for i in range(n):
        side = -1 if i < rows else 1
        y = ys[i % rows]
        robots.append({"name": f"robot_{i}", "start": [1.2 * side, y, 0.0 if side < 0 else 3.1416],
                       "goal": [0.4 * side, y]})
    path.write_text(yaml.safe_dump({"name": f"bench_{n}", "profile": "gritsbot_x", "policy": str(policy),
                                    "safety": {"mode": safety}, "robots": robots}))
    return path


def team_config(n: int, policy: Path, path: Path) -> Path:
    """launch/cable3.yaml for n MAVs holding the load at its start for the whole run (no landing inside it)."""
    data = yaml.safe_load((Path(__file__).resolve().parent.parent / "launch" / "cable3.yaml").read_text())
    data.update(name=f"bench_cable_{n}", policy=str(policy), mavs=[f"mav_{i}" for i in range(n)],
                goals=[{"position": data["start"]}], goal_timeout_s=3600)
    data.pop("takeoff", None)   # steady hover from the start: the chain, not a take-off the firmware flies
    data["sim"] = {**(data.get("sim") or {}), "clock": "wall"}  # the chain's latency at 100 Hz of real time, not lockstep
    path.write_text(yaml.safe_dump(data))
    return path


def team_policy(n: int, path: Path) -> Path:
    """An untrained residual cable-team policy for n MAVs, exported like a trained one (the carrot flies)."""
    from marlstack.bench.policy import write_untrained_run
    from marlstack.policies.export import export
    run = write_untrained_run(path.with_suffix(""), {"scenario": "cable", "num_agents": n, "num_seeds": 1})
    export(run, path)
    return path


def team_rows(n: int, executor: str, arrangements: list[str], duration: float, tmp: Path, runs: int) -> list[Row]:
    """The MAV chain: load odometry -> every MAV's set-point latency, achieved rates, time in the node, CPU
    per node; `runs` times a ping-pong at the chain's rate, then a fresh team in each arrangement; the median
    and every run."""
    with case(f"an untrained {n}-MAV team policy exported (once per team size)"):
        policy = team_policy(n, tmp / f"cable_{n}.onnx")
    per_run: dict[str, list[dict[str, float]]] = {a: [] for a in arrangements}
    timed_out = dict.fromkeys(arrangements, 0)
    for k in range(runs):
        base = ping_pong(duration, MAV_RATE_HZ, f"run {k + 1}/{runs}: ping-pong at {MAV_RATE_HZ:g} Hz")
        for arrangement in per_run:
            report = run_sitl(team_config(n, policy, tmp / f"team_{n}.yaml"), duration, executor, arrangement,
                              f"run {k + 1}/{runs}: {n} MAVs, {arrangement} ({executor})")
            if report is None:
                timed_out[arrangement] += 1
                continue
            lat, mavs = report["latency_ms"], report["robots"].values()
            ms = lambda key: statistics.mean(r["node_ms_mean"].get(key, math.nan) for r in mavs)  # noqa: E731
            per_run[arrangement].append({
                **latency_run(lat, base), "sim_rate": report["team"]["sim_rate_hz"],
                "setpoint_rate": statistics.mean(r["setpoint_rate_hz"] for r in mavs),
                "step_ms": ms("step_ms_mean"), "inference_ms": ms("inference_ms_mean"),
                **{f"cpu {k}": v for k, v in cpu_means(report).items()}})
    rows = []
    for arrangement, runs_of in per_run.items():
        params = {"mavs": n, "rate_hz": MAV_RATE_HZ, "executor": executor, "arrangement": arrangement, "runs": runs}
        rows += latency_rows(params, runs_of, "load odom->setpoint", f"rclpy ping-pong (2 processes, {MAV_RATE_HZ:g} Hz)",
                             timed_out[arrangement])
        if not runs_of:
            continue
        rows.append(Row(params, "sim node loop rate (achieved, median)", "Hz",
                        statistics.median(r["sim_rate"] for r in runs_of), MAV_RATE_HZ, "nominal"))
        rows.append(Row(params, "set-point rate per MAV (achieved, median)", "Hz",
                        statistics.median(r["setpoint_rate"] for r in runs_of), MAV_RATE_HZ, "nominal"))
        rows.append(median_row(params, runs_of, "policy node step: load sample in -> set-point out (in node, mean)",
                               "ms", "step_ms"))
        rows.append(median_row(params, runs_of, "policy inference (in node, mean)", "ms", "inference_ms"))
        rows += [median_row(params, runs_of, key, "% of a core", key) for key in cpu_keys(runs_of)]
    return rows


def latency_run(lat: dict, base: list[float]) -> dict[str, float]:
    """One run's latency percentiles (inf: the percentile is a late reply) beside its baseline's."""
    return {"p50": math.inf if lat["p50"] is None else lat["p50"], "p99": math.inf if lat["p99"] is None else lat["p99"],
            "samples": lat["count"], "late": lat.get("late", 0),
            "base_p50": quantile(base, 50) if len(base) > 1 else math.nan,   # none: the baseline timed out
            "base_p99": quantile(base, 99) if len(base) > 1 else math.nan}


def median_row(params: dict, per_run: list[dict[str, float]], metric: str, unit: str, key: str,
               base_key: str | None = None, base_name: str = "-", higher: bool = False, **extra) -> Row:
    """The median over runs of `key` (and of its baseline `base_key`), with every run's value."""
    ours = [r[key] for r in per_run if key in r]
    every = {"every_run": [round(v, 3) for v in ours]}
    base = [r[base_key] for r in per_run] if base_key else None
    if base:
        every["baseline_every_run"] = [round(v, 3) for v in base]
    return Row(params, metric, unit, statistics.median(ours), statistics.median(base) if base else None,
               base_name, higher_is_better=higher, extra={**extra, **every})


def latency_rows(params: dict, per_run: list[dict[str, float]], what: str, base_name: str,
                 timed_out: int = 0) -> list[Row]:
    """p50 and p99 (median of the runs that ended) against the baseline's, whether the goal is met, and how many
    runs timed out (every one: a row without a value saying so)."""
    if not per_run:
        return [Row(params, f"{what} p{q} (every run timed out)", "ms", math.nan, None, base_name,
                    higher_is_better=False, extra={"goal_ms": goal, "meets_goal": False, "timed_out": timed_out,
                                                   "used_by": USED_BY[params["arrangement"]]})
                for q, goal in ((50, GOAL_P50_MS), (99, GOAL_P99_MS))]
    return [median_row(params, per_run, f"{what} p{q} (median of runs)", "ms", f"p{q}", f"base_p{q}", base_name,
                       goal_ms=goal, meets_goal=statistics.median(r[f"p{q}"] for r in per_run) <= goal,
                       used_by=USED_BY[params["arrangement"]], timed_out=timed_out,
                       samples=[r["samples"] for r in per_run], late=[r["late"] for r in per_run])
            for q, goal in ((50, GOAL_P50_MS), (99, GOAL_P99_MS))]


def cpu_keys(per_run: list[dict[str, float]]) -> list[str]:
    return sorted({k for r in per_run for k in r if k.startswith("cpu ")})


def cpu_means(report: dict) -> dict[str, float]:
    """Each node kind's CPU share (mean over the nodes of that kind), % of a core."""
    by_kind: dict[str, list[float]] = {}
    for node, pct in report["cpu_percent"].items():
        by_kind.setdefault(node.rsplit("/", 1)[-1], []).append(pct)
    return {f"{kind} (mean of {len(pcts)})": statistics.mean(pcts) for kind, pcts in sorted(by_kind.items())}


def rate_controller_rows(duration: float, runs: int) -> list[Row]:
    """The rate controller node (mav_corl25, 400 Hz) against a stand-in MAV: achieved rate, jitter, set-point ->
    the first thrust command using it; CPU; `runs` times, the median and every run."""
    per_run = []
    params = {"node": "rate_controller", "profile": RATE_PROFILE, "runs": runs}
    for k in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "rate.json"
            with case(f"run {k + 1}/{runs}: rate controller") as said:
                proc = run_isolated_bench(["ratectl", str(duration), str(out), tmp], duration)
                if proc.returncode != 0 or not out.exists():
                    raise RuntimeError(f"rate controller bench failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
                per_run.append(json.loads(out.read_text()))
                said.append(f"{per_run[-1]['rate_hz']:.1f} Hz, set-point -> thrust p50 {per_run[-1]['latency_p50_ms']:.2f} ms")
    if not per_run:
        return [Row(params, "rotor_thrust rate (every run timed out)", "Hz", math.nan, None, "-",
                    extra={"timed_out": runs})]
    params["timed_out"] = runs - len(per_run)
    rows = []
    for key, metric, unit, base in (("rate_hz", "rotor_thrust rate (achieved)", "Hz", per_run[0]["nominal_hz"]),
                                    ("interval_p99_ms", "rotor_thrust interval p99 (jitter)", "ms",
                                     1e3 / per_run[0]["nominal_hz"]),
                                    ("latency_p50_ms", "setpoint -> first thrust using it p50", "ms", None),
                                    ("latency_p99_ms", "setpoint -> first thrust using it p99", "ms", None),
                                    ("cpu_percent", "cpu rate_controller", "% of a core", None)):
        values = [r[key] for r in per_run]
        rows.append(Row(params, metric, unit, statistics.median(values), base, "nominal" if base else "-",
                        higher_is_better=key == "rate_hz", extra={"every_run": values}))
    return rows


class CaseTimeout(RuntimeError):
    """A case did not end within its allowance; it was stopped."""


@contextlib.contextmanager
def case(label: str) -> Iterator[list[str]]:
    """One progress line on stderr when the case ends: `label`, what the body appended to the yielded list (its
    result in words) or that it timed out (CaseTimeout is swallowed: the caller sees nothing appended), its wall time."""
    said: list[str] = []
    t0 = time.monotonic()
    try:
        yield said
    except CaseTimeout as exc:
        said.append(f"TIMED OUT ({exc})")
    print(f"bench ros: {label}: {'; '.join(said) or 'done'} [{time.monotonic() - t0:.0f} s]", file=sys.stderr, flush=True)


def bounded(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """`argv` run to its end, output captured; past `timeout` s its process group gets SIGINT (its own clean stop),
    STOP_GRACE_S later SIGKILL, and CaseTimeout is raised."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for sig, grace in ((signal.SIGINT, STOP_GRACE_S), (signal.SIGKILL, None)):
            try:
                os.killpg(proc.pid, sig)
                proc.communicate(timeout=grace)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        raise CaseTimeout(f"no result {timeout:.0f} s after it began; stopped") from None
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def run_sitl(config: Path, duration: float, executor: str, arrangement: str, label: str) -> dict | None:
    """`marlstack sitl --json` of `config`; None when it timed out (said on stderr, as every case's end)."""
    from marlstack.ros_nodes.runner import EXECUTOR_ENV
    with case(label) as said:
        out = bounded([sys.executable, "-m", "marlstack", "sitl", "--config", str(config), "--json",
                       "--duration", str(duration), "--arrangement", arrangement],
                      {**os.environ, EXECUTOR_ENV: executor}, duration + CASE_TIMEOUT_S)
        if not out.stdout.strip():
            raise RuntimeError(f"marlstack sitl failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
        report = json.loads(out.stdout)
        if not report["ok"]:
            raise RuntimeError(f"marlstack sitl failed: {report['error']}")
        lat = report["latency_ms"]
        ms = lambda q: "inf" if lat[q] is None else f"{lat[q]:.2f}"  # noqa: E731 - None: beyond the late replies
        said.append(f"p50 {ms('p50')} ms, p99 {ms('p99')} ms ({lat['count']} samples, {lat.get('late', 0)} late)")
        return report
    return None


def run_isolated_bench(args: list[str], duration: float) -> subprocess.CompletedProcess:
    """`python -m marlstack.bench.ros ARGS...` in a loopback-only namespace, bounded (CaseTimeout)."""
    from marlstack.ros_nodes.isolation import run_isolated
    return run_isolated([sys.executable, "-m", "marlstack.bench.ros", *args], run=bounded,
                        timeout=duration + CASE_TIMEOUT_S)


def ping_pong(duration: float, rate_hz: float, label: str) -> list[float]:
    """Round-trip latencies (ms) of the bare two-process baseline at `rate_hz`, in a loopback-only namespace
    (none: it timed out)."""
    with tempfile.TemporaryDirectory() as tmp, case(label) as said:
        out = Path(tmp) / "rtt.json"
        proc = run_isolated_bench(["ping", str(duration), str(out), str(rate_hz)], duration)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"ping-pong baseline failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        rtts = json.loads(out.read_text())
        said.append(f"p50 {quantile(rtts, 50):.2f} ms, p99 {quantile(rtts, 99):.2f} ms")
        return rtts
    return []


def quantile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1]


def fleet_rows(n: int, executor: str, args: argparse.Namespace, bases: list[list[float]],
               reports: list[dict[tuple, dict]]) -> list[Row]:
    """One fleet size and executor, every arrangement: the median over runs and every run."""
    rows = []
    for arrangement in args.arrangement:
        per_run = []
        timed_out = sum(by_case[(n, executor, arrangement)] is None for by_case in reports)
        for base, by_case in zip(bases, reports):
            report = by_case[(n, executor, arrangement)]
            if report is None:
                continue
            run = latency_run(report["latency_ms"], base)
            for key in ("inference_ms_mean", "solve_ms_mean"):
                values = [r["node_ms_mean"][key] for r in report["robots"].values() if key in r["node_ms_mean"]]
                if values:
                    run[key] = statistics.mean(values)
            per_run.append({**run, **{f"cpu {k}": v for k, v in cpu_means(report).items()}})
        params = {"robots": n, "rate_hz": round(RATE_HZ, 1), "safety": args.safety, "executor": executor,
                  "arrangement": arrangement, "runs": args.runs}
        rows += latency_rows(params, per_run, "pose->cmd_vel", "rclpy ping-pong (2 processes)", timed_out)
        if not per_run:
            continue
        for key, label in (("inference_ms_mean", "policy inference (in node)"), ("solve_ms_mean", "barrier solve (in node)")):
            if any(key in r for r in per_run):
                rows.append(median_row(params, per_run, label, "ms", key))
        rows += [median_row(params, per_run, key, "% of a core", key) for key in cpu_keys(per_run)]
    return rows


def run(args: argparse.Namespace) -> list[Row]:
    from marlstack.ros_nodes.scripted_policy import export_scripted
    rows: list[Row] = []
    cases = list(itertools.product(args.robots, args.executor, args.arrangement))
    with tempfile.TemporaryDirectory(prefix="marlstack-bench-ros-") as tmp:
        bases, reports = [], []
        for k in range(args.runs if cases else 0):  # each run: its baseline, then every case
            bases.append(ping_pong(args.duration, RATE_HZ, f"run {k + 1}/{args.runs}: ping-pong at {RATE_HZ:.1f} Hz"))
            reports.append({})
            for n, executor, arrangement in cases:
                policy = Path(tmp) / f"policy_{n}.onnx"
                if not policy.exists():
                    export_scripted(policy, n)
                config = fleet_config(n, policy, args.safety, Path(tmp) / f"fleet_{n}.yaml")
                reports[-1][(n, executor, arrangement)] = run_sitl(
                    config, args.duration, executor, arrangement,
                    f"run {k + 1}/{args.runs}: {n} robots, {arrangement} ({executor})")
        for n, executor in itertools.product(args.robots, args.executor):
            rows += fleet_rows(n, executor, args, bases, reports)
        for n, executor in itertools.product(args.mavs, args.executor):
            rows += team_rows(n, executor, args.arrangement, args.duration, Path(tmp), args.runs)
        if args.mavs:
            rows += rate_controller_rows(args.duration, args.runs)
    return rows


# --- the baseline's two processes (`python -m marlstack.bench.ros ping DURATION OUT`) -------------------------

def _ping(duration: float, out: Path, rate_hz: float) -> None:
    import rclpy
    from rclpy.node import Node

    from marlstack.ros_nodes import convert, topics
    pong = subprocess.Popen([sys.executable, "-m", "marlstack.bench.ros", "pong"])
    rclpy.init()
    node = Node("ping")
    qos = topics.qos_profile("state")
    pub = node.create_publisher(topics.message_class(topics.POSE.type), "/bench/ping", qos)
    sent = {"t": None}
    rtts: list[float] = []

    def on_pong(msg) -> None:
        if sent["t"] is not None:
            rtts.append((time.perf_counter() - sent["t"]) * 1e3)
            sent["t"] = None

    node.create_subscription(topics.message_class(topics.CMD_VEL.type), "/bench/pong", on_pong, qos)

    def tick() -> None:
        msg = convert.pose_to_msg(0.0, 0.0, 0.0, time.time())
        sent["t"] = time.perf_counter()
        pub.publish(msg)

    node.create_timer(1.0 / rate_hz, tick)
    end = time.monotonic() + 3.0 + duration  # 3 s for discovery; only answered pings count
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.01)
    out.write_text(json.dumps(rtts))   # before the teardowns: a DDS teardown may hang (the case's timeout ends it)
    pong.terminate()
    try:
        pong.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pong.kill()
    node.destroy_node()
    rclpy.try_shutdown()


def _pong() -> None:
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.node import Node

    from marlstack.ros_nodes import convert, topics
    rclpy.init()
    node = Node("pong")
    qos = topics.qos_profile("state")
    pub = node.create_publisher(topics.message_class(topics.CMD_VEL.type), "/bench/pong", qos)
    node.create_subscription(topics.message_class(topics.POSE.type), "/bench/ping",
                             lambda msg: pub.publish(convert.cmd_to_twist(0.0, 0.0)), qos)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # stopped by the ping process


def _rate_controller(duration: float, out: Path, workdir: Path) -> None:
    """A stand-in MAV for the rate controller node: level, moving only vertically under the thrust it is sent,
    odom + IMU at 100 Hz, and a set-point at 100 Hz whose vertical acceleration alternates +-1 m/s^2, so the
    collective jumps by ~2 m N at the first thrust command that uses a new set-point."""
    import rclpy
    from geometry_msgs.msg import Transform, Twist
    from rclpy.node import Node
    from trajectory_msgs.msg import MultiDOFJointTrajectoryPoint

    from marlstack.hardware.profile import load_profile
    from marlstack.ros_nodes import topics
    from marlstack.ros_nodes.isolation import ros_env
    from marlstack.ros_nodes.plan import NodeSpec
    from marlstack.ros_nodes.supervisor import Supervisor
    mav, profile = "mav_0", load_profile(RATE_PROFILE)
    sup = Supervisor(ros_env(), workdir / "logs")
    sup.start(NodeSpec("rate_controller_node", "rate_controller", f"/{mav}", {"mav": mav, "profile": RATE_PROFILE}))
    rclpy.init()
    node = Node("stand_in")
    cls, qos = topics.message_class, topics.qos_profile("state")
    pubs = {k: node.create_publisher(cls(t.type), t.path(mav), qos)
            for k, t in (("odom", topics.ODOM), ("imu", topics.IMU), ("setpoint", topics.SETPOINT))}
    sent: list[tuple[float, int]] = []       # (perf_counter, sign of the set-point's vertical acceleration)
    thrust: list[tuple[float, float]] = []   # (perf_counter, total thrust)
    node.create_subscription(cls(topics.ROTOR_THRUST.type), topics.ROTOR_THRUST.path(mav),
                             lambda m: thrust.append((time.perf_counter(), sum(m.data))), qos)
    odom, imu, sp = cls(topics.ODOM.type)(), cls(topics.IMU.type)(), cls(topics.SETPOINT.type)()
    odom.pose.pose.orientation.w = 1.0
    acc, heading = Twist(), Transform()
    heading.rotation.w = 1.0
    sp.points = [MultiDOFJointTrajectoryPoint(transforms=[heading], velocities=[Twist()], accelerations=[acc])]

    height = {"z": 1.0, "vz": 0.0}

    def tick() -> None:
        if thrust:   # the vehicle answers the latest command (so the controller's load estimate stays sane)
            height["vz"] += (thrust[-1][1] / profile.quadrotor.mass - profile.gravity) / MAV_RATE_HZ
            height["z"] += height["vz"] / MAV_RATE_HZ
        odom.pose.pose.position.z, odom.twist.twist.linear.z = height["z"], height["vz"]
        now = node.get_clock().now().to_msg()
        for msg in (odom, imu, sp):
            msg.header.stamp = now
        sign = 1 if len(sent) % 2 == 0 else -1
        acc.linear.z = float(sign)
        pubs["odom"].publish(odom)
        pubs["imu"].publish(imu)
        sent.append((time.perf_counter(), sign))
        pubs["setpoint"].publish(sp)

    node.create_timer(1.0 / MAV_RATE_HZ, tick)
    cpu0 = None
    try:
        end = time.monotonic() + 60
        while len(thrust) < 100 and time.monotonic() < end:  # discovery, then a second of running
            rclpy.spin_once(node, timeout_sec=0.01)
        sent.clear(), thrust.clear()
        cpu0, t0 = sup.cpu_seconds(), time.perf_counter()
        end = time.monotonic() + duration
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.01)
        window = time.perf_counter() - t0
        cpu = sum(sup.cpu_seconds().values()) - sum(cpu0.values())
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        sup.stop()
        sup.kill_all()
    times = [t for t, _ in thrust]
    gaps = [b - a for a, b in zip(times, times[1:])]
    latencies, step = [], profile.quadrotor.mass * 1.0   # half the collective's jump between the two set-points
    for (t, sign), nxt in zip(sent, [t for t, _ in sent[1:]] + [math.inf]):
        k = bisect.bisect_right(times, t)   # thrust[k] is the first command after the set-point left
        if k == 0:
            continue
        latency = math.inf   # unanswered before the next set-point left
        for u, total in itertools.takewhile(lambda e: e[0] < nxt, itertools.islice(thrust, k, None)):
            if (total - thrust[k - 1][1]) * sign > step:
                latency = u - t
                break
        latencies.append(latency)
    ms = lambda xs, q: 1e3 * quantile(xs, q) if len(xs) > 1 else math.nan  # noqa: E731
    out.write_text(json.dumps({"nominal_hz": profile.control.physics_rate_hz, "rate_hz": len(thrust) / window,
                               "interval_p50_ms": ms(gaps, 50), "interval_p99_ms": ms(gaps, 99),
                               "latency_p50_ms": ms(latencies, 50), "latency_p99_ms": ms(latencies, 99),
                               "unanswered": sum(math.isinf(x) for x in latencies), "setpoints": len(latencies),
                               "cpu_percent": 100 * cpu / window}))


if __name__ == "__main__":
    if sys.argv[1] == "ping":
        _ping(float(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4]))
    elif sys.argv[1] == "ratectl":
        _rate_controller(float(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        _pong()
