"""Unicycle mappings and controllers: rps's forms, numpy == jax.numpy, the projection inverts."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rps.utilities import controllers as rc
from rps.utilities import transformations as rt

from marlstack.controllers import unicycle as uc

D = 0.05
RNG = np.random.default_rng(7)
POSES = np.column_stack([RNG.uniform(-1.5, 1.5, 9), RNG.uniform(-0.9, 0.9, 9), RNG.uniform(-np.pi, np.pi, 9)])
GOALS = np.column_stack([RNG.uniform(-1.5, 1.5, 9), RNG.uniform(-0.9, 0.9, 9), RNG.uniform(-np.pi, np.pi, 9)])
CMD = np.column_stack([RNG.uniform(-0.2, 0.2, 9), RNG.uniform(-3, 3, 9)])


def test_projection_mappings_match_rps():
    si_to_uni_rps, states_rps = rt.create_si_to_uni_mapping(projection_distance=D, angular_velocity_limit=np.pi)
    uni_to_si_rps = rt.create_uni_to_si_dynamics(projection_distance=D)
    np.testing.assert_allclose(uc.uni_to_si_states(POSES, D), states_rps(POSES.T).T, atol=1e-15)
    np.testing.assert_allclose(uc.uni_to_si(CMD, POSES, D), uni_to_si_rps(CMD.T, POSES.T).T, atol=1e-15)
    dxi = uc.uni_to_si(CMD, POSES, D)
    np.testing.assert_allclose(uc.si_to_uni(dxi, POSES, D, angular_velocity_limit=np.pi),
                               si_to_uni_rps(dxi.T, POSES.T).T, atol=1e-12)


def test_si_to_uni_inverts_uni_to_si():
    np.testing.assert_allclose(uc.si_to_uni(uc.uni_to_si(CMD, POSES, D), POSES, D), CMD, atol=1e-12)


def test_controllers_match_rps():
    pos = rc.create_clf_unicycle_position_controller()
    np.testing.assert_allclose(uc.position_controller(POSES, GOALS[:, :2]), pos(POSES.T, GOALS[:, :2].T).T, atol=1e-12)
    si = rc.create_si_position_controller()
    np.testing.assert_allclose(uc.si_position_controller(POSES[:, :2], GOALS[:, :2]),
                               si(POSES[:, :2].T.copy(), GOALS[:, :2].T).T, atol=1e-12)


def test_pose_controller_matches_rps_formula_and_has_no_nan_at_alpha_zero():
    # rps's pose controller prints on every call; its formula, written out per robot:
    for p, g, out in zip(POSES, GOALS, uc.pose_controller(POSES, GOALS)):
        c, s = np.cos(-g[2]), np.sin(-g[2])
        t = np.array([[c, -s], [s, c]]) @ (g[:2] - p[:2])
        e, theta = np.linalg.norm(t), np.arctan2(t[1], t[0])
        alpha = np.arctan2(np.sin(theta - (p[2] - g[2])), np.cos(theta - (p[2] - g[2])))
        want = [e * np.cos(alpha), 2.7 * alpha + np.cos(alpha) * np.sin(alpha) / alpha * (alpha + theta)]
        np.testing.assert_allclose(out, want, atol=1e-12)
    aligned = np.array([[0.0, 0.0, 0.0]]), np.array([[1.0, 0.0, 0.0]])   # alpha = 0 exactly
    assert np.all(np.isfinite(uc.pose_controller(*aligned)))


def test_swirl_rotates_clockwise_and_keeps_the_magnitude():
    out = uc.si_position_controller(np.zeros((1, 2)), np.array([[1.0, 0.0]]), magnitude_limit=0.1, swirl=np.pi / 2)
    np.testing.assert_allclose(out, [[0.0, -0.1]], atol=1e-15)


@pytest.mark.parametrize("name", ["uni_to_si_states", "uni_to_si", "si_to_uni", "position_controller",
                                  "pose_controller", "si_position_controller"])
def test_numpy_and_jax_agree(name):
    args = {"uni_to_si_states": (POSES, D), "uni_to_si": (CMD, POSES, D), "si_to_uni": (CMD, POSES, D),
            "position_controller": (POSES, GOALS[:, :2]), "pose_controller": (POSES, GOALS),
            "si_position_controller": (POSES[:, :2], GOALS[:, :2], 1.0, 0.15, 0.3)}[name]
    fn = getattr(uc, name)
    want = fn(*args)
    arrays = [jnp.asarray(a, jnp.float32) for a in args if isinstance(a, np.ndarray)]
    got = jax.jit(lambda *a: fn(*a, *args[len(a):]))(*arrays)
    assert isinstance(got, jax.Array)
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-5, rtol=1e-5)
