"""A fleet's logged streams as arrays: which robots, their poses, goals and commands over time.

Robots come from the deployment config when one is given (its order is the agent order the
policy was trained with, and its remaps say where each stream was published); otherwise from
the bag's `/<robot>/{pose,goal,task,cmd_vel_nominal,cmd_vel}` topics, sorted naturally (robot_2
before robot_10). Messages are read
with the same conversions the robots use (`ros_nodes.convert`); a message those reject is
skipped and counted, as the robot would have done.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from marlstack.ros_nodes import convert, topics
from marlstack.replay.bag import Bag, Record


class FleetError(Exception):
    """The bag lacks what a command needs; the text names what is missing."""


@dataclass
class Stream:
    """One robot's stream: log times (s) and values (rows)."""
    t: np.ndarray
    values: np.ndarray

    @classmethod
    def empty(cls, width: int) -> "Stream":
        return cls(np.zeros(0), np.zeros((0, width)))


@dataclass
class FleetLog:
    robots: list[str]
    topic_of: dict[tuple[str, str], str]  # (robot, topic kind) -> bag topic
    pose: dict[str, Stream]  # [x, y, yaw]
    goal: dict[str, Stream]  # [x, y]
    nominal: dict[str, Stream]  # [v, omega] from cmd_vel_nominal
    safe: dict[str, Stream]  # [v, omega] from cmd_vel
    rejected: dict[str, int] = field(default_factory=dict)  # topic -> messages the conversions rejected
    # (robot, kind) -> [(t, reason)] for rejected poses/goals: the node invalidates its input on those
    invalid: dict[tuple[str, str], list[tuple[float, str]]] = field(default_factory=dict)
    pose_stamp: dict[str, np.ndarray] = field(default_factory=dict)  # header stamps (s) of `pose`, row by row
    landmarks: Stream | None = None  # coverage: `/landmarks`, flat [x0, y0, x1, y1, ...]; None if not in the bag
    # rware: each robot's `task` ([load, then x, y, waiting per shelf]); event-driven, held until the next one
    task: dict[str, Stream] = field(default_factory=dict)

    def unlogged_poses(self) -> list[tuple[str, float]]:
        """(robot, log time) of poses the recorder missed: a header stamp every other robot's pose
        carries (one motion-capture frame / sim step) but this robot's stream lacks, within its span."""
        seen: dict[float, list[float]] = {}
        for r in self.robots:
            for stamp, t in zip(self.pose_stamp[r], self.pose[r].t):
                seen.setdefault(round(stamp, 6), []).append(t)
        out = []
        for r in self.robots:
            have, st = {round(x, 6) for x in self.pose_stamp[r]}, self.pose_stamp[r]
            if len(st) == 0:
                continue
            for stamp, times in seen.items():
                if st.min() < stamp < st.max() and stamp not in have and len(times) == len(self.robots) - 1:
                    out.append((r, float(np.median(times))))
        return sorted(out, key=lambda x: x[1])

    @property
    def t0(self) -> float:
        starts = [s.t[0] for s in self.pose.values() if len(s.t)]
        return min(starts) if starts else 0.0


# per-robot streams and their widths (rware's task: as many numbers as its messages hold)
KINDS = {topics.POSE.name: 3, topics.GOAL.name: 2, topics.CMD_VEL_NOMINAL.name: 2, topics.CMD_VEL.name: 2,
         topics.TASK.name: 0}


def _natural(name: str) -> list[Any]:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", name)]


def fleet_topics(bag_types: dict[str, str], config: Any | None) -> tuple[list[str], dict[tuple[str, str], str]]:
    """Robots and where each of their streams lives in the bag."""
    if config is not None:
        from marlstack.ros_nodes.plan import robot_remaps  # the nodes' own remap rule (relative names live in the namespace)
        robots, remaps = list(config.robot_names), robot_remaps(config)
    else:
        robots = sorted({path.split("/")[1] for path in bag_types
                         if (t := topics.topic_for_path(path)) is not None and t.name in KINDS}, key=_natural)
        remaps = {}
    paths = {(r, kind): topics.BY_NAME[kind].path(r) for r in robots for kind in KINDS}
    return robots, {key: remaps.get(path, path) for key, path in paths.items()}


