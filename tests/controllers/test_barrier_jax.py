"""Training barrier (JAX): exact against cvxpy, failure codes, swaps, a 10k-step fuzz (FleetEnv with the real
barrier: test_barrier_jax_deadlock, test_fleet)."""
import functools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from barrier_cases import grid_start, safe_configuration

from marlstack.bench.barrier import swap_jax
from marlstack.controllers.barrier import BarrierFilter
from marlstack.controllers.barrier_jax import INFEASIBLE, NONFINITE, OK, single_integrator_barrier, unicycle_barrier
from marlstack.controllers.barrier_qp import barrier_spec
from marlstack.controllers.unicycle import uni_to_diff, uni_to_si
from marlstack.hardware import load_profile
from marlstack.sim.fleet import physics_step, violations

GRITS = load_profile("gritsbot_x")


@functools.lru_cache(maxsize=None)
def batched(form, n):
    """One jitted, vmapped barrier per (form, N) for the whole module: compile once."""
    make = unicycle_barrier if form.startswith("unicycle") else single_integrator_barrier
    return jax.jit(jax.vmap(make(GRITS, n, form)))


@pytest.mark.parametrize("form,n", [("unicycle_walls", 5), ("unicycle_walls", 10), ("unicycle", 5),
                                    ("single_integrator", 5), ("single_integrator_walls", 5)])
def test_exact_against_cvxpy(form, n, rng):
    cases = [safe_configuration(GRITS, form, n, rng) for _ in range(12)]
    poses, u = (np.stack(c) for c in zip(*cases))
    got, info = batched(form, n)(jnp.asarray(poses, jnp.float32), jnp.asarray(u, jnp.float32))
    assert np.all(np.asarray(info["status"]) == OK)
    assert np.asarray(info["residual"]).max() < 1e-5
    assert np.asarray(info["iterations"]).max() >= 1
    ref = BarrierFilter(GRITS, n, form, solver="cvxpy")
    spec = barrier_spec(GRITS, form)
    for p, un, g in zip(poses, u, np.asarray(got, np.float64)):
        want = ref.filter(p, un).u
        if spec.unicycle:      # compare the QP's variable, the projection-point velocity
            g, want = uni_to_si(g, p, spec.projection_distance), uni_to_si(want, p, spec.projection_distance)
        np.testing.assert_allclose(g, want, atol=1e-4)


def test_failures_brake_with_a_status():
    """Each case in one batch of the module's compiled 5-robot barrier: only its own lane brakes."""
    poses = jnp.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [-0.5, 0.0, 0.0], [0.0, -0.5, 0.0]])
    u = jnp.full((5, 2), 0.1, jnp.float32)          # not weakly typed: the same compile as the float32 cases
    cases = [(poses, u, OK), (poses, u.at[1, 1].set(jnp.nan), NONFINITE), (poses.at[0, 0].set(jnp.inf), u, NONFINITE),
             (poses.at[1].set(poses[0]), u, INFEASIBLE)]
    cases += cases[:1] * (12 - len(cases))        # test_exact_against_cvxpy's batch shape: no new compile
    safe, info = batched("unicycle_walls", 5)(jnp.stack([c[0] for c in cases]), jnp.stack([c[1] for c in cases]))
    np.testing.assert_array_equal(np.asarray(info["status"]), [c[2] for c in cases])
    np.testing.assert_array_equal(np.asarray(safe[1:4]), 0.0)
    assert np.all(np.asarray(safe[0]) != 0.0)


def test_one_and_fifty_robots(rng):
    safe, info = jax.jit(unicycle_barrier(GRITS, 1))(jnp.array([[1.45, 0.0, 0.0]]), jnp.array([[0.2, 0.0]]))
    assert int(info["status"]) == OK and 0 <= float(safe[0, 0]) < 0.2          # the right wall slows it
    poses, u = safe_configuration(GRITS, "unicycle_walls", 50, rng, spread=0.08)
    safe, info = jax.jit(unicycle_barrier(GRITS, 50))(jnp.asarray(poses, jnp.float32), jnp.asarray(u, jnp.float32))
    assert int(info["status"]) == OK and float(info["residual"]) < 1e-5
    want = BarrierFilter(GRITS, 50).filter(poses, u).u
    np.testing.assert_allclose(uni_to_si(np.asarray(safe, float), poses, 0.03), uni_to_si(want, poses, 0.03), atol=1e-4)


