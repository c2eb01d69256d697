"""One robot's motion capture turns to garbage while the fleet drives; run as a script inside the loopback-only
namespace (test_faults.py).

One fleet container process (ros_nodes/container.py) hosts every robot's policy node and onboard safety node (the
nodes a robot runs, in one process to start cheaply); this process plays motion capture for four robots that drive
as their `cmd_vel` says (fault_scenario.Mocap, drive=True). robot_1 stands in robot_0's way; once every robot
drives, robot_1's poses turn non-finite for good. Observed: robot_1's commands from then on, the nodes' warnings
(robot_1's and the others'), whether the others drove on (robot_0's straight path runs through robot_1, 0.4 m
ahead: TRAVEL_M takes it round), and the smallest distance between collision centres over the run (true poses). It writes what it observed as JSON (argv[1]); the test
asserts on it.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

START = [(-0.35, 0.0, 0.0), (0.05, 0.0, math.pi / 2), (0.7, 0.6, math.pi), (0.7, -0.6, math.pi)]
GOALS = [(0.6, 0.0), (0.05, 0.8), (-0.7, 0.6), (-0.7, -0.6)]
TRAVEL_M = 0.3     # the others drive at least this far after the fault (robot_0 only round robot_1: it is in the way)


def main(out: Path, policy: str, workdir: Path) -> None:
    import numpy as np
    import rclpy

    from fault_scenario import RATE_HZ, ROBOTS, Mocap, last_zero, moving
    from marlstack.bench.barrier import pair_distances
    from marlstack.hardware.profile import load_profile
    from marlstack.ros_nodes import health
    from marlstack.ros_nodes.isolation import ros_env
    from marlstack.ros_nodes.plan import NodeSpec, arrange
    from marlstack.ros_nodes.supervisor import Supervisor

    common = {"profile": "gritsbot_x", "robots": ROBOTS, "rate_hz": RATE_HZ, "watchdog_periods": 3.0}
    specs = [NodeSpec("policy_node", "policy", f"/{r}", {**common, "robot": r, "scenario": "navigation",
                                                          "policy_path": policy}) for r in ROBOTS]
    specs += [NodeSpec("safety_node", "safety", f"/{r}", {**common, "mode": "onboard", "robot": r,
                                                          "form": "unicycle_walls"}) for r in ROBOTS]
    (box,) = arrange(specs, "fleet_container")
    sup = Supervisor(ros_env(), workdir / "logs")
    proc = sup.start(box)
    rclpy.init()
    node = Mocap(START, GOALS, drive=True)
    result: dict = {}
    try:
        t0 = time.monotonic()
        result["started"] = node.spin_for(90.0, lambda: all(moving(node, r, t0) for r in ROBOTS))
        t_fault, at_fault = time.monotonic(), node.poses.copy()
        node.fault = "nan_1"

        result["others_done"] = node.spin_for(40.0, lambda: all(
            np.hypot(*(node.poses[i, :2] - at_fault[i, :2])) > TRAVEL_M for i in (0, 2, 3)))
        node.spin_for(0.3)
        trace = np.array(node.trace)
        warnings: dict[str, set[str]] = {}
        for t, name, level, message, _ in node.diags:
            if t > t_fault and level == health.WARN:
                warnings.setdefault(name, set()).add(message)
        result.update({
            "robot_1_zero": last_zero(node, "robot_1", t_fault),
            "robot_1_moving_after": moving(node, "robot_1", t_fault + 0.5),
            "robot_1_drift_m": float(np.hypot(*(node.poses[1, :2] - at_fault[1, :2]))),
            "travel_m": {r: float(np.hypot(*(node.poses[i, :2] - at_fault[i, :2]))) for i, r in enumerate(ROBOTS)},
            "final": node.poses.tolist(), "after_fault_s": time.monotonic() - t_fault,
            "min_distance_m": float(pair_distances(load_profile("gritsbot_x"), trace).min()),
            "collision_distance_m": load_profile("gritsbot_x").collision_distance,
            "warnings": {k: sorted(v) for k, v in warnings.items()}})
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        result["exit_codes"] = sup.stop()
        sup.kill_all()
    result["log"] = proc.log.read_text(errors="replace")
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
