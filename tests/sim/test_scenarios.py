"""Formation and level-based foraging: what differs from the fleet (task, sensing, observation layout,
foraging rule, reward), both selection paths agree, the world state, and a foraging policy exports to
ONNX with the levels as sensors."""
import dataclasses
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marlstack.hardware import load_profile
from marlstack.sim.fleet import FleetEnv
from marlstack.sim.scenarios import foraging as fo
from marlstack.sim.scenarios import foraging_spec
from marlstack.sim.scenarios import formation as fm
from marlstack.sim.scenarios import formation_spec

PROFILE = load_profile("gritsbot_x")


@pytest.mark.parametrize("n", [4, 20])
def test_formation_ring_fits_the_arena_with_separated_slots(n):
    p = fm.make_params(PROFILE, n)
    u = jax.random.uniform(jax.random.PRNGKey(n), (64, 3))
    slots = np.asarray(jax.vmap(lambda v: fm.reset_task(v, None, None, p).landmarks)(u))  # (64, n, 2)
    centre = slots.mean(1, keepdims=True)
    np.testing.assert_allclose(np.linalg.norm(slots - centre, axis=-1), p.ring_radius, atol=1e-5)
    gaps = np.linalg.norm(slots - np.roll(slots, 1, axis=1), axis=-1)
    assert gaps.min() >= formation_spec.SLOT_SPACING - 1e-5  # neighbouring slots
    a = PROFILE.arena
    assert slots[..., 0].min() >= a.x_min + p.margin - 1e-5 and slots[..., 0].max() <= a.x_max - p.margin + 1e-5
    assert slots[..., 1].min() >= a.y_min + p.margin - 1e-5 and slots[..., 1].max() <= a.y_max - p.margin + 1e-5
    with pytest.raises(ValueError, match="does not fit the arena"):
        fm.make_params(PROFILE, n, radius=1.0)


def forage_state(poses, resources, levels, foraged=(False, False)):
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    task = fo.Task(resources=f32(resources), resource_levels=f32(levels), foraged=jnp.asarray(foraged),
                   reached=jnp.zeros(len(poses), bool))
    return SimpleNamespace(poses=f32(poses), task=task)


def test_foraging_needs_enough_level_around_a_resource():
    p = fo.make_params(PROFILE, 4)  # levels 1, 2, 1, 2
    assert p.robot_levels.tolist() == [1, 2, 1, 2]
    # resource A (level 3) has robots 0 (level 1, 0.1 m) and 2 (level 1, 0.2 m) around it: 2 < 3;
    # resource B (level 2) has robot 1 (level 2) 0.2 m away; robot 3 is far from both
    res, levels = [[0.0, 0.0], [1.0, 0.0]], [3.0, 2.0]
    poses = np.array([[0.1, 0.0, 0], [1.2, 0.0, 0], [0.0, 0.2, 0], [-1.0, -0.8, 0]], np.float32)
    s = forage_state(poses, res, levels)
    r, task, success, solved = fo.reward(s.poses, s.poses, s.task, jnp.zeros(4, jnp.int32), jnp.zeros(4, jnp.int32), p)
    assert task.foraged.tolist() == [False, True] and not bool(solved) and not success.any()
    np.testing.assert_allclose(r, p.forage_bonus * 2.0)  # B's level, to every robot; nobody moved
    # robot 3 (level 2) arrives at A: 1 + 1 + 2 >= 3, the last resource: solved
    moved = poses.copy()
    moved[3, :2] = [-0.2, 0.0]
    r, task, success, solved = fo.reward(s.poses, jnp.asarray(moved), task, jnp.zeros(4, jnp.int32),
                                         jnp.zeros(4, jnp.int32), p)
    assert task.foraged.all() and bool(solved) and success.all() and task.reached.all()
    gained = np.hypot(-1.0 - 0.0, -0.8 - 0.0) - 0.2  # robot 3 gained on A, its nearest resource still there
    np.testing.assert_allclose(r[3] - r[0], p.progress_gain * gained, rtol=1e-5)
    np.testing.assert_allclose(r[0], p.forage_bonus * 3.0 + p.success_bonus)


def test_foraging_observation_layout_and_foraged_resources_as_padding():
    p = fo.make_params(PROFILE, 3, levels=[2, 1, 1])
    names = foraging_spec.obs_names(p.num_neighbors, p.num_resources)
    assert fo.obs_dim(p) == len(names) == 8 + 1 + 3 * 6 + 2 * 5 == 37
    # robot 0 at the origin facing +x; robot 1 0.5 m ahead (level 1); robot 2 0.3 m left (level 1)
    poses = [[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.3, 0.0]]
    s = forage_state(poses, [[1.0, 0.0], [0.0, -0.4]], [3.0, 1.0], foraged=(False, True))
    sensors = fo.sense(s, p)
    assert {k: v.shape for k, v in sensors.items()} == {
        "pose": (3, 3), "others": (3, 2, 3), "level": (3, 1), "other_levels": (3, 2, 1), "resources": (3, 2, 3)}
    assert foraging_spec.sensor_shapes(3) == {"pose": [3], "others": [2, 3], "level": [1], "other_levels": [2, 1],
                                              "resources": [2, 3]}
    obs = np.asarray(fo.observe(sensors, p))
    o = dict(zip(names, obs[0]))
    want = {"level": 2, "neighbor0_dx_robot": 0.3 * 0, "neighbor0_dy_robot": 0.3, "neighbor0_level": 1,
            "neighbor0_present": 1, "neighbor1_dx_robot": 0.5, "neighbor1_distance": 0.5, "neighbor2_present": 0,
            "neighbor2_distance": p.far, "resource0_dx_robot": 1.0, "resource0_level": 3, "resource0_present": 1,
            # the nearer resource is foraged: it comes last, as padding
            "resource1_dx_robot": 0.0, "resource1_distance": p.far, "resource1_level": 0, "resource1_present": 0}
    for k, v in want.items():
        assert o[k] == pytest.approx(v, abs=1e-6), k
    # top-k + gather (what export traces) selects the same rows as the argmin rounds
    np.testing.assert_allclose(fo.observe(sensors, dataclasses.replace(p, gather_above=0)), obs, atol=1e-6)


def test_foraging_env_world_state():
    env = FleetEnv(PROFILE, num_agents=4, scenario="foraging", action_type="discrete", max_steps=50, world_state=True)
    obs, state = env.reset(jax.random.PRNGKey(1))
    # own observation; every robot's (x, y, cos, sin); resources (x, y); remaining levels; robot levels; time
    assert obs["agent_0"].shape == (37,) and obs["world_state"].shape == (4, 37 + 4 * 4 + 2 * 2 + 2 + 4 + 1)
    ws = np.asarray(obs["world_state"][0, 37:])
    np.testing.assert_allclose(ws[16:20], np.asarray(state.task.resources).reshape(-1))
    np.testing.assert_allclose(ws[20:22], state.task.resource_levels)
    assert ws[22:26].tolist() == [1, 2, 1, 2] and ws[26] == 0
    assert set(np.asarray(state.task.resource_levels).tolist()) <= {1.0, 2.0, 3.0}