def load_config(path: str | Path | None) -> Any | None:
    if path is None:
        return None
    from marlstack.ros_nodes.plan import PlanError, load_deployment
    try:
        return load_deployment(path)
    except PlanError as exc:
        raise FleetError(str(exc)) from None


def read_fleet(bag: Bag, config: Any | None = None, need: tuple[str, ...] = (topics.POSE.name,)) -> FleetLog:
    """Decode the fleet's pose/goal/command streams; FleetError names missing topics in `need`."""
    # one pass for the topic list of a bag without metadata.yaml
    if not bag.types:
        for _ in bag.records():
            pass
    robots, where = fleet_topics(bag.types, config)
    if not robots:
        damage = f" ({'; '.join(bag.status.stops)})" if bag.status.stops else ""
        raise FleetError(f"{bag.path}: no robot topics (/<robot>/{topics.POSE.name} and the like) in this bag; "
                         f"topics found: {', '.join(sorted(bag.types)) or 'none'}{damage}")
    missing = sorted(where[(r, k)] for r in robots for k in need if where[(r, k)] not in bag.types)
    if missing:
        raise FleetError(f"{bag.path}: missing topic(s) {', '.join(missing)} needed here "
                         f"(topics found: {', '.join(sorted(bag.types))}; "
                         f"{'check the remaps in' if config else 'if they were remapped, pass'} --config)")
    back = {topic: key for key, topic in where.items()}
    shared = topics.LANDMARKS.path()
    if shared in bag.types:
        back[shared] = ("", topics.LANDMARKS.name)
    parts: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {key: [] for key in back.values()}
    rejected: dict[str, int] = {}
    invalid: dict[tuple[str, str], list[tuple[int, float, str]]] = {}
    for topic, groups in bag.payloads(back).items():
        key = back[topic]
        for g in groups:
            if not bag.can_decode(g.msgtype):
                bag.warn_unknown(topic)
                continue
            values, ok = _convert_columns(bag.columns(g), key[1], len(g.t_ns))
            if ok.any():
                parts[key].append((g.seq[ok], g.t_ns[ok] / 1e9, values[ok]))
            for i in np.flatnonzero(~ok):  # the robots' own conversion, message by message, says why
                msg = bag.decode(Record(topic, g.msgtype, int(g.t_ns[i]), g.rows[i].tobytes()))
                if msg is None:
                    continue
                try:
                    row = _convert(msg, key[1])
                except convert.MessageError as exc:
                    rejected[topic] = rejected.get(topic, 0) + 1
                    invalid.setdefault(key, []).append((int(g.seq[i]), g.t_ns[i] / 1e9, str(exc)))
                    continue
                parts[key].append((g.seq[i:i + 1], g.t_ns[i:i + 1] / 1e9, np.array([row], float)))

    def stream(key: tuple[str, str], width: int) -> Stream:
        if not parts[key]:
            return Stream.empty(width)
        widths = [p[2].shape[1] for p in parts[key]]
        if len(set(widths)) > 1:  # a task message of another length: the node's adapter refuses it, so does replay
            usual = max(set(widths), key=widths.count)
            for seq, t, values in parts[key]:
                invalid.setdefault(key, []).extend(
                    (int(q), float(x), f"{key[1]}: {values.shape[1]} numbers where this stream's messages have "
                                       f"{usual}") for q, x in zip(seq, t) if values.shape[1] != usual)
            parts[key] = [p for p in parts[key] if p[2].shape[1] == usual]
        seq, t, values = (np.concatenate(c) for c in zip(*parts[key]))
        order = np.lexsort((seq, t))  # by log time, ties in storage order
        return Stream(t[order], values[order].reshape(len(t), -1))

    def streams(kind: str) -> dict[str, Stream]:
        return {r: stream((r, kind), KINDS[kind] + (kind == topics.POSE.name)) for r in robots}

    poses = streams(topics.POSE.name)  # [x, y, yaw, header stamp] until split below
    if bag.status.stops and not any(len(s.t) for s in poses.values()):
        raise FleetError(f"{bag.path}: no pose could be read: {'; '.join(bag.status.stops)}")
    stamps = {r: s.values[:, 3] for r, s in poses.items()}
    poses = {r: Stream(s.t, s.values[:, :3]) for r, s in poses.items()}
    shared_key = ("", topics.LANDMARKS.name)
    landmarks = stream(shared_key, 2) if shared_key in parts else None
    task = streams(topics.TASK.name)
    reasons = {key: [(t, why) for _, t, why in sorted(rows)] for key, rows in invalid.items()}  # storage order
    return FleetLog(robots, where, poses, streams(topics.GOAL.name), streams(topics.CMD_VEL_NOMINAL.name),
                    streams(topics.CMD_VEL.name), rejected, reasons, stamps, landmarks, task)


