"""MAV messages <-> numbers, and a cable-team policy's sensor tensors from the latest messages.

`TeamInputs` builds the exported model's inputs (names and shapes from its spec, i.e. from
`sim.cable.spec.SENSORS`) out of the load's odometry, this MAV's and the others' odometry, the goal
pose and the commands this MAV sent (the action history). Each sensor name maps to one source in
`SOURCES`; a model that needs a sensor no source provides is refused at start, naming it, so a new
sensor in the contract shows up as a clear error instead of a silently wrong input.

Odometry follows REP 105 (pose in the world frame, twist in the body frame, `child_frame_id`);
the policy's tensors are world-frame velocities and body rates, as `CableEnv.sense` gives them.
Freshness is judged by each message's `header.stamp` against the node clock (DESIGN contract 8);
`TeamInputs.receive` refuses samples whose stamps cannot be trusted (`health.Stamps`) and watches this
MAV's own odometry for values that stop changing in flight (`health.FrozenValues`).
No rclpy at import and never JAX: onboard code.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from marlstack.ros_nodes import convert, health
from marlstack.ros_nodes.adapters import InputError, LatestValues
from marlstack.ros_nodes.mav_safety import Load, SafetyStage

WIDTH = 13  # position (3), quaternion x y z w (4), world velocity (3), body rates (3)
LOAD, GOAL = "/load/odom", "/load/goal"


def rotation(qx: float, qy: float, qz: float, qw: float) -> np.ndarray:
    """Unit quaternion -> rotation matrix (body to world)."""
    return np.array([
        [1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qz * qw), 2 * (qx * qz + qy * qw)],
        [2 * (qx * qy + qz * qw), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qx * qw)],
        [2 * (qx * qz - qy * qw), 2 * (qy * qz + qx * qw), 1 - 2 * (qx * qx + qy * qy)]])


def rotations(quats_xyzw: np.ndarray) -> np.ndarray:
    """(N, 4) unit quaternions x y z w -> (N, 3, 3) rotations body to world."""
    return np.moveaxis(rotation(*np.asarray(quats_xyzw, np.float64).T), -1, 0)


def certify(stage: SafetyStage, team: np.ndarray, ages_s: np.ndarray, cmd: np.ndarray, load: np.ndarray | None = None,
            load_age_s: float = 0.0) -> tuple[np.ndarray | None, str]:
    """The safety stage on odometry rows as `Latest` keeps them (WIDTH numbers: position, quaternion, world
    velocity, body rates): `team` (N, WIDTH) in team order, each row `ages_s` old; with the load's row (`load`,
    `load_age_s` old) the cable rows join, which need every MAV's attitude and body rates and the load's pose
    and twist; without it they are not checked (the stage counts the step). One call shared by the policy node,
    `replay eval` and sim-to-sim, so all three filter the same numbers."""
    team = np.asarray(team, np.float64)
    loaded = None if load is None else Load(load[0:3], load[7:10], rotation(*load[3:7]), load[10:13], load_age_s)
    return stage.filter(team[:, 0:3], team[:, 7:10], cmd, ages_s, rot=rotations(team[:, 3:7]), omega=team[:, 10:13],
                        load=loaded)


LANDING_FLOOR_M = -1e3  # the team landing's stage: a floor far below the ground, i.e. no floor row


def landing_stage(profile: Any, mavs: list[str], me: str) -> SafetyStage:
    """The safety stage of the team landing, for the MAVs still flying (`mavs`, the lost ones left out: silent or
    falling, their odometry certifies nothing): the MAV separation rows and the walls. Without the certified floor
    (the landing goes to the ground) and without the cable rows (the cables slacken as the load is set down: their
    angle grows by design, up to ~70° as the MAVs come down beside it)."""
    stage = SafetyStage(profile, mavs, me)
    low = stage.spec.low
    stage.spec = stage.spec._replace(low=(low[0], low[1], LANDING_FLOOR_M), cable_separation=0.0, tan_cable_angle=0.0)
    stage.cables = False
    return stage


def odometry(msg: Any, what: str = "odom") -> tuple[float, ...]:
    """nav_msgs/Odometry -> WIDTH numbers (world velocity = R · body twist); raises convert.MessageError."""
    try:
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        v, w = msg.twist.twist.linear, msg.twist.twist.angular
        f = list(convert.floats({"position.x": p.x, "position.y": p.y, "position.z": p.z, "orientation.x": q.x,
                                 "orientation.y": q.y, "orientation.z": q.z, "orientation.w": q.w,
                                 "linear.x": v.x, "linear.y": v.y, "linear.z": v.z,
                                 "angular.x": w.x, "angular.y": w.y, "angular.z": w.z}, what).values())
    except AttributeError as exc:
        raise convert.Malformed(f"{what}: not an Odometry ({exc})") from None
    quat = convert.check_quaternion(*f[3:7], what)
    vel = rotation(*quat) @ np.asarray(f[7:10])
    return (*f[:3], *quat, *vel.tolist(), *f[10:13])


def goal_pose(msg: Any) -> tuple[float, ...]:
    """geometry_msgs/PoseStamped -> WIDTH numbers (position, quaternion, zero twist)."""
    try:
        p, q = msg.pose.position, msg.pose.orientation
        f = list(convert.floats({"position.x": p.x, "position.y": p.y, "position.z": p.z, "orientation.x": q.x,
                                 "orientation.y": q.y, "orientation.z": q.z, "orientation.w": q.w}, "goal").values())
    except AttributeError as exc:
        raise convert.Malformed(f"goal: not a PoseStamped ({exc})") from None
    return (*f[:3], *convert.check_quaternion(*f[3:], "goal"), *[0.0] * 6)


def odometry_msg(pos: Any, quat_wxyz: Any, vel_world: Any, omega_body: Any, stamp_s: float, child: str) -> Any:
    """A body's state -> nav_msgs/Odometry (REP 105: world pose, body twist)."""
    from nav_msgs.msg import Odometry
    msg = Odometry()
    msg.header.frame_id, msg.child_frame_id = "world", child
    convert.set_stamp(msg.header.stamp, stamp_s)
    w, x, y, z = (float(v) for v in quat_wxyz)
    p, o = msg.pose.pose.position, msg.pose.pose.orientation
    p.x, p.y, p.z = (float(v) for v in pos)
    o.x, o.y, o.z, o.w = x, y, z, w
    v_body = rotation(x, y, z, w).T @ np.asarray(vel_world, float)
    t = msg.twist.twist
    t.linear.x, t.linear.y, t.linear.z = (float(v) for v in v_body)
    t.angular.x, t.angular.y, t.angular.z = (float(v) for v in omega_body)
    return msg


