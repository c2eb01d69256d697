"""Fleet policy node: every robot's exported policy in one node and one onnxruntime call per pose tick.

How a Robotarium-style testbed runs: one central computer reads motion capture and drives robots that
are only actuators. Each robot's pose, `cmd_vel` and task topic is read once (not once per robot's
policy node); on each tick the robots' inputs, assembled by the same task adapters a per-robot policy
node uses (ros_nodes/adapters.py, one per robot sharing one pose store), go through the exported graph
as one batch (its leading axis), and each robot's command goes out on its own `cmd_vel_nominal`, the
topic its policy node would use, so the safety layer and everything downstream is unchanged. The
deployment's `arrangement: fleet_policy` (`marlstack sitl --arrangement fleet_policy`) starts this node
in place of the per-robot policy nodes; robots with onboard computers keep one policy node each.

A tick: the motion capture sends every pose at once; the node steps when every robot whose pose is
live has a new one, or `gather_s` after the first new pose of the tick (a pose lost on the way does not
hold up the others). It commands only the robots whose pose arrived, as each policy node answers only
its own pose; a control-period timer catches a robot whose poses stopped (its stale pose stops it).
Per robot, the checks of the per-robot node: a missing, stale, non-finite or malformed input, a
frozen pose, or a non-finite or implausible model output stops that robot (zero velocity, a warning and
a `/diagnostics` status named `<node>: <robot>` saying why) and the batch runs on for the others: rows
are assembled and checked per robot, a stopped robot's row is zeros and its output unused. A model
exported with a fixed batch of 1 (not what `marlstack export` writes) runs once per robot, said in the
log. Onboard code: numpy + onnxruntime, no JAX.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Any, Mapping

import numpy as np

from marlstack.policies.runtime import PolicyRuntime
from marlstack.ros_nodes import convert, health, topics
from marlstack.ros_nodes.adapters import InputError, NavigationAdapter, make_adapter
from marlstack.ros_nodes.policy_node import DIAGNOSTIC_PERIOD_S, FALLBACK_PERIODS, declare_policy, load_runtime, open_policy
from marlstack.ros_nodes.runner import (StartError, declare, declare_neighbour_max_age, declare_stamp_limits,
                                        profile_and_rate, ros_now, run_node)

OUTPUT = "model output"  # InputError source of a refused model output


class FleetPolicy:
    """Every robot's policy at once: the per-robot adapters' inputs stacked along the graph's batch axis.

    Checked at start as a per-robot policy node checks its model (metadata, the fleet's shapes, a test
    inference: `open_policy`), then opened for a fixed batch of every robot (onnxruntime folds the shapes,
    I/O bound to preallocated arrays). If that batch does not run (a graph exported with a fixed batch of
    1), `batched` is False and `commands` calls the model once per robot. No rclpy, no JAX.
    """

    def __init__(self, path: str, scenario: str, profile: Any, rate_hz: float, robots: list[str], max_age_s: float,
                 neighbour_max_age_s: float | None = None) -> None:
        self.robots, self.profile = list(robots), profile
        self.index = {r: i for i, r in enumerate(self.robots)}
        self.infer_s, self.calls = 0.0, 0   # time in onnxruntime, and its calls (one per tick when batched)
        single, first = open_policy(path, scenario, profile, rate_hz, self.robots, self.robots[0], max_age_s,
                                    neighbour_max_age_s)
        self.poses = first.poses  # one pose store: each pose is stored once, read by every robot's adapter
        self.adapters: dict[str, NavigationAdapter] = {
            r: first if i == 0 else make_adapter(scenario, self.robots, r, max_age_s, neighbour_max_age_s, self.poses)
            for i, r in enumerate(self.robots)}
        n = len(self.robots)
        shapes = {e["name"]: tuple(e["shape"][1:]) for e in single.spec["inputs"]}
        self.feeds = {name: np.zeros((n, *shape), np.float32) for name, shape in shapes.items()}
        self.rec = single.spec["recurrent"]   # recurrent state: a feed, carried per robot
        self.runtime, self.unbatched_reason = self._batched(path, scenario, rate_hz, n)
        self.batched = self.unbatched_reason is None
        if not self.batched:
            self.runtime = single

    def _batched(self, path: str, scenario: str, rate_hz: float, n: int) -> tuple[PolicyRuntime | None, str | None]:
        """The runtime for a batch of every robot and None, or None and why the model does not take it."""
        try:
            runtime = load_runtime(path, scenario, self.profile, rate_hz, batch_size=n)
            runtime.run(self.feeds)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises untyped errors: fall back, say why
            return None, (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        return runtime, None

    def commands(self, now_s: float, robots: list[str],
                 problems: Mapping[str, str] | None = None) -> dict[str, tuple[float, float] | InputError]:
        """Each of `robots`' command at `now_s`, or why that robot must stop (its adapter's InputError, or
        InputError(OUTPUT, ...) for a refused output). `problems`: robots the caller found must stop (a frozen
        pose), by reason. A recurrent policy's state advances for the robots that got a command. The other
        rows of the batch keep their last inputs (finite: the adapters accept only finite values) and their
        outputs are not used."""
        out: dict[str, Any] = {}
        rows: list[tuple[int, str]] = []
        for r in robots:
            i = self.index[r]
            try:
                if problems and r in problems:
                    raise InputError(f"pose of {r}", problems[r])
                for name, value in self.adapters[r].inputs(now_s).items():
                    self.feeds[name][i] = value[0]
                rows.append((i, r))
            except InputError as exc:
                out[r] = exc
        if not rows:
            return out
        t0 = time.perf_counter()
        results = self._run([i for i, _ in rows])
        self.infer_s, self.calls = self.infer_s + time.perf_counter() - t0, self.calls + 1
        for i, r in rows:
            result = results[i]
            cmd = np.asarray(result["cmd"], dtype=np.float64).reshape(-1)
            fault = health.output_fault(cmd, self.profile)
            state = None if self.rec is None else result[self.rec["output"]]
            if fault is None and state is not None and not np.isfinite(state).all():
                fault = "non-finite recurrent state"   # carried, it would make the whole next batch refuse
            if fault:
                out[r] = InputError(OUTPUT, fault)
                continue
            if state is not None:
                self.feeds[self.rec["input"]][i] = state
            out[r] = (float(cmd[0]), float(cmd[1]))
        return out

    def _run(self, rows: list[int]) -> dict[int, dict[str, np.ndarray]]:
        """Row -> that robot's outputs (batch axis dropped): one call for every row, or one per row."""
        if self.batched:
            result = self.runtime.run(self.feeds)
            return {i: {k: v[i] for k, v in result.items()} for i in rows}
        return {i: {k: v[0] for k, v in self.runtime.run({k: f[i:i + 1] for k, f in self.feeds.items()}).items()}
                for i in rows}


