"""The cable team as fake hardware for SITL: `CableEnv.step_physics` with each vehicle's flight-controller
failsafes, a crude ground, and the mission's measurements. No ROS here (ros_nodes/mav_sim_node.py wraps it).

Firmware: `step_physics` runs `controllers.quadrotor.step` (acceleration loop, tilt-first attitude loop,
INDI / rate PID, mixer, motor lag) at the profile's physics rate inside every policy period, exactly as
in training: the ROS boundary carries only the ~100 Hz set-points. Per MAV the firmware flies:
- `fly`: its latest set-point while it is fresh (younger than `max_age_s`);
- `hold`: once set-points stop, level hover: zero horizontal acceleration reference with velocity
  damping, the INDI's external-acceleration estimate carrying this MAV's share of the load;
- `descend`: after `hold_s` of hold, a bounded-rate descent (`descent_rate`) until it touches down;
- `landed`: idle thrust (the controller's floor of 0.1 g), never a motor cut while the load hangs on it;
  also entered from `fly` when the MAV is on the ground and its set-point pushes down (land detector).
- `off`: motors cut (`cut()`) by a kill (the operator's `/<mav>/kill`) or an injected thrust failure: no
  thrust, nothing flown, its cable released (`CableEnv`'s failure mode); for good.
- `takeoff` (a mission starting on the ground, `Takeoff`): the MAVs stand on the ground around the load
  with slack cables, each below its place in the resting hover over the start; the firmware climbs each
  one vertically (rate-bounded, its ground spot held sideways) to that place, so the cables tighten
  together and the load lifts level; once the load is within `handover_m` of the start the MAVs fly
  their set-points (`airborne`). Set-points are ignored until then (the policy never saw the ground).
A fresh set-point returns a holding MAV to `fly`; `land()` sends every MAV down together (end of mission):
all descend at the bounded rate over where they are, so the load, hanging below, touches down first
and the MAVs then land beside it on slack cables.

Ground (not in the training physics): after each period the load and the MAVs are kept at or above
`task.ground_clearance`; what reaches it stops (velocity and load rates zeroed) and a MAV on the ground
stands level on its legs (roll and pitch zeroed, yaw kept: without this a landed MAV idling at the thrust
floor toppled to 48-52 deg within a second, since rotor torques at that floor cannot hold it). A
projection, not a contact model: enough for touch-down and a resting load, not for bounces or tipping.
SITL tooling: imports JAX.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from marlstack.ros_nodes.mav_io import FAILSAFE_DAMPING, failsafe_acceleration

FLY, HOLD, DESCEND, LANDED, TAKEOFF, OFF = "fly", "hold", "descend", "landed", "takeoff", "off"
DAMPING = FAILSAFE_DAMPING  # 1/s: velocity damping of the climb reference, as of the hold and descent
CLIMB_GAIN = 2.0  # 1/s: climb velocity reference per metre below the hover place (then rate-bounded)
SPOT_GAIN = 2.0   # 1/s²: sideways pull back to the ground spot during the climb


@dataclass
class Failsafe:
    """Flight-controller failsafe timing (deployment YAML `failsafe:`)."""
    hold_s: float = 2.0          # level hover this long after the last set-point, then descend
    descent_rate: float = 0.3    # m/s, bounded descent when set-points stay away or to land
    max_age_s: float = 0.03      # a set-point older than this is stale (watchdog periods / policy rate)


@dataclass
class Takeoff:
    """A mission that starts on the ground (deployment YAML `takeoff:`)."""
    climb_rate: float = 0.5      # m/s, the firmware's bounded climb
    handover_m: float = 0.1      # the set-points take over once the load is this close to the start


@dataclass
class GoalRecord:
    """Per goal of the mission: errors over time, the success rule (inside the tolerance, held, before any
    crash: `CableEnv.terminated`, as in evaluation) and the team's margins while it was flown."""
    pos: tuple[float, ...]
    quat: tuple[float, ...]
    start_s: float
    scored: bool = True          # False: a waypoint of the mission (reported, not counted in the success rate)
    errors: list[tuple[float, float, float]] = field(default_factory=list)  # (t, position m, orientation deg)
    success_at_s: float | None = None
    inside_since: float | None = None
    crashed_at_s: float | None = None
    crash: str | None = None     # which of the evaluation's termination checks tripped
    min_separation: float = math.inf
    slack_events: int = 0
    max_tilt_deg: float = 0.0


