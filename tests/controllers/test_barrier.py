"""Deployment barrier filter (numpy + cvxpy): exactness, failure behaviour, rps, swaps, fuzz."""
import subprocess
import sys

import numpy as np
import pytest
from rps.utilities.barrier_certificates import create_single_integrator_barrier_certificate_with_boundary

from marlstack.bench.barrier import numpy_step, outside, pair_distances, swap_numpy
from marlstack.controllers.barrier import BarrierFilter
from marlstack.controllers.barrier_qp import FORMS, barrier_spec, qp_rows
from marlstack.controllers.unicycle import uni_to_diff, uni_to_si
from marlstack.hardware import load_profile

from barrier_cases import grid_start, safe_configuration

GRITS = load_profile("gritsbot_x")
RPS = load_profile("rps_v1")


def si_solution(spec, poses, u):
    """The QP's variable (barrier-point velocities) behind a filter's output command."""
    return uni_to_si(u, poses, spec.projection_distance) if spec.unicycle else u


def violation(spec, poses, u, obstacles=None, velocities=None):
    """Largest violation of the barrier rows (pairs, obstacles, walls; limits excluded) by command u."""
    a, b = qp_rows(spec, poses, obstacles, velocities)
    n = poses.shape[0]
    keep = a.shape[0] - (4 * n if spec.unicycle else 0)
    return float(np.max(np.einsum("mnk,nk->m", a[:keep], si_solution(spec, poses, u)) - b[:keep], initial=-np.inf))


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("n", [2, 5, 10])
def test_fast_path_matches_cvxpy(form, n, rng):
    fast, ref = BarrierFilter(GRITS, n, form), BarrierFilter(GRITS, n, form, solver="cvxpy")
    spec = fast.spec
    for _ in range(8):
        poses, u = safe_configuration(GRITS, form, n, rng)
        a, b = fast.filter(poses, u), ref.filter(poses, u)
        assert a.status == b.status == "optimal"
        assert a.residual < 1e-9 and b.residual < 1e-6
        np.testing.assert_allclose(si_solution(spec, poses, a.u), si_solution(spec, poses, b.u), atol=1e-6)


def test_fast_path_matches_cvxpy_with_obstacles_and_uncontrolled_robots(rng):
    obstacles = np.array([[0.0, 0.0], [0.6, -0.3]])
    fast = BarrierFilter(GRITS, 6, obstacles=obstacles)
    ref = BarrierFilter(GRITS, 6, obstacles=obstacles, solver="cvxpy")
    mask = np.array([True, False, True, True, False, True])
    solved = 0
    for _ in range(12):
        poses, u = safe_configuration(GRITS, "unicycle_walls", 6, rng)
        a, b = fast.filter(poses, u, controlled=mask), ref.filter(poses, u, controlled=mask)
        # a neighbour driving at a robot faster than its wheels can flee makes the QP infeasible
        assert a.status == b.status
        if a.ok:
            solved += 1
            np.testing.assert_array_equal(a.u[~mask], u[~mask])     # not ours to command
            want = si_solution(fast.spec, poses, b.u)
            np.testing.assert_allclose(si_solution(fast.spec, poses, a.u), want, atol=1e-6)
        else:
            np.testing.assert_array_equal(a.u[mask], 0.0)
    assert solved >= 6


def test_deployment_filter_never_imports_jax_or_cvxpy():
    code = ("import sys\nimport numpy as np\nfrom hardware import load_profile\n"
            "from controllers.barrier import BarrierFilter\n"
            "f = BarrierFilter(load_profile('gritsbot_x'), 2)\n"
            "r = f.filter(np.array([[0.0, 0, 0], [0.3, 0, np.pi]]), np.array([[0.2, 0], [0.2, 0]]))\n"
            "assert r.ok and r.u[0, 0] < 0.2, r\n"
            "print(sorted(m for m in ('jax', 'jaxlib', 'cvxpy', 'flax') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("solver", ["fast", "cvxpy"])
def test_bad_input_brakes_with_a_status(solver):
    f = BarrierFilter(GRITS, 3, solver=solver)
    poses = np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.5, 0.0]])
    u = np.full((3, 2), 0.1)
    for bad_poses, bad_u, status in [
            (poses, np.where([[True, False], [False, False], [False, False]], np.nan, u), "nonfinite_input"),
            (np.where([[False, True, False], [False] * 3, [False] * 3], np.inf, poses), u, "nonfinite_input"),
            (poses * [[1, 1, 1], [0, 0, 0], [1, 1, 1]], u, "infeasible")]:     # two robots on one spot
        r = f.filter(bad_poses, bad_u)
        assert r.status == status
        np.testing.assert_array_equal(r.u, 0.0)
        assert not r.ok and np.all(np.isfinite(r.u))
    with pytest.raises(ValueError, match="needs poses"):
        f.filter(poses[:2], u[:2])


