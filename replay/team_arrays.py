"""A MAV team's logged streams as arrays, read as columns: what `replay report` computes a team's report from.

Why: a long team bag holds hundreds of thousands of odometry samples and set-points, and decoding each into
a Python object (rosbags) to convert it with the nodes' own `mav_io` functions cost ~60 µs a message (47 CPU s
for 808,000). Here each topic's payloads come as numpy columns (`Bag.payloads` + `replay/cdr_columns.py`) and
`mav_io`'s conversions run on whole columns with the same arithmetic, so every number equals what
`replay.team.read_team` reads message by message (tested): the header stamp (else the log time), the
odometry (position, quaternion, world velocity = R · body twist, body rates), the goal pose, the set-point's
acceleration and rate feed-forward. The world velocity is the one product done per sample: numpy's 3x3 · 3
goes through BLAS, whose fused multiply-adds a whole-column product would not reproduce to the last bit.

A message the nodes would reject (NaN, a quaternion far from unit length, a set-point without its point) is
left out and counted, with `mav_io`'s own reason (the message-by-message read stops there with a traceback);
a batch without a fixed layout goes through `mav_io` message by message.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from marlstack.replay.bag import Bag, Payloads, Record
from marlstack.replay.fleet import FleetError
from marlstack.replay.team import TeamLog
from marlstack.ros_nodes import convert, mav_io, topics

STAMP = ("header.stamp.sec", "header.stamp.nanosec")
ODOM = tuple(f"pose.pose.{k}" for k in ("position.x", "position.y", "position.z", "orientation.x", "orientation.y",
                                         "orientation.z", "orientation.w")) + \
    tuple(f"twist.twist.{k}" for k in ("linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z"))
GOAL = tuple(f"pose.{k}" for k in ("position.x", "position.y", "position.z", "orientation.x", "orientation.y",
                                   "orientation.z", "orientation.w"))
SETPOINT = tuple(f"points.0.{k}" for k in ("accelerations.0.linear.x", "accelerations.0.linear.y",
                                           "accelerations.0.linear.z", "velocities.0.angular.x",
                                           "velocities.0.angular.y", "transforms.0.rotation.x",
                                           "transforms.0.rotation.y", "transforms.0.rotation.z",
                                           "transforms.0.rotation.w"))
CMD = 5  # a set-point's acceleration (3) and roll / pitch rate feed-forward, as replay.team compares them


@dataclass
class TeamArrays:
    """A MAV team's logged streams as numbers; rows of `mav_io.WIDTH` (position, quaternion x y z w, world
    velocity, body rates)."""
    mavs: list[str]
    load_stamps: np.ndarray                                     # (K,) sorted header stamps of /load/odom
    load: np.ndarray                                            # (K, WIDTH): the last logged sample of each stamp
    goal_stamps: np.ndarray                                     # (G,) header stamps (log time when unstamped)
    goals: np.ndarray                                           # (G, WIDTH) in log order
    goal_t: np.ndarray                                          # (G,) their log times
    odom: dict[str, tuple[np.ndarray, np.ndarray]]              # mav -> (stamps, rows), sorted by stamp then row
    setpoints: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # mav -> (log times, stamps, (n, CMD)), log order
    t0: float                                                   # the first log time of any of these streams
    start_stamps: np.ndarray = field(default_factory=lambda: np.zeros(0))  # sorted stamps of the new starts
    rejected: dict[str, int] = field(default_factory=dict)     # topic -> messages the nodes' conversions reject
    problems: list[str] = field(default_factory=list)          # one line per rejecting topic, with the first reason

    @classmethod
    def of(cls, log: TeamLog) -> "TeamArrays":
        """The arrays of a message-by-message read (`replay.team.read_team`): the bench's baseline, the tests'
        reference."""
        width = mav_io.WIDTH
        stamps = np.array(sorted(log.load), float)
        return cls(log.mavs, stamps, np.array([log.load[s] for s in stamps], float).reshape(-1, width),
                   np.array(log.goal_stamps, float), np.array(log.goals, float).reshape(-1, width),
                   np.array(log.goal_t, float),
                   {m: (np.array(log.odom[m][0], float), np.array(log.odom[m][1], float).reshape(-1, width))
                    for m in log.mavs},
                   {m: (np.array([t for t, _, _ in log.setpoints[m]], float),
                        np.array([s for _, s, _ in log.setpoints[m]], float),
                        np.array([c for _, _, c in log.setpoints[m]], float).reshape(-1, CMD)) for m in log.mavs},
                   log.t0, np.array(log.start_stamps, float))

    def log(self) -> TeamLog:
        """The same numbers in the lookup form `replay.team.evaluate_team` walks set-point by set-point."""
        return TeamLog(self.mavs, {float(s): tuple(r) for s, r in zip(self.load_stamps, self.load)},
                       self.goal_t.tolist(), [tuple(g) for g in self.goals], self.goal_stamps.tolist(),
                       {m: (st.tolist(), [tuple(r) for r in rows]) for m, (st, rows) in self.odom.items()},
                       {m: [(float(t), float(s), c) for t, s, c in zip(*self.setpoints[m])] for m in self.mavs},
                       self.t0, self.start_stamps.tolist())


def _stamps(cols: dict[str, np.ndarray], t_ns: np.ndarray) -> np.ndarray:
    """`mav_io.stamp_or` on columns: the header stamp in seconds, the log time where it is zero."""
    s = cols[STAMP[0]].astype(float) + cols[STAMP[1]].astype(float) * 1e-9
    return np.where(s > 0, s, t_ns * 1e-9)


def _unit(q: np.ndarray) -> np.ndarray:
    """`convert.check_quaternion` on (n, 4) columns x y z w: whether each is near unit length."""
    x, y, z, w = q.T
    return ~(np.abs(np.sqrt(x * x + y * y + z * z + w * w) - 1.0) > convert.QUATERNION_NORM_TOLERANCE)


def _odometry(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(f).all(axis=1)
    ok[ok] = _unit(f[ok, 3:7])
    rot = np.ascontiguousarray(np.moveaxis(mav_io.rotation(*f[ok, 3:7].T), -1, 0))  # BLAS takes contiguous ones
    vel = np.array([r @ v for r, v in zip(rot, f[ok, 7:10])]).reshape(-1, 3)  # per sample, as mav_io.odometry
    out = np.full_like(f, np.nan)
    out[ok] = np.concatenate([f[ok, :7], vel, f[ok, 10:13]], axis=1)
    return out, ok


def _goal(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(f).all(axis=1)
    ok[ok] = _unit(f[ok, 3:7])
    return np.concatenate([f, np.zeros((len(f), mav_io.WIDTH - 7))], axis=1), ok


def _setpoint(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(f).all(axis=1)
    ok[ok] = _unit(f[ok, 5:9])
    return f[:, :CMD], ok


def _setpoint_msg(msg: Any) -> tuple[float, ...]:
    v = mav_io.setpoint_values(msg)
    return v[:3] + v[3:5]


# per stream: the columns read, their conversion on columns, the node's own conversion of one message
KINDS: dict[str, tuple[tuple[str, ...], Callable, Callable[[Any], tuple[float, ...]]]] = {
    "odom": (ODOM, _odometry, mav_io.odometry),
    "goal": (GOAL, _goal, mav_io.goal_pose),
    "setpoint": (SETPOINT, _setpoint, _setpoint_msg),
}


def _read(bag: Bag, topic: str, groups: list[Payloads], kind: str,
          rejected: dict[str, list[tuple[int, float, str]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log times s, stamps s, values) of one topic's accepted messages in storage order."""
    need, on_columns, one = KINDS[kind]
    parts = []
    for g in groups:
        if not bag.can_decode(g.msgtype):
            bag.warn_unknown(topic)
            continue
        cols = bag.columns(g)
        if cols is not None and all(k in cols for k in need + STAMP):
            values, ok = on_columns(np.stack([cols[k].astype(float) for k in need], axis=1))
            parts.append((g.seq[ok], g.t_ns[ok] * 1e-9, _stamps(cols, g.t_ns)[ok], values[ok]))
        else:
            ok = np.zeros(len(g.t_ns), bool)
        for i in np.flatnonzero(~ok):  # the node's own conversion, message by message, says why
            t = int(g.t_ns[i]) * 1e-9
            msg = bag.decode(Record(topic, g.msgtype, int(g.t_ns[i]), g.rows[i].tobytes()))
            if msg is None:
                continue
            try:
                row = np.array([one(msg)], float)
            except convert.MessageError as exc:
                rejected.setdefault(topic, []).append((int(g.seq[i]), t, str(exc)))
                continue
            parts.append((g.seq[i:i + 1], np.array([t]), np.array([mav_io.stamp_or(msg, t)]), row))
    if not parts:
        return np.zeros(0), np.zeros(0), np.zeros((0, CMD if kind == "setpoint" else mav_io.WIDTH))
    seq, t, stamps, values = (np.concatenate(c) for c in zip(*parts))
    order = np.argsort(seq, kind="stable")
    return t[order], stamps[order], values[order]