@dataclass
class Lockstep:
    """SITL on simulated time: the physics takes its next step once every MAV has answered the load sample just
    published (a set-point stamped with it), or once `timeout_s` of wall clock has passed. A MAV whose wait
    expired is counted (`timeouts`) and not waited for again until a set-point of its own arrives (a blind MAV's
    node sends none: one expired wait, not one per period), so a missing set-point never stalls the run."""
    n: int
    timeout_s: float = 0.5
    tolerance_s: float = 2.5e-3          # stamps answer the sample within this (float round trip of a stamp)
    stamp: float | None = None           # the sample being answered (None: nothing to wait for)
    since: float = 0.0                   # wall clock when it went out
    pending: set = field(default_factory=set)
    silent: set = field(default_factory=set)   # MAVs whose last wait expired, not waited for until they answer
    timeouts: list = field(default_factory=list)
    waits_s: list = field(default_factory=list)  # wall clock from each sample to its last awaited answer

    def __post_init__(self) -> None:
        self.timeouts = [0] * self.n

    def sample(self, stamp: float, wall: float) -> None:
        """A load sample stamped `stamp` went out at wall time `wall`: wait for every MAV's answer to it."""
        self.stamp, self.since, self.pending = stamp, wall, set(range(self.n)) - self.silent

    def answer(self, i: int, stamp: float) -> None:
        """MAV i sent a set-point answering the sample stamped `stamp`."""
        self.silent.discard(i)
        if self.stamp is not None and stamp >= self.stamp - self.tolerance_s:
            self.pending.discard(i)

    def ready(self, wall: float) -> bool:
        """Whether the physics may step now (then the wait is over)."""
        if self.stamp is None:
            return True
        if self.pending and wall - self.since < self.timeout_s:
            return False
        for i in self.pending:
            self.timeouts[i] += 1
        self.silent |= self.pending
        if not self.pending:
            self.waits_s.append(wall - self.since)
        self.stamp, self.pending = None, set()
        return True

    def summary(self) -> dict:
        w = np.asarray(self.waits_s) * 1e3
        q = (lambda p: round(float(np.percentile(w, p)), 3)) if len(w) else (lambda p: None)  # noqa: E731
        return {"timeout_s": self.timeout_s, "answered_samples": len(w), "timeouts": list(self.timeouts),
                "wait_ms_p50": q(50), "wait_ms_p99": q(99), "wait_ms_max": q(100)}


