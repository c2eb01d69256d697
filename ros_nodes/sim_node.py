"""Sim node: fake hardware for software-in-the-loop. The fleet simulator's physics behind ROS topics.

Steps `sim.fleet.physics_step` (rps's dynamics, saturation and violation rules) at the control
rate, publishes every robot's `pose` and (latched) `goal` - for coverage the `/landmarks` instead -,
applies each robot's latest `cmd_vel` (zero when it is older than `watchdog_periods` periods, as
robot firmware would), and keeps a per-robot summary: goal reached and when (coverage: first on a
landmark), collision and boundary-exit steps (the simulator's counts), and the interventions /
watchdog stops the other nodes report on `/diagnostics`; `done_at_s` is when every robot had
arrived (coverage: when every landmark was first covered at once).
Every other scenario (material transport, arctic transport, RWARE, ...: those on the `task` topic) has its
task state hosted here (`scenario_task.ScenarioTask`; on a testbed the task server node hosts it): reset by the
scenario's own `reset_task` from `seed` and the starts (RWARE: the `boxes` are its shelves, `requests` the shelves waiting),
advanced each step by its own `reward` rule on the simulated poses, and each robot's task sensors published on
its `task` whenever they change and every `TASK_RESEND_S`; a robot's goal is reached once the scenario counts
its success, the run is done when the scenario is solved. A team scenario's robots (their classes: parameter
`team`, default the spec's `TEAM` pattern) drive the command they receive up to their own top speed: v is
saturated at the class's (terrain's) `speed_factors` times the profile's, as the training fleet clips the
barrier's output; the scaling of the nominal command by that factor is the exported policy's
(`policies.export.sensed_speed`), as on a real robot, so the safety node certifies what the robot drives.
With `boxes` (any scenario) a step in which a robot's body overlaps a box counts as a
`shelf_collision_steps` of that robot.
Every second, and once the task has been done for a second (where `marlstack sitl --until-goals` stops, instead of
up to a second later), the summary is published latched on `/sim/summary`, each robot's violations as a
`/diagnostics` status (ERROR once it collided or left the arena), and the JSON is written
atomically to `summary_path` (again at shutdown) for `marlstack sitl`.

It also measures sensor-to-command latency (`marlstack bench ros`): from publishing a robot's pose
to receiving the first `cmd_vel` for that robot afterwards. Twist carries no stamp, so this is exact
only while commands come back within a control period; a pose still unanswered when the robot's
next pose goes out counts as late (latency = infinity), so a fleet slower than its control rate
shows up as unbounded percentiles instead of silently pairing a late reply with the next pose.
Like a real fleet that is armed only once its software is up, the sim holds the robots (no
pose published, no step) until the fleet's nodes are connected: each pose topic has
`pose_subscribers` matched readers, each goal (coverage: the landmarks) `task_subscribers`, and
each robot's `cmd_vel` a writer. A node or the recorder that discovers the others late (DDS discovery under load can take
seconds) would otherwise start on a moving fleet without its goal or miss the first poses, and the
log would show commands nobody can explain. Time, the summary and the `summary_path` file start
when the robots are released, with their start poses.
SITL tooling: imports JAX.
"""
from __future__ import annotations

import heapq
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from marlstack.ros_nodes import convert, health, topics
from marlstack.ros_nodes.runner import StartError, declare, profile_and_rate, ros_now, run_node
from marlstack.ros_nodes.scenario_task import ScenarioTask  # noqa: F401  (where tests and tools have imported it from)
from marlstack.ros_nodes.scenario_task import TASK_RESEND_S, host_task
from marlstack.ros_nodes.task_adapter import robot_classes

SUMMARY_PERIOD_S = 1.0
WAIT_LOG_PERIOD_S = 2.0


