"""Watchdog state and `/diagnostics` messages, shared by every node that commands motion.

Diagnostic convention (docs/ros.md): one `DiagnosticStatus` per node and robot, `name` = the
node's full name (plus `: <robot>` for fleet-wide nodes), `hardware_id` = the robot, and
key/values with cumulative counters (`watchdog_stops`, `interventions`, ...) so any listener,
e.g. the sim node's summary, can read the latest totals from a single message.
"""
from __future__ import annotations

import collections
import json
import math
from typing import Any, Iterable, Mapping

import numpy as np

from marlstack.ros_nodes import convert
from marlstack.ros_nodes.adapters import LatestValues, MissingInput, StaleInput

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels
STARTING = "starting: waiting for the first good inputs"
# Cumulative per-robot counters the nodes report and the sim node's summary adds up (docs/barrier.md):
# barrier_brakes: solves where the certificate braked (infeasible, solver failure) a robot that could move;
# clipped_commands: commands beyond the profile's limits, saturated; output_faults: policy outputs refused;
# deadlocks: standoffs the safety node broke with its right-hand rule (controllers/barrier_deadlock.py).
COUNTERS = ("interventions", "watchdog_stops", "barrier_brakes", "clipped_commands", "output_faults", "deadlocks")
IMPLAUSIBLE_FACTOR = 10.0   # a command beyond this many times the profile's limits is a fault, not a clip
POSE_MARGIN_M = 1.0         # a pose further than this outside the arena is a sensing fault, not a robot
FROZEN_S = 1.0              # a pose unchanged this long while its robot is commanded to move is frozen: stop
MOVING_TOL = 0.02           # |v| (m/s) or |ω| (rad/s) above this is "commanded to move"
JUMP_WINDOW_S = 1.0         # a stamp is judged against the source's delays over this long (health.Stamps)


class Watchdog:
    """Stopped-or-not with the reason; counts how often it tripped (ok -> stopped transitions).

    It starts stopped ("waiting for inputs") without counting that as a stop: only losing good
    inputs after having had them is a watchdog stop worth reporting.
    """

    def __init__(self) -> None:
        self.reason: str | None = STARTING
        self.stops = 0
        self.stop_reasons: dict[str, int] = {}   # reason kind -> stops it started (and a failed start)
        self.started = False                     # had good inputs once

    @property
    def ok(self) -> bool:
        return self.reason is None

    def trip(self, reason: Any) -> bool:
        """Enter (or stay in) the stopped state with the latest reason (a string or an adapters.InputError);
        True when this is news to log: a stop starts, or the start-up wait turns into a fault."""
        new = self.reason is None
        key = reason_kind(reason)
        # before the first good inputs, waiting is normal; any other reason is news once per kind
        news = new or (not self.started and not isinstance(reason, MissingInput) and key not in self.stop_reasons)
        self.stops += new
        if news:
            self.stop_reasons[key] = self.stop_reasons.get(key, 0) + 1
        self.reason = str(reason)
        return news

    def clear(self) -> bool:
        """Inputs are good again; True when this ends a stop."""
        was = self.reason is not None
        self.reason = None
        self.started = True
        return was


def reason_kind(reason: Any) -> str:
    """A stop reason without its measurements, to count alike stops together: an InputError becomes
    '<source>: missing | stale | <why invalid>'; the why, like a plain string, is kept up to its first ' (' ."""
    source = getattr(reason, "source", None)
    if source is not None:
        kind = "missing" if isinstance(reason, MissingInput) else "stale" if isinstance(reason, StaleInput) else reason.reason
        return f"{source}: {kind.split(' (')[0]}"
    return str(reason).split(" (")[0]


def command_fault(v: float, w: float, profile: Any) -> str | None:
    """Why a commanded (v, ω) is not believable (beyond IMPLAUSIBLE_FACTOR × the profile's limits), or None."""
    if abs(v) > IMPLAUSIBLE_FACTOR * profile.max_linear_speed or abs(w) > IMPLAUSIBLE_FACTOR * profile.max_angular_speed:
        return (f"(v, ω) = ({v:.4g}, {w:.4g}) is beyond {IMPLAUSIBLE_FACTOR:g}× the profile's limits "
                f"({profile.max_linear_speed:g} m/s, {profile.max_angular_speed:g} rad/s)")
    return None


