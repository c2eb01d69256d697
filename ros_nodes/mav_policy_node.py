"""MAV policy node: one per MAV of a cable team, in its namespace. Load + team odometry -> ONNX -> `setpoint`.

Runs the exported cable-team policy (observe() + actor + the classical controller's residual base +
scaling, see docs/export.md) on onnxruntime at the model's control rate (100 Hz for mav_corl25):
a step runs when `/load/odom` brings a new sample (at most once per period) and otherwise on a
timer, so silence is noticed. Inputs come from `/load/odom`, this MAV's `odom`, the other MAVs'
`odom` (if the model reads them) and the latched `/load/goal`; outputs the world-frame acceleration
+ roll/pitch body-rate set-point (`topics.SETPOINT`, yaw set-point 0 as in training), stamped with
the load sample it answers.

Odometry is judged by its header stamps (`health.Stamps` in `mav_io.TeamInputs.receive`): unset, future,
repeated or jumping stamps make the source invalid until a good one, an out-of-order packet is dropped.
Watchdog (DESIGN contract 9: MAVs hold, then land together):
- the load, another MAV or the goal missing / stale / invalid, or a non-finite model output: hold
  this MAV's position where the fault began (a PD loop on its own odometry), WARN diagnostic;
- its own odometry missing / stale / invalid, or frozen (unchanged for `health.FROZEN_S` while flying
  above the certified floor): nothing sensible can be commanded, so no set-point is sent and
  the flight controller's own failsafe takes over (level hover, then a bounded descent; see
  ros_nodes/mav_sim_node.py), ERROR diagnostic (WARN and an INFO line while none has come yet at start-up).
Output stage (`safety` = onboard, the default): the barrier certificate filters the policy's
acceleration, the other MAVs obstacles keeping their velocity (ros_nodes/mav_safety.py), with the
soft cable rows given every MAV's attitude and body rates and the load's odometry (`mav_io.certify`);
a step it cannot certify (any MAV's odometry older than `mav_safety.MAX_AGE_PERIODS`, non-finite state,
infeasible QP) holds position, WARN. The load's odometry older than that (the policy may still read
it) leaves the cable rows out of that step: counted in `safety_cables_unchecked`, the reason in
`safety_cables_unchecked_why`.
Both recover with the next good inputs. A lost teammate (`mav_io.Lost`: falling faster than `lost_fall_speed`,
its motors off; or silent for `lost_after_s`: no usable odometry, non-finite or frozen above the floor included)
starts the team landing, which no new goal ends (ERROR). A silent one is in its flight controller's failsafe and
still carries its share: the team holds level until that failsafe descends (`failsafe_hold_s` after it went
silent, `mav_io.failsafe_descent_after`) and descends with it at the same rate (`landing_descent_rate`). Each
survivor works out from the team's layout (the profile's attachment points) and the falling ones which share of
the load's weight holds it level (`mav_io.landing_shares`: the survivors' static equilibrium, shares >= 0):
a MAV with a share descends at `landing_descent_rate` over where it was; one whose share is zero (the corner
opposite a lost one of four) keeps its cable slack (`mav_io.slack_descent_rate`: it comes down towards the load
faster until its hook is within `mav_io.SLACK_LENGTH` of the cable length, then at the team's rate), so the load
hangs level from the carriers and the team lands together. Where no level equilibrium exists (two left of
three) every survivor carries and the load hangs as it must.
Episodes: a new start on `/load/start` (the team put at rest in hover: SITL's from-rest goals, as an
evaluation episode begins) begins a new episode: the action history back to zero and the recurrent state
to its initial value (as `CableEnv.reset` starts them), the team landing and the position hold cleared.
A new goal alone changes only the goal: the history is the command the MAV is still flying, and a team
that lost a member must not take off again because an operator sent a goal.
The position hold and the team landing go through the stage too: the hold through the same rows as the
policy's command, the landing through the separation rows with the MAVs still flying and the walls
(`mav_io.landing_stage`: no floor row, it lands; no cable rows, they slacken). Where the stage cannot certify
one (the stale odometry that caused the hold, an infeasible QP) the command is sent as it is, counted in
`safety_fallback_uncertified`: holding or landing is what is left to do.
Time is the node's clock: wall clock on a vehicle; in SITL on simulated time (`use_sim_time`, the MAV sim
node's `/clock`) every age above is simulated time, and a load sample stamped ahead of the clock (its `/clock`
not yet here) runs its step at the sample's time.
The per-MAV logic (inputs, watchdog, hold, team landing, output stage, diagnostics) is `MavPilot`, without rclpy:
this node drives one; the team policy node (ros_nodes/mav_team_policy_node.py, `arrangement: fleet_policy`) drives
one per MAV of the team with one batched model call.
Onboard code: numpy + onnxruntime, never JAX.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable, Mapping

import numpy as np

from marlstack.policies.runtime import BadInput, PolicyRuntime
from marlstack.ros_nodes import convert, health, mav_io, mav_safety, topics
from marlstack.ros_nodes.adapters import InputError, MissingInput
from marlstack.ros_nodes.mav_io import hold_command
from marlstack.ros_nodes.policy_node import load_runtime
from marlstack.ros_nodes.runner import StartError, declare, declare_stamp_limits, node_profile, ros_now, run_node

DIAGNOSTIC_PERIOD_S = 0.5
MIN_STEP_PERIODS = 0.5   # a load sample runs a step unless one ran less than this long ago (bunched samples)


def parsed(parse: Callable[..., tuple[float, ...]], *args: Any) -> tuple[float, ...] | convert.MessageError:
    """`parse(*args)`: a message's values, or the MessageError saying why it is unusable (MavPilot.receive)."""
    try:
        return parse(*args)
    except convert.MessageError as exc:
        return exc


