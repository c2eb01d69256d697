"""Discrete time and delay: the filter sees poses k control periods old and its command is held a
period; with `lookahead_s = (k + 1)·dt` the true pair barrier (distance D) stays non-negative."""
import numpy as np
import pytest

from barrier_cases import grid_start
from marlstack.bench.barrier import numpy_step, swap_nominal, swap_start
from marlstack.controllers.barrier import BarrierFilter
from marlstack.controllers.barrier_deadlock import DeadlockFreeFilter
from marlstack.controllers.barrier_qp import barrier_points, barrier_spec, pairs
from marlstack.hardware import load_profile

GRITS = load_profile("gritsbot_x")
SPEC = barrier_spec(GRITS, "unicycle_walls")


def pair_barrier(poses):
    """Smallest true pair barrier ‖pᵢ − pⱼ‖² − D² (m², D without any margin) and wall margin (m)."""
    p = barrier_points(SPEC, poses)
    i, j = pairs(len(p))
    a, c = GRITS.arena, SPEC.distance / 2
    walls = np.min([p[:, 0] - a.x_min - c, a.x_max - c - p[:, 0], p[:, 1] - a.y_min - c, a.y_max - c - p[:, 1]])
    return float(np.min(np.sum((p[i] - p[j]) ** 2, axis=1) - SPEC.distance ** 2)), float(walls)


def fuzz(k, lookahead_s, n=8, steps=1500, seeds=2):
    """Random commands (2× the limits, held 0.5 s) from a tight grid; the filter sees poses k periods old."""
    worst = [np.inf, np.inf]
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        f = BarrierFilter(GRITS, n, lookahead_s=lookahead_s)
        poses = grid_start(GRITS, n, spacing=0.3)
        seen = [poses] * (k + 1)
        for t in range(steps):
            if t % 15 == 0:
                u = rng.uniform(-2, 2, (n, 2)) * np.array([GRITS.max_linear_speed, GRITS.max_angular_speed])
            r = f.filter(seen[-1 - k], u)
            assert r.ok, r.status
            poses = numpy_step(GRITS, poses, r.u)
            seen.append(poses)
            worst = np.minimum(worst, pair_barrier(poses))
    return worst


@pytest.mark.parametrize("k", [1, 2, 3])
def test_random_commands_with_k_periods_of_delay_keep_the_true_barrier(k):
    pair, wall = fuzz(k, (k + 1) * GRITS.dt)
    assert pair >= 0.0 and wall >= 0.0, (pair, wall)


def test_without_the_margin_three_periods_of_delay_break_the_barrier():
    """The same fuzz with the continuous-time certificate (no lookahead): the true barrier goes negative."""
    pair, wall = fuzz(3, 0.0)
    assert min(pair, wall) < 0.0


@pytest.mark.parametrize("k", [1, 3])
def test_swap_with_delay_is_safe_and_arrives(k):
    n = 8
    rule = DeadlockFreeFilter(GRITS, n, GRITS.dt, lookahead_s=(k + 1) * GRITS.dt)
    poses, goals = swap_start(GRITS, n)
    seen = [poses] * (k + 1)
    worst, arrived = np.inf, None
    for t in range(int(40 / GRITS.dt)):
        old = seen[-1 - k]
        r = rule.filter(old, swap_nominal(GRITS, old, goals, swirl=0.0))
        assert r.ok
        poses = numpy_step(GRITS, poses, r.u)
        seen.append(poses)
        worst = min(worst, *pair_barrier(poses))
        if arrived is None and np.all(np.linalg.norm(poses[:, :2] - goals, axis=1) <= 0.1):
            arrived = t * GRITS.dt
    assert worst >= 0.0 and arrived is not None and arrived <= 35.0, (worst, arrived)
