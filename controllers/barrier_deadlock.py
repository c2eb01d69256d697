"""Deadlock breaking for the deployment barrier filter: a right-hand rule on the nominal command.

An exact barrier parks symmetric encounters for good (two robots head-on, an antipodal swap):
each robot's nominal command is cancelled by the pair constraint and nothing breaks the tie.
`DeadlockFreeFilter` wraps `BarrierFilter` and watches every controlled robot: when it asks
to move (‖û‖ ≥ `min_speed`, barrier-point velocity) but its certified velocity makes less than
`progress` × ‖û‖ of headway along û for `hold_s`, it is deadlocked, and for the next `turn_s`
its nominal barrier-point velocity is turned clockwise by `angle` (every robot the same way:
robots meeting head-on pass each other on their right, a ring of robots circulates).

Static boxes (shelves): turning for a fixed time is not enough there. A robot whose goal lies behind
a box slides right along its face for `turn_s`, then the nominal slides it back to where it was
stuck (measured: 10 of 96 approaches to a 0.2 × 0.1 m box stalled at a corner for 30 s). So a turn
lasts, past `turn_s`, for as long as the robot's barrier point is within `box_reach` of a box's margin
and its nominal still points into that box: it follows the box clockwise until the way to its goal
is clear (a bug-style boundary following; measured for one convex box: 96 of 96 approaches arrive).

Only the nominal command changes; the QP, its rows and the solver are the same, so every step
is certified exactly as without the rule (docs/barrier.md). The rule itself is `RightHandRule`'s two
array-neutral steps (`steer` before the solve, `update` after it), which the training barrier
(`controllers.barrier_jax.deadlock_free_barrier`) runs too; this module never imports JAX.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from marlstack.controllers.barrier import BarrierFilter, BarrierResult
from marlstack.controllers.arrays import xp
from marlstack.controllers.barrier_qp import BarrierSpec, box_normals, nominal
from marlstack.controllers.unicycle import si_to_uni, uni_to_si, uni_to_si_states


@dataclasses.dataclass(frozen=True)
class RightHandRule:
    """The rule's constants in control periods; see the module docstring and `DeadlockFreeFilter`.

    `steer` and `update` take numpy or JAX arrays (`controllers.arrays.xp`) and return new arrays
    (no in-place update), so the deployment filter and the jitted, vmapped training barrier run
    one implementation. Per-robot memory: `stuck` (consecutive blocked calls), `left` (calls of
    turning still to do), both int (N,).
    """
    spec: BarrierSpec
    hold: int | None            # blocked calls before a turn starts; None: the rule is off
    turn: int                   # calls a turn lasts (longer beside a box, see `update`)
    angle: float                # rad, clockwise
    min_speed: float            # m/s of barrier-point velocity below which a robot is not asking to move
    progress: float             # headway below progress × ‖û‖ counts as blocked
    box_reach: float            # m beyond a box's margin that a turning robot keeps following it

    @classmethod
    def make(cls, spec: BarrierSpec, profile: Any, dt: float, hold_s: float = 0.5, turn_s: float = 2.0,
             angle: float = math.pi / 3, min_speed: float | None = None, progress: float = 0.2,
             box_reach: float = 0.05) -> RightHandRule:
        """Seconds → control periods of `dt`; hold_s ≤ 0 turns the rule off; min_speed defaults to a
        quarter of the profile's top speed."""
        if not spec.unicycle:
            raise ValueError(f"the right-hand rule needs a unicycle form, got {spec.form!r}")
        return cls(spec=spec, hold=max(1, round(hold_s / dt)) if hold_s > 0 else None,
                   turn=max(1, round(turn_s / dt)), angle=float(angle), progress=float(progress),
                   min_speed=0.25 * profile.max_linear_speed if min_speed is None else float(min_speed),
                   box_reach=float(box_reach))

    def steer(self, poses: Any, u_nominal: Any, left: Any, mask: Any) -> tuple[Any, Any, Any]:
        """Before the solve: (the command to filter (N, 2), û the nominal barrier-point velocity (N, 2),
        turn (N,) bool: the robots whose û is turned clockwise by `angle` this call)."""
        m = xp(poses, u_nominal, left)
        d = self.spec.projection_distance
        want = uni_to_si(nominal(self.spec, u_nominal), poses, d)
        turn = mask & (left > 0)
        c, s = math.cos(self.angle), math.sin(self.angle)
        turned = m.stack([c * want[:, 0] + s * want[:, 1], -s * want[:, 0] + c * want[:, 1]], axis=-1)
        return m.where(turn[:, None], si_to_uni(turned, poses, d), u_nominal), want, turn

    def update(self, poses: Any, want: Any, turn: Any, u_safe: Any, ok: Any, stuck: Any, left: Any,
               mask: Any) -> tuple[Any, Any, Any]:
        """After the solve (u_safe the certified command, ok: it is optimal): (stuck, left, start (N,) bool:
        a turn starts now). A turning robot counts down, and keeps turning while a box is ahead; a robot
        not turning that asks to move (‖û‖ ≥ min_speed) but makes less than progress × ‖û‖ of headway
        along û is blocked, and after `hold` blocked calls in a row it turns for `turn` calls."""
        m = xp(poses, want, u_safe, stuck, left)
        left = m.maximum(left - 1, m.where(turn & self._box_ahead(poses, want), 1, 0))
        if self.hold is None:
            return stuck, left, m.zeros_like(turn)
        speed = m.sqrt(m.sum(want * want, axis=1))
        got = uni_to_si(u_safe, poses, self.spec.projection_distance)
        headway = m.sum(got * want, axis=1) / m.maximum(speed, 1e-12)
        blocked = ok & mask & (left <= 0) & (speed >= self.min_speed) & (headway < self.progress * speed)
        # a failed solve (brake) leaves the memory as it was, apart from the countdown
        stuck = m.where(ok, m.where(blocked, stuck + 1, 0), stuck)
        start = stuck >= self.hold
        return m.where(start, 0, stuck), m.where(start, self.turn, left), start

    def _box_ahead(self, poses: Any, want: Any) -> Any:
        """(N,) the nominal barrier-point velocity points into a box whose margin is within `box_reach`."""
        m = xp(poses, want)
        if not self.spec.boxes:
            return m.zeros(poses.shape[0], bool)
        normal, dist = box_normals(self.spec, uni_to_si_states(poses, self.spec.projection_distance))
        near = dist - self.spec.distance / 2 <= self.box_reach
        return m.any(near & (m.einsum("nbk,nk->nb", normal, want) < 0), axis=1)