class MavPilot:
    """One MAV's step from its inputs to its set-point, without rclpy (module docstring: watchdog, hold, team landing,
    output stage, episodes); the per-MAV node drives one, the team policy node (ros_nodes/mav_team_policy_node.py) one
    per MAV with one batched model call for the team. A step is `prepare` (the model's feeds, or None when this step
    is decided without the model) then `complete` with this MAV's model outputs (batch of one); `step` does both
    with one model call. `log`: a logger (info, warning, error), the node's."""

    def __init__(self, runtime: PolicyRuntime, profile: Any, mavs: list[str], mav: str, period_s: float,
                 watchdog_s: float, offset_s: float, safety: str, lost_after_s: float, fall_speed: float,
                 descent_rate: float, log: Any, failsafe_hold_s: float = 2.0) -> None:
        self.runtime, self.profile, self.mavs, self.mav, self.log = runtime, profile, list(mavs), mav, log
        self.period = period_s
        self.lost_after, self.fall_speed, self.descent_rate = lost_after_s, fall_speed, descent_rate
        self.failsafe_s = mav_io.failsafe_descent_after(failsafe_hold_s, watchdog_s)  # a silent teammate's descent
        (cmd_spec,) = [e for e in runtime.spec["outputs"] if e["name"] == "cmd"]
        self.limit = np.asarray(cmd_spec["high"], np.float64)
        self.inputs = mav_io.TeamInputs(runtime.spec["inputs"], self.mavs, mav, self.limit, watchdog_s, offset_s,
                                        period_s)   # ValueError: the model reads what this team cannot give
        self.safety = mav_safety.SafetyStage(profile, self.mavs, mav) if safety == "onboard" else None
        self.landing_safety: mav_safety.SafetyStage | None = None   # built when the team landing begins
        self.landing_team: list[str] = []                           # the MAVs it certifies against (not lost)
        self.uncertified = 0    # hold / landing steps sent unfiltered: the stage could not certify them
        self.certified_age = mav_safety.MAX_AGE_PERIODS * period_s   # odometry the stage certifies against
        self.cables_unchecked_why = ""      # why the last step filtered without the cable rows
        self.floor = profile.safety.floor   # above it a MAV is flying: its odometry must change (frozen check)
        self.hidden = runtime.initial_state(1)
        self.dog = health.Watchdog()
        self.blind = False
        self.waiting = False   # blind only because no odometry of its own came yet (start-up): WARN, not ERROR
        self.hold_at: np.ndarray | None = None
        self.landing: str | None = None  # why the team is landing (a lost teammate); never cleared
        self.team_landing: mav_io.TeamLanding | None = None  # this MAV's part in it, from where it was
        self.steps = self.holds = 0
        self.infer_s = self.step_s = 0.0   # time in the model; in whole load-triggered steps (sample in, set-point out)
        self.load_steps = 0
        self.last_step = -math.inf
        self.start_stamp = -math.inf        # the last new start begun (a latched one heard again is not new)
        self.starts = 0
        self.decided: tuple[np.ndarray | None, bool] = (None, False)   # a step `prepare` decided: (set-point, news)

    def receive(self, key: str, values: tuple[float, ...] | convert.MessageError, stamp_s: float, now_s: float) -> None:
        """An odometry sample (its values, or why its message is unusable: `parsed`), judged by its raw header
        stamp (mav_io.TeamInputs.receive)."""
        if isinstance(values, convert.MessageError):
            self.inputs.invalidate(key, str(values))
        else:
            self.inputs.receive(key, values, stamp_s, now_s)

    def goal(self, values: tuple[float, ...] | convert.MessageError, stamp_s: float) -> None:
        """A latched goal: a set-point, not a measurement: never stale, its stamp not judged."""
        if isinstance(values, convert.MessageError):
            self.inputs.invalidate(mav_io.GOAL, str(values))
        else:
            self.inputs.put(mav_io.GOAL, values, stamp_s)

    def start(self, stamp_s: float) -> None:
        """A new start: a new episode (module docstring). Judged by its stamp: one heard again is not new."""
        if stamp_s <= self.start_stamp:
            return
        self.start_stamp, self.starts = stamp_s, self.starts + 1
        self.inputs.latest.past = np.zeros_like(self.inputs.latest.past)
        self.hidden = self.runtime.initial_state(1)
        if self.landing is not None:
            self.log.info(f"new start: {self.landing} ends")
        self.landing, self.landing_safety, self.landing_team, self.hold_at = None, None, [], None
        self.team_landing = None

    def step(self, now: float) -> tuple[np.ndarray | None, bool]:
        """This step's set-point (None: send nothing) and whether the watchdog's state is news, with this
        pilot's own model call."""
        feeds = self.prepare(now)
        if feeds is None:
            return self.decided
        try:
            t0 = time.perf_counter()
            out = self.runtime.run(feeds)
            self.infer_s += time.perf_counter() - t0
        except BadInput as exc:
            return self.hold(now, exc)
        return self.complete(now, out)

    def prepare(self, now: float) -> dict[str, np.ndarray] | None:
        """The model's feeds for this step (recurrent state included), or None with the step decided here
        (`decided`): blind, the team landing, or a hold for an unusable input."""
        self.last_step = now
        flying = not self.blind and bool(self.inputs.latest.row(self.mav)[2] > self.floor)
        own = self.inputs.own_problem(now, flying)
        if own is not None:  # blind: send nothing, the flight controller's failsafe flies
            changed = self.dog.trip(f"no set-point (flight-controller failsafe): {own}")
            self.blind, self.hold_at = True, None
            self.waiting = not self.dog.started and isinstance(own, MissingInput)   # start-up: not an error
            if changed:
                (self.log.info if self.waiting else self.log.error)(self.dog.reason)
            self.decided = (None, changed)
            return None
        me = self.inputs.latest.row(self.mav)
        lost = self.inputs.lost(now, self.lost_after, self.fall_speed, self.floor) if self.landing is None else []
        if lost:
            self.team_landing = mav_io.TeamLanding(self.profile, self.mavs, self.mav, lost, me[0:3], self.failsafe_s)
            self.landing = f"team landing: {', '.join(map(str, lost))} lost; {self.team_landing.role()}"
            self.log.error(self.landing)
            if self.safety is not None:
                self.landing_team = [m for m in self.mavs if m not in {g.mav for g in lost}]
                self.landing_safety = mav_io.landing_stage(self.profile, self.landing_team, self.mav)
        if self.team_landing is not None:  # the carriers keep the load level, a slack MAV keeps off it
            cmd = self.team_landing.command(me, self.inputs.latest.row(mav_io.LOAD), self.descent_rate, self.limit, now)
            cmd = self._fallback(now, cmd, self.landing_safety, self.landing_team)
            self.decided = (self._sent(cmd), self.dog.trip(self.landing))
            return None
        try:
            return {**self.inputs.inputs(now), **self.hidden}
        except InputError as exc:
            self.decided = self.hold(now, exc)
            return None

    def complete(self, now: float, out: Mapping[str, np.ndarray]) -> tuple[np.ndarray | None, bool]:
        """The set-point from this MAV's model outputs (batch of one) and whether the watchdog's state is news."""
        self.steps += 1
        try:
            cmd = np.asarray(out["cmd"], np.float64).reshape(-1)
            if cmd.shape != self.limit.shape or not np.all(np.isfinite(cmd)):
                raise InputError("model output", f"expected {self.limit.size} finite numbers, got {cmd.tolist()}")
            rec = self.runtime.spec["recurrent"]
            if rec is not None:
                self.hidden = {rec["input"]: out[rec["output"]]}
            if self.safety is not None:
                cmd = self._certified(now, cmd, self.safety, self.mavs)
        except InputError as exc:
            return self.hold(now, exc)
        changed, self.hold_at = self.dog.clear(), None
        self.blind = False
        return self._sent(cmd), changed

    def hold(self, now: float, exc: InputError | BadInput) -> tuple[np.ndarray, bool]:
        """Hold position where the fault began (a PD loop on this MAV's odometry), through the stage where it can."""
        me = self.inputs.latest.row(self.mav)
        if self.hold_at is None:
            self.hold_at = me[0:3].copy()
        cmd = self._fallback(now, hold_command(me[0:3], me[7:10], self.hold_at, self.limit), self.safety, self.mavs)
        self.holds += 1
        changed = self.dog.trip(f"holding position: {exc}")
        if changed:
            self.log.warning(self.dog.reason)
        self.blind = False
        return self._sent(cmd), changed

    def _sent(self, cmd: np.ndarray) -> np.ndarray:
        self.inputs.latest.sent(cmd)
        return cmd

    def _certified(self, now: float, cmd: np.ndarray, stage: mav_safety.SafetyStage, mavs: list[str]) -> np.ndarray:
        """The output stage: `stage`'s certificate on `mavs`' odometry, or InputError (the step holds) naming why not."""
        # every odometry the rows use, own and the others' (read by the model or not), within the certified age
        stale = self.inputs.problem(now, mavs, self.certified_age)
        if stale is not None:
            raise InputError("safety", f"cannot certify: {stale}")
        team = np.stack([self.inputs.latest.row(m) for m in mavs])
        values = self.inputs.latest.values
        age = now - np.asarray([values.times[values.keys.index(m)] for m in mavs])
        # the cable rows need the load's pose and twist within the same certified age; without them the
        # step is filtered by the MAV rows alone and counted unchecked, with the reason
        unusable = self.inputs.problem(now, [mav_io.LOAD], self.certified_age) if stage.cables else None
        if unusable is not None:
            self.cables_unchecked_why = f"{unusable}"
        load = self.inputs.latest.row(mav_io.LOAD) if stage.cables and unusable is None else None
        safe, why = mav_io.certify(stage, team, age, cmd, load, now - values.times[values.keys.index(mav_io.LOAD)])
        if safe is None:
            raise InputError("safety", why)
        return safe

    def _fallback(self, now: float, cmd: np.ndarray, stage: mav_safety.SafetyStage | None,
                  mavs: list[str]) -> np.ndarray:
        """A hold or landing command through `stage` where it certifies it, else as it is (counted)."""
        if stage is None:
            return cmd
        try:
            return self._certified(now, cmd, stage, mavs)
        except InputError:
            self.uncertified += 1
            return cmd

    def status(self, name: str) -> Any:
        """This MAV's /diagnostics status (`name`: the reporting node's, as health.watchdog_status takes it)."""
        mean_ms = 1e3 * self.infer_s / self.steps if self.steps else 0.0
        stamps = self.inputs.stamps
        step_ms = 1e3 * self.step_s / self.load_steps if self.load_steps else 0.0
        extra = {"inference_ms_mean": f"{mean_ms:.3f}", "step_ms_mean": f"{step_ms:.3f}", "hold_steps": self.holds,
                 "starts": self.starts,
                 "odom_delay_ms_max": f"{stamps.worst_delay_ms():.1f}", "dropped_out_of_order": stamps.dropped,
                 "stamp_jumps": stamps.jumps,
                 "safety": "off" if self.safety is None else "onboard", **(self.safety.report() if self.safety else {})}
        if self.safety is not None:
            extra["safety_fallback_uncertified"] = self.uncertified
            extra["safety_landing_interventions"] = self.landing_safety.interventions if self.landing_safety else 0
        if self.safety is not None and self.safety.cables_unchecked:
            extra["safety_cables_unchecked_why"] = self.cables_unchecked_why
        s = health.watchdog_status(name, self.mav, self.dog, extra)
        if not self.dog.ok:
            s.level = bytes([health.ERROR if (self.blind and not self.waiting) or self.landing else health.WARN])
            s.message = self.dog.reason
        return s


