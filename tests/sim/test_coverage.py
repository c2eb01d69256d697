"""Coverage: sensing vs observing (layout worked out by hand, sorting, padding, size), reward and success,
batched and deterministic resets, landmark placement, registration in FleetEnv and `marlstack sim`."""
import dataclasses
import itertools
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marlstack.hardware import load_profile
from marlstack.sim_cli import main as sim_main
from marlstack.sim.fleet import FleetEnv
from marlstack.sim.rollout import rollout, scripted_policy
from marlstack.sim.scenarios import coverage as cov
from marlstack.sim.scenarios import coverage_spec as spec

PROFILE = load_profile("gritsbot_x")
KEY = jax.random.PRNGKey(0)
observe = jax.jit(cov.observe, static_argnums=1)


def params(n, **kw):
    return cov.make_params(PROFILE, n, **kw)


def state_of(poses, landmarks):
    """What sense() reads: the poses and the task's landmarks."""
    as32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    return SimpleNamespace(poses=as32(poses), task=SimpleNamespace(landmarks=as32(landmarks)))


def test_sense_gives_raw_world_frame_tensors():
    poses = np.arange(12, dtype=np.float32).reshape(4, 3)
    landmarks = np.arange(8, dtype=np.float32).reshape(4, 2) / 10
    s = cov.sense(state_of(poses, landmarks), params(4))
    assert {k: v.shape for k, v in s.items()} == {"pose": (4, 3), "others": (4, 3, 3), "landmarks": (4, 4, 2)}
    np.testing.assert_array_equal(s["others"][1], poses[[0, 2, 3]])  # ascending index, self removed
    np.testing.assert_array_equal(s["landmarks"], np.broadcast_to(landmarks, (4, 4, 2)))  # all see all, in order
    assert spec.sensor_shapes(4) == {"pose": [3], "others": [3, 3], "landmarks": [4, 2]}
    assert list(spec.SENSORS) == ["pose", "others", "landmarks"]


def test_observation_layout_worked_out_by_hand():
    p = params(3)
    # Robot 0 at the origin facing +y (robot x forward = world +y, robot y left = world -x);
    # robot 1 0.5 m ahead of it, robot 2 0.3 m to its left (world -x).
    poses = [[0.0, 0.0, np.pi / 2], [0.0, 0.5, np.pi / 2], [-0.3, 0.0, 0.0]]
    # Landmarks, not in distance order: B 1 m to world +x (robot right), A 0.4 m ahead (0.1 m from
    # robot 1), C at world (-0.3, -0.4): 0.5 m away, 0.4 m from robot 2.
    landmarks = [[1.0, 0.0], [0.0, 0.4], [-0.3, -0.4]]
    obs = np.asarray(observe(cov.sense(state_of(poses, landmarks), p), p))
    names = spec.obs_names(p.num_neighbors, p.num_landmarks)
    assert obs.shape == (3, cov.obs_dim(p)) == (3, len(names)) == (3, 43)
    o = dict(zip(names, obs[0]))
    feats = ("dx_robot", "dy_robot", "distance", "other_distance", "present")
    want = {
        "cos_theta": 0, "sin_theta": 1, "x": 0, "y": 0, "wall_left": 1.6, "wall_right": 1.6, "wall_bottom": 1.0,
        "wall_top": 1.0,
        # navigation's neighbours: nearest first, the third slot padding
        "neighbor0_dx_robot": 0, "neighbor0_dy_robot": 0.3, "neighbor0_distance": 0.3,
        "neighbor0_rel_heading": -np.pi / 2, "neighbor0_present": 1,
        "neighbor1_dx_robot": 0.5, "neighbor1_dy_robot": 0, "neighbor1_distance": 0.5, "neighbor1_present": 1,
        "neighbor2_distance": p.far, "neighbor2_present": 0,
        # landmarks nearest first: A, C, B; the fourth slot is padding (three landmarks)
        **dict(zip([f"landmark0_{f}" for f in feats], [0.4, 0, 0.4, 0.1, 1])),
        **dict(zip([f"landmark1_{f}" for f in feats], [-0.4, 0.3, 0.5, 0.4, 1])),
        **dict(zip([f"landmark2_{f}" for f in feats], [0, -1, 1, np.hypot(1.0, 0.5), 1])),
        **dict(zip([f"landmark3_{f}" for f in feats], [0, 0, p.far, 0, 0])),
    }
    np.testing.assert_allclose([o[k] for k in want], list(want.values()), atol=1e-6)
    # robot 1 (facing +y) has A 0.1 m behind it; its nearest other robot to A is robot 0, 0.4 m away
    o1 = dict(zip(names, obs[1]))
    np.testing.assert_allclose([o1[f"landmark0_{f}"] for f in feats], [-0.1, 0, 0.1, 0.4, 1], atol=1e-6)