def pose_msg(pos: Any, quat_wxyz: Any, stamp_s: float) -> Any:
    from geometry_msgs.msg import PoseStamped
    msg = PoseStamped()
    msg.header.frame_id = "world"
    convert.set_stamp(msg.header.stamp, stamp_s)
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in pos)
    o = msg.pose.orientation
    o.w, o.x, o.y, o.z = (float(v) for v in quat_wxyz)
    return msg


def setpoint_msg(cmd: Any, stamp_s: float, yaw: float = 0.0, reuse: Any = None) -> Any:
    """(acc x, y, z [m/s²] world, roll rate, pitch rate [rad/s] body) -> one-point MultiDOFJointTrajectory.

    `stamp_s` is the time of the measurement the command answers (the load odometry's stamp). `reuse`: a
    message this function made before, overwritten instead of building a new one (a 100 Hz loop's allocations)."""
    if reuse is None:
        from geometry_msgs.msg import Transform, Twist
        from trajectory_msgs.msg import MultiDOFJointTrajectory, MultiDOFJointTrajectoryPoint
        reuse = MultiDOFJointTrajectory()
        reuse.header.frame_id = "world"
        reuse.points = [MultiDOFJointTrajectoryPoint(transforms=[Transform()], velocities=[Twist()],
                                                     accelerations=[Twist()])]
    point = reuse.points[0]
    acc, rates, heading = point.accelerations[0].linear, point.velocities[0].angular, point.transforms[0].rotation
    acc.x, acc.y, acc.z = (float(v) for v in cmd[:3])
    rates.x, rates.y = float(cmd[3]), float(cmd[4])
    heading.z, heading.w = math.sin(yaw / 2), math.cos(yaw / 2)
    convert.set_stamp(reuse.header.stamp, stamp_s)
    return reuse