def read_team_arrays(bag: Bag, mavs: list[str]) -> TeamArrays:
    """The team's load odometry, goals, MAV odometry and set-points from `bag` (one pass, as columns);
    FleetError when the load's odometry or goal, or a MAV's odometry, is not in the log."""
    load_topic, goal_topic, start_topic = topics.LOAD_ODOM.path(), topics.LOAD_GOAL.path(), topics.LOAD_START.path()
    kinds = {load_topic: "odom", goal_topic: "goal", start_topic: "goal", **{topics.ODOM.path(m): "odom" for m in mavs},
             **{topics.SETPOINT.path(m): "setpoint" for m in mavs}}
    rejected: dict[str, list[tuple[int, float, str]]] = {}
    groups = bag.payloads(kinds)
    read = {topic: _read(bag, topic, groups.get(topic, []), kind, rejected) for topic, kind in kinds.items()}
    missing = [t for t in [load_topic, goal_topic, *(topics.ODOM.path(m) for m in mavs)] if not len(read[t][0])]
    if missing:
        damage = f"; the log is damaged: {'; '.join(bag.status.stops)}" if bag.status.stops else ""
        why = f" ({len(rejected[missing[0]])} rejected)" if missing[0] in rejected else ""
        raise FleetError(f"{bag.path}: re-running or reporting a MAV team needs {', '.join(missing)}, which this bag does not "
                         f"hold{why}{damage}")
    _, stamps, rows = read[load_topic]
    last = len(stamps) - 1 - np.unique(stamps[::-1], return_index=True)[1]  # a stamp logged twice: the later one
    odom = {}
    for m in mavs:
        _, st, values = read[topics.ODOM.path(m)]
        order = np.lexsort([*values.T[::-1], st])  # as sorted((stamp, row)) sorts them
        odom[m] = (st[order], values[order])
    t0 = min(read[t][0][0] for t in kinds if len(read[t][0]) and t != start_topic)
    problems = []
    for topic, found in sorted(rejected.items()):
        _, t, why = min(found)  # the first in storage order
        problems.append(f"{topic}: {len(found)} message(s) rejected as the nodes reject them (first at +{t - t0:.3f} s: "
                        f"{why})")
    return TeamArrays(mavs, stamps[last], rows[last], read[goal_topic][1], read[goal_topic][2], read[goal_topic][0], odom,
                      {m: read[topics.SETPOINT.path(m)] for m in mavs}, t0, np.sort(read[start_topic][1]),
                      {topic: len(r) for topic, r in sorted(rejected.items())}, problems)
