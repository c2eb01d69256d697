"""Task server node: a testbed's task state for the scenarios on the `task` topic, from the robots' real poses.

On a real testbed nothing simulates material transport's zones, arctic transport's map or RWARE's requests; this
node hosts them as the sim node does in SITL (`scenario_task.ScenarioTask`: reset by the scenario's own `reset_task`
from `seed` and the deployment's starts, so the robots face the task their SITL run of the same YAML faced; advanced
every control period by its own `reward` rule) but on the poses the policy nodes read (`topics.POSE`, remapped to the
mocap like theirs), and publishes each robot's `task` latched, whenever it changes and every `TASK_RESEND_S`.

A robot's pose is judged as the policy nodes judge it (`health.take_pose`: malformed, non-finite, outside the arena,
untrusted stamp: refused). The task keeps each robot at its last good pose (its start until the first), so a refused
or stale pose never moves material or maps terrain, and a robot whose mocap drops out stays where it was last seen;
the robot's own nodes stop it meanwhile. A `/diagnostics` status reports the task's progress (solved, the robots
whose success the scenario counts, steps) and, as WARN, the robots held at a last good pose and why: every second and
at once when any of that but the step count changes.
Testbed tooling on the fleet's computer, not onboard: imports JAX.
"""
from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from marlstack.ros_nodes import health, topics
from marlstack.ros_nodes.adapters import LatestValues
from marlstack.ros_nodes.runner import StartError, declare, declare_stamp_limits, profile_and_rate, ros_now, run_node
from marlstack.ros_nodes.scenario_task import TASK_RESEND_S, host_task
from marlstack.ros_nodes.task_adapter import robot_classes

DIAG_PERIOD_S = 1.0
HOSTED = tuple(s for s, t in topics.TASK_TOPIC.items() if t is topics.TASK)  # the scenarios whose task it serves


