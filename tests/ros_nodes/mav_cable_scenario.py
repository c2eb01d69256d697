"""The MAV policy node's safety stage with the cable rows, driven message by message; run as a script inside the
loopback-only namespace (test_mav_policy_node.py). argv: output JSON, policy.onnx, work directory.

The node is built as in deployment (make_node: real rclpy, the shipped cable3 policy on onnxruntime, the
onboard stage) and its callbacks are called with real messages, so the test decides every stamp and value.
The team hovers around a still load, but mav_0 flies at 0.8 m/s towards mav_1's cable (0.196 m apart;
certified 0.15 m) while every MAV stays 0.86 m or more from the others, so only the cable rows can object:
1. every input fresh: the node's set-point and the policy's own command on the same inputs;
2. the same state with the load's odometry 45 ms old or more (the policy reads it: watchdog 300 ms here; the
   stage's certified age is 30 ms): the cable rows are not claimed, the set-point is the policy's command again;
3. the goal withdrawn, with the hold point at mav_1 (as if the fault had begun there): the position hold
   pulls mav_0 towards mav_1 and its cable, and goes through the stage too;
4. mav_1 falling at 4 m/s (lost: the team landing; two of three cannot hold the load level, so both carry) with
   mav_2 0.5 m below mav_0: the landing's descent goes through the separation rows of the MAVs still flying;
5. a new goal during the landing: the team lands on;
6. a new start on `/load/start` (the team at rest in hover, as SITL's from-rest goals put it) and its goal: a new
   episode, the policy flies again with an empty action history;
7. the same (latched) start heard again and another goal: no new episode, the history carries over.
Steps 5-7 compare the set-point's rate feed-forward (which the stage passes unchanged) with the policy's on the
same inputs with the action history empty and with the last set-point as history.
Every message handed to the node in steps 1-2 and every set-point it sent go into a bag (`node.mcap` in the work
directory, logged when handed over / sent), which the test gives to `replay eval`.
"""
from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

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
WATCHDOG_PERIODS = 30.0  # 300 ms for what the policy reads: a slow first step on a loaded machine must not trip it


SAMPLES = itertools.count(1)


def messages(stamp: float, load_age: float, pos=POS, vel=VEL) -> tuple[dict[str, object], object]:
    # each call's MAV positions 1 µm apart, as a sensor's noise keeps them: identical values for 1 s would be a
    # frozen source to the node (health.FrozenValues), which a loaded machine reached within the scenario
    noise = 1e-6 * next(SAMPLES)
    odom = {m: mav_io.odometry_msg(np.add(pos[i], noise), LEVEL, vel[i], (0.0, 0.0, 0.0), stamp, m)
            for i, m in enumerate(MAVS)}
    return odom, mav_io.odometry_msg(LOAD, LEVEL, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), stamp - load_age, "load")