def test_output_respects_the_wheel_limits(rng):
    cases = [safe_configuration(GRITS, "unicycle_walls", 5, rng) for _ in range(12)]
    poses, u = (jnp.asarray(np.stack(c), jnp.float32) for c in zip(*cases))
    safe, _ = batched("unicycle_walls", 5)(poses, 3 * u)
    left, right = uni_to_diff(safe[..., 0], safe[..., 1], GRITS.wheel_radius, GRITS.base_length)
    assert float(jnp.maximum(jnp.abs(left), jnp.abs(right)).max()) <= GRITS.max_wheel_speed * (1 + 1e-5)


ARRIVAL_S = {4: 25.0, 10: 30.0, 20: 40.0}   # the same stated times as the numpy swap


@pytest.mark.parametrize("n", sorted(ARRIVAL_S))
def test_antipodal_swap(n):
    out = swap_jax(GRITS, n, steps=int(ARRIVAL_S[n] / GRITS.dt) + 60)()
    assert int(out["not_optimal"]) == 0 and float(out["residual"]) < 1e-5
    assert int(out["collisions"]) == 0 and int(out["boundary_exits"]) == 0
    assert float(out["min_distance"]) > GRITS.collision_distance
    assert float(out["arrival_s"]) <= ARRIVAL_S[n]           # NaN (never settled) fails too


@pytest.mark.parametrize("n,seeds", [(2, 4), (8, 4), (30, 1)])
def test_random_command_fuzz(n, seeds):
    """10k steps per seed, commands uniform in ±2× the limits and held 0.5 s, the simulator's
    physics and collision rule: no collision, no boundary exit, never a braked step."""
    barrier = unicycle_barrier(GRITS, n)
    limits = jnp.array([GRITS.max_linear_speed, GRITS.max_angular_speed])

    def run(key):
        def step(carry, t):
            poses, coll, exits, bad = carry
            u = jax.random.uniform(jax.random.fold_in(key, t // 15), (n, 2), minval=-2, maxval=2) * limits
            safe, info = barrier(poses, u)
            new, _, _ = physics_step(GRITS, poses, safe)
            v = violations(GRITS, new, safe)
            return (new, coll + v.collisions.sum(), exits + v.boundary_exits.sum(), bad + (info["status"] != OK)), None
        zero = jnp.zeros((), jnp.int32)
        start = jnp.asarray(grid_start(GRITS, n), jnp.float32)
        return jax.lax.scan(step, (start, zero, zero, zero), jnp.arange(10_000))[0][1:]

    coll, exits, bad = jax.jit(jax.vmap(run))(jax.random.split(jax.random.PRNGKey(n), seeds))
    assert int(coll.sum()) == 0 and int(exits.sum()) == 0 and int(bad.sum()) == 0


def test_float64_training_form_equals_the_deployment_filter():
    """In float64 the two implementations of the method agree to round-off (run in a child:
    x64 is process-wide)."""
    code = """
import sys
sys.path.insert(0, HERE)
import jax, jax.numpy as jnp, numpy as np
from barrier_cases import safe_configuration
from marlstack.controllers.barrier import BarrierFilter
from marlstack.controllers.barrier_jax import unicycle_barrier
from marlstack.hardware import load_profile
p, rng = load_profile('gritsbot_x'), np.random.default_rng(3)
fn, ref = jax.jit(unicycle_barrier(p, 8)), BarrierFilter(p, 8)
worst = 0.0
for _ in range(20):
    x, u = safe_configuration(p, 'unicycle_walls', 8, rng)
    got, info = fn(jnp.asarray(x), jnp.asarray(u))
    assert got.dtype == jnp.float64 and int(info['status']) == 0
    worst = max(worst, float(np.abs(np.asarray(got) - ref.filter(x, u).u).max()))
print(worst)
"""
    env = dict(os.environ, JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu")
    code = code.replace("HERE", repr(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip().splitlines()[-1]) < 1e-12