def team_parameters(node: Any) -> tuple[str, float, PolicyRuntime, dict[str, Any]]:
    """Declare and check on `node` the parameters every MAV policy node has (one MAV's or the team's): the model's
    path, the policy rate, the model's runtime (batch of one) and MavPilot's arguments but `mav` (StartError for a
    bad one)."""
    p = lambda *a, **k: declare(node, *a, **k)  # noqa: E731
    mavs = list(p("mavs", [""], "the team in agent-index order (the training env's order)"))
    scenario = p("scenario", "cable", "cable scenario the model was trained on; checked against the model")
    profile_name = p("profile", "mav_corl25", "MAV team profile; its hash is checked against the model")
    path = p("policy_path", "", "exported cable-team policy .onnx")
    rate = p("rate_hz", 0.0, "policy rate, checked against the model's (0: the profile's policy rate)", 0.0, 1000.0)
    periods, offset = declare_stamp_limits(node, "the odometry sources", "policy", age_allowance=False)
    lost_after = p("lost_after_s", 1.0, "a teammate silent this long is lost: the team lands", 0.1, 60.0)
    fall_speed = p("lost_fall_speed", 3.0, "... or one falling faster than this (m/s)", 0.5, 50.0)
    descent_rate = p("landing_descent_rate", 0.0, "descent rate of the team landing (m/s): the flight controllers' "
                     "failsafe descent rate (0: the profile's failsafe.descent_rate)", 0.0, 2.0)
    hold_s = p("failsafe_hold_s", -1.0, "the flight controllers' failsafe hold (s; -1: the profile's failsafe.hold_s): a "
               "silent teammate descends this long (+ 2 watchdog ages) after its last odometry, the team with it",
               -1.0, 60.0)
    safety = p("safety", "onboard", "output stage: 'onboard' filters the set-point through the MAV barrier "
                                    "certificate, 'off' sends the policy's command")
    if safety not in mav_safety.MODES:
        raise StartError(f"parameter 'safety' = {safety!r} must be one of {', '.join(mav_safety.MODES)}")
    profile = node_profile(profile_name, "mav_team")
    rate_hz = rate or profile.control.policy_rate_hz
    period = 1.0 / rate_hz
    runtime = load_runtime(path, scenario, profile, rate_hz, batch_size=1)
    return path, rate_hz, runtime, {
        "profile": profile, "mavs": mavs, "period_s": period, "watchdog_s": periods * period, "offset_s": offset,
        "safety": safety, "lost_after_s": lost_after, "fall_speed": fall_speed,
        "descent_rate": descent_rate or profile.failsafe.descent_rate,
        "failsafe_hold_s": profile.failsafe.hold_s if hold_s < 0 else hold_s}