def output_fault(cmd: Any, profile: Any) -> str | None:
    """Why a policy's output (v, ω) cannot be driven: wrong size, non-finite, implausible; None when usable."""
    values = np.asarray(cmd, dtype=float).reshape(-1).tolist()
    if len(values) != 2:
        return f"expected 2 numbers (v, ω), got {len(values)}"
    if not all(math.isfinite(v) for v in values):
        return "non-finite"
    return "implausible" if command_fault(values[0], values[1], profile) else None


def clipped(v: float, w: float, profile: Any) -> bool:
    """The robot would saturate (v, ω): the command asks for more than its wheels / limits give."""
    from marlstack.controllers.unicycle import saturate
    sv, sw = saturate(v, w, profile)
    return not (math.isclose(float(sv), v, rel_tol=1e-9, abs_tol=1e-9) and math.isclose(float(sw), w, rel_tol=1e-9, abs_tol=1e-9))


def pose_fault(x: float, y: float, profile: Any) -> str | None:
    """Why a measured position is not believable (more than POSE_MARGIN_M outside the arena), or None."""
    a = profile.arena
    out = max(a.x_min - x, x - a.x_max, a.y_min - y, y - a.y_max)
    if out > POSE_MARGIN_M:
        return (f"position ({x:.4g}, {y:.4g}) is {out:.3g} m outside the arena (more than {POSE_MARGIN_M:g} m): "
                f"a sensing fault")
    return None


def status(name: str, hardware_id: str, level: int, message: str, values: Mapping[str, Any]) -> Any:
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
    s = DiagnosticStatus(level=bytes([level]), name=name, message=message, hardware_id=hardware_id)
    s.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    return s


def array(stamp: Any, statuses: list[Any]) -> Any:
    from diagnostic_msgs.msg import DiagnosticArray
    msg = DiagnosticArray(status=statuses)
    msg.header.stamp = stamp
    return msg


def watchdog_status(name: str, robot: str, dog: Watchdog, extra: Mapping[str, Any] | None = None) -> Any:
    """The standard status of a motion-commanding node: OK, or WARN with the reason it stopped."""
    values = {"watchdog": "ok" if dog.ok else "stopped", "watchdog_stops": dog.stops,
              "stop_reasons": json.dumps(dog.stop_reasons), **(extra or {})}
    if dog.ok:
        return status(name, robot, OK, "ok", values)
    return status(name, robot, WARN, f"zero velocity: {dog.reason}", values)


def values_of(s: Any) -> dict[str, str]:
    return {kv.key: kv.value for kv in s.values}


def fold_reports(reports: Iterable[Mapping[str, str]]) -> dict[str, Any]:
    """One robot's latest diagnostic values from every node that reports on it -> the totals of
    COUNTERS and `stop_reasons` (reason kind -> stops), as the sim node's summary carries them."""
    reports = list(reports)
    out: dict[str, Any] = {k: sum(int(v.get(k, 0)) for v in reports) for k in COUNTERS}
    reasons: dict[str, int] = {}
    for v in reports:
        for kind, count in json.loads(v.get("stop_reasons", "{}")).items():
            reasons[kind] = reasons.get(kind, 0) + int(count)
    out["stop_reasons"] = reasons
    return out


