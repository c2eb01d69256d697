"""Synthetic rosbag2 logs with answers known by hand, written with `rosbags` (as our recorder does).

`known_fleet()` is a 1-second, 10 Hz run of three robots on the gritsbot_x profile whose metrics
can be worked out on paper (see the comments at each number); `write_bag` writes any message
list as MCAP or sqlite3 storage.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

TS = get_typestore(Stores.ROS2_KILTED)
T = TS.types
POSE, TWIST, DIAG = "geometry_msgs/msg/PoseStamped", "geometry_msgs/msg/Twist", "diagnostic_msgs/msg/DiagnosticArray"
UNKNOWN_TYPE = "acme_msgs/msg/Secret"  # no definition anywhere: must be skipped with a warning
S = 1_000_000_000  # ns per s


def time_msg(t_s: float) -> Any:
    sec = math.floor(t_s)
    return T["builtin_interfaces/msg/Time"](sec=sec, nanosec=int(round((t_s - sec) * 1e9)))


def pose_msg(x: float, y: float, yaw: float, t_s: float) -> Any:
    header = T["std_msgs/msg/Header"](stamp=time_msg(t_s), frame_id="world")
    pos = T["geometry_msgs/msg/Point"](x=x, y=y, z=0.0)
    quat = T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))
    return T[POSE](header=header, pose=T["geometry_msgs/msg/Pose"](position=pos, orientation=quat))


def twist_msg(v: float, omega: float) -> Any:
    vec = T["geometry_msgs/msg/Vector3"]
    return T[TWIST](linear=vec(x=v, y=0.0, z=0.0), angular=vec(x=0.0, y=0.0, z=omega))


def diag_msg(t_s: float, name: str, message: str, values: dict[str, str]) -> Any:
    kv = [T["diagnostic_msgs/msg/KeyValue"](key=k, value=v) for k, v in values.items()]
    status = T["diagnostic_msgs/msg/DiagnosticStatus"](level=b"\x00"[0], name=name, message=message,
                                                       hardware_id="", values=kv)
    return T[DIAG](header=T["std_msgs/msg/Header"](stamp=time_msg(t_s), frame_id=""), status=[status])


def write_bag(path: Path, messages: list[tuple[str, str, int, Any]], storage: str = "mcap",
              chunk_every: int = 0, zstd_chunks: bool = False) -> Path:
    """Write (topic, msgtype, t_ns, message-or-raw-bytes) in list order; returns the bag dir.

    Messages of UNKNOWN_TYPE are raw bytes and get an empty definition, like a bag recorded
    with a custom package we do not have. `chunk_every` closes the MCAP chunk after that many
    messages, as the recorder's periodic flush does (rosbags alone closes chunks at 1 MiB);
    `zstd_chunks` compresses the MCAP chunks (rosbags' storage compression).
    """
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    w = Writer(path, version=9, storage_plugin=plugin)
    if zstd_chunks:
        w.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    with w:
        conns: dict[str, Any] = {}
        for i, (topic, msgtype, t_ns, msg) in enumerate(messages):
            if topic not in conns:
                conns[topic] = (w.add_connection(topic, msgtype, msgdef="", rihs01="RIHS01_" + "0" * 64)
                                if msgtype == UNKNOWN_TYPE else w.add_connection(topic, msgtype, typestore=TS))
            raw = msg if isinstance(msg, bytes) else TS.serialize_cdr(msg, msgtype)
            w.write(conns[topic], t_ns, raw)
            if chunk_every and storage == "mcap" and (i + 1) % chunk_every == 0:
                w.storage.close_chunk()
    return path


# ------------------------------------------------------------------ the known-answer run
# gritsbot_x: collision_distance 0.135, collision_offset 0.025, arena x in [-1.6, 1.6], y in [-1, 1].
ROBOTS = ["robot_0", "robot_1", "robot_2"]
DT = 0.1
STEPS = 11  # k = 0..10, t = 0.0 .. 1.0 s
LATENCY = 0.005  # s: every nominal command is logged 5 ms after its robot's pose
GOALS = {"robot_0": (0.5, 0.0), "robot_1": (-0.5, 0.1), "robot_2": (1.0, 0.8)}
POSE_GAP = {"robot_2": (3, 4)}  # robot_2's poses at k = 3, 4 were dropped: one gap, 2 missing


def pose_at(robot: str, k: int) -> tuple[float, float, float]:
    if robot == "robot_0":  # drives +x along y = 0
        return -0.5 + 0.05 * k, 0.0, 0.0
    if robot == "robot_1":  # drives -x along y = 0.1, facing robot_0
        return 0.5 - 0.05 * k, 0.1, math.pi
    return 1.52 + 0.05 * k, 0.8, 0.0  # robot_2 leaves the arena at k = 2 (x = 1.62 > 1.6)


def commands_at(robot: str, k: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """(nominal, safe) for a robot at step k."""
    if robot == "robot_2":  # 0.3 m/s needs 18.75 rad/s wheels > 12.5: the safety node sends it saturated
        return (0.3, 0.0), (0.2, 0.0)
    nominal = (0.1, 0.0)
    if robot == "robot_1" and k == 8:  # the safety node's stop (watchdog): not an intervention
        return nominal, (0.0, 0.0)
    safe = (0.0, 0.5) if robot == "robot_0" and k in (5, 6) else nominal  # the known intervention
    return nominal, safe


def known_fleet() -> list[tuple[str, str, int, Any]]:
    msgs: list[tuple[str, str, int, Any]] = []
    for r in ROBOTS:
        msgs.append((f"/{r}/goal", POSE, 0, pose_msg(*GOALS[r], 0.0, 0.0)))
    for k in range(STEPS):
        t = round(k * DT * S)
        for r in ROBOTS:
            if k in POSE_GAP.get(r, ()):
                continue
            msgs.append((f"/{r}/pose", POSE, t, pose_msg(*pose_at(r, k), k * DT)))
        for r in ROBOTS:
            (vn, wn), (vs, ws) = commands_at(r, k)
            tc = t + round(LATENCY * S)
            msgs.append((f"/{r}/cmd_vel_nominal", TWIST, tc, twist_msg(vn, wn)))
            msgs.append((f"/{r}/cmd_vel", TWIST, tc + 1000, twist_msg(vs, ws)))
        msgs.append(("/diagnostics", DIAG, t + 2000, diag_msg(k * DT, "safety", "ok", {"k": str(k)})))
    return msgs


# Hand-computed answers for known_fleet() (gritsbot_x rules):
# - min centre distance: robot_0 (0, 0) and robot_1 (0, 0.1) at t = 1.0 s -> 0.1 m.
# - collision centres of robot_0/1 are (x0 + 0.025, 0) and (x1 - 0.025, 0.1); their distance is
#   sqrt((0.95 - 0.1 k)^2 + 0.01) <= 0.135 exactly for k = 9 (0.1118) and k = 10 (0.1118): one event,
#   from t = 0.9 s; the other pairs are always > 1 m apart.
# - boundary: robot_2 is outside from k = 2 (x = 1.62) to the end: one exit, 0.8 s outside.
# - interventions: robot_0 at k = 5, 6: max(|0 - 0.1|, |0.5 - 0|) = 0.5 each; robot_2's cmd_vel is its
#   saturated nominal (0.2 m/s): no intervention. robot_1's (0, 0) at k = 8 is a safety stop.
# - saturation (wheel limit 12.5 rad/s): robot_2's nominal 0.3 m/s at all 11 steps; no cmd_vel.
# - latency pose -> nominal command: 5 ms everywhere.
# - goal error of robot_0 at the end: |(0, 0) - (0.5, 0)| = 0.5; robot_1: |(0, 0.1) - (-0.5, 0.1)| = 0.5;
#   robot_2: |(2.02, 0.8) - (1.0, 0.8)| = 1.02.
EXPECTED = {
    "min_distance": 0.1,
    "min_distance_pair": ("robot_0", "robot_1"),
    "min_distance_t": 1.0,
    "collision_events": 1,
    "collision_start_t": 0.9,
    "boundary_exits": {"robot_0": 0, "robot_1": 0, "robot_2": 1},
    "time_outside": {"robot_2": 0.8},
    "interventions": {"robot_0": 2, "robot_1": 0, "robot_2": 0},
    "safety_stops": {"robot_0": 0, "robot_1": 1, "robot_2": 0},
    "intervention_max": 0.5,
    "saturated_nominal": {"robot_0": 0, "robot_1": 0, "robot_2": 11},
    "saturated_cmd_vel": {"robot_0": 0, "robot_1": 0, "robot_2": 0},
    "latency": LATENCY,
    "final_goal_error": {"robot_0": 0.5, "robot_1": 0.5, "robot_2": 1.02},
}


# ------------------------------------------------------------------ a small policy artifact
def policy_onnx(path: Path, num_agents: int, seed: int, profile_name: str = "gritsbot_x", rate_hz: float = 10.0) -> Path:
    """A navigation-shaped ONNX policy with a valid marlstack spec, built by hand (no training, no JAX).

    cmd = limits * tanh(W [pose, goal, others...] + b): inputs and output as `marlstack export`
    writes them, so `PolicyRuntime` and `replay eval` treat it like a trained policy.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from marlstack.hardware.profile import load_profile, profile_hash
    from marlstack.policies.spec import SPEC_KEY, build_spec, dumps, tensor

    prof = load_profile(profile_name)
    n_other = num_agents - 1
    feat = 5 + 3 * n_other
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.normal(0, 1.0, (feat, 2)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.normal(0, 0.1, 2).astype(np.float32), "b"),
             numpy_helper.from_array(np.array([prof.max_linear_speed, prof.max_angular_speed], np.float32), "lim"),
             numpy_helper.from_array(np.array([-1, 3 * n_other], np.int64), "flat")]
    nodes = [helper.make_node("Reshape", ["others", "flat"], ["others_flat"]),
             helper.make_node("Concat", ["pose", "goal", "others_flat"], ["x"], axis=1),
             helper.make_node("MatMul", ["x", "W"], ["xw"]),
             helper.make_node("Add", ["xw", "b"], ["z"]),
             helper.make_node("Tanh", ["z"], ["t"]),
             helper.make_node("Mul", ["t", "lim"], ["cmd"])]
    graph = helper.make_graph(nodes, "policy", [
        helper.make_tensor_value_info("pose", TensorProto.FLOAT, ["B", 3]),
        helper.make_tensor_value_info("others", TensorProto.FLOAT, ["B", n_other, 3]),
        helper.make_tensor_value_info("goal", TensorProto.FLOAT, ["B", 2])],
        [helper.make_tensor_value_info("cmd", TensorProto.FLOAT, ["B", 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    agents = [f"agent_{i}" for i in range(num_agents)]
    spec = build_spec(
        scenario="navigation", vehicle_kind="ground", agent={"role": "shared", "agents": agents},
        inputs=[tensor("pose", [3], ["m", "m", "rad"], "world"),
                tensor("others", [n_other, 3], ["m", "m", "rad"], "world"),
                tensor("goal", [2], ["m", "m"], "world")],
        outputs=[tensor("cmd", [2], ["m/s", "rad/s"], "body")], recurrent=None, control_rate_hz=rate_hz,
        profile_name=prof.name, profile_hash=profile_hash(prof), training_run_id=f"fixture-{seed}",
        git_revision="none", created="2026-01-01T00:00:00Z", marlstack_version="0", exporter={"name": "fixture"})
    helper.set_model_props(model, {SPEC_KEY: dumps(spec)})
    onnx.save(model, str(path))
    return path


REORDER_STEP, MIXED_STEP = 10, 12
STARTS = {"robot_0": [-1.0, -0.5, 0.3], "robot_1": [1.0, 0.5, 2.5], "robot_2": [0.0, 0.7, -1.2],
          "robot_3": [-0.6, -0.8, 1.0]}  # the first as many as the policy has agents
FLOATS = "std_msgs/msg/Float64MultiArray"


def task_msg(numbers: list[float]) -> Any:
    """An RWARE `task` message as the sim node sends it: the numbers, no layout."""
    import numpy as np
    layout = T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
    return T[FLOATS](layout=layout, data=np.asarray(numbers, np.float64))


def policy_run(policy: Path, steps: int = 20, dt: float = DT,
               tasks: dict[int, dict[str, list[float]]] | None = None) -> list[tuple[str, str, int, Any]]:
    """A run logged the way the ROS stack logs it, with the policy node's logic done by hand.

    Each step the sim publishes every robot's pose in robot order; each robot's node computes
    as soon as its own pose arrives (so it sees the others' poses published before its own, and
    older ones after), and its command is logged 2 ms later. robot_1's pose is lost at step 5,
    so its node's timer steps instead, half a period later, on the state at that time. Two
    things the recorder's log order hides: at step 10 robot_2's command is logged before its
    own pose; at step 12 robot_1's pose is logged before robot_0's although robot_0's node only
    got it after computing (so no prefix of the log order is what that node saw).
    A navigation policy gets each robot's goal once at the start; an RWARE policy the `tasks`
    {step: {robot: numbers}} on `/<robot>/task`, sent just before that step's poses (as the sim node
    sends a pick or drop); step 0 must give every robot's first one.
    """
    import numpy as np

    from marlstack.policies.runtime import PolicyRuntime
    from marlstack.ros_nodes.adapters import InputError, make_adapter
    from marlstack.ros_nodes.convert import pose_from_msg

    rt = PolicyRuntime(policy)
    robots = list(STARTS)[:len(rt.spec["agent"]["agents"])]
    state = {r: list(STARTS[r]) for r in robots}
    adapters = {r: make_adapter(rt.spec["scenario"], robots, r, float("inf")) for r in robots}
    msgs: list[tuple[str, str, int, Any]] = []
    if tasks is None:
        goals = {"robot_0": (1.0, 0.5), "robot_1": (-1.0, -0.5), "robot_2": (0.2, -0.7)}
        for r in robots:
            adapters[r].update_goal(*goals[r])
            msgs.append((f"/{r}/goal", POSE, 0, pose_msg(*goals[r], 0.0, 0.0)))

    def command(r: str, t_s: float) -> tuple[float, float]:
        try:
            cmd = rt.run(adapters[r].inputs(t_s))["cmd"].astype(np.float64).reshape(-1)
        except InputError:  # e.g. the others' first poses not yet in: the node sends a stop
            return 0.0, 0.0
        return float(cmd[0]), float(cmd[1])

    for k in range(0 if tasks else 1, steps + 1):
        t = k * dt
        for r, numbers in (tasks or {}).get(k, {}).items():
            adapters[r].update_task(numbers)
            msgs.append((f"/{r}/task", FLOATS, round(max(t - 5e-4, 0.0) * S), task_msg(numbers)))
        if k == 0:
            continue
        cmds = {}
        for i, r in enumerate(robots):
            if r == "robot_1" and k == 5:
                continue
            tp = t - 1e-4 if (k, r) == (MIXED_STEP, "robot_1") else t + i * 1e-4
            msg = pose_msg(*state[r], tp)
            x, y, yaw, _ = pose_from_msg(msg)  # what the node sees: yaw wrapped by the quaternion
            for a in adapters.values():
                a.update_pose(r, x, y, yaw, round(tp * S) / S)
            msgs.append((f"/{r}/pose", POSE, round(tp * S), msg))
            cmds[r] = (tp + (-5e-4 if (k, r) == (REORDER_STEP, "robot_2") else 2e-3), command(r, round(tp * S) / S))
        if k == 5:  # robot_1's timer step
            tt = t + dt / 2
            cmds["robot_1"] = (tt, command("robot_1", round(tt * S) / S))
        for r, (tc, (v, w)) in sorted(cmds.items(), key=lambda kv: kv[1][0]):
            msgs.append((f"/{r}/cmd_vel_nominal", TWIST, round(tc * S), twist_msg(v, w)))
            x, y, yaw = state[r]
            state[r] = [x + v * math.cos(yaw) * dt, y + v * math.sin(yaw) * dt, yaw + w * dt]
    msgs.sort(key=lambda m: m[2])
    return msgs