def make_node():
    from rclpy.node import Node

    class FleetPolicyNode(Node):
        def __init__(self) -> None:
            super().__init__("fleet_policy")
            p = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
            self.robots = list(p("robots", [""], "the fleet in agent-index order (the training env's order); "
                                 "this node commands every one"))
            scenario, profile_name, path, rate = declare_policy(self)
            periods, offset = declare_stamp_limits(self)
            neighbours = declare_neighbour_max_age(self)
            gather = p("gather_s", 0.005, "a tick's batch waits at most this long after its first new pose for the "
                       "other robots' (a lost pose does not hold the others longer)", 0.0, 1.0)
            if not self.robots or not all(self.robots) or len(set(self.robots)) != len(self.robots):
                raise StartError(f"parameter 'robots' must list the fleet's distinct robot names, got {self.robots}")
            self.profile, self.rate_hz = profile_and_rate(profile_name, rate)
            self.period = 1.0 / self.rate_hz
            self.max_age = periods * self.period + offset
            self.fleet = FleetPolicy(path, scenario, self.profile, self.rate_hz, self.robots, self.max_age,
                                     neighbours)
            self.stamps = health.Stamps(offset, offset + self.period)
            self.frozen = health.FrozenValues(gap_s=periods * self.period)
            self.dogs = {r: health.Watchdog() for r in self.robots}
            self.output_faults = dict.fromkeys(self.robots, 0)
            self.clipped = dict.fromkeys(self.robots, 0)
            self.last_step = dict.fromkeys(self.robots, -math.inf)
            self.fresh: set[str] = set()     # robots with a new pose since their last command
            self.last_diag = -math.inf
            cls = topics.message_class
            state = topics.qos_profile("state")
            self.pubs = {r: self.create_publisher(cls(topics.CMD_VEL_NOMINAL.type), topics.CMD_VEL_NOMINAL.path(r), state)
                         for r in self.robots}
            self.diag = self.create_publisher(cls(topics.DIAGNOSTICS.type), topics.DIAGNOSTICS.path(),
                                              topics.qos_profile(topics.DIAGNOSTICS.qos))
            for r in self.robots:  # poses first: they trigger the step (the executor serves in creation order)
                self.create_subscription(cls(topics.POSE.type), topics.POSE.path(r), self._on_pose(r), state)
            for r in self.robots:
                self.create_subscription(cls(topics.CMD_VEL.type), topics.CMD_VEL.path(r), self._on_cmd_vel(r), state)
            task = self.fleet.adapters[self.robots[0]].task_topic
            for r in self.robots if task.per_robot else self.robots[:1]:  # goals / rware tasks per robot; landmarks once
                self.create_subscription(cls(task.type), task.path(r), self._on_task(r if task.per_robot else None),
                                         topics.qos_profile(task.qos))
            self.gather = self.create_timer(gather, self._on_gather)
            self.gather.cancel()   # armed by a tick's first pose
            self.create_timer(self.period, self._on_timer)
            self.name_ = self.get_fully_qualified_name()
            how = ("one batched call per tick" if self.fleet.batched else
                   f"one call per robot: the model does not take a batch of {len(self.robots)} ({self.fleet.unbatched_reason})")
            (self.get_logger().info if self.fleet.batched else self.get_logger().warning)(
                f"running {path} for {len(self.robots)} robots at {self.rate_hz:g} Hz, {how}")

        def _on_pose(self, robot: str):
            def cb(msg) -> None:
                now = ros_now(self)
                pose, dropped = health.take_pose(self.fleet.poses, robot, msg, self.stamps, self.profile, now)
                if dropped:
                    return   # counted by the stamps' judge
                if pose is not None:
                    self.frozen.sample(robot, pose, now)
                self.fresh.add(robot)
                # the first robot still to send this tick's pose whose last one is live (in the order poses arrive,
                # so usually the next one's: one check per pose); none: the tick is whole
                waiting = next((r for r in self.robots if r not in self.fresh
                                and self.fleet.poses.problem(r, now, self.max_age) is None), None)
                if waiting is None:
                    self.gather.cancel()
                    self._step(now, sorted(self.fresh, key=self.robots.index))
                elif len(self.fresh) == 1:
                    self.gather.reset()
            return cb

        def _on_gather(self) -> None:
            self.gather.cancel()
            if self.fresh:
                self._step(ros_now(self), sorted(self.fresh, key=self.robots.index))

        def _on_cmd_vel(self, robot: str):
            def cb(msg) -> None:
                try:
                    moving = max(map(abs, convert.twist_to_cmd(msg))) > health.MOVING_TOL
                except convert.MessageError:
                    moving = False
                self.frozen.commanded(robot, moving, ros_now(self))
            return cb

        def _on_task(self, robot: str | None):
            adapters = [self.fleet.adapters[robot]] if robot else list(self.fleet.adapters.values())

            def cb(msg) -> None:
                for adapter in adapters:
                    try:
                        adapter.update_task(adapter.task_from_msg(msg))
                    except convert.MessageError as exc:
                        adapter.invalidate_task(str(exc))
            return cb

        def _on_timer(self) -> None:
            now = ros_now(self)
            quiet = [r for r in self.robots if now - self.last_step[r] > FALLBACK_PERIODS * self.period]
            if quiet:   # no pose of theirs lately: their stale inputs stop them
                self._step(now, quiet)
            if now - self.last_diag > DIAGNOSTIC_PERIOD_S:
                self._publish_diag(now)

        def _step(self, now: float, robots: list[str]) -> None:
            self.fresh.difference_update(robots)
            frozen = {r: why for r in robots if (why := self.frozen.problem(r, now))}
            results = self.fleet.commands(now, robots, frozen)
            changed = False
            for r in robots:
                self.last_step[r] = now
                res, v, w = results[r], 0.0, 0.0
                if isinstance(res, tuple):
                    v, w = res
                    if health.clipped(v, w, self.profile):
                        self.clipped[r] += 1
                        if self.clipped[r] == 1:
                            self.get_logger().warning(f"model output ({v:.4g}, {w:.4g}) for {r} is beyond the profile's "
                                                      f"limits: the robot saturates it (counted as clipped_commands)")
                    changed |= self.dogs[r].clear()
                else:
                    if isinstance(res, InputError) and res.source == OUTPUT:
                        self.output_faults[r] += 1
                        if self.output_faults[r] == 1:
                            self.get_logger().error(f"model output for {r} refused ({res.reason}): zero velocity "
                                                    f"(counted as output_faults)")
                    if self.dogs[r].trip(res):
                        changed = True
                        self.get_logger().warning(f"zero velocity for {r}: {res}")
                self.pubs[r].publish(convert.cmd_to_twist(v, w))
            if changed:
                self._publish_diag(now)

        def _publish_diag(self, now: float) -> None:
            self.last_diag = now
            mean_ms = 1e3 * self.fleet.infer_s / self.fleet.calls if self.fleet.calls else 0.0
            self.diag.publish(health.array(self.get_clock().now().to_msg(), [
                health.watchdog_status(f"{self.name_}: {r}", r, self.dogs[r], {
                    "output_faults": self.output_faults[r], "clipped_commands": self.clipped[r],
                    "pose_delay_ms_max": f"{1e3 * self.stamps.delay_s.get(r, math.nan):.1f}",
                    "dropped_out_of_order": self.stamps.dropped, "stamp_jumps": self.stamps.jumps,
                    "batched": self.fleet.batched, "inference_ms_mean": f"{mean_ms:.3f}"})
                for r in self.robots]))

    return FleetPolicyNode()


def main(argv: list[str] | None = None) -> int:
    return run_node(make_node, "fleet_policy_node", argv)


if __name__ == "__main__":
    sys.exit(main())