@pytest.mark.parametrize("n", [1, 2, 8])  # no others; padded landmark slots; the top-k selection
def test_observation_size_does_not_depend_on_the_fleet(n):
    p = params(n)
    assert cov.obs_dim(p) == spec.obs_dim() == 43
    env = FleetEnv(PROFILE, n, scenario="coverage")
    obs = np.asarray(env.observations(env.reset(KEY)[1]))
    assert obs.shape == (n, 43) and np.isfinite(obs).all()
    o = dict(zip(spec.obs_names(), obs[0]))
    if n == 1:  # alone: every landmark is free, as far as anything in the arena
        assert o["landmark0_other_distance"] == pytest.approx(p.far) and o["neighbor0_present"] == 0
    d = obs[:, spec.obs_names().index("landmark0_distance")::5][:, :min(n, p.num_landmarks)]
    assert (np.diff(d, axis=-1) >= 0).all()  # sorted nearest first


def test_both_landmark_selections_agree():
    """Few landmarks: unrolled argmin rounds; many: top-k + gather (navigation's code). Same rows, same order."""
    p = params(7)
    k = jax.random.split(jax.random.PRNGKey(5), 3)
    sensors = {"pose": jax.random.normal(k[0], (3, 3)), "others": jax.random.normal(k[1], (3, 6, 3)),
               "landmarks": jax.random.normal(k[2], (3, 7, 2))}
    gathered = jax.jit(cov.observe, static_argnums=1)(sensors, dataclasses.replace(p, gather_above=0))
    unrolled = jax.jit(cov.observe, static_argnums=1)(sensors, dataclasses.replace(p, gather_above=100))
    np.testing.assert_allclose(gathered, unrolled, rtol=1e-6, atol=1e-6)


def test_reward_pays_each_robot_for_its_paired_landmark():
    p = params(2)
    task = cov.Task(landmarks=jnp.array([[1.0, 0.0], [-1.0, 0.0]]), reached=jnp.zeros(2, bool))
    before = jnp.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.0]])  # robot 0 is 1 m from both, robot 1 1.118 m
    far = float(np.hypot(1.0, 0.5))
    none, one = jnp.array([0, 0]), jnp.array([1, 1])
    # pairing (closest pair first): robot 0 - landmark 0, then robot 1 - landmark 1. Both drive onto
    # landmark 0: robot 0 is paid 1 m, robot 1 loses what it moved away from landmark 1; not solved
    stacked = jnp.array([[1.0, 0.0, 0.0], [1.05, 0.0, 0.0]])
    r, task2, success, solved = cov.reward(before, stacked, task, one, none, p)
    np.testing.assert_allclose(r, [p.progress_gain * 1.0 - p.collision_penalty,
                                   p.progress_gain * (far - 2.05) - p.collision_penalty], rtol=1e-5)
    np.testing.assert_array_equal(success, [True, False])
    assert not bool(solved) and task2.reached.tolist() == [True, False]
    # one robot on each: each paid its own progress, both the bonus; robot 1 out of bounds
    spread = jnp.array([[1.0, 0.05, 0.0], [-1.0, 0.0, 0.0]])
    r, task3, success, solved = cov.reward(before, spread, task, none, jnp.array([0, 1]), p)
    np.testing.assert_allclose(r, [p.progress_gain * 0.95 + p.success_bonus,
                                   p.progress_gain * far + p.success_bonus - p.boundary_penalty], rtol=1e-5)
    assert bool(solved) and success.tolist() == [True, True] and task3.reached.tolist() == [True, True]
    # credit is each robot's own: only robot 0 moves toward its landmark, only robot 0 earns
    start = jnp.array([[0.0, 0.0, 0.0], [-0.5, 0.0, 0.0]])
    r, *_ = cov.reward(start, start.at[0, 0].set(0.5), task, none, none, p)
    np.testing.assert_allclose(r, [p.progress_gain * 0.5, 0.0], atol=1e-6)


