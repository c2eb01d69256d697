"""Policy node: one per robot, in its namespace. Sensors -> exported ONNX policy -> `cmd_vel_nominal`.

Event-driven for latency: each new pose of this robot runs the model at once and publishes;
a timer at the control rate catches silence (no pose at all) so the watchdog still fires.
Anything the task adapter rejects (missing, stale = older than `watchdog_periods` control
periods, non-finite, malformed) and any non-finite model output publishes zero velocity and a
diagnostic saying why; the next good input resumes. A neighbour's bad pose sample stops only that
neighbour: here its last good pose feeds the model as it ages (the adapter's rule, ros_nodes/adapters.py).
Onboard code: numpy + onnxruntime, no JAX.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Any

import numpy as np

from marlstack.hardware.profile import profile_hash
from marlstack.policies.runtime import BadInput, PolicyRuntime
from marlstack.ros_nodes import convert, health, topics
from marlstack.ros_nodes.adapters import InputError, make_adapter
from marlstack.ros_nodes.runner import (StartError, declare, declare_neighbour_max_age, declare_stamp_limits,
                                        profile_and_rate, ros_now, run_node)

DIAGNOSTIC_PERIOD_S = 0.5
FALLBACK_PERIODS = 1.5  # the timer steps only when no pose has triggered a step for this long


def load_runtime(path: str, scenario: str, profile, rate_hz: float, batch_size: int | None = None):
    """The checked ONNX runtime, or StartError with the runtime's own one-line reason. A fixed `batch_size`
    (one vehicle per call) lets onnxruntime fold the graph's shape arithmetic at load."""
    try:
        return PolicyRuntime(path, expect_scenario=scenario, expect_profile_hash=profile_hash(profile),
                             expect_rate_hz=rate_hz, batch_size=batch_size)
    except Exception as exc:  # any reason a model cannot run here is a refusal to start, said in one line
        raise StartError(str(exc) if str(path) in str(exc) else f"policy {path}: {exc}") from None


