"""The MAV policy node's safety stage with the cable rows, driven message by message; run as a script inside the
loopback-only namespace (test_mav_policy_node.py). argv: output JSON, policy.onnx, work directory.

The node is built as in deployment (make_node: real rclpy, the shipped cable3 policy on onnxruntime, the
onboard stage) and its callbacks are called with real messages, so the test decides every stamp and value.
The team hovers around a still load, but mav_0 flies at 0.8 m/s towards mav_1's cable (0.196 m apart;
certified 0.15 m) while every MAV stays 0.86 m or more from the others, so only the cable rows can object:
1. every input fresh: the node's set-point and the policy's own command on the same inputs;
2. the same state with the load's odometry 45 ms old (the policy reads it: watchdog 100 ms; the stage's
   certified age is 30 ms): the cable rows are not claimed, the set-point is the policy's command again.
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np
import rclpy

from marlstack.policies.runtime import PolicyRuntime
from marlstack.ros_nodes import health, mav_io
from marlstack.ros_nodes.mav_policy_node import make_node

MAVS = ["mav_0", "mav_1", "mav_2"]
POS = [[0.859, -0.091, 1.936], [0.241, 0.503, 1.88], [-0.421, -0.189, 2.16]]
VEL = [[-0.738, -0.186, -0.247], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
LOAD = [0.0, 0.0, 1.0]
LEVEL = (1.0, 0.0, 0.0, 0.0)  # w x y z


def messages(stamp: float, load_age: float) -> tuple[dict[str, object], object]:
    odom = {m: mav_io.odometry_msg(POS[i], LEVEL, VEL[i], (0.0, 0.0, 0.0), stamp, m) for i, m in enumerate(MAVS)}
    return odom, mav_io.odometry_msg(LOAD, LEVEL, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), stamp - load_age, "load")


def main(out: str, policy: str) -> None:
    rclpy.init(args=["--ros-args", "-p", "mav:=mav_0", "-p", f"mavs:=[{', '.join(MAVS)}]", "-p", f"policy_path:={policy}",
                     "-p", "watchdog_periods:=10.0"])
    node = make_node()
    diags: list[dict[str, str]] = []
    node.diag.publish = lambda msg: diags.extend(health.values_of(s) for s in msg.status)  # what /diagnostics carries
    runtime = PolicyRuntime(policy, batch_size=1)
    limit = node.limit
    alone = mav_io.TeamInputs(runtime.spec["inputs"], MAVS, "mav_0", limit, np.inf)  # the policy without the node
    goal = mav_io.pose_msg([0.0, 0.0, 1.0], LEVEL, time.time())
    node._on_goal(goal)
    alone.put(mav_io.GOAL, mav_io.goal_pose(goal), 0.0)
    result = {}
    for name, load_age in (("fresh", 0.0), ("load_45ms_old", 0.045)):
        time.sleep(0.06)
        now = time.time()
        odom, load = messages(now, load_age)
        for m in MAVS:
            node._on_odom(m)(odom[m])
            alone.put(m, mav_io.odometry(odom[m]), now)
        alone.put(mav_io.LOAD, mav_io.odometry(load), now)
        node._on_load(load)   # steps the node: policy -> safety stage -> set-point
        sent = np.asarray(mav_io.setpoint_values(node.setpoint), float)
        policy_cmd = np.asarray(runtime.run(alone.inputs(now))["cmd"], float).reshape(-1)
        alone.latest.sent(np.concatenate([sent[:3], sent[3:5]]))
        node._publish_diag(now)
        result[name] = {"setpoint": [*sent[:3], *sent[3:5]], "policy": policy_cmd.tolist(), "hold": node.dog.reason,
                        "diagnostics": diags[-1]}
    node.destroy_node()
    rclpy.shutdown()
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
