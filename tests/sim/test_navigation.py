"""Navigation: sensing vs observing (shapes, frames, padding, sorting, finiteness) and the reward."""
import dataclasses
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marlstack.hardware import load_profile
from marlstack.sim.scenarios import navigation as nav
from marlstack.sim.scenarios import navigation_spec as spec

PROFILE = load_profile("gritsbot_x")
observe = jax.jit(nav.observe, static_argnums=1)  # one compile per shape, not hundreds of eager ops


def params(n):
    return nav.make_params(PROFILE, n)


def state_of(poses, goals):
    poses = jnp.asarray(poses, jnp.float32)
    return SimpleNamespace(poses=poses, task=nav.Task(goals=jnp.asarray(goals, jnp.float32),
                                                      reached=jnp.zeros(len(poses), bool)))


def test_sense_gives_raw_world_frame_tensors():
    poses = np.arange(12, dtype=np.float32).reshape(4, 3)
    s = nav.sense(state_of(poses, np.zeros((4, 2))), params(4))
    assert {k: v.shape for k, v in s.items()} == {"pose": (4, 3), "others": (4, 3, 3), "goal": (4, 2)}
    np.testing.assert_array_equal(s["others"][2], poses[[0, 1, 3]])  # ascending index, self removed
    assert spec.sensor_shapes(4) == {"pose": [3], "others": [3, 3], "goal": [2]}


def test_observation_layout_in_the_robot_frame():
    p = params(3)
    # Robot 0 at the origin facing +y; its goal 1 m to the world +x is on its right (robot -y).
    st = state_of([[0.0, 0.0, np.pi / 2], [0.0, 0.5, np.pi / 2], [-0.3, 0.0, 0.0]], [[1.0, 0.0]] * 3)
    obs = np.asarray(observe(nav.sense(st, p), p))
    names = spec.obs_names(p.num_neighbors)
    assert obs.shape == (3, nav.obs_dim(p)) == (3, len(names))
    o = dict(zip(names, obs[0]))
    np.testing.assert_allclose([o["goal_x_robot"], o["goal_y_robot"], o["goal_distance"]], [0, -1, 1], atol=1e-6)
    np.testing.assert_allclose([o["cos_theta"], o["sin_theta"]], [0, 1], atol=1e-6)
    np.testing.assert_allclose([o["wall_left"], o["wall_right"], o["wall_bottom"], o["wall_top"]], [1.6, 1.6, 1.0, 1.0], atol=1e-6)
    # Nearest first: the robot 0.3 m behind-left (world -x = robot +y) before the one 0.5 m ahead.
    np.testing.assert_allclose([o[f"neighbor0_{k}"] for k in ("dx_robot", "dy_robot", "distance", "present")],
                               [0, 0.3, 0.3, 1], atol=1e-6)
    np.testing.assert_allclose(o["neighbor0_rel_heading"], -np.pi / 2, atol=1e-6)
    np.testing.assert_allclose(o["neighbor1_rel_heading"], 0.0, atol=1e-6)
    np.testing.assert_allclose([o[f"neighbor1_{k}"] for k in ("dx_robot", "dy_robot", "distance", "present")],
                               [0.5, 0, 0.5, 1], atol=1e-6)
    # Only two others: the remaining neighbour slot is padding, far away and absent.
    assert p.num_neighbors == 3
    np.testing.assert_allclose([o["neighbor2_distance"], o["neighbor2_present"], o["neighbor2_dx_robot"]], [p.far, 0, 0])


def test_observe_works_for_any_leading_batch_axes():
    p = params(6)
    rng = np.random.default_rng(3)  # numpy draws: no JAX compiles besides observe's two
    sensors = {name: rng.normal(size=shape).astype(np.float32)
               for name, shape in (("pose", (2, 5, 3)), ("others", (2, 5, 5, 3)), ("goal", (2, 5, 2)))}
    batched = observe(sensors, p)
    assert batched.shape == (2, 5, nav.obs_dim(p))
    single = observe({k: v[1, 3] for k, v in sensors.items()}, p)
    np.testing.assert_allclose(batched[1, 3], single, rtol=1e-6)
    d = np.asarray(batched[..., spec.obs_names(p.num_neighbors).index("neighbor0_distance")::5])
    assert (np.diff(d, axis=-1) >= 0).all()  # sorted nearest first


@pytest.mark.parametrize("n", [1, 2])
def test_observation_finite_for_tiny_fleets_and_wild_inputs(n):
    p = params(n)
    poses = np.array([[1e3, -1e3, 1e4], [5.0, 5.0, -7.0]], np.float32)[:n]
    obs = np.asarray(observe(nav.sense(state_of(poses, poses[:, :2]), p), p))
    assert obs.shape == (n, nav.obs_dim(p)) and np.isfinite(obs).all()
    assert obs[0, 2] == 0  # at its goal


def test_reward_progress_bonus_and_penalties():
    p = params(2)
    task = nav.Task(goals=jnp.array([[1.0, 0.0], [-1.0, 0.0]]), reached=jnp.zeros(2, bool))
    before = jnp.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.0]])
    after = jnp.array([[0.95, 0.0, 0.0], [0.0, 0.5, 0.0]])
    r, task2, success, solved = nav.reward(before, after, task, jnp.array([0, 1]), jnp.array([0, 0]), p)
    np.testing.assert_allclose(r, [p.progress_gain * 0.95 + p.success_bonus, -p.collision_penalty], rtol=1e-5)
    np.testing.assert_array_equal(success, [True, False])
    assert not bool(solved) and bool(task2.reached[0])
    r2, *_ = nav.reward(after, after, task2, jnp.array([0, 0]), jnp.array([0, 1]), p)
    np.testing.assert_allclose(r2, [0.0, -p.boundary_penalty])  # no second bonus
    no_penalty = nav.make_params(PROFILE, 2, collision_penalty=0.0)
    r3, *_ = nav.reward(before, before, task, jnp.array([1, 1]), jnp.array([0, 0]), no_penalty)
    np.testing.assert_allclose(r3, 0.0)


def test_every_neighbour_selection_and_the_wide_form_agree():
    """Unrolled argmin rounds (the default up to 4 others), argmin rounds over the row axis (5-24 others),
    top-k + gather (gather_above=0) and the exported wide form: same rows, same order, the same numbers
    (to 1e-6: XLA may fuse a multiply-add differently in one form), on fleets with exact distance ties.
    tests/policies/test_export.py holds the exported graph to the per-feature form on rollouts and edge cases."""
    rng = np.random.default_rng(5)
    for n, variants in ((2, [{"wide": True}]),  # padded slots
                        (5, [{"wide": True}]),  # the default unrolls the rounds: 4 others
                        (7, [{"gather_above": 0}, {"wide": True}])):  # the default's argmin is over the row axis
        p = params(n)
        assert n < 7 or p.gather_above < n - 1 <= nav.ROUNDS_UP_TO
        poses = rng.uniform(-1.5, 1.5, (64, n, 3)).astype(np.float32) * np.float32([1, 1, 3])
        poses[:16, :, :2] = np.round(poses[:16, :, :2] * 2) / 2  # on a grid: equal distances
        sensors = {"pose": poses, "others": np.stack([np.delete(poses, i, axis=1) for i in range(n)], axis=1),
                   "goal": rng.uniform(-1.5, 1.5, (64, n, 2)).astype(np.float32)}
        default = observe(sensors, p)
        for kw in variants:
            np.testing.assert_allclose(observe(sensors, dataclasses.replace(p, **kw)), default, rtol=0, atol=1e-6)
