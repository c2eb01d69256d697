"""Task adapters: decoded sensor data (plain numbers) -> the exported model's input tensors.

One adapter per scenario. It holds the latest value of each input with the time it arrived,
and `inputs(now_s)` either returns the batch-of-one tensors the ONNX graph expects or raises an
`InputError` that names the input at fault (missing, stale, invalid). The policy node turns that
error into a zero command plus a diagnostic; replay feeds the same adapter from a bag, so a log
re-evaluates with exactly the logic a robot ran. No rclpy, no JAX: numpy only.

The availability rule lives here, once: a bad sample (non-finite, malformed, absurd, untrusted stamp)
is refused as a sample, never stored, so the source keeps its last good value and that value's stamp.
The robot's own inputs stop it at once (`InvalidInput`, saying why); a neighbour's pose is judged by
its last good sample alone, so a neighbour with a bad marker is exactly a silent one: its last good
pose feeds the model as it ages (the safety node keeps clear of it by its speed limit × age) until
`neighbour_max_age_s`, then the robots that read it stop too, naming the refused samples.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from marlstack.ros_nodes import convert, topics


class InputError(Exception):
    """An input the model needs is not usable; `source` names it (e.g. 'pose of robot_2')."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source, self.reason = source, reason


class MissingInput(InputError):
    """Never received."""


class StaleInput(InputError):
    """Last received longer ago than the adapter's max age."""


class InvalidInput(InputError):
    """The latest message was non-finite or malformed; cleared by the next good one."""


NEIGHBOUR_MAX_AGE_S = 60.0  # the nodes' default: how old a neighbour's last good pose may be before a robot stops


class LatestValues:
    """The latest good value of each named source with its time, and why the source's latest sample was refused.

    Shared by the task adapters and the safety node: one rule for missing / stale / invalid. A refused
    sample never overwrites the last good value or its time (`problem(..., last_good=True)` judges by them).
    """

    def __init__(self, keys: list[str], width: int, label: str):
        self.keys = list(keys)
        self.label = label
        self._index = {k: i for i, k in enumerate(self.keys)}
        self.values = np.full((len(self.keys), width), np.nan, dtype=np.float64)
        self.times = np.full(len(self.keys), -np.inf)
        self._invalid: dict[str, str] = {}

    def source(self, key: str) -> str:
        """How errors name a source: 'pose of robot_1'; just the key without a label, or for a single-valued one."""
        return self.label if key == self.label else (f"{self.label} of {key}" if self.label else key)

    def put(self, key: str, values: tuple[float, ...], t_s: float) -> None:
        """Store a sample; a non-finite one is refused like `invalidate` (the last good one stands)."""
        i = self._index[key]
        if not all(math.isfinite(v) for v in values):
            self.invalidate(key, "non-finite value")
            return
        self.values[i] = values
        self.times[i] = t_s
        self._invalid.pop(key, None)

    def invalidate(self, key: str, reason: str) -> None:
        """The latest sample of `key` was refused for `reason`, until the next good one; nothing stored changes."""
        self._invalid[key] = reason

    def problem(self, key: str, now_s: float, max_age_s: float, last_good: bool = False) -> InputError | None:
        """Why `key` cannot be used at `now_s`, or None. `last_good`: judge the last good sample by its age
        alone, a refused latest sample being no reason to stop (a neighbour's pose; module docstring)."""
        refused = self._invalid.get(key)
        if refused is not None and not last_good:
            return InvalidInput(self.source(key), refused)
        t = self.times[self._index[key]]
        since = f"; the samples since refused (latest: {refused})" if refused else ""
        if not np.isfinite(t):
            return MissingInput(self.source(key), ("no good one received yet" if refused else "none received yet") + since)
        if now_s - t > max_age_s:
            return StaleInput(self.source(key), f"last {'good ' if refused else ''}one {(now_s - t) * 1e3:.0f} ms old "
                                                f"(limit {max_age_s * 1e3:.0f} ms){since}")
        return None

    def known(self, key: str) -> bool:
        """A value was received at some point (it may be stale or currently invalid)."""
        return bool(np.isfinite(self.times[self._index[key]]))

    def get(self, key: str) -> np.ndarray:
        return self.values[self._index[key]]