def setpoint_values(msg: Any) -> tuple[float, ...]:
    """MultiDOFJointTrajectory (one point) -> (acc x, y, z, rate ff x, y, z, yaw set-point)."""
    try:
        point = msg.points[0]
        a, w, q = point.accelerations[0].linear, point.velocities[0].angular, point.transforms[0].rotation
    except (AttributeError, IndexError) as exc:
        raise convert.Malformed(f"setpoint: needs one point with a transform, a velocity and an acceleration ({exc})") from None
    f = tuple(convert.floats({"acceleration.x": a.x, "acceleration.y": a.y, "acceleration.z": a.z,
                              "angular.x": w.x, "angular.y": w.y, "angular.z": w.z,
                              "rotation.x": q.x, "rotation.y": q.y, "rotation.z": q.z, "rotation.w": q.w},
                             "setpoint").values())
    return (*f[:6], convert.yaw_from_quaternion(*convert.check_quaternion(*f[6:], "setpoint")))


HOLD_GAINS = (4.0, 3.0)  # 1/s², 1/s: the position hold's PD (those of the classical controller's position loop)


def hold_command(pos: np.ndarray, vel: np.ndarray, target: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """The policy node's position hold: world acceleration from a PD loop on position, no rate
    feed-forward, within `limit` (5,). Replay recognises hold steps with it."""
    kp, kd = HOLD_GAINS
    cmd = np.concatenate([kp * (np.asarray(target) - pos) - kd * np.asarray(vel), np.zeros(2)])
    return np.clip(cmd, -limit, limit)


def land_command(pos: np.ndarray, vel: np.ndarray, over: np.ndarray, descent_rate: float, limit: np.ndarray) -> np.ndarray:
    """Descend at `descent_rate` over the point `over` (x, y): the team landing once a teammate is lost
    (`TeamLanding`). Position hold's gains sideways, velocity loop down."""
    kp, kd = HOLD_GAINS
    acc = np.concatenate([kp * (np.asarray(over[:2]) - pos[:2]) - kd * np.asarray(vel[:2]),
                          [-kd * (vel[2] + descent_rate)]])
    return np.clip(np.concatenate([acc, np.zeros(2)]), -limit, limit)


SLACK_SHARE = 0.02    # a survivor whose share of the level load is below this keeps its cable slack:
SLACK_LENGTH = 0.85   # its hook comes within this fraction of the cable length of its attachment point,
SLACK_GAIN = 5.0      # descending faster than the team by 5 (1/s) per metre beyond that,
SLACK_RATE = 0.1      # at most 0.1 m/s faster: its pull fades over ~2 s, several of the load's swings (~0.8 s), so
                      # the load comes back level without swinging (released at once it swung +-7-10 deg, in the sim)


def landing_shares(arms: np.ndarray, lost: list[int]) -> np.ndarray | None:
    """Each MAV's share of the load's weight on vertical cables that holds the load level once the MAVs `lost`
    (indices) are gone: the static equilibrium of a level load hanging from the survivors' attachment points
    `arms` (N, 3, load frame, centre of mass at the origin): shares >= 0 summing to 1 whose moment about the
    centre of mass vanishes (sum w_i (x_i, y_i) = 0; the points' height above it adds no moment with vertical
    cables). The lost get 0. With several solutions (5+ MAVs) the evenest, i.e. least-squares, one; where that
    has a negative share, the evenest among the solutions on three or fewer survivors. None where no level
    equilibrium exists: the centre of mass outside the survivors' hull (two left of a 3-MAV team, whose load
    then hangs below the line through their attachment points). 4-MAV corners losing one: the two neighbours
    of the lost corner carry half each (the centre of mass lies on their diagonal), the opposite one nothing."""
    arms = np.asarray(arms, np.float64)
    alive = [i for i in range(len(arms)) if i not in lost]

    def level(cols: list[int]) -> np.ndarray | None:
        a, target = np.vstack([np.ones(len(cols)), arms[cols, 0], arms[cols, 1]]), np.array([1.0, 0.0, 0.0])
        w = np.linalg.lstsq(a, target, rcond=None)[0]
        if not (np.allclose(a @ w, target, atol=1e-9) and w.min() >= -1e-9):
            return None
        shares = np.zeros(len(arms))
        shares[cols] = np.maximum(w, 0.0)
        return shares

    even = level(alive)
    if even is not None:
        return even
    found = [w for k in (3, 2, 1) for c in itertools.combinations(alive, k) if (w := level(list(c))) is not None]
    return min(found, key=lambda w: w.max(), default=None)


@dataclass(frozen=True)
class Lost:
    """A teammate judged lost (`TeamInputs.lost`). `falling` faster than the lost fall speed: its motors are off
    (a kill, a thrust failure), it carries nothing. Otherwise silent: no usable odometry since `heard_s` (none
    arrived, or it was non-finite, or its values stopped changing while it was above the floor): its own policy
    node has none either and sends nothing, so its flight controller's failsafe flies it (`failsafe_acceleration`:
    level hover, its INDI carrying its share of the load, then the failsafe descent): it still carries."""
    mav: str
    falling: bool
    heard_s: float

    def __str__(self) -> str:
        return self.mav if self.falling else f"{self.mav} (silent since {self.heard_s:.2f} s)"


def failsafe_descent_after(hold_s: float, watchdog_s: float) -> float:
    """How long after a silent teammate's last odometry its flight controller begins the failsafe descent: its
    policy node stops sending once its own odometry is `watchdog_s` old, its flight controller holds once the last
    set-point is `watchdog_s` old (the same watchdog, the team config's), and descends after `hold_s` of hold."""
    return hold_s + 2.0 * watchdog_s


class TeamLanding:
    """One survivor's part in the team landing once MAVs `lost` (`Lost`) are gone, worked out alone from the team's
    layout (`profile`'s attachment points for `mavs`) and its own loss detection. The falling ones carry nothing;
    the silent ones are in their flight controllers' failsafe and still carry their share, holding level for
    `failsafe_s` after their last odometry (`failsafe_descent_after`), then descending at the failsafe rate: so
    the team holds level until then and descends with them, at the same rate, one parameter for both (the config's
    `failsafe.descent_rate`). With a share of the level load (`landing_shares` without the falling ones) this MAV
    descends at the team's rate over `over`, where it was; with none (`slack`) it keeps its cable slack: it
    descends faster, by `SLACK_GAIN` per metre its hook is beyond `SLACK_LENGTH` of the cable length from its
    attachment point on the load (by the load's odometry), then at the team's rate, so the load hangs level from
    the carriers (a slow release, `SLACK_RATE`). Where no level equilibrium exists every survivor carries
    (`share` None)."""

    def __init__(self, profile: Any, mavs: list[str], me: str, lost: list[Lost], over: np.ndarray,
                 failsafe_s: float = 0.0):
        arms = np.asarray(profile.team(len(mavs)).attachment_points, np.float64)
        shares = landing_shares(arms, [mavs.index(m.mav) for m in lost if m.falling])
        self.share = None if shares is None else float(shares[mavs.index(me)])
        self.slack = self.share is not None and self.share < SLACK_SHARE
        self.arm, self.over = arms[mavs.index(me)], np.asarray(over, np.float64)
        self.hook_m, self.length_m = profile.quadrotor.cable_offset, profile.cable.length
        silent = [m.heard_s for m in lost if not m.falling]
        self.descend_at = max(silent) + failsafe_s if silent else -math.inf   # with the silent ones' failsafe

    def role(self) -> str:
        if self.share is None:
            return "no level equilibrium without them: every MAV carries"
        role = "keeping my cable slack" if self.slack else f"carrying {self.share:.2f} of the load"
        return role if self.descend_at == -math.inf else f"{role}, level until their failsafe descends at " \
                                                         f"{self.descend_at:.2f} s"

    def command(self, me: np.ndarray, load: np.ndarray, descent_rate: float, limit: np.ndarray,
                now_s: float = math.inf) -> np.ndarray:
        """The set-point at `now_s` from this MAV's odometry row `me` and the load's `load` (rows as `Latest` keeps
        them)."""
        rate = descent_rate if now_s >= self.descend_at else 0.0
        if self.slack:
            hook = me[0:3] - rotation(*me[3:7])[:, 2] * self.hook_m
            point = load[0:3] + rotation(*load[3:7]) @ self.arm
            beyond = float(np.linalg.norm(hook - point)) - SLACK_LENGTH * self.length_m
            rate += min(SLACK_RATE, SLACK_GAIN * max(0.0, beyond))
        return land_command(me[0:3], me[7:10], self.over, rate, limit)


def setpoint_fault(stamps: health.Stamps, mav: str, stamp_s: float, now_s: float, max_age_s: float) -> str | None:
    """Why a flight controller must not fly MAV `mav`'s set-point stamped `stamp_s` (the load sample it answers),
    arriving at `now_s`, or None: the shared stamp rules (unset, future, jumping; out of order), and an answer
    to a sample already older than `max_age_s`. A repeated stamp (a policy node's timer step answering the same
    sample again) is used while young enough, so a stream whose stamps stop advancing goes stale."""
    fault, _ = stamps.judge(mav, stamp_s, now_s, repeats=True)
    if fault is None and now_s - stamp_s > max_age_s:
        fault = f"stale on arrival: answers a sample {(now_s - stamp_s) * 1e3:.0f} ms old (limit {max_age_s * 1e3:.0f} ms)"
    return fault


FAILSAFE_DAMPING = 2.0  # 1/s: velocity damping of the flight controller's hold and descent references


def failsafe_acceleration(vel: np.ndarray, descend: bool, descent_rate: float) -> np.ndarray:
    """A flight controller's failsafe reference (world acceleration) once set-points stop: level hover with its
    velocity damped (`hold`), or a bounded-rate descent (`descend`). The INDI's external-acceleration estimate
    carries this MAV's share of the load either way. Used by the SITL firmware and the rate controller node."""
    target = np.array([0.0, 0.0, -descent_rate if descend else 0.0])
    return -FAILSAFE_DAMPING * (np.asarray(vel, np.float64) - target)


def stamp_or(msg: Any, now_s: float) -> float:
    """The message's header stamp in seconds, or `now_s` when it carries none (zero)."""
    s = convert.stamp_seconds(msg.header.stamp)
    return s if s > 0 else now_s


class Latest:
    """What one MAV's companion computer knows: latest values by source, the team order, its own history."""

    def __init__(self, mavs: list[str], me: str, history: int, limit: np.ndarray):
        self.mavs, self.me, self.index = list(mavs), me, mavs.index(me)
        self.values = LatestValues([LOAD, GOAL, *mavs], WIDTH, "")
        self.limit = np.asarray(limit, np.float64)
        self.past = np.zeros((max(history, 1), len(self.limit)))

    def row(self, key: str) -> np.ndarray:
        return self.values.values[self.values.keys.index(key)]

    def sent(self, cmd: np.ndarray) -> None:
        """Remember a command this MAV sent (the model sees the last H of them over the limits, newest first)."""
        self.past = np.concatenate([(np.clip(cmd, -self.limit, self.limit) / self.limit)[None], self.past[:-1]])


# sensor name (sim.cable.spec.SENSORS) -> how the companion computer computes it from `Latest`
SOURCES: dict[str, Callable[[Latest], np.ndarray]] = {
    "load_pos": lambda s: s.row(LOAD)[0:3],
    "load_rot": lambda s: rotation(*s.row(LOAD)[3:7]),
    "load_vel": lambda s: s.row(LOAD)[7:10],
    "load_omega": lambda s: s.row(LOAD)[10:13],
    "pos": lambda s: s.row(s.me)[0:3],
    "rot": lambda s: rotation(*s.row(s.me)[3:7]),
    "vel": lambda s: s.row(s.me)[7:10],
    "omega": lambda s: s.row(s.me)[10:13],
    "others_pos": lambda s: np.stack([s.row(m)[0:3] for m in s.mavs if m != s.me]),
    "goal_pos": lambda s: s.row(GOAL)[0:3],
    "goal_rot": lambda s: rotation(*s.row(GOAL)[3:7]),
    "agent_id": lambda s: np.eye(len(s.mavs))[s.index],
    "past_actions": lambda s: s.past,
}
# the sources each sensor reads (its freshness is theirs)
NEEDS = {"load_pos": [LOAD], "load_rot": [LOAD], "load_vel": [LOAD], "load_omega": [LOAD], "pos": ["me"],
         "rot": ["me"], "vel": ["me"], "omega": ["me"], "others_pos": ["others"], "goal_pos": [GOAL],
         "goal_rot": [GOAL], "agent_id": [], "past_actions": []}


class TeamInputs:
    """The model's input tensors (batch of one) for MAV `me`, or InputError naming the stale/missing source."""

    def __init__(self, spec_inputs: list[dict], mavs: list[str], me: str, limit: np.ndarray, max_age_s: float,
                 offset_s: float = 0.0, period_s: float = 0.01):
        unknown = [e["name"] for e in spec_inputs if e["name"] not in SOURCES]
        if unknown:
            raise ValueError(f"the model needs sensor(s) {unknown} that the MAV policy node has no source for "
                             f"(it provides {sorted(SOURCES)})")
        history = next((e["shape"][1] for e in spec_inputs if e["name"] == "past_actions"), 1)
        self.latest = Latest(mavs, me, history, limit)
        self.spec_inputs, self.max_age = spec_inputs, max_age_s
        self.stamps = health.Stamps(offset_s, offset_s + period_s)  # odometry judged by its header stamps
        self.frozen = health.FrozenValues()                           # own odometry repeated in flight
        self.changed: dict[str, tuple[tuple[float, ...], float]] = {}  # MAV -> (its values, since when: stamp)
        needed = {k for e in spec_inputs for k in NEEDS[e["name"]]}
        self.sources = ([LOAD] if LOAD in needed else []) + ([me] if "me" in needed else []) \
            + ([m for m in mavs if m != me] if "others" in needed else []) + ([GOAL] if GOAL in needed else [])
        for e in spec_inputs:
            got = list(SOURCES[e["name"]](self.latest).shape)
            if got != list(e["shape"][1:]):
                raise ValueError(f"model input {e['name']!r} expects per-MAV shape {e['shape'][1:]}, a team of "
                                 f"{len(mavs)} MAVs gives {got}; export the policy for this team")

    def put(self, key: str, values: tuple[float, ...], stamp_s: float) -> None:
        self.latest.values.put(key, values, stamp_s)

    def invalidate(self, key: str, reason: str) -> None:
        self.latest.values.invalidate(key, reason)

    def receive(self, key: str, values: tuple[float, ...], stamp_s: float, now_s: float) -> None:
        """An odometry sample of `key` stamped `stamp_s` (its raw header stamp), arriving at `now_s`: used and
        timed by its stamp; or, when its stamps cannot be trusted (unset, in the future, repeated, jumping),
        the source invalid until a good one; or dropped when only this packet is out of order."""
        if not health.receive_stamped(self.stamps, self.latest.values, key, values, stamp_s, now_s):
            return
        if key == self.latest.me:
            self.frozen.sample(key, values, now_s)
        if key in self.latest.mavs and np.all(np.isfinite(values)) and self.changed.get(key, ((),))[0] != tuple(values):
            self.changed[key] = (tuple(values), stamp_s)

    def own_problem(self, now_s: float, flying: bool) -> InputError | None:
        """Why this MAV's own odometry cannot be flown on: missing, stale, invalid, or frozen: unchanged for
        `health.FROZEN_S` while `flying` (the node's judgement that the MAV is in the air being commanded), or,
        at any height, while the repeated values themselves report a speed above `health.MOVING_TOL` (a MAV
        that says it moves but stays put: e.g. a bridge frozen during take-off or landing, below the floor)."""
        me = self.latest.me
        says_moving = bool(np.linalg.norm(self.latest.row(me)[7:10]) > health.MOVING_TOL)
        self.frozen.commanded(me, flying or says_moving, now_s)
        frozen = self.frozen.problem(me, now_s)
        bad = self.problem(now_s, [me])
        return bad if bad is not None or frozen is None else InputError(self.latest.values.source(me), frozen)

    def problem(self, now_s: float, keys: list[str] | None = None, max_age_s: float | None = None) -> InputError | None:
        """The first unusable source among `keys` (default: all the model reads), older than `max_age_s`
        (default: the watchdog's); the goal is latched (no age)."""
        limit = self.max_age if max_age_s is None else max_age_s
        for key in self.sources if keys is None else keys:
            bad = self.latest.values.problem(key, now_s, math.inf if key == GOAL else limit)
            if bad is not None:
                return bad
        return None

    def lost(self, now_s: float, after_s: float, fall_speed: float, floor: float = math.inf) -> list[Lost]:
        """Teammates that are gone (`Lost`): heard from before, and falling faster than `fall_speed` (its motors
        off), or silent for `after_s`: no usable sample (none, or non-finite ones, which are refused), or, above
        `floor`, values that stopped changing (a frozen source: on the ground a noiseless one may repeat)."""
        out = []
        for m in self.latest.mavs:
            t = self.latest.values.times[self.latest.values.keys.index(m)]
            if m == self.latest.me or not np.isfinite(t):
                continue
            row = self.latest.row(m)
            heard = min(t, self.changed[m][1]) if m in self.changed and row[2] > floor else t
            if row[9] < -fall_speed or now_s - heard > after_s:
                out.append(Lost(m, bool(row[9] < -fall_speed), heard))
        return out

    def inputs(self, now_s: float) -> dict[str, np.ndarray]:
        bad = self.problem(now_s)
        if bad is not None:
            raise bad
        return {e["name"]: np.asarray(SOURCES[e["name"]](self.latest), np.float32)[None] for e in self.spec_inputs}
