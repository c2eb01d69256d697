"""Policy node: one per robot, in its namespace. Sensors -> exported ONNX policy -> `cmd_vel_nominal`.

Event-driven for latency: each new pose of this robot runs the model at once and publishes;
a timer at the control rate catches silence (no pose at all) so the watchdog still fires.
Anything the task adapter rejects (missing, stale = older than `watchdog_periods` control
periods, non-finite, malformed) and any non-finite model output publishes zero velocity and a
diagnostic saying why; the next good input resumes. Onboard code: numpy + onnxruntime, no JAX.
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np

from hardware.profile import profile_hash
from policies.runtime import BadInput, PolicyRuntime
from ros_nodes import convert, health, topics
from ros_nodes.adapters import InputError, make_adapter
from ros_nodes.runner import StartError, declare, profile_and_rate, ros_now, run_node

DIAGNOSTIC_PERIOD_S = 0.5
FALLBACK_PERIODS = 1.5  # the timer steps only when no pose has triggered a step for this long


def load_runtime(path: str, scenario: str, profile, rate_hz: float):
    """The checked ONNX runtime, or StartError with the runtime's own one-line reason."""
    try:
        return PolicyRuntime(path, expect_scenario=scenario, expect_profile_hash=profile_hash(profile),
                             expect_rate_hz=rate_hz)
    except Exception as exc:  # any reason a model cannot run here is a refusal to start, said in one line
        raise StartError(str(exc) if str(path) in str(exc) else f"policy {path}: {exc}") from None


def make_node():
    from rclpy.node import Node

    class PolicyNode(Node):
        def __init__(self) -> None:
            super().__init__("policy")
            p = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
            self.robot = p("robot", "", "this robot's name (its namespace without '/')")
            self.robots = list(p("robots", [""], "the fleet in agent-index order (the training env's order)"))
            scenario = p("scenario", "navigation", "task scenario; selects the input adapter and is checked against the model")
            profile_name = p("profile", "gritsbot_x", "vehicle profile name or path; its hash is checked against the model")
            path = p("policy_path", "", "exported policy.onnx")
            rate = p("rate_hz", 0.0, "control rate, checked against the model's (0: the profile's 1 / dt)", 0.0, 1000.0)
            periods = p("watchdog_periods", 3.0, "inputs older than this many control periods stop the robot", 1.0, 100.0)
            if not self.robot or self.robot not in self.robots:
                raise StartError(f"parameter 'robot' = {self.robot!r} must be one of parameter 'robots' = {self.robots}")
            profile, self.rate_hz = profile_and_rate(profile_name, rate)
            self.period = 1.0 / self.rate_hz
            try:
                self.adapter = make_adapter(scenario, self.robots, self.robot, periods * self.period)
            except ValueError as exc:
                raise StartError(str(exc)) from None
            self.runtime = load_runtime(path, scenario, profile, self.rate_hz)
            self._check_shapes()
            self.hidden = self.runtime.initial_state(1)  # recurrent policies: zeros at start, then fed back

            self.dog = health.Watchdog()
            self.steps = 0
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
            task = self.adapter.task_topic  # navigation: its own goal; coverage: the landmarks
            self.create_subscription(cls(task.type), task.path(self.robot), self._on_task, topics.qos_profile(task.qos))
            self.create_timer(self.period, self._on_timer)
            self.name_ = self.get_fully_qualified_name()
            self.get_logger().info(f"running {path} for {self.robot} at {self.rate_hz:g} Hz")

        def _check_shapes(self) -> None:
            """The fleet must give the model the tensors it was exported for (e.g. N-1 others)."""
            have = {**self.adapter.shapes(), **{k: v.shape[1:] for k, v in self.runtime.initial_state(1).items()}}
            for e in self.runtime.spec["inputs"]:
                want, got = e["shape"][1:], have.get(e["name"])
                if got is None or list(got) != want:
                    raise StartError(f"model input '{e['name']}' expects per-robot shape {want}, this fleet of "
                                     f"{len(self.robots)} robots gives {None if got is None else list(got)}; "
                                     f"export the policy for this fleet size")

        def _pose_cb(self, robot: str):
            mine = robot == self.robot

            def cb(msg) -> None:
                now = ros_now(self)
                try:
                    x, y, yaw, _ = convert.pose_from_msg(msg)
                    self.adapter.update_pose(robot, x, y, yaw, now)
                except convert.MessageError as exc:
                    self.adapter.invalidate_pose(robot, str(exc))
                if mine:
                    self._step(now)
            return cb

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
                inputs = {**self.adapter.inputs(now), **self.hidden}
                t0 = time.perf_counter()
                out = self.runtime.run(inputs)
                self.infer_s += time.perf_counter() - t0
                cmd = np.asarray(out["cmd"], dtype=np.float64).reshape(-1)
                self.steps += 1
                if cmd.shape != (2,) or not np.all(np.isfinite(cmd)):
                    raise InputError("model output", f"expected 2 finite numbers, got {cmd.tolist()}")
                v, w = float(cmd[0]), float(cmd[1])
                rec = self.runtime.spec["recurrent"]
                if rec is not None:  # carry the memory to the next step
                    self.hidden = {rec["input"]: out[rec["output"]]}
                changed = self.dog.clear()
            except (InputError, BadInput) as exc:
                changed = self.dog.trip(str(exc))
                if changed:
                    self.get_logger().warning(f"zero velocity: {exc}")
            self.pub.publish(convert.cmd_to_twist(v, w))
            if changed:
                self._publish_diag(now)

        def _publish_diag(self, now: float) -> None:
            self.last_diag = now
            mean_ms = 1e3 * self.infer_s / self.steps if self.steps else 0.0
            s = health.watchdog_status(self.name_, self.robot, self.dog, {"inference_ms_mean": f"{mean_ms:.3f}"})
            self.diag.publish(health.array(self.get_clock().now().to_msg(), [s]))

    return PolicyNode()


def main(argv: list[str] | None = None) -> int:
    return run_node(make_node, "policy_node", argv)


if __name__ == "__main__":
    sys.exit(main())