class NavigationAdapter:
    """Navigation inputs: own pose (1,3), the others' poses (1,N-1,3), goal (1,2), float32.

    `robots` is the fleet in agent-index order (the deployment config's order, which is the
    simulator's agent order); `others` keeps that order with `me` removed, as `sense()` does.
    Times are seconds on one clock: a node passes its receive time, replay the bag's log time.
    Poses expire after `max_age_s`; the task input (here the goal) is a set-point and does not.
    Subclasses change only the task input: its name, topic, message conversion and shape.
    """

    scenario = "navigation"
    task_name = "goal"
    task_topic = topics.TASK_TOPIC["navigation"]
    input_names = ("pose", "others", task_name)

    def __init__(self, robots: list[str], me: str, max_age_s: float, neighbour_max_age_s: float | None = None,
                 poses: LatestValues | None = None):
        if me not in robots:
            raise ValueError(f"robot {me!r} is not in the fleet {robots}")
        if len(set(robots)) != len(robots):
            raise ValueError(f"duplicate robot names in {robots}")
        if not max_age_s > 0:
            raise ValueError(f"max_age_s must be > 0, got {max_age_s}")
        self.robots, self.me, self.max_age_s = list(robots), me, float(max_age_s)
        # neighbours may be older than our own pose where a safety layer accounts for their age
        self.neighbour_max_age_s = self.max_age_s if neighbour_max_age_s is None else float(neighbour_max_age_s)
        self._others = [r for r in robots if r != me]
        # `poses`: a store shared by several robots' adapters (the fleet policy node stores each pose once)
        self.poses = LatestValues(self.robots, 3, "pose") if poses is None else poses
        self.task = LatestValues([self.task_name], math.prod(self.task_shape()), self.task_name)

    def task_shape(self) -> tuple[int, ...]:
        return (2,)

    @staticmethod
    def task_from_msg(msg: Any) -> Any:
        """The task message -> numbers for `update_task`; raises convert.MessageError."""
        return convert.goal_from_msg(msg)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-robot shape of each input this fleet provides (the model's, minus the batch axis)."""
        return {"pose": (3,), "others": (len(self._others), 3), self.task_name: self.task_shape()}

    def update_pose(self, robot: str, x: float, y: float, yaw: float, t_s: float) -> None:
        self.poses.put(robot, (x, y, yaw), t_s)

    def update_task(self, values: Any, t_s: float = 0.0) -> None:
        """A new task set-point; one of the wrong size invalidates the task input until a good one."""
        flat = np.asarray(values, dtype=np.float64).reshape(-1)
        want = self.task_shape()
        if flat.size != math.prod(want):
            self.invalidate_task(f"expected {' x '.join(map(str, want))} numbers for this fleet of "
                                 f"{len(self.robots)}, got {flat.size}")
            return
        self.task.put(self.task_name, tuple(flat), t_s)

    def update_goal(self, x: float, y: float, t_s: float = 0.0) -> None:
        self.update_task((x, y), t_s)

    def invalidate_pose(self, robot: str, reason: str) -> None:
        """The latest pose message of `robot` was unusable (e.g. malformed): refused, the last good one stands;
        our own robot stops until a good one, a neighbour's last good pose ages (module docstring)."""
        self.poses.invalidate(robot, reason)

    def invalidate_task(self, reason: str) -> None:
        self.task.invalidate(self.task_name, reason)

    def inputs(self, now_s: float) -> dict[str, np.ndarray]:
        """The model's inputs at `now_s`; raises MissingInput / StaleInput / InvalidInput. A neighbour's last
        good pose is used, however its latest sample was, while it is younger than `neighbour_max_age_s`."""
        problem = self.task.problem(self.task_name, now_s, math.inf)
        problem = problem or self.poses.problem(self.me, now_s, self.max_age_s)
        for r in self._others:
            problem = problem or self.poses.problem(r, now_s, self.neighbour_max_age_s, last_good=True)
        if problem:
            raise problem
        f32 = lambda a: np.asarray(a, dtype=np.float32)[None]  # noqa: E731
        return {"pose": f32(self.poses.get(self.me)), "others": f32([self.poses.get(r) for r in self._others]),
                self.task_name: f32(self.task.get(self.task_name).reshape(self.task_shape()))}


class CoverageAdapter(NavigationAdapter):
    """Coverage inputs: navigation's pose and others, and every landmark (1,N,2) from `/landmarks`."""

    scenario = "coverage"
    task_name = "landmarks"
    task_topic = topics.TASK_TOPIC["coverage"]
    input_names = ("pose", "others", task_name)

    def task_shape(self) -> tuple[int, ...]:
        return (len(self.robots), 2)  # as many landmarks as robots, as the model was exported

    @staticmethod
    def task_from_msg(msg: Any) -> Any:
        return convert.points_from_msg(msg)


ADAPTERS = {a.scenario: a for a in (NavigationAdapter, CoverageAdapter)}  # + task_adapter's, registered below


def make_adapter(scenario: str, robots: list[str], me: str, max_age_s: float,
                 neighbour_max_age_s: float | None = None, poses: LatestValues | None = None) -> NavigationAdapter:
    """The adapter for a scenario; a clear error for scenarios without a ROS adapter yet. `poses`: a pose
    store shared with other robots' adapters (its keys: `robots`)."""
    if scenario not in ADAPTERS:
        raise ValueError(f"no ROS task adapter for scenario {scenario!r} (available: {', '.join(sorted(ADAPTERS))})")
    return ADAPTERS[scenario](robots, me, max_age_s, neighbour_max_age_s, poses)


import marlstack.ros_nodes.task_adapter  # noqa: E402,F401  registers every other scenario's adapter (the task topic's)
