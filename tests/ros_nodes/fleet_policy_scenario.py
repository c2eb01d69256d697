"""A fleet policy node with one robot's bad input; run as a script inside the loopback-only namespace (test_fleet_policy.py).

One fleet policy node process (ros_nodes/fleet_policy_node.py) commands four robots, its `cmd_vel_nominal` remapped to
`cmd_vel` (no safety node: what it publishes is what the robots get); this process plays motion capture for the four
standing robots and their goals (fault_scenario.Mocap) and watches every robot's commands and `/diagnostics`.
Once all four drive, for 0.8 s at once: robot_0's poses arrive 1 s late (by their stamps) and robot_1's goal is
non-finite. Observed: who stopped, who drove on, the node's per-robot diagnostics, recovery, and its log. It writes what it observed
as JSON (argv[1]); the test asserts on it.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

BATCHED = "for 4 robots at 30.303 Hz, one batched call per tick"


def main(out: Path, policy: str, workdir: Path) -> None:
    import rclpy

    from fault_scenario import GOALS, RATE_HZ, ROBOTS, Mocap, last_zero, moving
    from marlstack.ros_nodes import convert, health, topics
    from marlstack.ros_nodes.isolation import ros_env
    from marlstack.ros_nodes.plan import NodeSpec
    from marlstack.ros_nodes.supervisor import Supervisor

    spec = NodeSpec("fleet_policy_node", "fleet_policy", "/", {
        "profile": "gritsbot_x", "robots": ROBOTS, "rate_hz": RATE_HZ, "watchdog_periods": 3.0, "scenario": "navigation",
        "policy_path": policy}, {topics.CMD_VEL_NOMINAL.path(r): topics.CMD_VEL.path(r) for r in ROBOTS})
    sup = Supervisor(ros_env(), workdir / "logs")
    proc = sup.start(spec)
    rclpy.init()
    node = Mocap()
    result: dict = {}

    def diagnostics(since: float) -> dict[str, list[str]]:
        found: dict[str, set[str]] = {}
        for t, name, level, message, _ in node.diags:
            if t > since and level == health.WARN:
                found.setdefault(name, set()).add(message)
        return {k: sorted(v) for k, v in found.items()}

    try:
        t0 = time.monotonic()
        result["started"] = node.spin_for(60.0, lambda: all(moving(node, r, t0) for r in ROBOTS))
        # at once: robot_0's poses arrive 1 s late (stale every time), robot_1's goal is non-finite
        t_fault = time.monotonic()
        node.fault = "delay_0"
        node._goal_robot_1.publish(convert.pose_to_msg(math.nan, 0.0, 0.0, time.time()))
        node.spin_for(0.8)
        result["fault"] = {"moving": {r: moving(node, r, t_fault + 0.4) for r in ROBOTS},
                           "zero": {r: last_zero(node, r, t_fault) for r in ROBOTS},
                           "diagnostics": diagnostics(t_fault)}
        node.fault = None
        g = GOALS[1]
        node._goal_robot_1.publish(convert.pose_to_msg(g[0], g[1], 0.0, time.time()))
        t_ok = time.monotonic()
        result["recovered"] = node.spin_for(5.0, lambda: all(moving(node, r, t_ok) for r in ROBOTS))
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        result["exit_codes"] = sup.stop()
        sup.kill_all()
    result["log"] = proc.log.read_text(errors="replace")
    result["batched_log"] = BATCHED
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