def open_policy(path: str, scenario: str, profile, rate_hz: float, robots: list[str], robot: str,
                max_age_s: float, neighbour_max_age_s: float | None = None) -> tuple[PolicyRuntime, Any]:
    """(runtime, task adapter) for `robot`, checked as far as can be before the first pose: metadata
    (scenario, profile, rate), the fleet's tensor shapes, and one inference on zero inputs of those
    shapes (a graph whose real shapes differ from its metadata fails here, not in the control loop).
    Raises StartError with one line; `marlstack sitl` calls it too, before starting any node."""
    try:
        adapter = make_adapter(scenario, robots, robot, max_age_s, neighbour_max_age_s)
    except ValueError as exc:
        raise StartError(str(exc)) from None
    runtime = load_runtime(path, scenario, profile, rate_hz)
    have = {**adapter.shapes(), **{k: v.shape[1:] for k, v in runtime.initial_state(1).items()}}
    for e in runtime.spec["inputs"]:
        want, got = e["shape"][1:], have.get(e["name"])
        if got is None or list(got) != want:
            raise StartError(f"model input '{e['name']}' expects per-robot shape {want}, this fleet of "
                             f"{len(robots)} robots gives {None if got is None else list(got)}; "
                             f"export the policy for this fleet size")
    feeds = {name: np.zeros((1, *shape), np.float32) for name, shape in have.items()}
    try:
        cmd = np.asarray(runtime.run(feeds)["cmd"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises untyped errors: a refusal, in one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StartError(f"policy {path}: the model does not run on this fleet's inputs ({first[:300]}); "
                         f"export it for this fleet and scenario") from None
    if cmd.size != 2:
        raise StartError(f"policy {path}: output 'cmd' has shape {list(cmd.shape)}, expected [1, 2] (v, ω); "
                         f"export it for this robot type")
    return runtime, adapter


def declare_policy(node: Any) -> tuple[str, str, str, float]:
    """The model's parameters of the policy and fleet policy nodes, one text each: (scenario, profile, policy_path,
    rate_hz)."""
    p = lambda *a, **k: declare(node, *a, **k)  # noqa: E731
    return (p("scenario", "navigation", "task scenario; selects the input adapter and is checked against the model"),
            p("profile", "gritsbot_x", "vehicle profile name or path; its hash is checked against the model"),
            p("policy_path", "", "exported policy.onnx"),
            p("rate_hz", 0.0, "control rate, checked against the model's (0: the profile's 1 / dt)", 0.0, 1000.0))


def make_node():
    from rclpy.node import Node

    class PolicyNode(Node):
        def __init__(self) -> None:
            super().__init__("policy")
            p = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
            self.robot = p("robot", "", "this robot's name (its namespace without '/')")
            self.robots = list(p("robots", [""], "the fleet in agent-index order (the training env's order)"))
            scenario, profile_name, path, rate = declare_policy(self)
            periods, offset = declare_stamp_limits(self)
            neighbours = declare_neighbour_max_age(self)
            if not self.robot or self.robot not in self.robots:
                raise StartError(f"parameter 'robot' = {self.robot!r} must be one of parameter 'robots' = {self.robots}")
            self.profile, self.rate_hz = profile_and_rate(profile_name, rate)
            self.period = 1.0 / self.rate_hz
            self.runtime, self.adapter = open_policy(path, scenario, self.profile, self.rate_hz, self.robots,
                                                     self.robot, periods * self.period + offset, neighbours)
            self.stamps = health.Stamps(offset, offset + self.period)   # poses are judged by their header stamps
            # own pose unchanged while the robot is driven: stop (a lapse of its cmd_vel beyond the watchdog restarts the count)
            self.frozen = health.FrozenValues(gap_s=periods * self.period)
            self.hidden = self.runtime.initial_state(1)  # recurrent policies: zeros at start, then fed back

            self.dog = health.Watchdog()
            self.steps = 0
            self.output_faults = 0     # model outputs refused (non-finite, implausible): the robot stopped
            self.clipped = 0           # outputs beyond the profile's limits, saturated downstream
            self.infer_s = 0.0
            self.last_step = -math.inf
            self.last_diag = -math.inf
            cls = topics.message_class
            self.pub = self.create_publisher(cls(topics.CMD_VEL_NOMINAL.type), topics.CMD_VEL_NOMINAL.path(self.robot),
                                             topics.qos_profile(topics.CMD_VEL_NOMINAL.qos))
            self.diag = self.create_publisher(cls(topics.DIAGNOSTICS.type), topics.DIAGNOSTICS.path(),
                                              topics.qos_profile(topics.DIAGNOSTICS.qos))
            # Own pose first: the executor serves ready subscriptions in creation order, and this one
            # triggers the step, so it should not wait behind the neighbours' bookkeeping.
            for r in sorted(self.robots, key=lambda r: r != self.robot):
                self.create_subscription(cls(topics.POSE.type), topics.POSE.path(r), self._pose_cb(r),
                                         topics.qos_profile(topics.POSE.qos))
            # what the robot is told to drive (the safety filter's output): judges whether its pose should change
            self.create_subscription(cls(topics.CMD_VEL.type), topics.CMD_VEL.path(self.robot), self._on_cmd_vel,
                                     topics.qos_profile(topics.CMD_VEL.qos))
            task = self.adapter.task_topic  # navigation: its own goal; coverage: the landmarks
            self.create_subscription(cls(task.type), task.path(self.robot), self._on_task, topics.qos_profile(task.qos))
            self.create_timer(self.period, self._on_timer)
            self.name_ = self.get_fully_qualified_name()
            self.get_logger().info(f"running {path} for {self.robot} at {self.rate_hz:g} Hz")

        def _pose_cb(self, robot: str):
            mine = robot == self.robot

            def cb(msg) -> None:
                now = ros_now(self)
                pose, dropped = health.take_pose(self.adapter.poses, robot, msg, self.stamps, self.profile, now)
                if dropped:
                    return   # counted by the stamps' judge
                if mine:
                    if pose is not None:
                        self.frozen.sample(robot, pose, now)
                    self._step(now)
            return cb

        def _on_cmd_vel(self, msg) -> None:
            try:
                moving = max(map(abs, convert.twist_to_cmd(msg))) > health.MOVING_TOL
            except convert.MessageError:
                moving = False
            self.frozen.commanded(self.robot, moving, ros_now(self))

        def _on_task(self, msg) -> None:
            try:
                self.adapter.update_task(self.adapter.task_from_msg(msg))
            except convert.MessageError as exc:
                self.adapter.invalidate_task(str(exc))

        def _on_timer(self) -> None:
            now = ros_now(self)
            if now - self.last_step > FALLBACK_PERIODS * self.period:  # no pose of ours lately
                self._step(now)
            if now - self.last_diag > DIAGNOSTIC_PERIOD_S:
                self._publish_diag(now)

        def _step(self, now: float) -> None:
            self.last_step = now
            v = w = 0.0
            try:
                frozen = self.frozen.problem(self.robot, now)
                if frozen:
                    raise InputError(f"pose of {self.robot}", frozen)
                inputs = {**self.adapter.inputs(now), **self.hidden}
                t0 = time.perf_counter()
                out = self.runtime.run(inputs)
                self.infer_s += time.perf_counter() - t0
                cmd = np.asarray(out["cmd"], dtype=np.float64).reshape(-1)
                self.steps += 1
                fault = health.output_fault(cmd, self.profile)
                if fault:
                    self.output_faults += 1
                    if self.output_faults == 1:
                        self.get_logger().error(f"model output {cmd.tolist()} refused ({fault}): zero velocity "
                                                f"(counted as output_faults)")
                    raise InputError("model output", fault)
                v, w = float(cmd[0]), float(cmd[1])
                if health.clipped(v, w, self.profile):
                    self.clipped += 1
                    if self.clipped == 1:
                        self.get_logger().warning(f"model output ({v:.4g}, {w:.4g}) is beyond the profile's limits: "
                                                  f"the robot saturates it (counted as clipped_commands)")
                rec = self.runtime.spec["recurrent"]
                if rec is not None:  # carry the memory to the next step
                    self.hidden = {rec["input"]: out[rec["output"]]}
                changed = self.dog.clear()
            except (InputError, BadInput) as exc:
                changed = self.dog.trip(exc)
                if changed:
                    self.get_logger().warning(f"zero velocity: {exc}")
            self.pub.publish(convert.cmd_to_twist(v, w))
            if changed:
                self._publish_diag(now)

        def _publish_diag(self, now: float) -> None:
            self.last_diag = now
            mean_ms = 1e3 * self.infer_s / self.steps if self.steps else 0.0
            s = health.watchdog_status(self.name_, self.robot, self.dog, {
                "output_faults": self.output_faults, "clipped_commands": self.clipped,
                "pose_delay_ms_max": f"{self.stamps.worst_delay_ms():.1f}", "dropped_out_of_order": self.stamps.dropped,
                "stamp_jumps": self.stamps.jumps, "inference_ms_mean": f"{mean_ms:.3f}"})
            self.diag.publish(health.array(self.get_clock().now().to_msg(), [s]))

    return PolicyNode()


def main(argv: list[str] | None = None) -> int:
    return run_node(make_node, "policy_node", argv)


if __name__ == "__main__":
    sys.exit(main())
