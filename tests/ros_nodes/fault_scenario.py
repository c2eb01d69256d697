"""Fault injection over real DDS; run as a script inside the loopback-only namespace (see test_faults.py).

This process plays motion capture for four robots that stand still (poses at 30 Hz with 0.1 mm
noise, goals latched) and watches `cmd_vel` and `/diagnostics`, while real node processes run: the policy
nodes of robot_0 and robot_1, the fleet safety node and the recorder. Phases:

1. good poses until both robots move;
2. robot_0's pose is NaN, then good again; then its quaternion is zero (malformed), then good;
   robot_2's marker drops out for 0.8 s; robot_0's poses arrive 1 s late (by their stamps) for 0.8 s;
3. SIGKILL robot_0's policy node: when does robot_0's `cmd_vel` become zero?
4. SIGKILL the recorder: what is in the bag it leaves?

It writes what it observed as JSON (argv[1]); the test asserts on it.
"""
from __future__ import annotations

import json
import math
import signal
import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.node import Node

from marlstack.ros_nodes import convert, health, topics
from marlstack.ros_nodes.isolation import ros_env
from marlstack.ros_nodes.plan import NodeSpec
from marlstack.ros_nodes.supervisor import Supervisor

ROBOTS = ["robot_0", "robot_1", "robot_2", "robot_3"]
POSES = [(-1.0, 0.5, 0.0), (-1.0, -0.5, 0.0), (1.0, 0.5, math.pi), (1.0, -0.5, math.pi)]
GOALS = [(0.5, 0.5), (0.5, -0.5), (-0.5, 0.5), (-0.5, -0.5)]
RATE_HZ = 1 / 0.033


class Mocap(Node):
    """Motion capture for ROBOTS at `poses`, their goals latched, every robot's `cmd_vel` and `/diagnostics` recorded.
    `drive`: each robot moves as its latest `cmd_vel` says (unicycle kinematics, wall-clock time), its true poses
    kept in `trace`; else the robots stand still. `fault` = '<kind>_<robot index>' corrupts that robot's poses:
    nan, malformed (zero quaternion), lost (not sent), delay (stamped 1 s before it is sent)."""

    def __init__(self, poses=POSES, goals=GOALS, drive: bool = False) -> None:
        super().__init__("mocap")
        state = topics.qos_profile("state")
        self.pose_pubs = [self.create_publisher(topics.message_class(topics.POSE.type), topics.POSE.path(r), state)
                          for r in ROBOTS]
        for r, g in zip(ROBOTS, goals):
            pub = self.create_publisher(topics.message_class(topics.GOAL.type), topics.GOAL.path(r),
                                        topics.qos_profile(topics.GOAL.qos))
            pub.publish(convert.pose_to_msg(g[0], g[1], 0.0, time.time()))
            setattr(self, f"_goal_{r}", pub)  # keep the latched publisher alive
        self.cmds: dict[str, list[tuple[float, float, float]]] = {r: [] for r in ROBOTS}
        self.diags: list[tuple[float, str, int, str, dict]] = []
        for r in ROBOTS:
            self.create_subscription(topics.message_class(topics.CMD_VEL.type), topics.CMD_VEL.path(r),
                                     lambda m, r=r: self.cmds[r].append((time.monotonic(), m.linear.x, m.angular.z)), state)
        self.create_subscription(topics.message_class(topics.DIAGNOSTICS.type), topics.DIAGNOSTICS.path(), self._on_diag,
                                 topics.qos_profile(topics.DIAGNOSTICS.qos))
        self.noise = np.random.default_rng(0)
        self.fault: str | None = None
        self.poses, self.drive, self.trace = np.array(poses, dtype=float), drive, []
        self.published = 0
        self.publish_times: list[float] = []
        self.create_timer(1.0 / RATE_HZ, self._publish)

    def _on_diag(self, msg) -> None:
        for s in msg.status:
            self.diags.append((time.monotonic(), s.name, s.level[0], s.message, health.values_of(s)))

    def _move(self, now: float) -> None:
        dt = now - self.publish_times[-1] if self.publish_times else 0.0
        for i, r in enumerate(ROBOTS):
            v, w = self.cmds[r][-1][1:] if self.cmds[r] else (0.0, 0.0)
            x, y, th = self.poses[i]
            self.poses[i] = x + v * math.cos(th) * dt, y + v * math.sin(th) * dt, th + w * dt
        self.trace.append(self.poses.copy())

    def _publish(self) -> None:
        now = time.time()
        if self.drive:
            self._move(now)
        kind, _, who = (self.fault or "").partition("_")
        for i, pub in enumerate(self.pose_pubs):
            bad = kind if who == str(i) else None
            if bad == "lost":  # the marker drops out
                continue
            x, y, yaw = self.poses[i]
            noise = self.noise.normal(0.0, 1e-4, 2)  # mocap noise: an exactly repeated pose is a frozen source
            msg = convert.pose_to_msg(x + noise[0], y + noise[1], yaw, now - (1.0 if bad == "delay" else 0.0))
            if bad == "nan":
                msg.pose.position.x = math.nan
            elif bad == "malformed":
                msg.pose.orientation.z = msg.pose.orientation.w = 0.0
            pub.publish(msg)
        self.published += 1
        self.publish_times.append(now)  # wall clock, as the recorder stamps what it receives

    def spin_for(self, seconds: float, until=None) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self, timeout_sec=0.005)
            if until is not None and until():
                return True
        return until is None