class TeamSim:
    """N MAVs and the load at rest in hover with the load at `start` (with `takeoff`: on the ground below it);
    advance with `step()`, feed set-points with `setpoint()`."""

    def __init__(self, profile: str, num_mavs: int, start: tuple[float, float, float], failsafe: Failsafe,
                 cable_model: str | None = None, takeoff: Takeoff | None = None):
        from marlstack.sim.cable.env import CableEnv
        self.env = CableEnv(profile, num_agents=num_mavs, task="hover", cable_model=cable_model)
        self.profile, self.n, self.failsafe, self.takeoff = self.env.profile, num_mavs, failsafe, takeoff
        # the evaluation's episode start (at rest, filters converged), compiled whole: op by op, JAX's eager dispatch
        # took 17.7 s of a start at load average 8 (jitted 3.7 s)
        self.evaluation_start = jax.jit(self.env.reset)
        self._rest = self.evaluation_start(jax.random.PRNGKey(0))[1]
        self.state = self._at_rest(start)
        self.start = np.asarray(start, np.float64)
        self.places = np.asarray(self.state.bodies.pos, np.float64)  # each MAV's place in the resting hover over the start
        if takeoff is not None:
            self.state = self._on_the_ground(self.state)
        # motor cuts per MAV: `CableEnv.working` compares each MAV's index with `fail_agent`, so a vector holding
        # every cut MAV's own index (-1 for the others) cuts several (`cut`); compiled in this shape from the start
        self.state = self.state.replace(fail_agent=jnp.full((num_mavs,), -1, jnp.int32), fail_step=jnp.int32(0))
        self.dt = self.env.dt
        self._step = jax.jit(self.env.step_physics)
        self._step(self.state, jnp.zeros((num_mavs, 5), jnp.float32))  # compile now, not in the first period
        self._crashed = jax.jit(self.env.terminated)  # compiled by `warm_up` or at the first goal
        self.mode = [FLY if takeoff is None else TAKEOFF] * num_mavs
        self.airborne_at: float | None = None if takeoff is not None else 0.0
        self.load_down_at: float | None = None
        self.events: list[tuple[float, int, str]] = []  # (time, MAV, new mode): every failsafe transition
        self.stale_since = [0.0] * num_mavs
        self.t = 0.0
        self.cmd = np.zeros((num_mavs, 5))
        self.last_cmd_t = np.full(num_mavs, -math.inf)
        self.min_separation = math.inf
        self.max_tilt_deg = 0.0
        self.slack_events = 0
        self._slack = np.zeros(num_mavs, bool)
        self.min_rotor_sum_loaded = math.inf  # smallest total thrust of a MAV whose cable pulled
        self.landed_at: float | None = None
        self.touchdown_speed = 0.0
        self.goals: list[GoalRecord] = []
        self.landing = False
        self.cuts: list[tuple[float, int, str]] = []  # (time, MAV, "kill" or "failure"): whose motors stopped
        self.fault: tuple[float, int, str] | None = None  # the first: (time, MAV, "kill" / "failure" / "silent")
        self.after_failure = {"load_max_tilt_deg": 0.0, "load_max_sink_mps": 0.0, "load_min_z_m": math.inf,
                              "load_down_after_s": None, "load_touchdown_tilt_deg": None,
                              "load_tilt_trace": []}  # what the load does after the first fault (`fault`): its
        # tilt every 0.1 s (time since then, degrees) until it is down

    def _at_rest(self, start: tuple[float, ...]):
        """The team at rest in hover with the load at `start`: `CableEnv.reset`'s state (the evaluation's episode
        start) moved there."""
        state, b = self._rest, self._rest.bodies
        shift = jnp.asarray(start, jnp.float32) - b.load_pos
        return state.replace(bodies=b.replace(pos=b.pos + shift, load_pos=b.load_pos + shift), goal_pos=b.load_pos + shift)

    def place(self, start: tuple[float, ...]) -> None:
        """Put the team at rest in hover with the load at `start`, as an evaluation episode begins (its failure
        state, step count and clock kept); every MAV that was holding, descending or landed (it is in the air
        now) flies its set-points again."""
        rest = self._at_rest(start)
        self.state = self.state.replace(bodies=rest.bodies, ctrl=rest.ctrl, tension=rest.tension,
                                        min_tension=rest.min_tension, actions=rest.actions, held=rest.held)
        self.mode = [FLY if m in (HOLD, DESCEND, LANDED) else m for m in self.mode]
        self._slack = np.zeros(self.n, bool)

    def _on_the_ground(self, state):
        """The team at rest on the ground: each MAV level below its hover place, idling at its own weight's
        thrust, the load under the start, every cable slack."""
        from marlstack.controllers import quadrotor
        floor, n, q = self.profile.task.ground_clearance, self.n, self.profile.quadrotor
        b = state.bodies
        pos = b.pos.at[:, 2].set(floor)
        thrust = jnp.full((n, 4), q.mass * self.profile.gravity / 4, jnp.float32)
        zeros = jnp.zeros((n, 3), jnp.float32)
        level = jnp.tile(jnp.asarray([1.0, 0.0, 0.0, 0.0], jnp.float32), (n, 1))
        bodies = b.replace(pos=pos, vel=zeros, quat=level, omega=zeros, thrust=thrust,
                           load_pos=b.load_pos.at[2].set(floor), load_vel=jnp.zeros(3), load_omega=jnp.zeros(3),
                           load_quat=jnp.asarray([1.0, 0.0, 0.0, 0.0], jnp.float32))
        return state.replace(bodies=bodies, ctrl=quadrotor.init_state(zeros, zeros, thrust),
                             tension=jnp.zeros(n), min_tension=jnp.zeros(n))

    def warm_up(self) -> None:
        """Compile the crash check and the ground now (~1 s), not at the first goal's first period or touch-down."""
        self._crashed(self.state)
        self._project(self.state.bodies, jnp.float32(self.profile.task.ground_clearance))

    @property
    def airborne(self) -> bool:
        """The take-off is over (or there was none): the set-points fly."""
        return self.airborne_at is not None

    # ---- inputs -----------------------------------------------------------------------------------
    def setpoint(self, i: int, cmd: np.ndarray, t: float) -> None:
        """A set-point for MAV i arrived at time t (s since release)."""
        self.cmd[i], self.last_cmd_t[i] = cmd, t

    def set_goal(self, pos: tuple[float, ...], quat_wxyz: tuple[float, ...], scored: bool = True) -> None:
        self.goals.append(GoalRecord(tuple(pos), tuple(quat_wxyz), self.t, scored))
        self.state = self.state.replace(goal_pos=jnp.asarray(pos, jnp.float32), goal_quat=jnp.asarray(quat_wxyz, jnp.float32))

    def cut(self, i: int, cause: str) -> bool:
        """MAV i's motors stop now, for good (`cause`: "kill", the operator's command, or "failure", an injected
        thrust loss): no thrust, its cable released (`CableEnv`'s failure mode: a falling MAV's cable goes slack
        at once; released, it cannot pull the load again from below). False if they were off already."""
        if self.mode[i] == OFF:
            return False
        cut = np.array(self.state.fail_agent)
        cut[i] = i
        self.state = self.state.replace(fail_agent=jnp.asarray(cut))
        self.mode[i] = OFF
        self.events.append((round(self.t, 3), i, OFF))
        self.cuts.append((round(self.t, 3), i, cause))
        self.fault = self.fault or self.cuts[-1]
        return True

    def silent(self, i: int) -> None:
        """MAV i's odometry stopped (fault injection): what the load does from now on is measured (`after_failure`),
        as after a motor cut, unless a fault came first."""
        self.fault = self.fault or (round(self.t, 3), i, "silent")


    def land(self) -> None:
        """End of mission: every MAV descends at the bounded rate and lands, together."""
        self.landing = True

    # ---- the vehicles' firmware ---------------------------------------------------------------------
    def firmware_commands(self) -> np.ndarray:
        b = self.state.bodies
        vel, pos = np.asarray(b.vel, np.float64), np.asarray(b.pos, np.float64)
        fs, t = self.failsafe, self.t
        lim = np.asarray(self.env.action_limit)
        out = np.zeros((self.n, 5))
        floor = self.profile.task.ground_clearance + 1e-3
        before = list(self.mode)
        for i in range(self.n):
            fresh = t - self.last_cmd_t[i] <= fs.max_age_s
            if self.mode[i] == OFF:
                continue
            if self.mode[i] == LANDED:
                out[i, 2] = -lim[2]
                continue
            if self.mode[i] == TAKEOFF:
                climb = np.clip(CLIMB_GAIN * (self.places[i, 2] - pos[i, 2]), -fs.descent_rate, self.takeoff.climb_rate)
                out[i, :2] = -SPOT_GAIN * (pos[i, :2] - self.places[i, :2]) - DAMPING * vel[i, :2]
                out[i, 2] = -DAMPING * (vel[i, 2] - climb)
                continue
            if fresh and not self.landing:
                self.mode[i] = FLY
                out[i] = self.cmd[i]
                if pos[i, 2] <= floor and self.cmd[i, 2] < 0:  # land detector: on the ground, pushed down
                    self.mode[i] = LANDED
                continue
            if self.mode[i] == FLY:
                self.mode[i], self.stale_since[i] = (DESCEND if self.landing else HOLD), t
            if self.mode[i] == HOLD and t - self.stale_since[i] >= fs.hold_s:
                self.mode[i] = DESCEND
            out[i, :3] = failsafe_acceleration(vel[i], self.mode[i] == DESCEND, fs.descent_rate)
            if self.mode[i] == DESCEND and pos[i, 2] <= floor:
                self.mode[i] = LANDED
        self.events += [(round(t, 3), i, m) for i, (b, m) in enumerate(zip(before, self.mode)) if b != m]
        return np.clip(out, -lim, lim)

    # ---- time ---------------------------------------------------------------------------------------
    def step(self) -> None:
        """One policy period: firmware commands, physics substeps, the ground, the measurements."""
        cmds = self.firmware_commands()
        self.state = self._step(self.state, jnp.asarray(cmds, jnp.float32))
        self._ground()
        self.t += self.dt
        self._measure()
        if not self.airborne and np.linalg.norm(np.asarray(self.state.bodies.load_pos) - self.start) <= self.takeoff.handover_m:
            self.airborne_at = round(self.t, 3)
            self.mode = [FLY if m == TAKEOFF else m for m in self.mode]
            self.events += [(self.airborne_at, i, FLY) for i in range(self.n)]

    def _ground(self) -> None:
        b, floor = self.state.bodies, self.profile.task.ground_clearance
        load_z, load_vz, mav_z = jax.device_get((b.load_pos[2], b.load_vel[2], b.pos[:, 2]))
        load_down, mav_down = float(load_z) < floor, np.asarray(mav_z) < floor
        if not (load_down or mav_down.any()):
            return
        if load_down:
            if (self.landing or self.fault) and self.load_down_at is None:
                self.load_down_at = round(self.t + self.dt, 3)
            self.touchdown_speed = max(self.touchdown_speed, float(-load_vz)) if self.airborne else 0.0
        self.state = self.state.replace(bodies=self._project(b, jnp.float32(floor)))

    @staticmethod
    @jax.jit
    def _project(b, floor):
        """What is below `floor` stops there; a MAV on the ground stands level on its legs (the ground takes roll
        and pitch; yaw kept). One compiled call: eager JAX ops cost milliseconds per period."""
        load_down = b.load_pos[2] < floor
        down = (b.pos[:, 2] < floor)[:, None]
        q = b.quat
        yaw = jnp.arctan2(2 * (q[:, 0] * q[:, 3] + q[:, 1] * q[:, 2]), 1 - 2 * (q[:, 2] ** 2 + q[:, 3] ** 2))
        level = jnp.stack([jnp.cos(yaw / 2), 0 * yaw, 0 * yaw, jnp.sin(yaw / 2)], axis=-1)
        return b.replace(load_pos=b.load_pos.at[2].set(jnp.maximum(b.load_pos[2], floor)),
                         load_vel=jnp.where(load_down, 0.0, b.load_vel), load_omega=jnp.where(load_down, 0.0, b.load_omega),
                         pos=b.pos.at[:, 2].set(jnp.maximum(b.pos[:, 2], floor)), quat=jnp.where(down, level, q),
                         vel=jnp.where(down, 0.0, b.vel), omega=jnp.where(down, 0.0, b.omega))

    def _measure(self) -> None:
        """Numpy on one copy of the state (eager JAX ops here cost more than the jitted step)."""
        b, tension = jax.device_get((self.state.bodies, self.state.tension))
        pos = np.asarray(b.pos, np.float64)
        iu, ju = np.triu_indices(self.n, 1)
        separation = float(np.min(np.linalg.norm(pos[iu] - pos[ju], axis=-1)))
        self.min_separation = min(self.min_separation, separation)
        q = np.asarray(b.quat, np.float64)  # w x y z: body z's world z component is 1 - 2 (x² + y²)
        cos_tilt = np.clip(1 - 2 * (q[:, 1] ** 2 + q[:, 2] ** 2), -1, 1)
        tilt = float(np.degrees(np.max(np.arccos(cos_tilt))))
        self.max_tilt_deg = max(self.max_tilt_deg, tilt)
        slack = tension <= 0.0
        new_slack = int(np.sum(slack & ~self._slack)) if self.airborne else 0  # cables start slack on the ground
        self.slack_events += new_slack
        self._slack = slack
        goal = self.goals[-1] if self.goals and not self.landing else None
        if goal is not None:
            goal.min_separation = min(goal.min_separation, separation)
            goal.slack_events += new_slack
            goal.max_tilt_deg = max(goal.max_tilt_deg, tilt)
            if goal.crashed_at_s is None and goal.success_at_s is None and bool(self._crashed(self.state)):
                goal.crashed_at_s, goal.crash = round(self.t - goal.start_s, 3), self._crash_reason(separation)
        if self.fault is not None:
            a, lq = self.after_failure, np.asarray(b.load_quat, np.float64)
            load_tilt = math.degrees(math.acos(min(1.0, 1 - 2 * (lq[1] ** 2 + lq[2] ** 2))))
            a["load_max_tilt_deg"] = max(a["load_max_tilt_deg"], load_tilt)
            since = self.t - self.fault[0]
            if self.load_down_at is None and len(a["load_tilt_trace"]) <= since / 0.1 + 1e-6:
                a["load_tilt_trace"].append([round(since, 2), round(load_tilt, 2)])
            if self.load_down_at is not None and a["load_touchdown_tilt_deg"] is None:
                a["load_touchdown_tilt_deg"] = load_tilt
            a["load_max_sink_mps"] = max(a["load_max_sink_mps"], float(-b.load_vel[2]))
            a["load_min_z_m"] = min(a["load_min_z_m"], float(b.load_pos[2]))
            if a["load_down_after_s"] is None and self.load_down_at is not None:
                a["load_down_after_s"] = round(self.load_down_at - self.fault[0], 3)
        loaded = tension > 0
        if loaded.any():
            self.min_rotor_sum_loaded = min(self.min_rotor_sum_loaded, float(np.min(np.asarray(b.thrust).sum(-1)[loaded])))
        down = pos[:, 2] <= self.profile.task.ground_clearance + 1e-3  # motors off: fallen to the ground
        if self.landed_at is None and all(m == LANDED or (m == OFF and down[i]) for i, m in enumerate(self.mode)):
            self.landed_at = round(self.t, 3)
        if self.goals and not self.landing:
            self._goal_errors(self.goals[-1], np.asarray(b.load_pos, np.float64), np.asarray(b.load_quat, np.float64))

    def _crash_reason(self, separation: float) -> str:
        """Which of `CableEnv.terminated`'s checks failed, in words (computed once, when one did)."""
        from marlstack.sim.cable.dynamics import cable_vectors
        from marlstack.sim.cable.env import segment_distance
        t, b, n = self.profile.task, jax.device_get(self.state.bodies), self.n
        ok = np.asarray(self.env.working(self.state))
        top, bottom = (np.asarray(v, np.float64) for v in cable_vectors(self.state.bodies, self.profile))
        cable = top - bottom
        angle = np.degrees(np.arccos(np.clip(cable[:, 2] / np.linalg.norm(cable, axis=-1), -1, 1)))
        iu, ju = np.triu_indices(n, 1)
        both = ok[iu] & ok[ju]
        gap = np.asarray(segment_distance(top[iu], bottom[iu], top[ju], bottom[ju]), np.float64)
        why = []
        if both.any() and separation < t.min_mav_distance:
            why.append(f"MAVs {separation:.3f} m apart (limit {t.min_mav_distance})")
        if np.any(both & (gap < t.min_cable_distance)):
            why.append(f"cables {np.min(gap[both]):.3f} m apart (limit {t.min_cable_distance})")
        if np.any(ok & (angle > t.max_cable_angle)):
            why.append(f"a cable {np.max(angle[ok]):.0f} deg from vertical (limit {t.max_cable_angle})")
        low = min(float(b.load_pos[2]), float(np.min(np.asarray(b.pos)[ok, 2])))
        if low < t.ground_clearance:
            why.append(f"{low:.2f} m above the ground")
        return "; ".join(why) or "outside the workspace, a pushing cable or a non-finite state"

    def _goal_errors(self, g: GoalRecord, load_pos: np.ndarray, load_quat: np.ndarray) -> None:
        """The load's errors to goal `g` (as `CableEnv.errors`: distance, and the angle between the attitudes)."""
        e_pos = float(np.linalg.norm(np.asarray(g.pos) - load_pos))
        deg = math.degrees(2 * math.acos(min(1.0, abs(float(np.dot(np.asarray(g.quat), load_quat))))))
        g.errors.append((round(self.t, 3), e_pos, deg))
        t = self.profile.task
        if e_pos <= t.success_position and deg <= t.success_orientation:
            g.inside_since = self.t if g.inside_since is None else g.inside_since
            if g.success_at_s is None and self.t - g.inside_since >= t.success_hold - 1e-9:
                g.success_at_s = round(self.t - g.start_s, 3)
        else:
            g.inside_since = None

    # ---- what the sensors see -----------------------------------------------------------------------
    def bodies(self) -> dict[str, np.ndarray]:
        b = jax.device_get(self.state.bodies)
        return {k: np.asarray(getattr(b, k), np.float64) for k in ("pos", "vel", "quat", "omega", "load_pos", "load_vel",
                                                                   "load_quat", "load_omega")}

    def summary(self) -> dict:
        goals = []
        for g in self.goals:
            errs = np.asarray([e[1:] for e in g.errors]) if g.errors else np.zeros((0, 2))
            goals.append({"goal_pos": list(g.pos), "goal_quat_wxyz": list(g.quat), "start_s": round(g.start_s, 3),
                          "scored": g.scored, "success": g.success_at_s is not None and g.crashed_at_s is None,
                          "success_after_s": g.success_at_s,
                          "crashed_after_s": g.crashed_at_s, "crash": g.crash,
                          "min_mav_separation_m": round(g.min_separation, 4),
                          "slack_events": g.slack_events, "max_tilt_deg": round(g.max_tilt_deg, 2),
                          "final_position_error_m": round(float(errs[-1, 0]), 4) if len(errs) else None,
                          "final_orientation_error_deg": round(float(errs[-1, 1]), 3) if len(errs) else None,
                          "min_position_error_m": round(float(errs[:, 0].min()), 4) if len(errs) else None,
                          "error_trace": [list(map(lambda v: round(v, 4), e)) for e in g.errors[::10]]})
        return {"elapsed_s": round(self.t, 3), "goals": goals, "min_mav_separation_m": round(self.min_separation, 4),
                "mav_separation_limit_m": self.profile.task.min_mav_distance,
                "separation_violated": self.min_separation < self.profile.task.min_mav_distance,
                "slack_events": self.slack_events, "max_tilt_deg": round(self.max_tilt_deg, 2),
                "modes": list(self.mode), "mode_changes": [list(e) for e in self.events[-50:]],
                "took_off": self.takeoff is not None, "airborne_at_s": self.airborne_at,
                "landed": self.landed_at is not None and LANDED in self.mode,  # not when every motor was cut
                "landed_at_s": self.landed_at, "load_down_at_s": self.load_down_at,
                "load_touchdown_speed_mps": round(self.touchdown_speed, 3),
                "failed_mav": self.cuts[0][:2] if self.cuts else None,   # the first motor cut (time, MAV)
                "motors_cut": [{"at_s": t, "mav": i, "cause": c} for t, i, c in self.cuts],
                "fault": dict(zip(("at_s", "mav", "what"), self.fault)) if self.fault else None,
                "after_failure": {k: round(v, 3) if isinstance(v, float) else v for k, v in self.after_failure.items()}
                if self.fault else None,
                "min_rotor_thrust_sum_with_load_n": round(self.min_rotor_sum_loaded, 4)}