class Stamps:
    """Judges each source's samples by the time they describe (their header stamp), not by arrival.

    A sample is usable when its stamp is set (> 0), not more than `offset_s` (the clock-offset
    allowance between machines) in the future of this node's clock, later than the source's
    previous one, and not fresher than the source's recent samples by more than `jump_s`.
    `judge` returns None (use the sample, timed by its stamp) or why not; `fatal` says whether the
    fault is the source's (future, unset, repeated or jumping stamps: stop until a good one) or one
    packet's (out of order: drop it, count it, carry on). A delayed sample is used, timed by its stamp,
    so it is as stale as it is old: a pose that arrives 1 s late stops its robot every time, and a
    neighbour's is avoided with the margin its age asks for.

    A jump is a stamp fresher than its source has delivered lately: its delay is more than `jump_s`
    below the smallest delay of the source's samples that arrived in the last `JUMP_WINDOW_S` (a clock
    step or a corrupted stamp, e.g. 90 ms late for a while, then on time at once). The sample is refused
    and joins the window, so a source whose delay really did drop costs one sample; a late sample after a
    stall (the node's or the network's) is judged stale by its age, and the next one on time is not a
    jump. `jump_s` = `offset_s` + one control period in the nodes: a healthy source's delay varies by
    less (clock allowance plus publishing on period boundaries). `delay_s` holds each source's latest
    arrival delay (reported on /diagnostics); `jumps` and `dropped` count refusals.
    """

    def __init__(self, offset_s: float, jump_s: float):
        self.offset_s, self.jump_s = float(offset_s), float(jump_s)
        self.last: dict[str, float] = {}                 # source -> stamp of its latest sample
        self.recent: dict[str, collections.deque] = {}   # source -> arrivals within JUMP_WINDOW_S, oldest first
        # source -> (sample number, delay) of the window's samples that no later sample undercuts (delays increase:
        # the window's smallest is the first, found without a scan per sample)
        self.lowest: dict[str, collections.deque] = {}
        self.count: dict[str, int] = {}                  # source -> samples that joined its window
        self.delay_s: dict[str, float] = {}
        self.dropped = 0     # out-of-order samples dropped
        self.jumps = 0       # samples refused for a forward jump

    def judge(self, key: str, stamp_s: float, now_s: float, repeats: bool = False) -> tuple[str | None, bool]:
        """(reason or None, fatal) for a sample of `key` stamped `stamp_s`, arriving at `now_s`. `repeats`: a
        repeated stamp is usable, timed by it (set-points: a policy node's timer step answers the same load
        sample again); a stream that keeps repeating then goes stale by its stamp's age."""
        if not math.isfinite(stamp_s) or stamp_s <= 0:
            return f"header stamp not set ({stamp_s:g})", True
        delay = now_s - stamp_s
        if delay < -self.offset_s:
            return (f"header stamp {-delay:.3g} s in the future of this node's clock (allowance {self.offset_s:g} s): "
                    f"clocks out of sync or a bad stamp"), True
        self.delay_s[key] = delay
        last = self.last.get(key)
        if last is not None and stamp_s == last:
            return (None, False) if repeats else ("header stamp repeated: the source is frozen", True)
        if last is not None and stamp_s < last:
            self.dropped += 1
            return f"out of order: stamped {(last - stamp_s) * 1e3:.1f} ms before the previous one (dropped)", False
        self.last[key] = stamp_s
        recent = self.recent.setdefault(key, collections.deque())
        lowest = self.lowest.setdefault(key, collections.deque())
        while recent and now_s - recent[0] > JUMP_WINDOW_S:
            recent.popleft()
        first = self.count.get(key, 0) - len(recent)   # the number of the window's oldest sample
        while lowest and lowest[0][0] < first:
            lowest.popleft()
        ahead = (lowest[0][1] if lowest else delay) - delay
        while lowest and lowest[-1][1] >= delay:   # never the smallest again: this sample leaves the window later
            lowest.pop()
        lowest.append((self.count.get(key, 0), delay))
        recent.append(now_s)
        self.count[key] = self.count.get(key, 0) + 1
        if ahead > self.jump_s:
            self.jumps += 1
            return (f"header stamp jumped ahead ({ahead * 1e3:.0f} ms fresher than any sample of the last "
                    f"{JUMP_WINDOW_S:g} s, tolerance {self.jump_s * 1e3:.0f} ms): a clock step or a bad stamp"), True
        return None, False

    def worst_delay_ms(self) -> float:
        return 1e3 * max(self.delay_s.values(), default=math.nan)


class SharedStamps(Stamps):
    """One `Stamps` for `readers` readers of the same samples, each asking about every sample in turn (the MAV team
    node's pilots, each judging odometry as its own node would): a sample is judged and counted once, the other
    readers' asks (same source, stamp, arrival and `repeats`) answered with its verdict. Each reader's answers are
    those of a `Stamps` of its own; a sample heard again after every reader asked is judged again (repeated)."""

    def __init__(self, offset_s: float, jump_s: float, readers: int):
        super().__init__(offset_s, jump_s)
        self.readers = int(readers)
        self._asked: dict[str, tuple[tuple[float, float, bool], tuple[str | None, bool], int]] = {}

    def judge(self, key: str, stamp_s: float, now_s: float, repeats: bool = False) -> tuple[str | None, bool]:
        asked, last = (stamp_s, now_s, repeats), self._asked.get(key)
        if last is not None and last[0] == asked and last[2] > 0:
            self._asked[key] = (asked, last[1], last[2] - 1)
            return last[1]
        verdict = super().judge(key, stamp_s, now_s, repeats)
        self._asked[key] = (asked, verdict, self.readers - 1)
        return verdict