def moving(node: Mocap, robot: str, since: float) -> bool:
    return any(t > since and abs(v) + abs(w) > 1e-6 for t, v, w in node.cmds[robot])


def last_zero(node: Mocap, robot: str, since: float) -> bool:
    recent = [c for c in node.cmds[robot] if c[0] > since]
    return bool(recent) and abs(recent[-1][1]) + abs(recent[-1][2]) == 0.0


def recorder_matched(node: Mocap) -> bool:
    """The recorder subscribes to robot_0's pose (beside 2 policies and the safety node) and cmd_vel (beside us)."""
    return node.pose_pubs[0].get_subscription_count() >= 4 and node.count_subscribers(topics.CMD_VEL.path(ROBOTS[0])) >= 2


def main(out: Path, policy: str, workdir: Path) -> None:
    env = ros_env()
    common = {"profile": "gritsbot_x", "robots": ROBOTS, "rate_hz": RATE_HZ, "watchdog_periods": 3.0}
    specs = [NodeSpec("policy_node", "policy", f"/{r}", {**common, "robot": r, "scenario": "navigation",
                                                          "policy_path": policy}) for r in ROBOTS[:2]]
    specs.append(NodeSpec("safety_node", "safety", "/", {**common, "mode": "fleet", "robot": "", "form": "unicycle_walls"}))
    bag = workdir / "killed_bag"
    specs.append(NodeSpec("recorder_node", "recorder", "/", {
        "output": str(bag), "topics": [topics.POSE.path(ROBOTS[0]), topics.CMD_VEL.path(ROBOTS[0])], "flush_period_s": 0.2}))
    sup = Supervisor(env, workdir / "logs")
    procs = {s.fqn: sup.start(s) for s in specs}
    rclpy.init()
    node = Mocap()
    result: dict = {}
    try:
        t0 = time.monotonic()
        # Started = both robots move and the recorder is matched on both of its topics (it starts
        # last and slowest: under load its subscriptions can come up after the robots move).
        result["started"] = node.spin_for(60.0, lambda: moving(node, "robot_0", t0) and moving(node, "robot_1", t0)
                                          and recorder_matched(node))
        result["startup_s"] = time.monotonic() - t0
        for fault in ("nan", "malformed"):
            t_fault = time.monotonic()
            node.fault = f"{fault}_0"
            node.spin_for(0.6)
            stopped = last_zero(node, "robot_0", t_fault)
            warn = [d for d in node.diags if d[0] > t_fault and d[1] == "/robot_0/policy" and d[2] == health.WARN]
            node.fault = None
            t_ok = time.monotonic()
            recovered = node.spin_for(3.0, lambda: moving(node, "robot_0", t_ok))
            ok_diag = node.spin_for(2.0, lambda: any(d[0] > t_ok and d[1] == "/robot_0/policy" and d[2] == health.OK
                                                     for d in node.diags))
            result[fault] = {"zero_command": stopped, "diagnostics": sorted({d[3] for d in warn}),
                             "recovered": recovered, "ok_diagnostic_after": ok_diag}
        # robot_2's marker lost for 0.8 s: only robot_2 is stopped, the others drive on around it;
        # robot_0's poses 1 s late (stamped 1 s before they are sent): robot_0 stops, robot_1 goes on
        for fault, victim in (("lost_2", None), ("delay_0", "robot_0")):
            t_fault = time.monotonic()
            node.fault = fault
            node.spin_for(0.8)   # judged from 0.4 s on: beyond the 119 ms age limit
            node.fault = None
            result[fault] = {"robot_0_moving": moving(node, "robot_0", t_fault + 0.4),
                             "robot_1_moving": moving(node, "robot_1", t_fault + 0.4),
                             "victim_zero": victim is None or last_zero(node, victim, t_fault),
                             "diagnostics": sorted({d[3] for d in node.diags if d[0] > t_fault and d[2] == health.WARN})}
            t_ok = time.monotonic()
            node.spin_for(3.0, lambda: moving(node, "robot_0", t_ok) and moving(node, "robot_1", t_ok))
        node.spin_for(0.5)
        t_kill = time.monotonic()
        procs["/robot_0/policy"].popen.send_signal(signal.SIGKILL)
        # wait for the stop (generously: a loaded machine delays every process), then watch it hold
        node.spin_for(10.0, lambda: any(c[0] > t_kill and abs(c[1]) + abs(c[2]) == 0.0 for c in node.cmds["robot_0"]))
        node.spin_for(1.0)
        after = [c for c in node.cmds["robot_0"] if c[0] > t_kill]
        first_zero = next((i for i, c in enumerate(after) if abs(c[1]) + abs(c[2]) == 0.0), None)
        result["kill"] = {"zero_after_s": None if first_zero is None else after[first_zero][0] - t_kill,
                          "moving_commands_after": first_zero,
                          "stays_zero": first_zero is not None and all(abs(c[1]) + abs(c[2]) == 0.0 for c in after[first_zero:]),
                          "robot_1_still_moving": moving(node, "robot_1", t_kill + 0.5)}
        t_rec_kill = time.time()
        procs["/recorder"].popen.send_signal(signal.SIGKILL)
        procs["/recorder"].popen.wait()
        result["recorder_kill"] = {"bag": str(bag), "killed_at": t_rec_kill, "pose_publish_times": node.publish_times}
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        sup.stop()
        sup.kill_all()
    result["exit_codes"] = {p.label: p.popen.returncode for p in sup.procs}
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
