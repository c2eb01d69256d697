"""`marlstack bench ros`: sensor-to-command latency over ROS 2, against a bare rclpy ping-pong.

Ours: a SITL fleet (`marlstack sitl`, fleet-mode safety by default) where the sim node stamps
each robot's pose as it publishes it and measures when that robot's `cmd_vel` comes back, after
the policy node (onnxruntime) and the safety node (barrier QP), all separate processes, three DDS
hops. Baseline, in the same run and namespace: two bare rclpy processes, one publishing a
PoseStamped at the same rate and timing the Twist the other sends back (two hops, no work).
Both use the same QoS (best effort, depth 1). Also reported: each node's CPU share while the
fleet runs. Policy: the scripted go-to-goal controller exported like a trained one.
Goal (issue 6): p50 <= 2 ms and p99 <= 5 ms at 10 robots.

The MAV chain (`--mavs`, issue 13): a SITL team (`launch/cable3.yaml`, holding the load at its start):
the MAV sim node stamps `/load/odom` and times each MAV's first `setpoint` answering that stamp,
through the MAV policy nodes (onnxruntime; an untrained residual cable policy, so the classical
controller in the graph flies); also the achieved sim-loop and set-point rates and CPU per node.
Goal: p50 <= 2 ms, p99 <= 5 ms for 3 MAVs.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.report import Row

GOAL_P50_MS, GOAL_P99_MS = 2.0, 5.0
RATE_HZ = 1 / 0.033  # the baseline's rate: gritsbot_x's control rate (the fleet takes it from the profile)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--robots", type=int, nargs="*", default=[4, 10], help="fleet sizes (default 4 10; none: skip)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of steady running per case (default 20)")
    parser.add_argument("--mavs", type=int, nargs="*", default=[3],
                        help="MAV team sizes for the MAV chain, /load/odom -> setpoint (default 3; none: skip)")
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
    path.write_text(yaml.safe_dump(data))
    return path


def team_policy(n: int, path: Path) -> Path:
    """An untrained residual cable-team policy for n MAVs, exported like a trained one (the carrot flies)."""
    from bench.policy import write_untrained_run
    from policies.export import export
    run = write_untrained_run(path.with_suffix(""), {"scenario": "cable", "num_agents": n, "num_seeds": 1})
    export(run, path)
    return path


def team_rows(n: int, executor: str, duration: float, tmp: Path, b50: float, b99: float) -> list[Row]:
    """The MAV chain: load odometry -> every MAV's set-point latency, achieved rates, CPU per node."""
    report = run_sitl(team_config(n, team_policy(n, tmp / f"cable_{n}.onnx"), tmp / f"team_{n}.yaml"), duration,
                      executor)
    lat, params = report["latency_ms"], {"mavs": n, "rate_hz": 100.0, "executor": executor}
    rows = [Row(params, f"load odom->setpoint p{q}", "ms", math.inf if lat[f"p{q}"] is None else lat[f"p{q}"],
                base_q, "rclpy ping-pong (2 processes)", higher_is_better=False,
                extra={"goal_ms": goal, "samples": lat["count"]})
            for q, base_q, goal in ((50, b50, GOAL_P50_MS), (99, b99, GOAL_P99_MS))]
    rows.append(Row(params, "sim node loop rate (achieved)", "Hz", report["team"]["sim_rate_hz"], 100.0, "nominal"))
    rows.append(Row(params, "set-point rate per MAV (mean, achieved)", "Hz",
                    statistics.mean(r["setpoint_rate_hz"] for r in report["robots"].values()), 100.0, "nominal"))
    values = [r["node_ms_mean"]["inference_ms_mean"] for r in report["robots"].values()
              if "inference_ms_mean" in r["node_ms_mean"]]
    if values:
        rows.append(Row(params, "policy inference (in node)", "ms", statistics.mean(values), None, "-",
                        higher_is_better=False))
    return rows + cpu_rows(report, params)