def make_node():
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    class TaskServerNode(Node):
        def __init__(self) -> None:
            super().__init__("task_server")
            p = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
            self.robots = list(p("robots", [""], "the fleet in agent-index order (the deployment's order)"))
            profile_name = p("profile", "gritsbot_x", "vehicle profile: the arena poses are judged against")
            scenario = p("scenario", "material_transport", f"task scenario, one of {', '.join(HOSTED)}")
            rate = p("rate_hz", 0.0, "task update rate (0: the profile's 1 / dt, the control rate)", 0.0, 1000.0)
            periods, offset = declare_stamp_limits(self)
            starts = list(p("starts", [0.0], "the deployment's start poses, flat [x, y, yaw] per robot: the task is "
                            "reset from them, and a robot is there for the task until its first good pose"))
            flat = list(p("boxes", Parameter.Type.DOUBLE_ARRAY, "rware: the shelves, flat [x_min, x_max, y_min, "
                          "y_max] per box") or [])
            requests = list(p("requests", Parameter.Type.INTEGER_ARRAY, "rware: the requested shelves, indices into "
                              "boxes") or [])
            team = list(p("team", Parameter.Type.STRING_ARRAY, "a team scenario's class per robot (unset: the "
                          "scenario's TEAM pattern, as trained)") or [])
            seed = p("seed", 0, "seed of the task's reset (the deployment's sim.seed, as in SITL)", 0, 2**31 - 1)
            n = len(self.robots)
            if scenario not in HOSTED:
                raise StartError(f"parameter 'scenario' = {scenario!r}: the task server serves {', '.join(HOSTED)} "
                                 "(navigation's goals and coverage's landmarks come from the deployment)")
            if not n or not all(self.robots) or len(set(self.robots)) != n:
                raise StartError(f"parameter 'robots' must list the fleet's distinct robot names, got {self.robots}")
            if len(starts) != 3 * n:
                raise StartError(f"parameter 'starts' needs 3 numbers [x, y, yaw] per robot of {self.robots}, "
                                 f"got {len(starts)}")
            if len(flat) % 4:
                raise StartError(f"parameter 'boxes' needs 4 numbers per box [x_min, x_max, y_min, y_max], got {len(flat)}")
            if team and not robot_classes(scenario):
                raise StartError(f"parameter 'team': scenario {scenario} has no robot classes")
            self.profile, rate = profile_and_rate(profile_name, rate)
            self.held = np.array(starts, np.float64).reshape(n, 3)   # the poses the task was last advanced on
            self.task = host_task(scenario, self.profile, self.held, seed, np.reshape(flat, (-1, 4)), requests, team)
            self.period = 1.0 / rate
            self.max_age = periods * self.period + offset
            self.poses = LatestValues(self.robots, 3, "pose")
            self.stamps = health.Stamps(offset, offset + self.period)
            self.steps = 0
            self.last_task = self.last_diag = -math.inf
            self.last_values: dict[str, str] = {}   # the last diagnostic's, but its step count
            cls, state = topics.message_class, topics.qos_profile("state")
            self.task_pubs = [self.create_publisher(cls(topics.TASK.type), topics.TASK.path(r),
                                                    topics.qos_profile(topics.TASK.qos)) for r in self.robots]
            self.diag = self.create_publisher(cls(topics.DIAGNOSTICS.type), topics.DIAGNOSTICS.path(),
                                              topics.qos_profile(topics.DIAGNOSTICS.qos))
            for r in self.robots:
                self.create_subscription(cls(topics.POSE.type), topics.POSE.path(r), self._on_pose(r), state)
            self.name_ = self.get_fully_qualified_name()
            self._publish_task()
            self.create_timer(self.period, self._on_timer)
            self.get_logger().info(f"serving the {scenario} task of {n} robots at {rate:g} Hz")

        def _on_pose(self, robot: str):
            def cb(msg) -> None:
                health.take_pose(self.poses, robot, msg, self.stamps, self.profile, ros_now(self))
            return cb

        def current(self) -> np.ndarray:
            """(N, 3) every robot's last good pose; a robot never seen yet: where the task last had it (its start)."""
            return np.stack([self.poses.get(r) if self.poses.known(r) else self.held[i]
                             for i, r in enumerate(self.robots)])

        def _on_timer(self) -> None:
            now = ros_now(self)
            poses = self.current()
            changed = self.task.step(self.held, poses)
            self.held = poses
            self.steps += 1
            if now - self.last_task >= TASK_RESEND_S:
                self._publish_task()
            elif len(changed):
                self._publish_task(changed)
            status = self.progress(now)
            values = {kv.key: kv.value for kv in status.values if kv.key != "steps"}
            if now - self.last_diag >= DIAG_PERIOD_S or values != self.last_values:   # every second and on news
                self.last_diag, self.last_values = now, values
                self.diag.publish(health.array(self.get_clock().now().to_msg(), [status]))

        def _publish_task(self, robots: Any = None) -> None:
            """The task numbers of `robots` (indices; all of them by default, and then the resend clock restarts)."""
            self.task.publish(self.task_pubs, robots)
            if robots is None:
                self.last_task = ros_now(self)

        def progress(self, now: float) -> Any:
            """The task's progress; WARN while some robot is held at its last good pose (why, per robot)."""
            reached = [r for r, ok in zip(self.robots, self.task.reached) if ok]
            held = {r: str(e) for r in self.robots if (e := self.poses.problem(r, now, self.max_age)) is not None}
            message = "solved" if self.task.solved else f"{len(reached)} of {len(self.robots)} {self.task.success_label}"
            if held:
                message += "; at their last good pose: " + "; ".join(held.values())
            return health.status(self.name_, "task", health.WARN if held else health.OK, message, {
                "solved": self.task.solved, "reached": " ".join(reached), "steps": self.steps,
                "held": " ".join(held)})

    return TaskServerNode()


def main(argv: list[str] | None = None) -> int:
    return run_node(make_node, "task_server_node", argv)


if __name__ == "__main__":
    sys.exit(main())