def test_one_robot_and_fifty_robots(rng):
    one = BarrierFilter(GRITS, 1).filter(np.array([[1.45, 0.0, 0.0]]), np.array([[0.2, 0.0]]))
    assert one.ok and one.u[0, 0] < 0.2                       # the right wall slows it
    poses, u = safe_configuration(GRITS, "unicycle_walls", 50, rng, spread=0.08)
    r = BarrierFilter(GRITS, 50).filter(poses, u)
    assert r.ok and np.all(np.isfinite(r.u)) and r.residual < 1e-9
    assert violation(barrier_spec(GRITS, "unicycle_walls"), poses, r.u) <= 1e-9


@pytest.mark.parametrize("profile", [GRITS, RPS], ids=lambda p: p.name)
def test_commands_stay_inside_the_actuator_limits(profile, rng):
    f = BarrierFilter(profile, 8)
    for _ in range(20):
        poses, u = safe_configuration(profile, "unicycle_walls", 8, rng)
        r = f.filter(poses, 3 * u)                              # also far beyond the limits
        assert r.ok
        if profile.saturation == "wheel":
            left, right = uni_to_diff(r.u[:, 0], r.u[:, 1], profile.wheel_radius, profile.base_length)
            assert max(np.abs(left).max(), np.abs(right).max()) <= profile.max_wheel_speed * (1 + 1e-9)
        else:
            assert np.abs(r.u[:, 0]).max() <= profile.max_linear_speed * (1 + 1e-9)
            assert np.abs(r.u[:, 1]).max() <= profile.max_angular_speed * (1 + 1e-9)


def test_onboard_mode_two_robots_head_on_never_collide():
    """Each robot runs its own filter and sees the other as a standing obstacle."""
    filters = [BarrierFilter(GRITS, 2) for _ in range(2)]
    poses = np.array([[-0.6, 0.0, 0.0], [0.6, 0.0, np.pi]])
    closest = np.inf
    for _ in range(300):
        nominal = np.array([[0.2, 0.0], [0.2, 0.0]])
        u = np.zeros((2, 2))
        for k, f in enumerate(filters):
            mine = np.arange(2) == k
            r = f.filter(poses, np.where(mine[:, None], nominal, 0.0), controlled=mine)
            assert r.ok
            u[k] = r.u[k]
        poses = numpy_step(GRITS, poses, u)
        closest = min(closest, np.linalg.norm(poses[0, :2] - poses[1, :2]))
    assert GRITS.collision_distance < closest < 0.3


@pytest.fixture
def tight_cvxopt():
    """rps sets cvxopt to 1e-2 tolerances when imported (at the top of this module); tighten them
    so rps's QP answer is accurate."""
    from cvxopt import solvers
    saved = dict(solvers.options)
    solvers.options.update(reltol=1e-12, abstol=1e-12, feastol=1e-12, maxiters=200)
    yield
    solvers.options.clear()
    solvers.options.update(saved)


def _rps_si_walls(profile):
    p, a = profile.barrier.single_integrator, profile.arena
    return create_single_integrator_barrier_certificate_with_boundary(
        barrier_gain=p.gamma, safety_radius=p.safety_radius, magnitude_limit=profile.max_linear_speed,
        boundary_points=np.array([a.x_min, a.x_max, a.y_min, a.y_max]))


def _rps_unicycle_walls(profile):
    from marlstack.bench.barrier import rps_barrier
    return rps_barrier(profile)


