"""The policy node's input health, driven message by message; run as a script inside the loopback-only
namespace (see test_safety_faults.py). argv: output JSON, policy.onnx.

The node is built as in deployment (make_node, real rclpy, real onnxruntime) and its subscription
callbacks are called directly with real messages, so the test decides every stamp and value:

1. poses 85 ms late (within the 119 ms age window), then one on time: the stamp jumped ahead of the time
   between arrivals, so that sample stops the robot; the next one on time is accepted;
2. the robot is told to drive (its cmd_vel) while its pose keeps the same values with fresh stamps:
   after 1 s the source is frozen and the robot stops; a changed pose clears it.
"""
from __future__ import annotations

import json
import math
import sys
import time

import rclpy

from marlstack.ros_nodes import convert
from marlstack.ros_nodes.policy_node import make_node

ROBOTS = ["robot_0", "robot_1", "robot_2", "robot_3"]
POSES = [(-1.0, 0.5, 0.0), (-1.0, -0.5, 0.0), (1.0, 0.5, math.pi), (1.0, -0.5, math.pi)]
PERIOD = 0.033


def main(out: str, policy: str) -> None:
    rclpy.init(args=["--ros-args", "-p", "robot:=robot_0", "-p", f"robots:=[{', '.join(ROBOTS)}]",
                     "-p", f"policy_path:={policy}"])
    node = make_node()
    node._on_task(convert.pose_to_msg(0.5, 0.5, 0.0, time.time()))
    pose_cbs = {r: node._pose_cb(r) for r in ROBOTS}
    seen: dict[str, object] = {}

    def tick(late_s: float = 0.0, dx: float = 0.0, drive: bool = False) -> str | None:
        """One control period: every pose (own last: it steps the node), optionally the robot driving."""
        time.sleep(PERIOD)
        if drive:
            node._on_cmd_vel(convert.cmd_to_twist(0.1, 0.0))
        for r, (x, y, yaw) in sorted(zip(ROBOTS, POSES), key=lambda p: p[0] == "robot_0"):
            # stamped as it is handed over, so a slow callback before it does not age it
            pose_cbs[r](convert.pose_to_msg(x + (dx if r == "robot_0" else 0.0), y, yaw, time.time() - late_s))
        return node.dog.reason

    for _ in range(5):
        seen["late_within_window"] = tick(late_s=0.085)
    seen["jump"] = tick()
    seen["after_jump"] = tick()
    t0, frozen_after = time.monotonic(), None
    while time.monotonic() - t0 < 4.0 and frozen_after is None:
        reason = tick(drive=True)
        if reason is not None:
            seen["frozen"], frozen_after = reason, time.monotonic() - t0
    seen["frozen_after_s"] = frozen_after
    seen["still_frozen_when_stopped"] = tick()
    seen["moved"] = tick(dx=0.001)
    seen["stamp_jumps"] = node.stamps.jumps
    seen["stop_reasons"] = node.dog.stop_reasons
    node.destroy_node()
    rclpy.shutdown()
    with open(out, "w") as f:
        json.dump(seen, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