class DeadlockFreeFilter:
    """`BarrierFilter` plus the right-hand rule; `filter` has the same signature and result.

    dt: the control period (s) the filter is called at; hold_s ≤ 0 turns the rule off (a plain
    `BarrierFilter`). `engaged` (N,) says which robots are turning now; `deadlocks` counts how
    often each robot was found deadlocked. box_reach (m): how far beyond a box's margin a turning
    robot still follows it (the boxes are `filter_args["boxes"]`).
    """

    def __init__(self, profile: Any, num_robots: int, dt: float, form: str = "unicycle_walls",
                 hold_s: float = 0.5, turn_s: float = 2.0, angle: float = math.pi / 3,
                 min_speed: float | None = None, progress: float = 0.2, box_reach: float = 0.05, **filter_args: Any):
        self.barrier = BarrierFilter(profile, num_robots, form, **filter_args)
        self.spec = self.barrier.spec
        self.rule = RightHandRule.make(self.spec, profile, dt, hold_s, turn_s, angle, min_speed, progress, box_reach)
        self.stuck = np.zeros(num_robots, int)      # consecutive deadlocked calls
        self.left = np.zeros(num_robots, int)       # calls of turning left to do
        self.deadlocks = np.zeros(num_robots, int)

    @property
    def engaged(self) -> np.ndarray:
        return self.left > 0

    def filter(self, poses: Any, u_nominal: Any, controlled: Any = None, margins: Any = None) -> BarrierResult:
        poses = np.asarray(poses, float)
        u_nominal = np.asarray(u_nominal, float)
        n = self.stuck.size
        mask = np.ones(n, bool) if controlled is None else np.asarray(controlled, bool).reshape(n)
        if not (np.all(np.isfinite(poses)) and np.all(np.isfinite(u_nominal))):
            return self.barrier.filter(poses, u_nominal, controlled, margins)
        u_in, want, turn = self.rule.steer(poses, u_nominal, self.left, mask)
        result = self.barrier.filter(poses, u_in, controlled, margins)
        self.stuck, self.left, start = self.rule.update(poses, want, turn, np.asarray(result.u), result.ok,
                                                        self.stuck, self.left, mask)
        self.deadlocks += start
        return result
