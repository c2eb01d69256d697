"""Stopped robots are fixed obstacles: the safety node's certificate and the JAX `active` mask.

A robot that must stop (stale pose, silent policy, tripped watchdog, parked or failed agent)
moves at zero velocity, so the pair rows must be certified with its velocity at zero — not
solved with it as a free variable (the QP shares each avoidance) and zeroed afterwards.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from barrier_cases import safe_configuration
from marlstack.controllers.barrier import BarrierFilter
from marlstack.controllers.barrier_jax import OK, unicycle_barrier
from marlstack.controllers.barrier_qp import barrier_spec, qp_rows
from marlstack.controllers.unicycle import uni_to_si
from marlstack.hardware import load_profile
from marlstack.ros_nodes.safety_node import Certificate

GRITS = load_profile("gritsbot_x")
FORM = "unicycle_walls"
SPEC = barrier_spec(GRITS, FORM)


def worst_row(poses, u):
    """Largest a·v − b over every row (pairs, walls, limits) with v the barrier points' velocities
    the commands u really produce (m/s; ≤ 0: the certificate holds)."""
    a, b = qp_rows(SPEC, poses)
    v = uni_to_si(u, poses, SPEC.projection_distance)
    return float(np.max(np.einsum("mnk,nk->m", a, v) - b))


def test_moving_robot_gets_only_the_certified_speed_towards_a_stopped_one():
    """Two robots 0.25 m apart, one driving at the other, which must stop (e.g. its policy died).
    Solving with both free then zeroing the stopped one lets the mover keep half the closing
    speed (0.10 m/s, measured on the old node); certified against a standing robot it is ~0.002."""
    cert = Certificate(GRITS, ["a", "b"], ["a", "b"], FORM)
    poses = np.array([[0.0, 0.0, 0.0], [0.25, 0.0, 0.0]])
    u_nom = np.array([[0.2, 0.0], [0.0, 0.0]])
    u, status, _ = cert(poses, u_nom, np.array([False, True]))
    assert status == "optimal"
    assert np.all(u[1] == 0.0)
    assert 0.0 < u[0, 0] < 0.003
    assert worst_row(poses, u) <= 1e-9
    free, _, _ = cert(poses, u_nom)          # both free: the QP shares the avoidance
    assert free[0, 0] > 0.09 and worst_row(poses, np.array([free[0], [0.0, 0.0]])) > 1e-3


@pytest.mark.parametrize("n", [3, 6])
def test_k_of_n_stopped_keeps_every_pair_certified(n, rng):
    """Random clustered layouts, k of N robots stopped at random: every row holds with the
    stopped robots' velocity at zero (the executed commands), in fleet mode."""
    cert = Certificate(GRITS, [f"r{i}" for i in range(n)], [f"r{i}" for i in range(n)], FORM)
    worst = -np.inf
    for _ in range(150):
        poses, u_nom = safe_configuration(GRITS, FORM, n, rng)
        stopped = np.zeros(n, bool)
        stopped[rng.choice(n, rng.integers(1, n), replace=False)] = True
        u, status, _ = cert(poses, u_nom, stopped)
        assert status == "optimal"
        assert np.all(u[stopped] == 0.0)
        worst = max(worst, worst_row(poses, u))
    assert worst <= 1e-9


def test_jax_active_mask_is_the_numpy_fixed_obstacle_qp(rng):
    """unicycle_barrier(..., active=mask): inactive robots get 0 and every row holds with their
    velocity at zero; the answer equals the deployment filter's (stopped robots as obstacles)."""
    n = 6
    fn = jax.jit(jax.vmap(unicycle_barrier(GRITS, n, FORM)))
    ref = BarrierFilter(GRITS, n, FORM)
    cases = [safe_configuration(GRITS, FORM, n, rng) for _ in range(64)]
    poses, u_nom = (np.stack(c) for c in zip(*cases))
    active = rng.random((64, n)) < 0.5
    active[:, 0] = True
    got, info = fn(jnp.asarray(poses, jnp.float32), jnp.asarray(u_nom, jnp.float32), jnp.asarray(active))
    got = np.asarray(got, np.float64)
    assert np.all(np.asarray(info["status"]) == OK)
    for k in range(64):
        assert np.all(got[k][~active[k]] == 0.0)
        assert worst_row(poses[k], got[k]) <= 2e-5
        want = ref.filter(poses[k], np.where(active[k][:, None], u_nom[k], 0.0), controlled=active[k]).u
        assert np.abs(got[k] - want).max() < 1e-3
    # with every robot active the mask changes nothing
    same, _ = fn(jnp.asarray(poses, jnp.float32), jnp.asarray(u_nom, jnp.float32), jnp.ones((64, n), bool))
    plain, _ = jax.jit(jax.vmap(unicycle_barrier(GRITS, n, FORM)))(jnp.asarray(poses, jnp.float32),
                                                                  jnp.asarray(u_nom, jnp.float32))
    assert np.abs(np.asarray(same) - np.asarray(plain)).max() < 1e-6