def _convert_columns(cols: dict[str, np.ndarray] | None, kind: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """`_convert` on a batch at once: (values, ok). Rows not ok (a check failed, or the batch is not in
    columns or not of the expected type) go through `_convert` one by one, which rejects them with the
    robots' own reason; every accepted row equals `_convert`'s answer (tested)."""
    need = {topics.POSE.name: ("pose.position.x", "pose.position.y", "pose.orientation.x", "pose.orientation.y",
                               "pose.orientation.z", "pose.orientation.w", "header.stamp.sec", "header.stamp.nanosec"),
            topics.GOAL.name: ("pose.position.x", "pose.position.y")}.get(kind, ("linear.x", "angular.z"))
    if cols is None or kind in (topics.LANDMARKS.name, topics.TASK.name) or not all(k in cols for k in need):
        return np.zeros((n, 0)), np.zeros(n, bool)
    f = [cols[k].astype(float) for k in need]
    ok = np.all(np.isfinite(f[:6]), axis=0)
    if kind != topics.POSE.name:
        return np.stack(f, axis=1), ok
    px, py, x, y, z, w, sec, nanosec = f
    with np.errstate(invalid="ignore"):
        ok &= ~(np.abs(np.sqrt(x * x + y * y + z * z + w * w) - 1.0) > convert.QUATERNION_NORM_TOLERANCE)
    # convert.yaw_from_quaternion's arithmetic, with math.atan2 itself (numpy's arctan2 differs in the last bit)
    yaw = np.fromiter(map(math.atan2, (2.0 * (w * z + x * y)).tolist(), (1.0 - 2.0 * (y * y + z * z)).tolist()),
                      float, n)
    return np.stack([px, py, yaw, sec + nanosec * 1e-9], axis=1), ok


def _convert(msg: Any, kind: str) -> tuple[float, ...]:
    """Numbers from a decoded message with the robots' own conversions (MessageError if rejected)."""
    if kind == topics.POSE.name:
        return convert.pose_from_msg(msg)  # x, y, yaw, stamp
    if kind == topics.GOAL.name:
        return convert.goal_from_msg(msg)
    if kind == topics.LANDMARKS.name:
        return tuple(v for point in convert.points_from_msg(msg) for v in point)
    if kind == topics.TASK.name:
        return tuple(convert.numbers_from_msg(msg, kind))
    return convert.twist_to_cmd(msg)


def held(stream: Stream, t: np.ndarray) -> np.ndarray:
    """Sample-and-hold: the latest value logged at or before each time (NaN before the first)."""
    idx = np.searchsorted(stream.t, t, side="right") - 1
    out = np.full((len(t), stream.values.shape[1]), np.nan)
    ok = idx >= 0
    out[ok] = stream.values[idx[ok]]
    return out