def cpu_rows(report: dict, params: dict) -> list[Row]:
    by_kind: dict[str, list[float]] = {}
    for node, pct in report["cpu_percent"].items():
        by_kind.setdefault(node.rsplit("/", 1)[-1], []).append(pct)
    return [Row(params, f"cpu {kind} (mean of {len(pcts)})", "% of a core", statistics.mean(pcts), None, "-",
                higher_is_better=False) for kind, pcts in sorted(by_kind.items())]


def run_sitl(config: Path, duration: float, executor: str) -> dict:
    from ros_nodes.runner import EXECUTOR_ENV
    out = subprocess.run([sys.executable, "-m", "marlstack", "sitl", "--config", str(config), "--json",
                          "--duration", str(duration)], capture_output=True, text=True,
                         env={**os.environ, EXECUTOR_ENV: executor})
    if not out.stdout.strip():
        raise RuntimeError(f"marlstack sitl failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
    report = json.loads(out.stdout)
    if not report["ok"]:
        raise RuntimeError(f"marlstack sitl failed: {report['error']}")
    return report


def ping_pong(duration: float) -> list[float]:
    """Round-trip latencies (ms) of the bare two-process baseline, in a loopback-only namespace."""
    from ros_nodes.isolation import run_isolated
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rtt.json"
        proc = run_isolated([sys.executable, "-m", "bench.ros", "ping", str(duration), str(out)],
                            capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"ping-pong baseline failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        return json.loads(out.read_text())


def quantile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1]


def run(args: argparse.Namespace) -> list[Row]:
    from ros_nodes.scripted_policy import export_scripted
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="marlstack-bench-ros-") as tmp:
        base = ping_pong(args.duration)
        b50, b99 = quantile(base, 50), quantile(base, 99)
        for n, executor in itertools.product(args.robots, args.executor):
            policy = Path(tmp) / f"policy_{n}.onnx"
            if not policy.exists():
                export_scripted(policy, n)
            report = run_sitl(fleet_config(n, policy, args.safety, Path(tmp) / f"fleet_{n}.yaml"), args.duration,
                              executor)
            lat = report["latency_ms"]
            params = {"robots": n, "rate_hz": round(RATE_HZ, 1), "safety": args.safety, "executor": executor}
            for q, base_q, goal in ((50, b50, GOAL_P50_MS), (99, b99, GOAL_P99_MS)):
                ours = math.inf if lat[f"p{q}"] is None else lat[f"p{q}"]  # None: the percentile is a late reply
                rows.append(Row(params, f"pose->cmd_vel p{q}", "ms", ours, base_q, "rclpy ping-pong (2 processes)",
                                higher_is_better=False, extra={"goal_ms": goal, "meets_goal": ours <= goal,
                                                               "samples": lat["count"], "late": lat["late"]}))
            for key, label in (("inference_ms_mean", "policy inference (in node)"),
                               ("solve_ms_mean", "barrier solve (in node)")):
                values = [r["node_ms_mean"][key] for r in report["robots"].values() if key in r["node_ms_mean"]]
                if values:
                    rows.append(Row(params, label, "ms", statistics.mean(values), None, "-", higher_is_better=False))
            rows += cpu_rows(report, params)
        for n, executor in itertools.product(args.mavs, args.executor):
            rows += team_rows(n, executor, args.duration, Path(tmp), b50, b99)
    return rows


# --- the baseline's two processes (`python -m bench.ros ping DURATION OUT`) -------------------------

def _ping(duration: float, out: Path) -> None:
    import rclpy
    from rclpy.node import Node

    from ros_nodes import convert, topics
    pong = subprocess.Popen([sys.executable, "-m", "bench.ros", "pong"])
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

    node.create_timer(1.0 / RATE_HZ, tick)
    end = time.monotonic() + 3.0 + duration  # 3 s for discovery; only answered pings count
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.01)
    pong.terminate()
    pong.wait()
    node.destroy_node()
    rclpy.try_shutdown()
    out.write_text(json.dumps(rtts))


def _pong() -> None:
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.node import Node

    from ros_nodes import convert, topics
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


if __name__ == "__main__":
    if sys.argv[1] == "ping":
        _ping(float(sys.argv[2]), Path(sys.argv[3]))
    else:
        _pong()
