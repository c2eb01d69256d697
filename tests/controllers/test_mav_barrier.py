"""The MAV team's barrier certificate: fuzzed random commands never break the certified separation or
workspace, stopped MAVs are obstacles, numpy and JAX forms agree, bad input is refused."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from controllers.barrier_jax import NONFINITE, OK
from controllers.mav_barrier import filter_team, mav_barrier_spec
from controllers.mav_barrier_jax import fuzz, mav_barrier
from hardware import load_profile

DISCRETE_SLACK = 0.005  # m: how far a 100 Hz zero-order hold may cross a continuous-time barrier (measured ≤ 2.4 mm)


@pytest.fixture(scope="module")
def profile():
    return load_profile("mav_corl25")


@pytest.mark.parametrize("n", [3, 4])
def test_fuzzed_commands_never_break_the_certificate(profile, n):
    out = fuzz(profile, n, seeds=32, steps=2000)  # `marlstack bench mav_barrier`: 64 seeds x 10,000 steps
    sep, box, status, intervention = out["separation"], out["box"], out["status"], out["intervention"]
    spec, task = mav_barrier_spec(profile), profile.task
    assert np.all(status == OK)
    assert sep.min() >= -DISCRETE_SLACK and box.min() >= -DISCRETE_SLACK
    # so the episode-ending limits are never reached: MAV distance and ground clearance
    assert sep.min() + spec.separation > task.min_mav_distance and spec.low[2] + box.min() > task.ground_clearance
    assert intervention.mean() > 0.5  # the fuzz did push the team against its limits


def test_a_stopped_mav_is_an_obstacle(profile):
    """MAV 0 is stopped (inactive): its command passes through, and the others avoid it alone."""
    out = fuzz(profile, 3, seeds=16, steps=1500, active=[False, True, True])
    assert np.all(out["status"] == OK)
    assert out["separation"].min() >= -DISCRETE_SLACK and out["box"].min() >= -DISCRETE_SLACK
    fn = jax.jit(mav_barrier(profile, 3))
    pos = jnp.asarray([[0.0, 0.0, 2.0], [0.6, 0.0, 2.0], [3.0, 3.0, 2.0]])
    vel = jnp.asarray([[0.0, 0.0, 0.0], [-2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    nominal = jnp.asarray([[1.0, 2.0, 3.0], [-5.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    safe, info = fn(pos, vel, nominal, jnp.asarray([False, True, True]))
    np.testing.assert_array_equal(safe[0], nominal[0])
    assert float(safe[1, 0]) > 2.0  # MAV 1 brakes hard on its own: the stopped MAV does not share the work
    shared, _ = fn(pos, vel, nominal, jnp.ones(3, bool))
    assert float(shared[1, 0]) < float(safe[1, 0])  # with MAV 0 active, both brake


def test_numpy_and_jax_forms_agree(profile):
    spec = mav_barrier_spec(profile)
    fn = jax.jit(mav_barrier(profile, 3))
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(40):
        pos = rng.uniform([-1, -1, 1.5], [1, 1, 2.5], (3, 3))
        vel, nominal = rng.normal(size=(3, 3)) * 1.5, rng.normal(size=(3, 3)) * 3
        x, status, _ = filter_team(spec, pos, vel, nominal)
        y, info = fn(jnp.asarray(pos, jnp.float32), jnp.asarray(vel, jnp.float32), jnp.asarray(nominal, jnp.float32))
        assert (status == "optimal") == (int(info["status"]) == OK)
        if x is not None:
            np.testing.assert_allclose(np.asarray(y), x, atol=2e-4)
            checked += 1
    assert checked >= 30


def test_safe_commands_pass_and_bad_input_holds(profile):
    fn = jax.jit(mav_barrier(profile, 3))
    pos = jnp.asarray([[0.0, 0.0, 2.0], [1.0, 0.0, 2.0], [0.0, 1.0, 2.0]])
    nominal = jnp.asarray([[0.5, 0.0, 0.2], [0.0, 0.3, 0.0], [-0.2, 0.0, 0.0]])
    safe, info = fn(pos, jnp.zeros((3, 3)), nominal)
    np.testing.assert_allclose(safe, nominal, atol=1e-6)
    assert float(info["intervention"].max()) < 1e-5
    bad, info = fn(pos.at[1, 0].set(jnp.nan), jnp.zeros((3, 3)), nominal)
    assert int(info["status"]) == NONFINITE and float(jnp.abs(bad).max()) == 0.0
