"""MAV team policy node: every MAV of a cable team in one node, one batched onnxruntime call per load sample.

How a Crazyflie-class team is flown in practice (crazyswarm2: one ground computer computes every vehicle's
set-point): a MAV team config's `arrangement: fleet_policy` (`marlstack sitl --arrangement fleet_policy`) starts
this node in place of the per-MAV policy nodes (ros_nodes/mav_policy_node.py); the default stays one per MAV, each
on its own computer. Why: three processes woken by the same load sample share the cores with the simulator and
each decodes every odometry message (docs/ros.md, "MAV chain latency").

Every topic is read once (`/load/odom`, each MAV's `odom`, `/load/goal`, `/load/start`), each message decoded once
and handed to every MAV's `MavPilot`, the per-MAV node's own logic, so each MAV judges stamps, holds, lands and
certifies exactly as its node would (a stamp is judged once for the team, `health.SharedStamps`, each MAV given
the verdict its own judge would give). A load sample steps the team (at most once per `MIN_STEP_PERIODS`, a timer
steps it when samples stop): each MAV's model inputs stacked along the graph's batch axis, ONE model call, then
each MAV's own safety stage and its set-point on its own `/<mav>/setpoint`. A MAV whose step is decided without
the model (its odometry lost or frozen: no set-point; a teammate lost: the team landing; an input it cannot use:
position hold) keeps its row's last inputs, its output unused: a bad input of one MAV stops only those MAVs whose
own node would stop. A model that does not take a batch of the team (not what `marlstack export` writes) runs once
per MAV, said in the log. Per MAV a `/diagnostics` status `<node>: <mav>` with the per-MAV node's values
(`inference_ms_mean`: the team's call). Onboard code: numpy + onnxruntime, never JAX.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Any, Iterator

import numpy as np

from marlstack.policies.runtime import BadInput, PolicyRuntime
from marlstack.ros_nodes import convert, health, mav_io, topics
from marlstack.ros_nodes.mav_policy_node import DIAGNOSTIC_PERIOD_S, MIN_STEP_PERIODS, MavPilot, parsed, team_parameters
from marlstack.ros_nodes.runner import StartError, ros_now, run_node

Step = tuple[np.ndarray | None, bool]   # a MAV's set-point (None: send nothing) and whether its watchdog's state is news


class MavLog:
    """A logger whose lines name the MAV (one node speaks for the team)."""

    def __init__(self, logger: Any, mav: str) -> None:
        self.logger, self.mav = logger, mav

    def info(self, text: str) -> None:
        self.logger.info(f"{self.mav}: {text}")

    def warning(self, text: str) -> None:
        self.logger.warning(f"{self.mav}: {text}")

    def error(self, text: str) -> None:
        self.logger.error(f"{self.mav}: {text}")


class MavTeam:
    """Every MAV's pilot, with one model call for the team per step (`batched`: the model at `path`, checked as
    `runtime`, opened for a batch of the team), or one per MAV when the model does not take that batch
    (`unbatched_reason`). No rclpy. `pilot_args`: MavPilot's arguments but `mav`."""

    def __init__(self, runtime: PolicyRuntime, path: str, log: Any, **pilot_args: Any) -> None:
        self.runtime = runtime
        self.pilots = {m: MavPilot(runtime, mav=m, log=MavLog(log, m), **pilot_args) for m in pilot_args["mavs"]}
        n = len(self.pilots)
        own = next(iter(self.pilots.values())).inputs.stamps
        stamps = health.SharedStamps(own.offset_s, own.jump_s, n)   # each message's stamp judged once for the team
        for pilot in self.pilots.values():
            pilot.inputs.stamps = stamps
        self.feeds = {e["name"]: np.zeros((n, *e["shape"][1:]), np.float32) for e in runtime.spec["inputs"]}
        self.batched: PolicyRuntime | None = None
        self.unbatched_reason: str | None = None
        try:
            self.batched = PolicyRuntime(path, batch_size=n)
            self.batched.run(self.feeds)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises untyped errors: one call per MAV, say why
            self.batched, self.unbatched_reason = None, (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        self.calls = 0   # batched model calls

    def receive(self, key: str, values: tuple[float, ...] | convert.MessageError, stamp_s: float, now_s: float) -> None:
        for pilot in self.pilots.values():
            pilot.receive(key, values, stamp_s, now_s)

    def goal(self, values: tuple[float, ...] | convert.MessageError, stamp_s: float) -> None:
        for pilot in self.pilots.values():
            pilot.goal(values, stamp_s)

    def start(self, stamp_s: float) -> None:
        for pilot in self.pilots.values():
            pilot.start(stamp_s)

    def step(self, now: float) -> Iterator[tuple[str, Step]]:
        """Every MAV's step at `now`, each yielded as soon as it is decided (to be sent at once): those decided
        without the model first, then, after one call for the MAVs that need the model (rows in team order), each
        through its own safety stage in team order."""
        if self.batched is None:
            yield from ((m, pilot.step(now)) for m, pilot in self.pilots.items())
            return
        rows: list[tuple[int, str]] = []
        for i, (m, pilot) in enumerate(self.pilots.items()):
            feeds = pilot.prepare(now)
            if feeds is None:
                yield m, pilot.decided
                continue
            for name, value in feeds.items():
                self.feeds[name][i] = value[0]
            rows.append((i, m))
        if not rows:
            return
        t0 = time.perf_counter()
        try:
            result = self.batched.run(self.feeds)
        except BadInput:   # a non-finite input refuses the batch: that MAV holds, as its own model call would
            for i, m in list(rows):
                try:
                    self.runtime.check_inputs({name: f[i:i + 1] for name, f in self.feeds.items()})
                except BadInput as exc:
                    rows.remove((i, m))
                    for f in self.feeds.values():
                        f[i] = 0.0   # finite: the row's output is not used
                    yield m, self.pilots[m].hold(now, exc)
            if not rows:
                return
            result = self.batched.run(self.feeds)
        spent = time.perf_counter() - t0
        self.calls += 1
        for i, m in rows:
            self.pilots[m].infer_s += spent
            yield m, self.pilots[m].complete(now, {k: v[i:i + 1] for k, v in result.items()})


def make_node():
    from rclpy.node import Node

    class MavTeamPolicyNode(Node):
        def __init__(self) -> None:
            super().__init__("mav_team_policy")
            path, self.rate_hz, runtime, args = team_parameters(self)
            self.mavs = args["mavs"]
            if not self.mavs or not all(self.mavs) or len(set(self.mavs)) != len(self.mavs):
                raise StartError(f"parameter 'mavs' must list the team's distinct MAV names, got {self.mavs}")
            self.period = args["period_s"]
            try:
                self.team = MavTeam(runtime, path, self.get_logger(), **args)
            except ValueError as exc:
                raise StartError(f"{path}: {exc}") from None
            self.setpoints: dict[str, Any] = dict.fromkeys(self.mavs)   # one message per MAV, overwritten every step
            self.last_step = self.last_diag = -math.inf
            self.load_stamp = 0.0
            self.sim_time = bool(self.get_parameter("use_sim_time").value)  # SITL on simulated time (/clock)
            cls = topics.message_class
            state = topics.qos_profile("state")
            self.pubs = {m: self.create_publisher(cls(topics.SETPOINT.type), topics.SETPOINT.path(m), state)
                         for m in self.mavs}
            self.diag = self.create_publisher(cls(topics.DIAGNOSTICS.type), topics.DIAGNOSTICS.path(),
                                              topics.qos_profile(topics.DIAGNOSTICS.qos))
            # as the per-MAV node: a new start before the load, then the load (it triggers the step), then the odometry
            self.create_subscription(cls(topics.LOAD_START.type), topics.LOAD_START.path(), self._on_start,
                                     topics.qos_profile(topics.LOAD_START.qos))
            self.create_subscription(cls(topics.LOAD_ODOM.type), topics.LOAD_ODOM.path(), self._on_load, state)
            for m in self.mavs:
                self.create_subscription(cls(topics.ODOM.type), topics.ODOM.path(m), self._on_odom(m), state)
            self.create_subscription(cls(topics.LOAD_GOAL.type), topics.LOAD_GOAL.path(), self._on_goal,
                                     topics.qos_profile(topics.LOAD_GOAL.qos))
            self.create_timer(self.period, self._on_timer)
            self.name_ = self.get_fully_qualified_name()
            how = ("one batched call per step" if self.team.batched else
                   f"one call per MAV: the model does not take a batch of {len(self.mavs)} ({self.team.unbatched_reason})")
            (self.get_logger().info if self.team.batched else self.get_logger().warning)(
                f"running {path} for {len(self.mavs)} MAVs at {self.rate_hz:g} Hz, {how}")

        def _on_load(self, msg) -> None:
            now = ros_now(self)
            self.team.receive(mav_io.LOAD, parsed(mav_io.odometry, msg, "load odom"),
                              convert.stamp_seconds(msg.header.stamp), now)
            self.load_stamp = mav_io.stamp_or(msg, now)
            if self.sim_time:  # /clock may reach this node just after the sample it stamps: the sample's time is now
                now = max(now, self.load_stamp)
            if now - self.last_step >= MIN_STEP_PERIODS * self.period:
                t0 = time.perf_counter()
                self._step(now)
                spent = time.perf_counter() - t0
                for pilot in self.team.pilots.values():
                    pilot.step_s += spent
                    pilot.load_steps += 1

        def _on_odom(self, mav: str):
            what = f"odom of {mav}"
            return lambda msg: self.team.receive(mav, parsed(mav_io.odometry, msg, what),
                                                 convert.stamp_seconds(msg.header.stamp), ros_now(self))

        def _on_goal(self, msg) -> None:
            self.team.goal(parsed(mav_io.goal_pose, msg), mav_io.stamp_or(msg, ros_now(self)))

        def _on_start(self, msg) -> None:
            self.team.start(mav_io.stamp_or(msg, ros_now(self)))

        def _on_timer(self) -> None:
            now = ros_now(self)
            if now - self.last_step > 1.5 * self.period:  # no load sample lately: step anyway, the watchdogs decide
                self._step(now)
            if now - self.last_diag > DIAGNOSTIC_PERIOD_S:
                self._publish_diag(now)

        def _step(self, now: float) -> None:
            self.last_step = now
            news = False
            for m, (cmd, changed) in self.team.step(now):   # each set-point out as soon as it is ready
                if cmd is not None:
                    self.setpoints[m] = mav_io.setpoint_msg(cmd, self.load_stamp or now, reuse=self.setpoints[m])
                    self.pubs[m].publish(self.setpoints[m])
                news |= changed
            if news:
                self._publish_diag(now)

        def _publish_diag(self, now: float) -> None:
            self.last_diag = now
            self.diag.publish(health.array(self.get_clock().now().to_msg(), [
                pilot.status(f"{self.name_}: {m}") for m, pilot in self.team.pilots.items()]))

    return MavTeamPolicyNode()


def main(argv: list[str] | None = None) -> int:
    return run_node(make_node, "mav_team_policy_node", argv)


if __name__ == "__main__":
    sys.exit(main())