def test_single_integrator_matches_rps_exactly_when_rps_is_accurate(tight_cvxopt, rng):
    rps = _rps_si_walls(RPS)
    ours = BarrierFilter(RPS, 6, "single_integrator_walls")
    for _ in range(10):
        x, u = safe_configuration(RPS, "single_integrator_walls", 6, rng)
        r = ours.filter(x, u)
        assert r.ok
        np.testing.assert_allclose(r.u, rps(u.T.copy(), x.T.copy()).T, atol=1e-6)


def test_unicycle_matches_rps_where_the_limits_do_not_bind(tight_cvxopt, rng):
    """rps has no actuator rows (it scales û to 0.2 m/s and clips ω to ±π afterwards): compare on
    gentle commands, where neither that nor our limit rows come into play."""
    rps = _rps_unicycle_walls(RPS)
    ours = BarrierFilter(RPS, 6)
    spec = ours.spec
    compared = 0
    for _ in range(30):
        poses, u = safe_configuration(RPS, "unicycle_walls", 6, rng)
        u = u * np.array([0.25, 0.1])
        r = ours.filter(poses, u)
        theirs = rps(u.T.copy(), poses.T.copy()).T
        limits_idle = np.all(np.abs(r.u) < 0.99 * np.array([RPS.max_linear_speed, RPS.max_angular_speed]))
        if limits_idle and np.abs(theirs[:, 1]).max() < np.pi * 0.99:
            np.testing.assert_allclose(si_solution(spec, poses, r.u), si_solution(spec, poses, theirs), atol=1e-6)
            compared += 1
    assert compared >= 10


def test_both_ours_and_rps_default_are_safe(rng):
    """With rps's own loose solver settings (1e-2) both answers satisfy the barrier rows, ours
    exactly and rps's to its feasibility tolerance; ours is never costlier beyond rps's 1e-2 gap."""
    rps = _rps_si_walls(RPS)
    ours = BarrierFilter(RPS, 8, "single_integrator_walls")
    spec = ours.spec
    for _ in range(10):
        x, u = safe_configuration(RPS, "single_integrator_walls", 8, rng)
        r, theirs = ours.filter(x, u), rps(u.T.copy(), x.T.copy()).T
        assert violation(spec, x, r.u) <= 1e-9
        assert violation(spec, x, theirs) <= 1e-2
        uhat = u * np.minimum(1, RPS.max_linear_speed / np.linalg.norm(u, axis=1, keepdims=True))
        assert np.sum((r.u - uhat) ** 2) <= np.sum((theirs - uhat) ** 2) * (1 + 1e-2) + 1e-12


ARRIVAL_S = {4: 25.0, 10: 30.0, 20: 40.0}   # stated swap times (measured 21 s, 24 s, 36 s)


@pytest.mark.parametrize("n", sorted(ARRIVAL_S))
def test_antipodal_swap(n):
    out = swap_numpy(GRITS, n, steps=int(ARRIVAL_S[n] / GRITS.dt) + 60)
    assert out["statuses"] == ["optimal"]
    assert out["collisions"] == 0 and out["boundary_exits"] == 0
    assert out["min_distance"] > GRITS.collision_distance
    assert out["arrival_s"] is not None and out["arrival_s"] <= ARRIVAL_S[n]


@pytest.mark.parametrize("n", [2, 8, 30])
def test_random_command_fuzz(n):
    """2 seeds × 1000 steps (the JAX fuzz runs 10k × 4 seeds): commands held 0.5 s, 2× the limits."""
    collisions = exits = 0
    for seed in range(2):
        rng = np.random.default_rng(seed)
        f = BarrierFilter(GRITS, n)
        poses = grid_start(GRITS, n)
        for t in range(1000):
            if t % 15 == 0:
                u = rng.uniform(-2, 2, (n, 2)) * np.array([GRITS.max_linear_speed, GRITS.max_angular_speed])
            r = f.filter(poses, u)
            assert r.ok, r.status
            poses = numpy_step(GRITS, poses, r.u)
            collisions += int((pair_distances(GRITS, poses) <= GRITS.collision_distance).sum())
            exits += int(outside(GRITS, poses).sum())
    assert collisions == 0 and exits == 0
