"""MAV sim node: the cable team as fake hardware for SITL (ros_nodes/mav_sim.py behind ROS topics).

Every policy period (100 Hz for mav_corl25) it applies each MAV's latest `setpoint` through that
vehicle's simulated flight controller (INDI / rate loop, mixer and motors at the physics rate, with
the failsafes of `mav_sim.TeamSim`), and publishes each MAV's `odom` and `imu` and the load's
`/load/odom` at their configured rates with Gaussian noise, a fixed latency and random drops (the
deployment YAML's `sensors:`). It flies the mission: with `takeoff_climb_rate` > 0 the team starts
on the ground beside the load and the firmware climbs until the load hangs at the start (the first goal
is published at once, so the policy nodes are running when the set-points take over); then the latched
`/load/goal` steps through the goal sequence (next goal once the current one is held
`task.success_hold` s, or after `goal_timeout_s`; goals with `scored` 0 are waypoints; one with a start,
`from_rest`, begins with the team put at rest there, announced on the latched `/load/start`, on which the
policy nodes begin a new episode), then every MAV lands. Fault injection: `blind_mav`'s odometry stops for
`blind_for_s` from `blind_at_s` (its policy node cannot fly; the firmware holds, then descends);
`fail_mav` loses all thrust at `fail_at_s` and its cable is released (the environment's failure mode).

Kill: like a real MAV's flight link node (`marlstack flight kill`), it serves `/<mav>/kill` (std_srvs/Trigger,
`topics.KILL`) for every simulated MAV: its motors stop at once, for good (`mav_sim.TeamSim.cut`: no thrust, its
cable released), it falls, and the others' policy nodes see a lost teammate. `kill_mavs` / `kill_at_s` schedule
the same kill on simulated time (the config's `sim: {kill_mavs: [mav_1] | all, kill_at_s: 12}`).

The flight controllers judge each set-point by its header stamp (the load sample it answers), with the
shared rules of `health.Stamps`: unset, future or jumping stamps make that MAV's set-points unusable until
a good one, an out-of-order one is dropped, and one already older than the firmware's age limit when it
arrives is refused as stale (a repeated stamp, a policy node's timer step answering the same load sample,
is used while young enough: a stream whose stamps stop advancing goes stale); a refused set-point is no
set-point, so the firmware's failsafe (hold, then descend) flies (`mav_io.setpoint_fault`). Per MAV a `/diagnostics` status `<node>: <mav>` says its firmware mode and why
set-points were refused (every second and on each failsafe transition).

Time (`clock`): on simulated time (`sim`, the default of `marlstack sitl`) it publishes `/clock` before each
tick's sensors, stamps everything with it, and takes the next step only once every MAV's set-point answering the
tick's load sample has arrived, or after `lockstep_timeout_s` of wall clock (`mav_sim.Lockstep`: counted per MAV,
that MAV not waited for again until it answers), so the policy nodes (`use_sim_time`) see the physics advance
one period per answer however loaded the machine is, and the run goes as fast as the chain allows. On wall
clock (`wall`) it steps every period of real time, whatever has arrived: what a real team's timing does to the
chain, including a starved machine's.

Like the fleet's sim node it holds the team (nothing published, no step) until every node is
connected, writes a JSON summary (per goal: error trace, success; minimum MAV separation, slack
events, maximum tilt, landing; load odometry -> set-point latency) to `summary_path` every second
and at shutdown, and publishes it latched on `/sim/summary`. SITL tooling: imports JAX.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

from marlstack.ros_nodes import convert, health, mav_io, topics
from marlstack.ros_nodes.runner import StartError, declare, ros_now, run_node
from marlstack.ros_nodes.sim_node import latency_stats

SUMMARY_PERIOD_S = 1.0
WAIT_LOG_PERIOD_S = 2.0
CLOCKS = ("sim", "wall")
POLL_S = 0.005          # simulated time: how often the wall-clock timer looks for an expired wait
MAX_TICKS_PER_CALL = 10  # ... and how many ticks without a load sample to wait for it runs at once


def quat_from_rpy(roll: float, pitch: float, yaw: float) -> tuple[float, float, float, float]:
    """(w, x, y, z) of R = Rz(yaw) Ry(pitch) Rx(roll)."""
    cr, sr, cp, sp = math.cos(roll / 2), math.sin(roll / 2), math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return (cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy)


def make_node():
    from rclpy.node import Node

    from marlstack.ros_nodes.mav_sim import LANDED, Failsafe, Lockstep, Takeoff, TeamSim

    class MavSimNode(Node):
        def __init__(self) -> None:
            super().__init__("mav_sim")
            p = lambda *a, **k: declare(self, *a, **k)  # noqa: E731
            self.mavs = list(p("mavs", [""], "the team in agent-index order"))
            profile = p("profile", "mav_corl25", "MAV team profile")
            start = list(p("start", [0.0, 0.0, 1.5], "load start position [x, y, z] (the team starts in hover)"))
            goals = list(p("goals", [0.0], "goal sequence, flat [x, y, z, roll, pitch, yaw (deg)] per goal"))
            scored = list(p("scored", [1], "per goal 1 (counted in the success rate) or 0 (a waypoint); [1]: all"))
            from_rest = list(p("from_rest", [0], "per goal 1: the team is put at rest in hover with the load at the "
                                                 "goal's start (goal_starts) when it begins, as an evaluation episode "
                                                 "starts; [0]: none"))
            goal_starts = list(p("goal_starts", [0.0], "flat [x, y, z] per goal: where from_rest puts the load"))
            clock = p("clock", "wall", f"time base: one of {', '.join(CLOCKS)} (sim: publish /clock, step when every "
                                       "MAV answered)")
            wait = p("lockstep_timeout_s", 0.5, "simulated time: step anyway after this long (wall clock) without "
                                                "every MAV's set-point", 0.01, 60.0)
            self.need_clock = p("clock_subscribers", 0, "simulated time: hold the team until /clock has this many "
                                                        "readers", 0, 10_000)
            climb = p("takeoff_climb_rate", 0.0, "take off from the ground at this climb rate, m/s (0: start in hover)",
                      0.0, 2.0)
            self.goal_timeout = p("goal_timeout_s", 15.0, "move on to the next goal after this long", 0.1, 3600.0)
            periods = p("watchdog_periods", 3.0, "a set-point older than this many periods is stale", 1.0, 100.0)
            offset = p("clock_offset_s", 0.02, "allowance for the clock offset between this node and the policy "
                       "nodes: set-point stamps may be this far in the future", 0.0, 1.0)
            fs = Failsafe(hold_s=p("failsafe_hold_s", -1.0, "level hover this long before descending (s; -1: the "
                                                             "profile's failsafe.hold_s)", -1.0, 60.0),
                          descent_rate=p("failsafe_descent_rate", 0.0, "bounded descent rate, m/s (0: the profile's "
                                                                       "failsafe.descent_rate)", 0.0, 2.0))
            self.rates = {k: p(f"{k}_rate_hz", 100.0, f"{k} publishing rate", 1.0, 1000.0) for k in ("odom", "imu", "load")}
            self.noise = {k: p(f"noise_{k}", 0.0, f"Gaussian noise std of {k}", 0.0, 10.0)
                          for k in ("position", "velocity", "attitude", "rate")}
            self.latency = p("latency_s", 0.0, "sensor messages leave this long after they are measured", 0.0, 1.0)
            self.drop = p("drop_fraction", 0.0, "fraction of sensor messages not published", 0.0, 1.0)
            seed = p("seed", 0, "seed of the noise and drop draws", 0, 2**31 - 1)
            self.blind = p("blind_mav", "", "fault injection: this MAV's odometry stops (empty: none)")
            self.blind_at = p("blind_at_s", 0.0, "... from this time", 0.0, 3600.0)
            self.blind_for = p("blind_for_s", 0.0, "... for this long", 0.0, 3600.0)
            self.fail_mav = p("fail_mav", "", "fault injection: this MAV loses all thrust (cable released); empty: none")
            self.fail_at = p("fail_at_s", 0.0, "... at this time", 0.0, 3600.0)
            self.kill_mavs = [m for m in p("kill_mavs", [""], "scheduled kill: these MAVs' motors stop, as by their "
                                                             "/<mav>/kill service ([\"\"]: none)") if m]
            self.kill_at = p("kill_at_s", 0.0, "... at this time", 0.0, 3600.0)
            summary = p("summary_path", "", "write the JSON summary here (empty: only publish it)")
            self.need_odom = p("odom_subscribers", 0, "hold the team until each odom has this many readers", 0, 10_000)
            self.need_load = p("load_subscribers", 0, "... /load/odom and /load/goal this many", 0, 10_000)
            self.need_setpoint = p("setpoint_publishers", 0, "... each setpoint this many writers", 0, 10_000)
            n, count = len(self.mavs), len(goals) // 6
            if not n or not all(self.mavs) or len(start) != 3 or len(goals) % 6 or not goals \
                    or len(scored) not in (1, count) or len(from_rest) not in (1, count) \
                    or (any(from_rest) and len(goal_starts) != 3 * count):
                raise StartError(f"parameters: 'mavs' must name the team, 'start' be [x, y, z], 'goals' 6 numbers "
                                 f"per goal (got {len(goals)}), 'scored' and 'from_rest' one flag per goal and "
                                 f"'goal_starts' 3 numbers per goal")
            if clock not in CLOCKS:
                raise StartError(f"parameter 'clock' = {clock!r} must be one of {', '.join(CLOCKS)}")
            if self.fail_mav and self.fail_mav not in self.mavs:
                raise StartError(f"parameter 'fail_mav' = {self.fail_mav!r} is not one of {self.mavs}")
            if set(self.kill_mavs) - set(self.mavs):
                raise StartError(f"parameter 'kill_mavs' = {self.kill_mavs} must name MAVs of {self.mavs}")
            if self.blind and self.blind not in self.mavs:
                raise StartError(f"parameter 'blind_mav' = {self.blind!r} is not one of {self.mavs}")
            try:
                self.sim = TeamSim(profile, n, tuple(start), fs, takeoff=Takeoff(climb_rate=climb) if climb else None)
                self.sim.warm_up()
            except Exception as exc:  # profile or team-size errors: one line
                raise StartError(str(exc)) from None
            fs.max_age_s = periods * self.sim.dt
            fs.hold_s = self.sim.profile.failsafe.hold_s if fs.hold_s < 0 else fs.hold_s
            fs.descent_rate = fs.descent_rate or self.sim.profile.failsafe.descent_rate
            self.stamps = health.Stamps(offset, offset + self.sim.dt)   # set-points judged by their stamps
            self.refused = [0] * n                  # set-points refused per MAV (bad stamp or stale on arrival)
            self.refusal: list[str | None] = [None] * n   # why the latest one was refused (None: it was used)
            self.events_seen = 0
            self.goal_list = [(tuple(g[:3]), quat_from_rpy(*(math.radians(v) for v in g[3:])))
                              for g in np.asarray(goals, float).reshape(-1, 6).tolist()]
            self.scored = [bool(v) for v in (scored * len(self.goal_list) if len(scored) == 1 else scored)]
            rest = from_rest * count if len(from_rest) == 1 else from_rest
            self.goal_starts = [tuple(goal_starts[3 * k:3 * k + 3]) if v else None for k, v in enumerate(rest)]
            self.lockstep = Lockstep(n, wait) if clock == "sim" else None
            self.base = ros_now(self)  # simulated time starts at the wall clock's now (bags and stamps look familiar)
            self.goal_index = -1
            self.rng = np.random.default_rng(seed)
            self.summary_path = Path(summary) if summary else None
            self.queue: deque = deque()  # (due time, publisher, message) for the latency model
            self.sent: dict[float, tuple] = {}  # load odom stamp -> (perf_counter when it left, MAVs that answered)
            self.latency_s: list[float] = []
            self.reports: dict[str, dict] = {m: {} for m in self.mavs}
            self.ticks = 0
            self.setpoints_in = [0] * n
            self.t0 = self.now()
            self.wall0 = time.monotonic()
            self.released = False
            self.done_at: float | None = None
            self.last_summary = self.last_wait_log = -math.inf
            cls, state = topics.message_class, topics.qos_profile("state")
            self.odom_pubs = [self.create_publisher(cls(topics.ODOM.type), topics.ODOM.path(m), state) for m in self.mavs]
            self.imu_pubs = [self.create_publisher(cls(topics.IMU.type), topics.IMU.path(m), state) for m in self.mavs]
            self.load_pub = self.create_publisher(cls(topics.LOAD_ODOM.type), topics.LOAD_ODOM.path(), state)
            self.goal_pub = self.create_publisher(cls(topics.LOAD_GOAL.type), topics.LOAD_GOAL.path(),
                                                  topics.qos_profile(topics.LOAD_GOAL.qos))
            self.start_pub = self.create_publisher(cls(topics.LOAD_START.type), topics.LOAD_START.path(),
                                                   topics.qos_profile(topics.LOAD_START.qos))
            self.diag_pub = self.create_publisher(cls(topics.DIAGNOSTICS.type), topics.DIAGNOSTICS.path(),
                                                  topics.qos_profile(topics.DIAGNOSTICS.qos))
            self.summary_pub = self.create_publisher(cls(topics.SIM_SUMMARY.type), topics.SIM_SUMMARY.path(),
                                                     topics.qos_profile(topics.SIM_SUMMARY.qos))
            self.clock_pub = self.create_publisher(cls(topics.CLOCK.type), topics.CLOCK.path(),
                                                   topics.qos_profile(topics.CLOCK.qos)) if self.lockstep else None
            self.setpoint_subs = [self.create_subscription(cls(topics.SETPOINT.type), topics.SETPOINT.path(m),
                                                           self._on_setpoint(i), state) for i, m in enumerate(self.mavs)]
            self.create_subscription(cls(topics.DIAGNOSTICS.type), topics.DIAGNOSTICS.path(), self._on_diag,
                                     topics.qos_profile(topics.DIAGNOSTICS.qos))
            for i, m in enumerate(self.mavs):   # the vehicle command a real MAV's flight link node serves
                self.create_service(cls(topics.KILL.type), topics.KILL.path(m), self._on_kill(i))
            self.failed = self.killed = False   # the scheduled faults done
            self._next_goal()
            self.create_timer(POLL_S if self.lockstep else self.sim.dt, self._on_timer)
            self.get_logger().info(f"simulating {n} MAVs of {self.sim.profile.name} at {1 / self.sim.dt:g} Hz on "
                                   f"{'simulated time (/clock)' if self.lockstep else 'wall-clock time'}, "
                                   f"{len(self.goal_list)} goal(s)")

        def now(self) -> float:
            """This node's clock: simulated time (the wall clock at start + the physics' time) or the wall clock."""
            return self.base + self.sim.t if self.lockstep else ros_now(self)

        # ---- inputs ---------------------------------------------------------------------------------
        def _on_setpoint(self, i: int):
            def cb(msg) -> None:
                sent = self.sent.get(mav_io.stamp_or(msg, 0.0))
                if sent is not None and i not in sent[1]:  # the first set-point of MAV i answering that sample
                    sent[1].add(i)
                    self.latency_s.append(time.perf_counter() - sent[0])
                try:
                    values = mav_io.setpoint_values(msg)
                except convert.MessageError as exc:
                    self._refuse(i, str(exc))
                    return  # a bad set-point is no set-point: the firmware's freshness rule decides
                now, stamp = self.now(), convert.stamp_seconds(msg.header.stamp)
                fault = mav_io.setpoint_fault(self.stamps, self.mavs[i], stamp, now, self.sim.failsafe.max_age_s)
                if fault is not None:
                    self._refuse(i, fault)
                    return
                self.refusal[i] = None
                self.sim.setpoint(i, np.asarray(values[:3] + values[3:5]), self.sim.t)
                self.setpoints_in[i] += self.released
                if self.lockstep is not None:
                    self.lockstep.answer(i, stamp)
                    self._advance()
            return cb

        def _on_kill(self, i: int):
            def cb(request, response):
                response.success, response.message = True, self._cut(i, "kill")
                return response
            return cb

        def _cut(self, i: int, cause: str) -> str:
            """MAV i's motors stop now (`cause`: kill or failure); what happened, in one line."""
            m, t = self.mavs[i], self.sim.t
            if not self.sim.cut(i, cause):
                return f"{m}: kill done (motors already off)"
            self.get_logger().error(f"{m}: motors cut at {t:.2f} s ({cause}): it falls, its cable released")
            self._publish_firmware_diag()
            return f"{m}: kill done (simulated: motors cut at {t:.2f} s)"

        def _refuse(self, i: int, why: str) -> None:
            self.refused[i] += self.released
            if self.refusal[i] is None:
                self.get_logger().warning(f"{self.mavs[i]}: set-point refused: {why}")
            self.refusal[i] = why

        def _publish_firmware_diag(self) -> None:
            """Each MAV's flight-controller mode and why its set-points were refused (OK flying, WARN holding,
            ERROR descending on the failsafe)."""
            statuses = []
            for i, m in enumerate(self.mavs):
                mode, why = self.sim.mode[i], self.refusal[i]
                level = {"hold": health.WARN, "descend": health.ERROR if not self.sim.landing else health.OK,
                         "off": health.ERROR}.get(mode, health.OK)
                message = mode if why is None else f"{mode}: set-point refused: {why}"
                statuses.append(health.status(f"{self.get_fully_qualified_name()}: {m}", m, level, message, {
                    "firmware_mode": mode, "setpoints_refused": self.refused[i],
                    "setpoint_delay_ms": f"{1e3 * self.stamps.delay_s.get(m, math.nan):.1f}",
                    "dropped_out_of_order": self.stamps.dropped, "stamp_jumps": self.stamps.jumps}))
            self.diag_pub.publish(health.array(_stamp(self.now()), statuses))

        def _on_diag(self, msg) -> None:
            for s in msg.status:
                if s.hardware_id in self.reports:
                    self.reports[s.hardware_id][s.name] = health.values_of(s)

        def unconnected(self) -> list[str]:
            counts = [(p.topic_name, p.get_subscription_count(), self.need_odom) for p in self.odom_pubs]
            counts += [(p.topic_name, p.get_subscription_count(), self.need_load) for p in (self.load_pub, self.goal_pub)]
            counts += [(s.topic_name, s.get_publisher_count(), self.need_setpoint) for s in self.setpoint_subs]
            if self.clock_pub is not None:
                counts.append((self.clock_pub.topic_name, self.clock_pub.get_subscription_count(), self.need_clock))
            return [f"{name} {have}/{need}" for name, have, need in counts if have < need]

        # ---- time -----------------------------------------------------------------------------------
        def _next_goal(self) -> None:
            self.goal_index += 1
            if self.goal_index >= len(self.goal_list):
                self.sim.land()
                return
            pos, quat = self.goal_list[self.goal_index]
            if self.sim.airborne:  # during a take-off the goal's clock starts at the hand-over
                self._begin_goal(self.goal_index)
            self.goal_pub.publish(mav_io.pose_msg(pos, quat, self.now()))

        def _begin_goal(self, k: int) -> None:
            """Goal k's clock starts now; with `from_rest`, from the team at rest at the goal's start, announced on
            `/load/start` (stamped as the tick's sensors that follow: the policy nodes begin a new episode)."""
            if self.goal_starts[k] is not None:
                self.sim.place(self.goal_starts[k])
                self.start_pub.publish(mav_io.pose_msg(self.goal_starts[k], (1.0, 0.0, 0.0, 0.0), self.now()))
            self.sim.set_goal(*self.goal_list[k], self.scored[k])

        def _on_timer(self) -> None:
            """Wall clock: one tick per period. Simulated time: the ticks whose wait expired (answers step it)."""
            if not self.released:
                self._release_when_connected()
            elif self.lockstep is None:
                self._tick()
            else:
                self._advance()

        def _release_when_connected(self) -> None:
            wall = time.monotonic()
            missing = self.unconnected()
            if missing:
                if wall - self.last_wait_log >= WAIT_LOG_PERIOD_S:
                    self.last_wait_log = wall
                    self.get_logger().info(f"holding the team until it is connected; matched/needed: {', '.join(missing)}")
                return
            self.get_logger().info(f"team connected after {wall - self.wall0:.2f} s: releasing it")
            self.released, self.t0, self.wall0 = True, self.now(), wall
            self._publish_sensors(self.t0, answered=False)  # not waited for: DDS may drop a new match's first sample

        def _advance(self) -> None:
            """Simulated time: step while the last sample's wait is over (answered, expired, or none sent)."""
            if not self.released:
                return
            for _ in range(MAX_TICKS_PER_CALL):
                silent = set(self.lockstep.silent)
                if not self.lockstep.ready(time.monotonic()):
                    return
                if self.lockstep.silent - silent:
                    self.get_logger().warning(
                        f"no set-point from {', '.join(self.mavs[i] for i in sorted(self.lockstep.silent - silent))} "
                        f"within {self.lockstep.timeout_s:g} s of wall clock at {self.sim.t:.2f} s: stepping without "
                        f"it until it answers again")
                self._tick()

        def _tick(self) -> None:
            now = self.now()
            if now - self.last_summary >= SUMMARY_PERIOD_S or len(self.sim.events) != self.events_seen:
                self.events_seen = len(self.sim.events)
                self._publish_firmware_diag()
            if now - self.last_summary >= SUMMARY_PERIOD_S:  # first: never between a load sample and its answers
                self.write_summary(now)
            if self.fail_mav and not self.failed and self.sim.t >= self.fail_at:
                self.failed = True
                self._cut(self.mavs.index(self.fail_mav), "failure")
            if self.kill_mavs and not self.killed and self.sim.t >= self.kill_at:
                self.killed = True
                for m in self.kill_mavs:
                    self._cut(self.mavs.index(m), "kill")
            self.sim.step()
            self.ticks += 1
            if self.sim.airborne and not self.sim.goals:
                self._begin_goal(0)
                self.get_logger().info(f"airborne after {self.sim.t:.2f} s: the set-points fly")
            goal = self.sim.goals[-1] if self.sim.goals and not self.sim.landing else None
            if goal is not None and (goal.success_at_s is not None or self.sim.t - goal.start_s >= self.goal_timeout):
                self._next_goal()
            if self.done_at is None and self.sim.landed_at is not None:
                self.done_at = self.sim.landed_at
            self._publish_sensors(self.now())  # stamped when measured: after the step, not before it

        def _due(self, kind: str) -> bool:
            return self.ticks % max(1, round(1.0 / (self.rates[kind] * self.sim.dt))) == 0

        def _send(self, pub, msg, now: float) -> None:
            if self.drop and self.rng.random() < self.drop:
                return
            self.queue.append((now + self.latency, pub, msg))

        def _publish_sensors(self, now: float, answered: bool = True) -> None:
            """This tick's sensor messages, stamped `now` (and `/clock` on simulated time, where the physics then
            waits for the answers to the load sample unless not `answered`)."""
            b, nz = self.sim.bodies(), self.noise
            noisy = lambda x, s: x + (self.rng.normal(0.0, s, np.shape(x)) if s else 0.0)  # noqa: E731
            blind_window = self.blind_at <= self.sim.t < self.blind_at + self.blind_for
            if self.blind and blind_window and self.sim.fault is None:
                self.sim.silent(self.mavs.index(self.blind))   # the load is watched from here (after_failure)
            for i, m in enumerate(self.mavs):
                if self._due("odom") and not (m == self.blind and blind_window):
                    q = _jitter(b["quat"][i], nz["attitude"], self.rng)
                    self._send(self.odom_pubs[i], mav_io.odometry_msg(noisy(b["pos"][i], nz["position"]), q,
                                                                      noisy(b["vel"][i], nz["velocity"]),
                                                                      noisy(b["omega"][i], nz["rate"]), now, m), now)
                if self._due("imu"):
                    imu = topics.message_class(topics.IMU.type)()
                    imu.header.frame_id = m
                    convert.set_stamp(imu.header.stamp, now)
                    w = noisy(b["omega"][i], nz["rate"])
                    imu.angular_velocity.x, imu.angular_velocity.y, imu.angular_velocity.z = (float(v) for v in w)
                    self._send(self.imu_pubs[i], imu, now)
            if self._due("load"):  # last: the step it triggers finds this tick's odometry already there
                q = _jitter(b["load_quat"], nz["attitude"], self.rng)
                self._send(self.load_pub, mav_io.odometry_msg(noisy(b["load_pos"], nz["position"]), q,
                                                              noisy(b["load_vel"], nz["velocity"]),
                                                              noisy(b["load_omega"], nz["rate"]), now, "load"), now)
            if self.clock_pub is not None:  # the clock first: a node sees the time of the sample it gets
                clock = topics.message_class(topics.CLOCK.type)()
                clock.clock = _stamp(now)
                self.clock_pub.publish(clock)
            while self.queue and self.queue[0][0] <= now + 1e-9:
                _, pub, msg = self.queue.popleft()
                if pub is self.load_pub:
                    stamp = mav_io.stamp_or(msg, 0.0)
                    self.sent[stamp] = (time.perf_counter(), set())
                    if self.lockstep is not None and answered:  # the answers to wait for
                        self.lockstep.sample(stamp, time.monotonic())
                pub.publish(msg)
            if len(self.sent) > 1000:  # stamps nobody answered
                self.sent = dict(list(self.sent.items())[-100:])

        # ---- summary --------------------------------------------------------------------------------
        def summary(self, now: float) -> dict:
            doc = self.sim.summary()
            wall = max(time.monotonic() - self.wall0, 1e-9)
            elapsed = max(now - self.t0, 1e-9)  # on this node's clock (simulated or wall)
            doc.update({"elapsed_s": round(now - self.t0, 3), "sim_time_s": doc["elapsed_s"], "done_at_s": self.done_at,
                        "clock": "sim" if self.lockstep else "wall", "wall_s": round(wall, 3),
                        "real_time_factor": round(doc["elapsed_s"] / wall, 3),
                        "lockstep": self.lockstep.summary() if self.lockstep else None,
                        "sim_rate_hz": round(self.ticks / wall, 2),  # achieved (wall clock), vs the policy rate
                        "mavs": {m: {"mode": self.sim.mode[i], "landed": self.sim.mode[i] == LANDED,
                                     "setpoint_rate_hz": round(self.setpoints_in[i] / elapsed, 2),
                                     "setpoints_refused": self.refused[i],
                                     "watchdog_stops": sum(int(v.get("watchdog_stops", 0)) for v in self.reports[m].values()),
                                     **{k: sum(int(v.get(k, 0)) for v in self.reports[m].values())
                                        for k in ("hold_steps", "safety_interventions", "safety_infeasible")},
                                     "node_ms_mean": {k: float(v[k]) for v in self.reports[m].values()
                                                      for k in v if k.endswith("_ms_mean")}}
                                 for i, m in enumerate(self.mavs)},
                        "latency_ms": latency_stats(self.latency_s),
                        "all_latencies_ms": [round(x * 1e3, 4) for x in self.latency_s]})
            return doc

        def write_summary(self, now: float, publish: bool = True) -> None:
            self.last_summary = now
            doc = self.summary(now)
            if publish:
                brief = {k: v for k, v in doc.items() if k != "all_latencies_ms"}
                self.summary_pub.publish(topics.message_class(topics.SIM_SUMMARY.type)(data=json.dumps(brief)))
            if self.summary_path:
                tmp = self.summary_path.with_suffix(".tmp")
                tmp.write_text(json.dumps(doc))
                os.replace(tmp, self.summary_path)

        def close(self) -> None:
            if self.released:
                self.write_summary(self.now(), publish=False)

    return MavSimNode()


def _stamp(seconds: float):
    """builtin_interfaces/Time of `seconds`."""
    from builtin_interfaces.msg import Time
    msg = Time()
    convert.set_stamp(msg, seconds)
    return msg


def _jitter(quat_wxyz: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """The attitude turned by a small random rotation (std rad per axis), renormalised."""
    if not std:
        return quat_wxyz
    d = rng.normal(0.0, std / 2, 3)
    w, x, y, z = quat_wxyz
    q = np.array([w - d @ [x, y, z], w * d[0] + y * d[2] - z * d[1] + x, w * d[1] + z * d[0] - x * d[2] + y,
                  w * d[2] + x * d[1] - y * d[0] + z])
    return q / np.linalg.norm(q)


def main(argv: list[str] | None = None) -> int:
    return run_node(make_node, "mav_sim_node", argv)


if __name__ == "__main__":
    sys.exit(main())