class FrozenValues:
    """A pose that stops changing while its robot is commanded to move is a frozen source (a bridge
    re-sending its last value with fresh stamps). Real measurements always change a little (noise)
    and a moving robot's a lot, so exact repetition for `hold_s` while commanded is the signature.
    Once found it stays frozen until the values change again.

    Every node that sees a robot's measured state and the command it executes runs it: `sample` each
    accepted measurement, `commanded` with what the robot is told to do (the executed command, e.g. the
    safety filter's output, not a nominal the barrier may be holding back), `problem` before acting.

    "Commanded" means told to move without a lapse: a gap longer than `gap_s` between two commands (the
    robot's own command watchdog, e.g. `watchdog_periods` control periods: the robot stopped, as a robot
    does whose commands stop) starts the count again. Else a stalled node (a loaded machine) would take the
    robot it let stop for a frozen source, and where poses carry no noise (SITL) the stop would be for good."""

    def __init__(self, hold_s: float = FROZEN_S, gap_s: float = math.inf):
        self.hold_s, self.gap_s = float(hold_s), float(gap_s)
        self._last: dict[str, tuple[float, ...]] = {}
        self._changed: dict[str, float] = {}
        self._commanded: dict[str, float] = {}   # since when the robot has been commanded to move
        self._last_command: dict[str, float] = {}
        self._frozen: set[str] = set()

    def sample(self, key: str, values: tuple[float, ...], t_s: float) -> None:
        if self._last.get(key) != tuple(values):
            self._last[key] = tuple(values)
            self._changed[key] = t_s
            self._frozen.discard(key)

    def commanded(self, key: str, moving: bool, t_s: float) -> None:
        last, self._last_command[key] = self._last_command.get(key, -math.inf), t_s
        if not moving or t_s - last > self.gap_s:
            self._commanded.pop(key, None)
        if moving:
            self._commanded.setdefault(key, t_s)

    def problem(self, key: str, t_s: float) -> str | None:
        since, changed = self._commanded.get(key), self._changed.get(key)
        if key not in self._frozen and since is not None and changed is not None \
                and t_s - since >= self.hold_s and t_s - changed >= self.hold_s:
            self._frozen.add(key)
        if key in self._frozen:
            return f"frozen (unchanged for {t_s - self._changed[key]:.2f} s while commanded to move)"
        return None


def receive_stamped(stamps: Stamps, table: Any, key: str, values: tuple[float, ...], stamp_s: float,
                    now_s: float, repeats: bool = False) -> bool:
    """One sample of `key` judged by its raw header stamp into `table` (an adapters.LatestValues): used and
    timed by its stamp (True); or, when the source's stamps cannot be trusted (unset, in the future, repeated
    unless `repeats`, jumping), the source invalid until a good one; or, when only this packet is out of
    order, dropped."""
    fault, fatal = stamps.judge(key, stamp_s, now_s, repeats)
    if fault is None:
        table.put(key, values, stamp_s)
        return True
    if fatal:
        table.invalidate(key, fault)
    return False


def take_pose(poses: LatestValues, robot: str, msg: Any, stamps: Stamps, profile: Any,
              now_s: float) -> tuple[tuple[float, float, float] | None, bool]:
    """A robot's pose message into `poses`, judged by what it describes (its stamp against `now_s`, its value
    against the arena); the one pose intake of the ground policy, fleet policy and safety nodes. Returns (the
    pose taken, timed by its stamp, or None where the sample was refused: malformed, non-finite, absurd or with
    an untrusted stamp, its reason kept by `poses` while the last good pose stands; True for one packet out of
    order, dropped: nothing changes). What a refused sample means, for the robot itself and for the robots that
    read it as a neighbour, is `LatestValues.problem`'s rule (ros_nodes/adapters.py)."""
    try:
        x, y, yaw, stamp = convert.pose_from_msg(msg)
    except convert.MessageError as exc:
        poses.invalidate(robot, str(exc))
        return None, False
    late, fatal = stamps.judge(robot, stamp, now_s)
    fault = late if late else pose_fault(x, y, profile)
    if fault and (fatal or not late):
        poses.invalidate(robot, fault)
        return None, False
    if late:
        return None, True
    poses.put(robot, (x, y, yaw), stamp)
    return (x, y, yaw), False
