"""A fleet's logged streams as arrays: which robots, their poses, goals and commands over time.

Robots come from the deployment config when one is given (its order is the agent order the
policy was trained with, and its remaps say where each stream was published); otherwise from
the bag's `/<robot>/{pose,goal,cmd_vel_nominal,cmd_vel}` topics, sorted naturally (robot_2
before robot_10). Messages are read
with the same conversions the robots use (`ros_nodes.convert`); a message those reject is
skipped and counted, as the robot would have done.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ros_nodes import convert, topics
from replay.bag import Bag


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


KINDS = {topics.POSE.name: 3, topics.GOAL.name: 2, topics.CMD_VEL_NOMINAL.name: 2, topics.CMD_VEL.name: 2}


def _natural(name: str) -> list[Any]:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", name)]


def fleet_topics(bag_types: dict[str, str], config: Any | None) -> tuple[list[str], dict[tuple[str, str], str]]:
    """Robots and where each of their streams lives in the bag."""
    if config is not None:
        from ros_nodes.plan import robot_remaps  # the nodes' own remap rule (relative names live in the namespace)
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
    from ros_nodes.plan import PlanError, load_deployment
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
        raise FleetError(f"{bag.path}: no robot topics (/<robot>/{topics.POSE.name} and the like) in this bag; "
                         f"topics found: {', '.join(sorted(bag.types)) or 'none'}")
    missing = sorted(where[(r, k)] for r in robots for k in need if where[(r, k)] not in bag.types)
    if missing:
        raise FleetError(f"{bag.path}: missing topic(s) {', '.join(missing)} needed here "
                         f"(topics found: {', '.join(sorted(bag.types))}; "
                         f"{'check the remaps in' if config else 'if they were remapped, pass'} --config)")
    back = {topic: key for key, topic in where.items()}
    shared = topics.LANDMARKS.path()
    if shared in bag.types:
        back[shared] = ("", topics.LANDMARKS.name)
    rows: dict[tuple[str, str], list[tuple[float, tuple[float, ...]]]] = {key: [] for key in back.values()}
    rejected: dict[str, int] = {}
    invalid: dict[tuple[str, str], list[tuple[float, str]]] = {}
    for rec in bag.records(back):
        msg = bag.decode(rec)
        if msg is None:
            continue
        try:
            values = _convert(msg, back[rec.topic][1])
        except convert.MessageError as exc:
            rejected[rec.topic] = rejected.get(rec.topic, 0) + 1
            invalid.setdefault(back[rec.topic], []).append((rec.t_ns / 1e9, str(exc)))
            continue
        rows[back[rec.topic]].append((rec.t_ns / 1e9, values))

    def stream(key: tuple[str, str], width: int) -> Stream:
        data = sorted(rows[key], key=lambda x: x[0])
        return (Stream(np.array([d[0] for d in data]), np.array([d[1] for d in data], dtype=float))
                if data else Stream.empty(width))

    def streams(kind: str) -> dict[str, Stream]:
        return {r: stream((r, kind), KINDS[kind] + (kind == topics.POSE.name)) for r in robots}

    poses = streams(topics.POSE.name)  # [x, y, yaw, header stamp] until split below
    stamps = {r: s.values[:, 3] for r, s in poses.items()}
    poses = {r: Stream(s.t, s.values[:, :3]) for r, s in poses.items()}
    shared_key = ("", topics.LANDMARKS.name)
    landmarks = stream(shared_key, 2) if shared_key in rows else None
    return FleetLog(robots, where, poses, streams(topics.GOAL.name), streams(topics.CMD_VEL_NOMINAL.name),
                    streams(topics.CMD_VEL.name), rejected, invalid, stamps, landmarks)


def _convert(msg: Any, kind: str) -> tuple[float, ...]:
    """Numbers from a decoded message with the robots' own conversions (MessageError if rejected)."""
    if kind == topics.POSE.name:
        return convert.pose_from_msg(msg)  # x, y, yaw, stamp
    if kind == topics.GOAL.name:
        return convert.goal_from_msg(msg)
    if kind == topics.LANDMARKS.name:
        return tuple(v for point in convert.points_from_msg(msg) for v in point)
    return convert.twist_to_cmd(msg)


def held(stream: Stream, t: np.ndarray) -> np.ndarray:
    """Sample-and-hold: the latest value logged at or before each time (NaN before the first)."""
    idx = np.searchsorted(stream.t, t, side="right") - 1
    out = np.full((len(t), stream.values.shape[1]), np.nan)
    ok = idx >= 0
    out[ok] = stream.values[idx[ok]]
    return out
