"""Safety node: the barrier certificate between the policies and the robots (`cmd_vel_nominal` -> `cmd_vel`).

mode 'fleet': one node filters every robot in one QP, like the Robotarium server; it solves as
soon as every robot's nominal command of the cycle has arrived (or at the control period, with
what it has). mode 'onboard': one node per robot filters its own command against its
neighbours' poses as they are now, solving on each nominal command.

Watchdog: a robot whose nominal command or pose is missing, stale (older than
`watchdog_periods` control periods), non-finite or malformed gets zero velocity and a
diagnostic saying why; so does every robot when a neighbour's position is unknown (never a good
pose). A neighbour whose pose is late, lost or refused (a bad sample) does not stop the others: it
is kept clear of at its last good pose by its speed limit × age. It resumes when the inputs are good
again. `/diagnostics` carries interventions and the solver status.
Onboard code: numpy + cvxpy (controllers.barrier), never JAX.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Any

import numpy as np

from marlstack.controllers.unicycle import saturate
from marlstack.ros_nodes import convert, health, topics
from marlstack.ros_nodes.adapters import InputError, LatestValues
from marlstack.ros_nodes.runner import StartError, declare, declare_stamp_limits, profile_and_rate, ros_now, run_node

DIAGNOSTIC_PERIOD_S = 0.5
FALLBACK_PERIODS = 1.5  # the timer filters only when no nominal command has triggered it for this long
INTERVENTION_TOL = 1e-3  # |u - saturated u_nominal| above this (m/s or rad/s) counts as an intervention


class Certificate:
    """marlstack.controllers.barrier for the `controlled` robots among `robots`.

    Fleet mode controls all; onboard mode controls one, and its neighbours enter the QP as
    obstacles at their current poses (their velocities are unknown onboard: taken as zero).
    Symmetric standoffs are broken by the right-hand rule of `controllers.barrier_deadlock`
    (a robot stuck for `deadlock_hold_s` turns its nominal clockwise; 0 turns it off).
    A controlled robot that must stop leaves the QP's variables and becomes a fixed obstacle
    (velocity 0): the others then take each avoidance in full, so every pair stays certified
    with the stopped robot's real velocity (zeroing it after a shared solve would not be).
    """

    def __init__(self, profile, robots: list[str], controlled: list[str], form: str, period: float | None = None,
                 deadlock_hold_s: float = 0.5, delay_s: float = 0.0, boxes: Any = ()):
        from marlstack.controllers.barrier_deadlock import DeadlockFreeFilter
        from marlstack.controllers.barrier_qp import barrier_spec
        if not barrier_spec(profile, form).unicycle:
            raise ValueError(f"parameter 'form' = {form!r}: ground robots need a unicycle form (unicycle, unicycle_walls)")
        period = period or profile.dt
        # certified for poses delay_s old, each command held one period (barrier_qp.barrier_spec)
        # boxes: static obstacles (shelves) as the certificate's box rows (barrier_qp.barrier_spec)
        self.filter = DeadlockFreeFilter(profile, len(robots), period, form, hold_s=deadlock_hold_s,
                                         lookahead_s=delay_s + period, boxes=boxes)
        self.mask = np.array([r in controlled for r in robots])

    @property
    def deadlocks(self) -> np.ndarray:
        """(controlled,) how often each controlled robot was found deadlocked (and turned right)."""
        return self.filter.deadlocks[self.mask]

    def __call__(self, poses: np.ndarray, u_nominal: np.ndarray, stopped: np.ndarray | None = None,
                 margins: np.ndarray | None = None) -> tuple[np.ndarray, str, float]:
        """poses (N, 3) of every robot, u_nominal (controlled, 2), stopped (controlled,) bool, margins (N,)
        extra distance (m) kept from each robot that does not move with this solve (stopped, or a neighbour)
        -> (u (controlled, 2), zero for stopped robots; status; min barrier)."""
        stop = np.zeros(int(self.mask.sum()), bool) if stopped is None else np.asarray(stopped, bool)
        moving = self.mask.copy()
        moving[self.mask] = ~stop
        u = np.zeros((self.mask.size, 2))
        u[moving] = np.asarray(u_nominal)[~stop]
        result = self.filter.filter(poses, u, controlled=moving, margins=margins)
        out = np.asarray(result.u)[self.mask]
        out[stop] = 0.0
        return out, result.status, float(result.min_barrier)


def make_node():
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    class SafetyNode(Node):
        def __init__(self) -> None:
            super().__init__("safety")
            p = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
            mode = p("mode", "fleet", "'fleet': filter every robot in one QP; 'onboard': filter only parameter 'robot'")
            robot = p("robot", "", "the robot this node filters in 'onboard' mode (ignored in 'fleet' mode)")
            self.robots = list(p("robots", [""], "the fleet in agent-index order"))
            profile_name = p("profile", "gritsbot_x", "vehicle profile: limits, barrier gains, arena walls")
            form = p("form", "unicycle_walls", "barrier form of controllers.barrier (e.g. unicycle_walls)")
            rate = p("rate_hz", 0.0, "control rate (0: the profile's 1 / dt)", 0.0, 1000.0)
            periods, offset = declare_stamp_limits(self)
            delay = p("delay_s", 0.0, "sense-to-actuate delay the certificate allows for (pose stamp to wheels), "
                      "on top of one control period", 0.0, 1.0)
            flat = p("boxes", Parameter.Type.DOUBLE_ARRAY, "static obstacles (shelves, furniture) the certificate keeps "
                     "every robot out of: flat [x_min, x_max, y_min, y_max] per box, world frame (unset: none)")
            hold = p("deadlock_hold_s", 0.5, "a robot blocked this long turns right (controllers.barrier_deadlock; 0: off)",
                     0.0, 60.0)
            if mode not in ("fleet", "onboard"):
                raise StartError(f"parameter 'mode' must be 'fleet' or 'onboard', got {mode!r}")
            if not self.robots or not all(self.robots):
                raise StartError("parameter 'robots' must list the fleet's robot names")
            if mode == "onboard" and robot not in self.robots:
                raise StartError(f"parameter 'robot' = {robot!r} must be one of parameter 'robots' = {self.robots}")
            self.controlled = list(self.robots) if mode == "fleet" else [robot]
            flat = list(flat or [])
            if len(flat) % 4:
                raise StartError(f"parameter 'boxes' needs 4 numbers per box [x_min, x_max, y_min, y_max], got {len(flat)}")
            self.profile, rate = profile_and_rate(profile_name, rate)
            try:
                self.certificate = Certificate(self.profile, self.robots, self.controlled, form, 1.0 / rate, hold, delay,
                                               np.reshape(flat, (-1, 4)))
            except ValueError as exc:
                raise StartError(str(exc)) from None
            self.period = 1.0 / rate
            self.max_age = periods * self.period
            self.max_pose_age = self.max_age + offset     # poses are judged by their header stamps
            self.stamps = health.Stamps(offset, offset + self.period)
            self.frozen = health.FrozenValues(gap_s=self.max_age)
            self.poses = LatestValues(self.robots, 3, "pose")
            self.nominal = LatestValues(self.controlled, 2, "cmd_vel_nominal")
            self.fresh: set[str] = set()
            self.dogs = {r: health.Watchdog() for r in self.controlled}
            self.interventions = dict.fromkeys(self.controlled, 0)
            self.brakes = dict.fromkeys(self.controlled, 0)    # solves that braked this robot (infeasible, ...)
            self.clipped = dict.fromkeys(self.controlled, 0)   # nominal commands beyond the limits, saturated
            self.solver_status, self.min_barrier = "not run", math.nan
            self.solves, self.solve_s = 0, 0.0
            self.last_solve = self.last_diag = -math.inf

            cls = topics.message_class
            state = topics.qos_profile("state")
            self.pubs = {r: self.create_publisher(cls(topics.CMD_VEL.type), topics.CMD_VEL.path(r), state)
                         for r in self.controlled}
            self.diag = self.create_publisher(cls(topics.DIAGNOSTICS.type), topics.DIAGNOSTICS.path(),
                                              topics.qos_profile(topics.DIAGNOSTICS.qos))
            # Nominal commands first: they trigger the filter (the executor serves in creation order).
            for r in self.controlled:
                self.create_subscription(cls(topics.CMD_VEL_NOMINAL.type), topics.CMD_VEL_NOMINAL.path(r),
                                         self._on_nominal(r), state)
            for r in self.robots:
                self.create_subscription(cls(topics.POSE.type), topics.POSE.path(r), self._on_pose(r), state)
            self.create_timer(self.period, self._on_timer)
            base = self.get_fully_qualified_name()
            self.diag_names = {r: base if mode == "onboard" else f"{base}: {r}" for r in self.controlled}
            self.get_logger().info(f"{mode} barrier ({form}, {len(flat) // 4} static boxes) for {', '.join(self.controlled)}")

        def _on_pose(self, robot: str):
            def cb(msg) -> None:
                now = ros_now(self)
                pose, _ = health.take_pose(self.poses, robot, msg, self.stamps, self.profile, now)
                if pose is not None:
                    self.frozen.sample(robot, pose, now)
            return cb

        def _on_nominal(self, robot: str):
            def cb(msg) -> None:
                now = ros_now(self)
                try:
                    self._put_nominal(robot, convert.twist_to_cmd(msg), now)
                except convert.MessageError as exc:
                    self.nominal.invalidate(robot, str(exc))
                self.fresh.add(robot)
                live = {r for r in self.controlled if self.nominal.problem(r, now, self.max_age) is None}
                if live <= self.fresh:  # every live policy has spoken this cycle: filter now
                    self._solve(now)
            return cb

        def _put_nominal(self, robot: str, cmd: tuple[float, float], now: float) -> None:
            """Store a nominal command; an implausible one (a broken policy) stops the robot, one beyond the
            limits is saturated as the robot would, counted, and logged the first time."""
            fault = health.command_fault(*cmd, self.profile)
            if fault:
                self.nominal.invalidate(robot, f"implausible: {fault}")
                return
            if health.clipped(*cmd, self.profile):
                self.clipped[robot] += 1
                if self.clipped[robot] == 1:
                    self.get_logger().warning(f"nominal command of {robot} ({cmd[0]:.4g}, {cmd[1]:.4g}) is beyond the "
                                              f"profile's limits: saturated (counted as clipped_commands)")
            self.nominal.put(robot, cmd, now)

        def _on_timer(self) -> None:
            now = ros_now(self)
            if now - self.last_solve > FALLBACK_PERIODS * self.period:  # a policy went quiet
                self._solve(now)
            if now - self.last_diag > DIAGNOSTIC_PERIOD_S:
                self._publish_diag(now)

        def _problems(self, now: float) -> dict[str, InputError | str]:
            """Per controlled robot, the first reason it must stop (absent when it may move)."""
            out: dict[str, InputError | str] = {}
            unknown = [r for r in self.robots if not self.poses.known(r)]
            for r in self.controlled:
                problem = self.poses.problem(r, now, self.max_pose_age) or self.nominal.problem(r, now, self.max_age)
                frozen = self.frozen.problem(r, now)
                if problem is None and frozen:
                    problem = f"pose of {r}: {frozen}"
                if problem is None and unknown:
                    problem = self.poses.problem(unknown[0], now, self.max_pose_age)  # cannot certify against it
                if problem is not None:
                    out[r] = problem
            return out

        def _solve(self, now: float) -> None:
            self.last_solve = now
            self.fresh.clear()
            problems = self._problems(now)
            n = len(self.controlled)
            u_nom = np.array([self.nominal.get(r) for r in self.controlled])
            stopped = np.array([r in problems for r in self.controlled])
            u_nom[stopped | ~np.isfinite(u_nom).all(axis=1)] = 0.0
            u = np.zeros((n, 2))
            if not stopped.all():
                poses = np.nan_to_num(self.poses.values, nan=0.0)
                t0 = time.perf_counter()
                # a robot that does not move with us (stopped, or a neighbour onboard) is where it was
                # measured, give or take how far it can drive in its pose's age; its own watchdog stops
                # it within max_pose_age + a period of its last stamp (docs/barrier.md)
                age = np.clip(now - self.poses.times, 0.0, self.max_pose_age + self.period)
                margins = self.profile.max_linear_speed * age
                u, self.solver_status, self.min_barrier = self.certificate(poses, u_nom, stopped, margins)
                self.solve_s += time.perf_counter() - t0
                self.solves += 1
                u[stopped | ~np.isfinite(u).all(axis=1)] = 0.0
                if self.solver_status != "optimal":  # the filter braked: say so, per robot
                    for r in self.controlled:
                        if r not in problems:
                            self.brakes[r] += 1
                            problems[r] = (f"barrier certificate: {self.solver_status} (min barrier "
                                           f"{self.min_barrier:.3g}: robots overlap or start unsafe)")
            # An intervention is the barrier changing the command beyond what the wheels' limits would.
            u_sat = np.stack(saturate(u_nom[:, 0], u_nom[:, 1], self.profile), axis=-1)
            changed = False
            for i, r in enumerate(self.controlled):
                if problems.get(r) is None and np.abs(u[i] - u_sat[i]).max() > INTERVENTION_TOL:
                    self.interventions[r] += 1
                dog = self.dogs[r]
                if r in problems:
                    if dog.trip(problems[r]):
                        changed = True
                        self.get_logger().warning(f"zero velocity for {r}: {problems[r]}")
                else:
                    changed |= dog.clear()
                self.pubs[r].publish(convert.cmd_to_twist(u[i, 0], u[i, 1]))
                self.frozen.commanded(r, bool(np.abs(u[i]).max() > health.MOVING_TOL), now)
            if changed:
                self._publish_diag(now)

        def _publish_diag(self, now: float) -> None:
            self.last_diag = now
            mean_ms = 1e3 * self.solve_s / self.solves if self.solves else 0.0
            deadlocks = self.certificate.deadlocks
            statuses = [health.watchdog_status(self.diag_names[r], r, self.dogs[r], {
                "interventions": self.interventions[r], "barrier_brakes": self.brakes[r],
                "clipped_commands": self.clipped[r], "deadlocks": int(deadlocks[i]),
                "solver_status": self.solver_status, "pose_delay_ms_max": f"{self.stamps.worst_delay_ms():.1f}",
                "dropped_out_of_order": self.stamps.dropped, "stamp_jumps": self.stamps.jumps,
                "min_barrier": f"{self.min_barrier:.4g}", "solve_ms_mean": f"{mean_ms:.3f}"}) for i, r in enumerate(self.controlled)]
            self.diag.publish(health.array(self.get_clock().now().to_msg(), statuses))

    return SafetyNode()


def main(argv: list[str] | None = None) -> int:
    return run_node(make_node, "safety_node", argv)


if __name__ == "__main__":
    sys.exit(main())
