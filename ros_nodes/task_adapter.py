"""The task adapter of every scenario whose robots need more than poses and a goal or the landmarks.

Such a scenario's inputs besides `pose` and `others` (its *task sensors*: a load, zones, a shared map,
resources, capabilities, ...) reach each robot as one flat message on `/<robot>/task` (topics.TASK_TOPIC):
every task sensor flattened, in the order of the scenario's `<name>_spec.SENSORS`. On a real testbed a task
server publishes it; in SITL the sim node does (ros_nodes/sim_node.py `ScenarioTask`), with this module's
`task_sensors` as its layout, so both ends cut the numbers the same way. The adapter splits a message into
the model's named inputs by the shapes `<name>_spec.sensor_shapes(N)` gives for this fleet; the policy node
checks them against the exported model's metadata before the first pose, as for every adapter. A message of
another length is refused whole (the last good one stands, the robot stops until a good one).
No rclpy, no JAX: the spec modules are plain Python.
"""
from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np

from marlstack.ros_nodes import adapters, convert, topics
from marlstack.sim.scenarios import SCENARIOS

POSE_INPUTS = ("pose", "others")  # what the robots' own poses give; every other sensor comes on the task topic


def task_sensors(scenario: str, num_robots: int) -> dict[str, tuple[int, ...]]:
    """Per-robot shape of each task sensor of `scenario` for a fleet of `num_robots`, in message order."""
    spec = importlib.import_module(f"{SCENARIOS[scenario]}_spec")
    shapes = spec.sensor_shapes(num_robots)
    return {name: tuple(shapes[name]) for name in spec.SENSORS if name not in POSE_INPUTS}


def robot_classes(scenario: str) -> tuple[str, ...]:
    """A team scenario's robot classes (its spec's `CLASSES`), in the spec's order; () for any other scenario."""
    return tuple(getattr(importlib.import_module(f"{SCENARIOS[scenario]}_spec"), "CLASSES", ()))


class TaskAdapter(adapters.NavigationAdapter):
    """Navigation's pose and others, and each task sensor cut from this robot's `task` message (module docstring).
    One subclass per scenario (`scenario` set), registered in `adapters.ADAPTERS`."""

    scenario = ""
    task_name = "task"
    task_topic = topics.TASK

    def __init__(self, robots: list[str], me: str, *args: Any, **kwargs: Any):
        self.layout = task_sensors(self.scenario, len(robots))
        self.input_names = (*POSE_INPUTS, *self.layout)
        super().__init__(robots, me, *args, **kwargs)

    def task_shape(self) -> tuple[int, ...]:
        return (sum(math.prod(shape) for shape in self.layout.values()),)

    @staticmethod
    def task_from_msg(msg: Any) -> Any:
        return convert.numbers_from_msg(msg, "task")

    def shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = super().shapes()
        del shapes[self.task_name]
        return {**shapes, **self.layout}

    def inputs(self, now_s: float) -> dict[str, np.ndarray]:
        out = super().inputs(now_s)
        flat = out.pop(self.task_name)[0]
        ends = np.cumsum([math.prod(shape) for shape in self.layout.values()])
        for (name, shape), piece in zip(self.layout.items(), np.split(flat, ends[:-1])):
            out[name] = piece.reshape(1, *shape)
        return out


def register() -> None:
    """A TaskAdapter for every scenario on the task topic (all but navigation and coverage, RWARE included)."""
    for name in SCENARIOS:
        if topics.TASK_TOPIC[name] is topics.TASK and name not in adapters.ADAPTERS:
            title = "".join(word.title() for word in name.split("_"))
            adapters.ADAPTERS[name] = type(f"{title}Adapter", (TaskAdapter,), {"scenario": name})


register()