class Log:
    """What a recorder beside the node would have written: (topic, ROS type, log time ns, message)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, int, object]] = []

    def __call__(self, topic: str, kind: str, msg: object) -> None:
        from rclpy.serialization import serialize_message
        self.records.append((topic, kind, time.time_ns(), serialize_message(msg)))

    def write(self, path: Path) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore
        store = get_typestore(Stores.ROS2_KILTED)
        with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
            conns = {}
            for topic, kind, t, raw in self.records:
                if topic not in conns:
                    conns[topic] = w.add_connection(topic, kind, typestore=store)
                w.write(conns[topic], t, raw)


def main(out: str, policy: str, workdir: str) -> None:
    rclpy.init(args=["--ros-args", "-p", "mav:=mav_0", "-p", f"mavs:=[{', '.join(MAVS)}]", "-p", f"policy_path:={policy}",
                     "-p", f"watchdog_periods:={WATCHDOG_PERIODS}"])
    node = make_node()
    diags: list[dict[str, str]] = []
    node.diag.publish = lambda msg: diags.extend(health.values_of(s) for s in msg.status)  # what /diagnostics carries
    runtime = PolicyRuntime(policy, batch_size=1)
    limit = node.limit
    alone = mav_io.TeamInputs(runtime.spec["inputs"], MAVS, "mav_0", limit, np.inf)  # the policy without the node
    log, odom_type, load_topic = Log(), "nav_msgs/msg/Odometry", "/load/odom"
    goal = mav_io.pose_msg([0.0, 0.0, 1.0], LEVEL, time.time())
    log("/load/goal", "geometry_msgs/msg/PoseStamped", goal)
    node._on_goal(goal)
    alone.put(mav_io.GOAL, mav_io.goal_pose(goal), 0.0)
    result, first = {}, time.time() + 0.06
    for name in ("fresh", "load_45ms_old"):
        # the second step 60 ms after the first one's actual time (later on a loaded machine): its load sample 15 ms
        # newer than the first step's, so it is not dropped as out of order (and the first step's odometry stays
        # at or before it for replay), and at least 45 ms old
        time.sleep(max(0.0, first + (0.0 if name == "fresh" else 0.06) - time.time()))
        now = time.time()
        load_stamp = None if name == "fresh" else first + 0.015
        odom, load = messages(now, 0.0 if load_stamp is None else now - load_stamp)
        first = now if name == "fresh" else first
        for m in MAVS:
            log(f"/{m}/odom", odom_type, odom[m])
            node._on_odom(m)(odom[m])
            alone.put(m, mav_io.odometry(odom[m]), now)
        alone.put(mav_io.LOAD, mav_io.odometry(load), now)
        log(load_topic, odom_type, load)
        node._on_load(load)   # steps the node: policy -> safety stage -> set-point
        log("/mav_0/setpoint", "trajectory_msgs/msg/MultiDOFJointTrajectory", node.setpoint)
        sent = np.asarray(mav_io.setpoint_values(node.setpoint), float)
        policy_cmd = np.asarray(runtime.run(alone.inputs(now))["cmd"], float).reshape(-1)
        alone.latest.sent(np.concatenate([sent[:3], sent[3:5]]))
        node._publish_diag(now)
        result[name] = {"setpoint": [*sent[:3], *sent[3:5]], "policy": policy_cmd.tolist(), "hold": node.dog.reason,
                        "diagnostics": diags[-1]}
    log.write(Path(workdir) / "node.mcap")
    below = [POS[0], POS[1], [POS[0][0], POS[0][1], POS[0][2] - 0.5]]
    falling = [VEL[0], [0.0, 0.0, -4.0], [0.0, 0.0, 0.0]]
    for name, pos, vel in (("hold", POS, VEL), ("landing", below, falling)):
        if name == "hold":
            node.inputs.invalidate(mav_io.GOAL, "goal withdrawn (test)")
            node.hold_at = np.asarray(POS[1])
        time.sleep(0.02)
        now = time.time()
        odom, load = messages(now, 0.0, pos, vel)
        for m in MAVS:
            node._on_odom(m)(odom[m])
        node._on_load(load)
        sent = np.asarray(mav_io.setpoint_values(node.setpoint), float)
        me = mav_io.odometry(odom["mav_0"])
        bare = (mav_io.hold_command(np.asarray(me[0:3]), np.asarray(me[7:10]), node.hold_at, limit) if name == "hold"
                else node.team_landing.command(node.inputs.latest.row("mav_0"), node.inputs.latest.row(mav_io.LOAD),
                                               node.descent_rate, limit))
        node._publish_diag(now)
        result[name] = {"setpoint": [*sent[:3], *sent[3:5]], "bare": bare.tolist(), "reason": node.dog.reason,
                        "diagnostics": diags[-1]}
    rest = [[p[0], p[1], POS[0][2]] for p in POS]   # the team level at mav_0's height, at rest
    zero = [[0.0, 0.0, 0.0]] * 3
    start = mav_io.pose_msg(LOAD, LEVEL, time.time())
    for name, goal_pos, heard in (("goal_while_landing", [0.3, 0.0, 1.2], None), ("new_start", [0.0, 0.3, 1.2], start),
                                  ("start_again", [-0.3, 0.0, 1.2], start)):
        if heard is not None:
            node._on_start(heard)
        goal = mav_io.pose_msg(goal_pos, LEVEL, time.time())
        node._on_goal(goal)
        alone.put(mav_io.GOAL, mav_io.goal_pose(goal), 0.0)
        last = np.asarray(mav_io.setpoint_values(node.setpoint), float)
        time.sleep(0.02)
        now = time.time()
        odom, load = messages(now, 0.0, rest, zero)
        for m in MAVS:
            node._on_odom(m)(odom[m])
            alone.put(m, mav_io.odometry(odom[m]), now)
        alone.put(mav_io.LOAD, mav_io.odometry(load), now)
        node._on_load(load)
        sent = np.asarray(mav_io.setpoint_values(node.setpoint), float)
        rates = {}
        for history in ("empty", "carried"):
            alone.latest.past = np.zeros_like(alone.latest.past)
            if history == "carried":
                alone.latest.sent(np.concatenate([last[:3], last[3:5]]))
            rates[history] = np.asarray(runtime.run(alone.inputs(now))["cmd"], float).reshape(-1)[3:].tolist()
        node._publish_diag(now)
        result[name] = {"rates": sent[3:5].tolist(), "policy_rates": rates, "reason": node.dog.reason,
                        "diagnostics": diags[-1]}
    node.destroy_node()
    rclpy.shutdown()
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