def test_greedy_pairing_is_a_permutation_close_to_the_best():
    d = jax.random.uniform(jax.random.PRNGKey(3), (200, 5, 5))
    owner = np.asarray(jax.vmap(cov.greedy_assignment)(d))
    assert all(sorted(o.tolist()) == list(range(5)) for o in owner)  # every landmark paired once
    d, robots = np.asarray(d), np.arange(5)
    greedy = d[np.arange(200)[:, None], owner, robots].sum(1)
    perms = np.array(list(itertools.permutations(range(5))))  # (120, 5): landmark of each robot
    best = d[:, perms, robots].sum(-1).min(1)
    assert all(g >= b - 1e-6 for g, b in zip(greedy, best))
    assert np.mean(greedy) <= 1.25 * np.mean(best), (np.mean(greedy), np.mean(best))


def test_vmapped_steps_and_determinism_under_a_key():
    env = FleetEnv(PROFILE, 4, scenario="coverage", world_state=True)

    @jax.jit
    def run(key):
        def one(k):
            obs, state = env.reset(k)
            return env.step(k, state, jnp.tile(jnp.array([0.2, 1.0]), (4, 1)))
        return jax.vmap(one)(jax.random.split(key, 64))

    obs, states, rew, dones, info = run(KEY)
    assert obs["agent_3"].shape == (64, 43) and obs["world_state"].shape == (64, 4, 43 + 6 * 4 + 1)
    assert states.task.landmarks.shape == (64, 4, 2) and info["success"].shape == (64, 4)
    # each robot is paid its own progress: the robots of one env earn different rewards
    r = np.stack([np.asarray(rew[a]) for a in env.agents], -1)
    assert np.isfinite(r).all() and (np.ptp(r, axis=1) > 1e-4).mean() > 0.9
    assert len({tuple(np.round(lm, 6)) for lm in np.asarray(states.task.landmarks[:, 0])}) == 64
    again, other = run(KEY), run(jax.random.PRNGKey(1))
    for x, y in zip(jax.tree.leaves((obs, states, rew)), jax.tree.leaves(again[:3])):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(states.task.landmarks, other[1].task.landmarks)


@pytest.mark.parametrize("n", [1, 4])  # navigation's goals, the same placement, are checked up to 50
def test_reset_places_landmarks_inside_the_walls_and_apart(n):
    env = FleetEnv(PROFILE, n, scenario="coverage")
    lm = np.asarray(jax.vmap(env.reset)(jax.random.split(KEY, 32))[1].task.landmarks)
    a, d = PROFILE.arena, PROFILE.diameter
    assert (lm[..., 0] >= a.x_min + d).all() and (lm[..., 0] <= a.x_max - d).all()
    assert (lm[..., 1] >= a.y_min + d).all() and (lm[..., 1] <= a.y_max - d).all()
    if n > 1:
        gaps = np.linalg.norm(lm[:, :, None] - lm[:, None], axis=-1) + np.eye(n) * 1e9
        # two diameters apart: more than two success radii, so no robot covers two landmarks
        assert gaps.min() >= 2 * d - 1e-6 > 2 * spec.SUCCESS_RADIUS


def test_scripted_policy_solves_and_cli_runs(tmp_path, capsys):
    env = FleetEnv(PROFILE, 4, scenario="coverage", max_steps=400)
    ep = rollout(env, scripted_policy(env), KEY, 400)  # robot i drives to landmark i
    assert ep.solved and ep.success[-1].all() and ep.steps < 400
    assert sim_main(["coverage", "--policy", "random", "--steps", "5", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "coverage: 4 robots (gritsbot_x), random policy, 5 steps" in out and "landmarks covered" in out
    assert (tmp_path / "trajectory.gif").stat().st_size > 0


def test_point_errors_own_goal_nearest_landmark_and_batched():
    xy = np.array([[0.0, 0.0], [1.0, 0.0]])
    points = np.array([[1.0, 0.5], [0.0, 0.3]])
    np.testing.assert_allclose(spec.point_errors(xy, points, shared=False), [np.hypot(1, 0.5), np.hypot(1, 0.3)])
    np.testing.assert_allclose(spec.point_errors(xy, points, shared=True), [0.3, 0.5])
    np.testing.assert_allclose(spec.point_errors(points, xy, shared=True), [0.5, 0.3])  # each landmark's nearest robot
    assert spec.point_errors(np.stack([xy] * 5), points, shared=True).shape == (5, 2)  # a trajectory (T, N, 2)
