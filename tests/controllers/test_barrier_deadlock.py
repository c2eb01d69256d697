"""Deadlock-free symmetric crossings: the right-hand rule on the nominal, the certificate unchanged.

The nominal controller is the plain goal-seeking one (rps's single-integrator position
controller on the projection point, no swirl): it ignores the others, so the plain exact
barrier parks symmetric swaps for good, and the rule must get every robot home.
"""
import numpy as np
import pytest

from marlstack.bench.barrier import numpy_step, swap_nominal, swap_numpy, swap_summary
from marlstack.controllers.barrier import BarrierFilter
from marlstack.controllers.barrier_deadlock import DeadlockFreeFilter
from marlstack.controllers.barrier_qp import barrier_spec, qp_rows
from marlstack.controllers.unicycle import uni_to_si
from marlstack.hardware import load_profile

GRITS = load_profile("gritsbot_x")
SPEC = barrier_spec(GRITS, "unicycle_walls")
ARRIVAL_S = {4: 25.0, 10: 32.0, 20: 42.0}   # stated times (measured 20.2 s, 23.6 s, 34.9 s)


def test_the_plain_barrier_parks_a_symmetric_swap_for_good():
    out = swap_numpy(GRITS, 4, int(40 / GRITS.dt), BarrierFilter(GRITS, 4), swirl=0.0)
    assert out["collisions"] == 0 and out["arrival_s"] is None


@pytest.mark.parametrize("n", sorted(ARRIVAL_S))
def test_antipodal_swap_arrives_with_the_right_hand_rule(n):
    rule = DeadlockFreeFilter(GRITS, n, GRITS.dt)
    out = swap_numpy(GRITS, n, int(ARRIVAL_S[n] / GRITS.dt) + 60, rule, swirl=0.0)
    assert out["statuses"] == ["optimal"]
    assert out["collisions"] == 0 and out["boundary_exits"] == 0
    assert out["arrival_s"] is not None and out["arrival_s"] <= ARRIVAL_S[n], out
    assert rule.deadlocks.sum() > 0          # it was the rule that got them through


def run(poses, goals, seconds):
    """Closed loop with the rule; also the worst certificate row over every step (≤ 0: certified)."""
    n = len(poses)
    rule = DeadlockFreeFilter(GRITS, n, GRITS.dt)
    traj, worst = [poses], -np.inf
    for _ in range(int(seconds / GRITS.dt)):
        r = rule.filter(poses, swap_nominal(GRITS, poses, goals, swirl=0.0))
        a, b = qp_rows(SPEC, poses)
        worst = max(worst, float(np.max(np.einsum("mnk,nk->m", a, uni_to_si(r.u, poses, SPEC.projection_distance)) - b)))
        poses = numpy_step(GRITS, poses, r.u)
        traj.append(poses)
    return swap_summary(GRITS, np.array(traj), goals), worst, rule


def test_head_on_along_a_wall_past_a_parked_robot_keeps_every_step_certified():
    """Two robots swap along the top wall, a third sits between them at its goal: they go round it
    (passing on the right), and each step's command satisfies every row of the unchanged QP."""
    y = GRITS.arena.y_max - 0.15
    poses = np.array([[-1.0, y, 0.0], [1.0, y, np.pi], [0.0, y, np.pi / 2]])
    goals = np.array([[1.0, y], [-1.0, y], [0.0, y]])
    out, worst, rule = run(poses, goals, 25.0)
    assert out["collisions"] == 0 and out["boundary_exits"] == 0
    assert out["arrival_s"] is not None and out["arrival_s"] <= 22.0, out   # measured 19.2 s
    assert worst <= 1e-9 and rule.deadlocks.sum() > 0


def test_a_robot_whose_goal_is_behind_a_shelf_follows_it_round_the_corner():
    """The goal lies straight behind a 0.2 × 0.1 m box, approached from below right: without holding the turn
    while the box is still across its way, the robot slid right, then back, and stalled at the corner for good
    (10 of 96 such approaches in 30 s). Now it follows the box clockwise and arrives; every step certified."""
    box = (-0.1, 0.1, -0.05, 0.05)
    spec = barrier_spec(GRITS, "unicycle_walls", boxes=[box])
    ang = -np.pi / 3
    poses = np.array([[0.5 * np.cos(ang), 0.5 * np.sin(ang), ang + np.pi]])
    goal = -poses[:, :2]
    rule = DeadlockFreeFilter(GRITS, 1, GRITS.dt, boxes=[box])
    worst, arrived = -np.inf, None
    for k in range(int(18.0 / GRITS.dt)):   # measured 14.5 s
        r = rule.filter(poses, swap_nominal(GRITS, poses, goal, swirl=0.0))
        a, b = qp_rows(spec, poses)
        worst = max(worst, float(np.max(np.einsum("mnk,nk->m", a, uni_to_si(r.u, poses, SPEC.projection_distance)) - b)))
        poses = numpy_step(GRITS, poses, r.u)
        if np.hypot(*(poses[0, :2] - goal[0])) < 0.05:
            arrived = k * GRITS.dt
            break
    assert arrived is not None, poses
    assert worst <= 1e-9 and r.status == "optimal" and rule.deadlocks.sum() >= 1