def make_physics(profile):
    """The simulator's step, jitted once for this fleet (compiled before the first real step)."""
    import jax
    from marlstack.sim.fleet import physics_step

    step = jax.jit(lambda poses, u: physics_step(profile, poses, u)[:2])

    def run(poses: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        new, viol = step(poses, u)
        return np.asarray(new, np.float64), np.asarray(viol.collisions), np.asarray(viol.boundary_exits)
    return run


def top_speed(profile: Any, u: np.ndarray, speed: np.ndarray | None) -> np.ndarray:
    """Commands (N, 2) as robots whose top speed is `speed` (N,) times the profile's drive them: v saturated there
    (`FleetEnv` clips the barrier's output alike); unchanged without a speed per robot."""
    if speed is None:
        return u
    top = np.asarray(speed) * profile.max_linear_speed
    return np.stack([np.clip(u[:, 0], -top, top), u[:, 1]], axis=-1)


def latency_stats(samples_s: list[float]) -> dict:
    """count, late and p50 / p99 in ms; a percentile that falls on a late sample is None (unbounded)."""
    out: dict = {"count": len(samples_s), "late": sum(1 for x in samples_s if math.isinf(x))}
    for q in (50, 99):
        v = float(np.percentile(samples_s, q, method="inverted_cdf")) if samples_s else math.inf
        out[f"p{q}"] = None if math.isinf(v) else v * 1e3
    return out


def make_node():
    import jax
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from marlstack.sim.scenarios.coverage_spec import point_errors
    from marlstack.sim.scenarios.rware import in_boxes
    from marlstack.sim.scenarios.navigation_spec import SUCCESS_RADIUS

    class SimNode(Node):
        def __init__(self) -> None:
            super().__init__("sim")
            p = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
            self.robots = list(p("robots", [""], "the fleet in agent-index order"))
            profile_name = p("profile", "gritsbot_x", "vehicle profile: dynamics, limits, arena")
            self.scenario = p("scenario", "navigation", "task scenario: navigation (each robot's goal is published and "
                              "checked), coverage (the landmarks are published; solved when every one is covered) or any "
                              "other (its task state is simulated and each robot's task sensors published on its `task`)")
            rate = p("rate_hz", 0.0, "simulation and pose publishing rate (0: the profile's 1 / dt)", 0.0, 1000.0)
            periods = p("watchdog_periods", 3.0, "a cmd_vel older than this many periods is replaced by zero", 1.0, 100.0)
            starts = list(p("starts", [0.0], "initial poses, flat [x, y, yaw] per robot"))
            goals = list(p("goals", [0.0], "flat [x, y] per robot: its goal (navigation) or a landmark (coverage)"))
            flat = p("boxes", Parameter.Type.DOUBLE_ARRAY, "static obstacles (shelves): flat [x_min, x_max, y_min, y_max] "
                     "per box; a step with a robot's body overlapping one counts in shelf_collision_steps (unset: none)")
            requests = list(p("requests", Parameter.Type.INTEGER_ARRAY, "rware: the requested shelves, indices into "
                              "boxes") or [])
            team = list(p("team", Parameter.Type.STRING_ARRAY, "a team scenario's class per robot (unset: the "
                          "scenario's TEAM pattern, as trained)") or [])
            seed = p("seed", 0, "seed of the pose-drop draws and of the task's reset (scenarios on the task topic)",
                     0, 2**31 - 1)
            self.drop = p("drop_pose_fraction", 0.0, "fault injection: fraction of pose messages not published", 0.0, 1.0)
            # sensing model (deployment YAML `sim:`): each pose is stamped when measured and published
            # delay + U(0, jitter) later (rounded up to the next period), with Gaussian position / heading noise
            self.delay = p("pose_delay_s", 0.0, "sensing model: pose publication delay after its stamp", 0.0, 10.0)
            self.jitter = p("pose_jitter_s", 0.0, "sensing model: extra uniform random delay in [0, this]", 0.0, 10.0)
            self.noise = p("pose_noise_m", 0.0, "sensing model: std of the position noise (heading: this / 0.1 m rad)",
                           0.0, 1.0)
            summary = p("summary_path", "", "write the JSON summary here (empty: only publish it)")
            self.need_pose = p("pose_subscribers", 0, "hold the robots until each pose has this many readers", 0, 10_000)
            self.need_task = p("task_subscribers", 0, "... and each goal (the landmarks) this many", 0, 10_000)
            self.need_cmd = p("cmd_vel_publishers", 0, "... and each cmd_vel this many writers", 0, 10_000)
            n = len(self.robots)
            if self.scenario not in topics.TASK_TOPIC:
                raise StartError(f"parameter 'scenario' = {self.scenario!r}: the sim node simulates "
                                 f"{', '.join(topics.TASK_TOPIC)}")
            task = topics.TASK_TOPIC[self.scenario]  # what the robots' nodes read: goals, the landmarks or task sensors
            hosted = task is topics.TASK  # the sim hosts the scenario's task state (ScenarioTask)
            if not n or not all(self.robots) or len(starts) != 3 * n or (len(goals) != 2 * n and not hosted):
                raise StartError(f"parameters 'starts' / 'goals' need 3 / 2 numbers per robot of {self.robots}")
            flat = list(flat or [])
            if len(flat) % 4:
                raise StartError(f"parameter 'boxes' needs 4 numbers per box [x_min, x_max, y_min, y_max], got {len(flat)}")
            boxes = np.reshape(flat, (-1, 4))
            profile, rate = profile_and_rate(profile_name, rate)
            self.profile = profile
            if team and not robot_classes(self.scenario):
                raise StartError(f"parameter 'team': scenario {self.scenario} has no robot classes")
            self.poses = np.array(starts, np.float64).reshape(n, 3)
            self.task = None
            if hosted:
                self.task = host_task(self.scenario, profile, self.poses, seed, boxes, requests, team)
            self.in_boxes = jax.jit(lambda poses: in_boxes(poses, boxes, profile.diameter / 2)) if len(boxes) else None
            self.physics = make_physics(profile)
            self.goals = np.zeros((n, 2)) if hosted else np.array(goals, np.float64).reshape(n, 2)
            self.physics(self.poses, np.zeros((n, 2)))  # compile now, not inside the first period
            self.period, self.max_age = 1.0 / rate, periods / rate
            self.rng = random.Random(seed)
            self.pending: list[tuple[float, int, int, Any]] = []   # (due time, order, robot, message): delayed poses
            self.sent = 0
            self.summary_path = Path(summary) if summary else None
            self.cmd = np.zeros((n, 2))
            self.cmd_t = np.full(n, -np.inf)
            self.pose_sent = np.full(n, math.nan)  # perf_counter of each robot's unanswered pose
            self.latency: list[list[float]] = [[] for _ in range(n)]
            self.steps = 0
            self.collisions = np.zeros(n, int)
            self.exits = np.zeros(n, int)
            self.shelf_hits = np.zeros(n, int)
            self.reached_at: list[float | None] = [None] * n  # coverage: first time on a landmark
            self.done_at: float | None = None
            self.reports: dict[str, dict[str, dict[str, str]]] = {r: {} for r in self.robots}
            self.t0 = ros_now(self)
            self.released = False
            self.last_summary = self.last_wait_log = self.last_task = -math.inf
            self.settled_at = math.inf   # a summary then: done for a period (`marlstack sitl --until-goals` stops)

            cls = topics.message_class
            state = topics.qos_profile("state")
            self.pose_pubs = [self.create_publisher(cls(topics.POSE.type), topics.POSE.path(r), state) for r in self.robots]
            self.own_goals = task is topics.GOAL  # navigation: robot i's goal is goals[i]; coverage: any landmark
            self.task_pubs = [self.create_publisher(cls(task.type), task.path(r), topics.qos_profile(task.qos))
                              for r in (self.robots if task.per_robot else [None])]
            self.diag_pub = self.create_publisher(cls(topics.DIAGNOSTICS.type), topics.DIAGNOSTICS.path(),
                                                  topics.qos_profile(topics.DIAGNOSTICS.qos))
            self.summary_pub = self.create_publisher(cls(topics.SIM_SUMMARY.type), topics.SIM_SUMMARY.path(),
                                                     topics.qos_profile(topics.SIM_SUMMARY.qos))
            self.cmd_subs = [self.create_subscription(cls(topics.CMD_VEL.type), topics.CMD_VEL.path(r), self._on_cmd(i),
                                                      state) for i, r in enumerate(self.robots)]
            self.create_subscription(cls(topics.DIAGNOSTICS.type), topics.DIAGNOSTICS.path(), self._on_diag,
                                     topics.qos_profile(topics.DIAGNOSTICS.qos))
            if self.task is not None:
                self._publish_task()
            elif task.per_robot:
                for i, pub in enumerate(self.task_pubs):
                    pub.publish(convert.pose_to_msg(self.goals[i, 0], self.goals[i, 1], 0.0, self.t0))
            else:
                self.task_pubs[0].publish(convert.points_to_msg(self.goals, self.t0))
            self.create_timer(self.period, self._on_timer)
            self.get_logger().info(f"simulating {n} robots of {profile.name} at {rate:g} Hz")

        def _on_cmd(self, i: int):
            def cb(msg) -> None:
                if not math.isnan(self.pose_sent[i]):
                    self.latency[i].append(time.perf_counter() - self.pose_sent[i])
                    self.pose_sent[i] = math.nan
                try:
                    self.cmd[i] = convert.twist_to_cmd(msg)
                except convert.MessageError:
                    self.cmd[i] = 0.0
                self.cmd_t[i] = ros_now(self)
            return cb

        def _on_diag(self, msg) -> None:
            for s in msg.status:
                if s.hardware_id in self.reports:
                    self.reports[s.hardware_id][s.name] = health.values_of(s)

        def unconnected(self) -> list[str]:
            """Topics whose readers / writers have not all matched yet, with have/need counts."""
            counts = [(pub.topic_name, pub.get_subscription_count(), self.need_pose) for pub in self.pose_pubs]
            counts += [(pub.topic_name, pub.get_subscription_count(), self.need_task) for pub in self.task_pubs]
            counts += [(sub.topic_name, sub.get_publisher_count(), self.need_cmd) for sub in self.cmd_subs]
            return [f"{name} {have}/{need}" for name, have, need in counts if have < need]

        def _on_timer(self) -> None:
            now = ros_now(self)
            if not self.released:
                missing = self.unconnected()
                if missing:
                    if now - self.last_wait_log >= WAIT_LOG_PERIOD_S:
                        self.last_wait_log = now
                        self.get_logger().info(f"holding the robots until the fleet is connected; matched/needed: "
                                               f"{', '.join(missing)}")
                    return
                self.get_logger().info(f"fleet connected after {now - self.t0:.2f} s: releasing the robots")
                self.released, self.t0 = True, now
                self._publish_poses(now)
                return
            u = np.where((now - self.cmd_t <= self.max_age)[:, None], self.cmd, 0.0)
            if self.task is not None:  # a team's robot: at most its class's (terrain's) top speed
                u = top_speed(self.profile, u, self.task.speed)
            prev = self.poses
            self.poses, collisions, exits = self.physics(self.poses, u)
            self.steps += 1
            self.collisions += collisions > 0
            self.exits += exits > 0
            if self.in_boxes is not None:
                self.shelf_hits += np.asarray(self.in_boxes(self.poses))
            if self.task is not None:
                changed = self.task.step(prev, self.poses)
                if now - self.last_task >= TASK_RESEND_S:
                    self._publish_task()
                elif len(changed):
                    self._publish_task(changed)
            for i in np.flatnonzero(self.task_distance() <= SUCCESS_RADIUS):
                if self.reached_at[i] is None:
                    self.reached_at[i] = round(now - self.t0, 3)
            if self.done_at is None and self.done():
                self.done_at = round(now - self.t0, 3)
                self.settled_at = now + SUMMARY_PERIOD_S + 1e-3   # elapsed_s - done_at >= a period in that summary
            self._publish_poses(now)
            if now - self.last_summary >= SUMMARY_PERIOD_S or now >= self.settled_at:
                self.settled_at = math.inf
                self.write_summary(now)

        def _publish_poses(self, now: float) -> None:
            for i in range(len(self.pose_pubs)):
                if self.drop and self.rng.random() < self.drop:
                    continue
                x, y, yaw = self.poses[i]
                if self.noise:
                    x, y = x + self.rng.gauss(0.0, self.noise), y + self.rng.gauss(0.0, self.noise)
                    yaw += self.rng.gauss(0.0, self.noise / 0.1)
                msg = convert.pose_to_msg(x, y, yaw, now)   # stamped when measured
                due = now + self.delay + (self.rng.uniform(0.0, self.jitter) if self.jitter else 0.0)
                heapq.heappush(self.pending, (due, self.sent, i, msg))
                self.sent += 1
            while self.pending and self.pending[0][0] <= now + 1e-9:
                _, _, i, msg = heapq.heappop(self.pending)
                if not math.isnan(self.pose_sent[i]) and self.latency[i]:  # unanswered within a period
                    self.latency[i].append(math.inf)  # (before the robot's first answer: start-up, not counted)
                self.pose_sent[i] = time.perf_counter()
                self.pose_pubs[i].publish(msg)

        def _publish_task(self, robots: Any = None) -> None:
            """The task numbers of `robots` (indices; all of them by default, and then the resend clock restarts)."""
            self.task.publish(self.task_pubs, robots)
            if robots is None:
                self.last_task = ros_now(self)

        def task_distance(self) -> np.ndarray:
            """Per robot: distance to its goal (navigation) or to the nearest landmark (coverage); a hosted task
            (rware, ...): 0 once the scenario counts the robot's success, else infinite."""
            if self.task is not None:
                return np.where(self.task.reached, 0.0, math.inf)
            return point_errors(self.poses[:, :2], self.goals, shared=not self.own_goals)

        def done(self) -> bool:
            """Navigation: every robot has arrived (at some time); coverage: every landmark covered now; a hosted
            task: the scenario's own `solved` (rware: every requested item delivered)."""
            if self.task is not None:
                return self.task.solved
            if self.own_goals:
                return all(t is not None for t in self.reached_at)
            return bool((point_errors(self.goals, self.poses[:, :2], shared=True) <= SUCCESS_RADIUS).all())

        def summary(self, now: float) -> dict:
            dist = self.task_distance()
            robots = {}
            for i, r in enumerate(self.robots):
                reports = self.reports[r].values()
                robots[r] = {
                    "goal_reached": self.reached_at[i] is not None, "reached_at_s": self.reached_at[i],
                    "final_goal_distance_m": round(float(dist[i]), 4) if math.isfinite(dist[i]) else None,
                    "collision_steps": int(self.collisions[i]), "boundary_exit_steps": int(self.exits[i]),
                    "shelf_collision_steps": int(self.shelf_hits[i]),
                    **({"class": self.task.team[i]} if self.task is not None and self.task.team else {}),
                    **health.fold_reports(reports),  # interventions, watchdog stops and why, brakes, clips
                    "latency_ms": latency_stats(self.latency[i]),
                    # compute time inside the nodes (policy inference, barrier solve), as they report it
                    "node_ms_mean": {k: float(v[k]) for v in reports for k in v if k.endswith("_ms_mean")},
                }
            task = {} if self.task is None else {"success_label": self.task.success_label}
            if self.scenario == "rware":
                task |= {"items_delivered": int(self.task.state.delivered), "items_requested": self.task.params.requests}
            return {"elapsed_s": round(now - self.t0, 3), "steps": self.steps, "scenario": self.scenario,
                    "done_at_s": self.done_at, **task, "robots": robots,
                    "all_latencies_ms": [round(x * 1e3, 4) if math.isfinite(x) else None for lat in self.latency for x in lat]}

        def write_summary(self, now: float, publish: bool = True) -> None:
            self.last_summary = now
            doc = self.summary(now)
            text = json.dumps(doc)
            if publish:
                brief = json.dumps({k: v for k, v in doc.items() if k != "all_latencies_ms"})
                self.summary_pub.publish(topics.message_class(topics.SIM_SUMMARY.type)(data=brief))
                self.diag_pub.publish(health.array(self.get_clock().now().to_msg(), [
                    self._violation_status(r, v) for r, v in doc["robots"].items()]))
            if self.summary_path:
                tmp = self.summary_path.with_suffix(".tmp")
                tmp.write_text(text)
                os.replace(tmp, self.summary_path)

        def _violation_status(self, robot: str, r: dict):
            """The simulator's verdict on a robot: ERROR once it has collided or left the arena."""
            keys = ("collision_steps", "boundary_exit_steps", "shelf_collision_steps")
            bad = any(r[k] for k in keys)
            message = ", ".join(f"{r[k]} {k.replace('_', ' ')}" for k in keys) if bad else "no violations"
            return health.status(f"{self.get_fully_qualified_name()}: {robot}", robot, health.ERROR if bad else health.OK,
                                 message, {k: r[k] for k in (*keys, "goal_reached")})

        def close(self) -> None:
            if self.released:
                self.write_summary(ros_now(self), publish=False)  # DDS is already shut down here

    return SimNode()


def main(argv: list[str] | None = None) -> int:
    return run_node(make_node, "sim_node", argv)


if __name__ == "__main__":
    sys.exit(main())
