"""Domain randomisation of the cable team (sim/cable/variation.py): the physics uses the drawn true team,
the sensors are noisy, commands arrive late, and the nominal team is untouched."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marlstack.sim.cable.env import CableEnv
from marlstack.sim.cable.variation import FACTORS, check_ranges, profile_ranges, sample


def _run(env, steps, action=None, key=0):
    _, s = env.reset(jax.random.PRNGKey(key))
    act = jnp.zeros((env.num_agents, 5)) if action is None else action

    def body(s, k):
        _, s, _, _, info = env.step(k, s, act)
        return s, (s.bodies.load_pos, info["tension"])
    return jax.jit(lambda s: jax.lax.scan(body, s, jax.random.split(jax.random.PRNGKey(1), steps)))(s)


def test_profile_ranges_are_drawn_within_their_bounds():
    env = CableEnv(variation="profile")
    ranges = profile_ranges(env.profile)
    assert set(ranges) == set(FACTORS)
    v = jax.vmap(lambda k: sample(k, ranges, 3, env.dt))(jax.random.split(jax.random.PRNGKey(0), 512))
    for name in ("mav_mass", "load_mass", "cable_length", "motor_constant"):
        lo, hi = ranges[name]
        x = np.asarray(getattr(v, name))
        assert lo <= x.min() < 1.0 < x.max() <= hi, name  # spread on both sides of nominal
    assert set(np.unique(np.asarray(v.latency))) == {0, 1, 2}  # 0 ... 20 ms at 100 Hz


def test_a_heavier_load_pulls_harder_on_the_cables():
    nominal, heavy = CableEnv(), CableEnv(variation={"load_mass": (1.3, 1.3)})
    _, (_, t_nom) = _run(nominal, 300)
    _, (_, t_heavy) = _run(heavy, 300)
    g = nominal.profile.gravity * nominal.profile.load.mass
    # at rest the cables carry the load's weight (their vertical share): 30 % more of it
    ratio = np.asarray(t_heavy[-50:]).sum(-1).mean() / np.asarray(t_nom[-50:]).sum(-1).mean()
    assert ratio == pytest.approx(1.3, abs=0.03)
    assert np.asarray(t_nom[-50:]).sum(-1).mean() > g  # cables lean out: more than the weight in total


def test_latency_delays_every_command_by_whole_steps():
    push = jnp.tile(jnp.asarray([[1.0, 0.0, 0.0, 0.0, 0.0]]), (3, 1))
    _, (x0, _) = _run(CableEnv(max_steps=100), 40, push)
    _, (x2, _) = _run(CableEnv(max_steps=100, variation={"latency": (0.02, 0.02)}), 40, push)
    x0, x2 = np.asarray(x0)[:, 0], np.asarray(x2)[:, 0]
    assert x0[-1] > 0.003  # the push moved the load (6 mm in 0.4 s)
    # two steps late: the late team is where the prompt one was two steps earlier (the first
    # step of the delayed run flies the zero command twice, so compare from the start)
    np.testing.assert_allclose(x2[2:], x0[:-2], atol=1e-5)


def test_sensors_are_noisy_but_the_physics_is_not():
    env = CableEnv(variation={"noise_position": (0.01, 0.01), "noise_velocity": (0.02, 0.02)})
    _, s = env.reset(jax.random.PRNGKey(3))
    sensed = env.sense(s)
    err = np.asarray(sensed["pos"] - s.bodies.pos)
    assert 0.002 < np.abs(err).mean() < 0.03
    assert np.array_equal(np.asarray(env.sense(s)["pos"]), np.asarray(sensed["pos"]))  # same step, same draw
    later = env.sense(s.replace(step=s.step + 1))
    assert not np.array_equal(np.asarray(later["pos"]), np.asarray(sensed["pos"]))  # fresh noise every step
    # the quiet team: sensing is the state itself
    quiet = CableEnv()
    _, q = quiet.reset(jax.random.PRNGKey(3))
    assert np.array_equal(np.asarray(quiet.sense(q)["pos"]), np.asarray(q.bodies.pos))


@pytest.mark.parametrize("bad", [{"mass": (1, 2)}, {"load_mass": (1.2, 1.1)}, {"mav_mass": (0.0, 1.0)},
                                 {"latency": (-0.1, 0.0)}])
def test_bad_ranges_are_refused_with_the_factor_named(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        check_ranges(bad)


def test_a_variation_must_be_a_profile_a_dict_or_nothing():
    with pytest.raises(ValueError, match="variation must be"):
        CableEnv(variation="strong")
