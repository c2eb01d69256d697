"""The MAV barrier certificate as the MAV policy node's output stage (onboard: numpy, never JAX).

Training filters the whole team's commands in one QP (`CableEnv(barrier=True)`); an exported graph
holds one MAV's policy, so onboard each MAV filters only its own commanded acceleration with
`controllers.mav_barrier.filter_team`, the others fixed at zero acceleration: obstacles assumed to keep
their current velocity. The certificate's pair rows already assume that one MAV brakes alone, so this
MAV's filter keeps the separation if the others do not accelerate towards it. Under the same
assumption every position is carried forward to the step's time by its velocity over its odometry's
age (DESIGN contract 9: a neighbour pose is inflated by how far it could have moved). The body-rate
feed-forward passes through, as in training. A step whose certificate cannot be computed (non-finite state or
command, infeasible QP, no solution within the iteration cap) gives no command: the node holds.

Cables (profile `safety.cable_separation`, `safety.max_cable_angle`): given the MAVs' attitudes and body rates
and the load's odometry (`Load`), this MAV's command also keeps its cable off the others' and within the
certified angle (soft rows, as in training: `controllers.mav_barrier`); each step they had to give way is
counted (`safety_cable_relaxed`), and each step filtered without the load's odometry, i.e. without the cable
rows, too (`safety_cables_unchecked`).
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from marlstack.controllers.mav_barrier import cable_ends, cable_geometry, filter_team, mav_barrier_spec

MODES = ("onboard", "off")
# The rows have no delay term, so the certificate is claimed only on odometry at most this many control
# periods old (own and the others'); older, the policy node holds. docs/barrier.md "Delay the rows do not
# model": under adversarial commands 3 periods cost 15 mm of the 0.1 m buffer, 5 periods 37 mm, 10 collide.
MAX_AGE_PERIODS = 3
INTERVENED = 1e-6  # m/s²: a change smaller than this is the solver's round-off, not an intervention
# m/s²: a soft cable row that gave way by more than this counts as relaxed (they give way only where they conflict
# with the hard rows, then by push / CABLE_SLACK_COST at least on the rows not in the conflict: ≤ 0.1 m/s² at 10 m/s²)
RELAXED = 0.1


class Load(NamedTuple):
    """The load's odometry: position, world velocity (3,), rotation body to world (3, 3), body rates (3,), and
    how old it is (s; the position moves on by velocity × age)."""
    pos: np.ndarray
    vel: np.ndarray
    rot: np.ndarray
    omega: np.ndarray
    age_s: float = 0.0


class SafetyStage:
    """One MAV's certificate filter with its counters (reported in the node's diagnostics)."""

    def __init__(self, profile: Any, mavs: list[str], me: str):
        self.spec = mav_barrier_spec(profile)
        self.mine = np.asarray([m == me for m in mavs])
        self.me = mavs.index(me)
        self.interventions = self.infeasible = self.cable_relaxed = self.cables_unchecked = 0
        self.max_intervention = 0.0  # m/s²
        self.cables = self.spec.cable_separation > 0 or self.spec.tan_cable_angle > 0
        self.profile, self.geometry = profile, None   # the cable layout, read at the first step with the load
        n = len(mavs)
        self._level, self._still = np.broadcast_to(np.eye(3), (n, 3, 3)), np.zeros((n, 3))   # attitudes, rates not given
        self._still.flags.writeable = False
        self._warm: list[int] = []     # the previous solve's active rows: the next one starts there
        self._conflict: list[int] = []  # the rows that proved the previous call's conflict (filter_team)

    def filter(self, pos: np.ndarray, vel: np.ndarray, cmd: np.ndarray, age_s: np.ndarray | None = None,
               rot: np.ndarray | None = None, omega: np.ndarray | None = None,
               load: Load | None = None) -> tuple[np.ndarray | None, str]:
        """(the certified command (5,), "") or (None, why not). `pos`, `vel`: (N, 3) world, team order;
        `cmd`: this MAV's (acc x, y, z [m/s²] world, roll rate, pitch rate [rad/s]); `age_s` (N,): how old
        each MAV's odometry is (positions move on by velocity × age). With `load` (and the MAVs' rotations
        body to world `rot` (N, 3, 3) and body rates `omega` (N, 3), level and still if not given) the cable
        rows join."""
        pos, vel, cmd = (np.asarray(x, np.float64) for x in (pos, vel, cmd))
        n = pos.shape[0]
        age = self._still[:, 0] if age_s is None else np.asarray(age_s, np.float64)
        rot = self._level if rot is None else np.asarray(rot, np.float64)
        omega = self._still if omega is None else np.asarray(omega, np.float64)
        load = None if load is None else Load(*(np.asarray(x, np.float64) for x in load))
        parts = [("positions", pos), ("velocities", vel), ("command", cmd), ("ages", age), ("attitudes", rot),
                 ("body rates", omega)] + [("load odometry", x) for x in load or ()]
        if not np.isfinite(np.concatenate([x.ravel() for _, x in parts])).all():   # one check; which, only then
            bad = [name for name, x in parts if not np.all(np.isfinite(x))]
            return None, f"non-finite {' and '.join(dict.fromkeys(bad))}"
        if age_s is not None:
            pos = pos + vel * np.maximum(age, 0.0)[:, None]
        cables = None
        if self.cables and load is not None:
            self.geometry = self.geometry or cable_geometry(self.profile, n)
            cables = cable_ends(self.geometry, pos, vel, rot, omega, load.pos + load.vel * max(float(load.age_s), 0.0),
                                load.vel, load.rot, load.omega)
        elif self.cables:
            self.cables_unchecked += 1
        nominal = np.zeros((n, 3))
        nominal[self.me] = cmd[:3]
        acc, status, self._warm, slack, self._conflict = filter_team(
            self.spec, pos, vel, nominal, controlled=self.mine, warm=self._warm, cables=cables, conflict=self._conflict)
        self.cable_relaxed += slack > RELAXED
        if acc is None:
            self.infeasible += 1
            gaps = np.linalg.norm(pos[~self.mine] - pos[self.mine], axis=-1)
            closest = f"closest MAV {gaps.min():.3f} m, certified {self.spec.separation:g} m" if gaps.size else ""
            return None, f"barrier QP {status} ({closest})" if closest else f"barrier QP {status}"
        delta = acc[0] - cmd[:3]
        change = math.sqrt(float(delta @ delta))
        if change > INTERVENED:
            self.interventions += 1
            self.max_intervention = max(self.max_intervention, change)
            return np.concatenate([acc[0], cmd[3:]]), ""
        return cmd, ""

    def report(self) -> dict[str, str | int]:
        """The counters as diagnostic key-values."""
        return {"safety_interventions": self.interventions, "safety_infeasible": self.infeasible,
                "safety_max_intervention": f"{self.max_intervention:.3f}", "safety_cable_relaxed": self.cable_relaxed,
                "safety_cables_unchecked": self.cables_unchecked}