def make_node():
    from rclpy.node import Node

    class MavPolicyNode(Node):
        def __init__(self) -> None:
            super().__init__("mav_policy")
            self.mav = declare(self, "mav", "", "this MAV's name (its namespace without '/')")
            path, self.rate_hz, self.runtime, args = team_parameters(self)
            self.mavs = args["mavs"]
            if not self.mav or self.mav not in self.mavs:
                raise StartError(f"parameter 'mav' = {self.mav!r} must be one of parameter 'mavs' = {self.mavs}")
            self.period = args["period_s"]
            try:
                self.pilot = MavPilot(self.runtime, mav=self.mav, log=self.get_logger(), **args)
            except ValueError as exc:
                raise StartError(f"{path}: {exc}") from None
            # the pilot's parts, by the names the node-level scenarios read (tests/ros_nodes/mav_cable_scenario.py)
            self.limit, self.inputs, self.dog = self.pilot.limit, self.pilot.inputs, self.pilot.dog
            self.descent_rate = self.pilot.descent_rate
            self.setpoint = None                # the one set-point message, overwritten every step
            self.last_diag = -math.inf
            self.load_stamp = 0.0
            self.sim_time = bool(self.get_parameter("use_sim_time").value)  # SITL on simulated time (/clock)
            cls = topics.message_class
            state = topics.qos_profile("state")
            self.pub = self.create_publisher(cls(topics.SETPOINT.type), topics.SETPOINT.path(self.mav), state)
            self.diag = self.create_publisher(cls(topics.DIAGNOSTICS.type), topics.DIAGNOSTICS.path(),
                                              topics.qos_profile(topics.DIAGNOSTICS.qos))
            # a new start before the load (a start and the first sample after it, ready together, in that order);
            # then the load: it triggers the step
            self.create_subscription(cls(topics.LOAD_START.type), topics.LOAD_START.path(), self._on_start,
                                     topics.qos_profile(topics.LOAD_START.qos))
            self.create_subscription(cls(topics.LOAD_ODOM.type), topics.LOAD_ODOM.path(), self._on_load, state)
            for m in sorted(self.mavs, key=lambda m: m != self.mav):
                self.create_subscription(cls(topics.ODOM.type), topics.ODOM.path(m), self._on_odom(m), state)
            self.create_subscription(cls(topics.LOAD_GOAL.type), topics.LOAD_GOAL.path(), self._on_goal,
                                     topics.qos_profile(topics.LOAD_GOAL.qos))
            self.create_timer(self.period, self._on_timer)
            self.name_ = self.get_fully_qualified_name()
            self.get_logger().info(f"running {path} for {self.mav} at {self.rate_hz:g} Hz")

        @property
        def hold_at(self) -> np.ndarray | None:
            return self.pilot.hold_at

        @hold_at.setter
        def hold_at(self, point: np.ndarray | None) -> None:
            self.pilot.hold_at = point

        @property
        def team_landing(self) -> mav_io.TeamLanding | None:
            return self.pilot.team_landing

        def _on_load(self, msg) -> None:
            now = ros_now(self)
            self.pilot.receive(mav_io.LOAD, parsed(mav_io.odometry, msg, "load odom"),
                               convert.stamp_seconds(msg.header.stamp), now)
            now = ros_now(self)
            self.load_stamp = mav_io.stamp_or(msg, now)
            if self.sim_time:  # /clock may reach this node just after the sample it stamps: the sample's time is now
                now = max(now, self.load_stamp)
            if now - self.pilot.last_step >= MIN_STEP_PERIODS * self.period:
                t0 = time.perf_counter()
                self._step(now)
                self.pilot.step_s += time.perf_counter() - t0
                self.pilot.load_steps += 1

        def _on_odom(self, mav: str):
            what = f"odom of {mav}"
            return lambda msg: self.pilot.receive(mav, parsed(mav_io.odometry, msg, what),
                                                  convert.stamp_seconds(msg.header.stamp), ros_now(self))

        def _on_goal(self, msg) -> None:
            self.pilot.goal(parsed(mav_io.goal_pose, msg), mav_io.stamp_or(msg, ros_now(self)))

        def _on_start(self, msg) -> None:
            self.pilot.start(mav_io.stamp_or(msg, ros_now(self)))

        def _on_timer(self) -> None:
            now = ros_now(self)
            if now - self.pilot.last_step > 1.5 * self.period:  # no load sample lately: step anyway, the watchdog decides
                self._step(now)
            if now - self.last_diag > DIAGNOSTIC_PERIOD_S:
                self._publish_diag(now)

        def _step(self, now: float) -> None:
            cmd, changed = self.pilot.step(now)
            if cmd is not None:
                self.setpoint = mav_io.setpoint_msg(cmd, self.load_stamp or now, reuse=self.setpoint)
                self.pub.publish(self.setpoint)
            if changed:
                self._publish_diag(now)

        def _publish_diag(self, now: float) -> None:
            self.last_diag = now
            self.diag.publish(health.array(self.get_clock().now().to_msg(), [self.pilot.status(self.name_)]))

    return MavPolicyNode()


def main(argv: list[str] | None = None) -> int:
    return run_node(make_node, "mav_policy_node", argv)


if __name__ == "__main__":
    sys.exit(main())
