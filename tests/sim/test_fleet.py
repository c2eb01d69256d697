"""FleetEnv: spaces, reset/step contract, auto-reset, vmap, determinism, placement, violations, actions."""
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marlstack.hardware import load_profile
from marlstack.sim.fleet import FleetEnv, physics_step, violations
from marlstack.sim.waypoints import STEP

KEY = jax.random.PRNGKey(0)


@pytest.fixture(scope="module")
def env():
    return FleetEnv("gritsbot_x", num_agents=4, max_steps=3, world_state=True)


@pytest.fixture(scope="module")
def rollout(env):
    """jit(scan) of `steps` random-action env steps from reset(key): returns stacked (rewards, dones, poses)."""
    def run(key, steps=7):
        k_reset, k_run = jax.random.split(key)
        _, state = env.reset(k_reset)

        def body(s, k):
            acts = jax.random.uniform(k, (env.num_agents, 2), minval=-1.0) * env.action_space("agent_0").high
            obs, s, rew, dones, info = env.step(k, s, acts)
            return s, (jnp.stack([rew[a] for a in env.agents]), dones["__all__"], s.poses, obs["agent_0"])
        return jax.lax.scan(body, state, jax.random.split(k_run, steps))[1]
    return jax.jit(run, static_argnums=1)


def test_spaces_follow_the_profile(env):
    p = env.profile
    box = env.action_space("agent_0")
    np.testing.assert_array_equal(box.high, [p.max_linear_speed, p.max_angular_speed])
    np.testing.assert_array_equal(box.low, -box.high)
    samples = jax.vmap(box.sample)(jax.random.split(KEY, 200))
    assert samples.shape == (200, 2) and bool(jnp.all((samples >= box.low) & (samples <= box.high)))
    assert samples.std(0).min() > 0.1 * box.high.min()
    assert env.observation_space("agent_3").shape == (11 + 5 * 3,)  # K = 3 nearest neighbours
    disc = FleetEnv("gritsbot_x", num_agents=2, action_type="discrete").action_space("agent_1")
    d = jax.vmap(disc.sample)(jax.random.split(KEY, 200))
    assert disc.n == 5 and set(np.unique(d).tolist()) == set(range(5))


def test_reset_and_step_contract(env):
    obs, state = env.reset(KEY)
    assert set(obs) == set(env.agents) | {"world_state"}
    dim = env.observation_space("agent_0").shape[0]
    assert obs["agent_0"].shape == (dim,) and obs["agent_0"].dtype == jnp.float32
    assert obs["world_state"].shape == (4, dim + 6 * 4 + 1)
    np.testing.assert_allclose(obs["world_state"], jax.jit(env.world_state)(state), rtol=1e-5, atol=1e-6)  # not op by op
    acts = {a: jnp.zeros(2) for a in env.agents}
    obs2, state2, rew, dones, info = env.step(KEY, state, acts)
    assert set(rew) == set(env.agents) and set(dones) == set(env.agents) | {"__all__"}
    for k in ("collisions", "boundary_exits", "actuator_excess", "success", "returned_episode"):
        assert info[k].shape == (4,), k
    np.testing.assert_allclose(state2.poses, state.poses)  # zero command: nobody moves
    assert int(state2.step) == 1


def test_auto_reset_after_max_steps(env, rollout):
    rewards, dones, poses, _ = rollout(KEY, 7)
    np.testing.assert_array_equal(np.asarray(dones), [False, False, True, False, False, True, False])
    # A reset teleports every robot to a fresh placement; between resets they move at most v_max * dt.
    jumps = np.linalg.norm(np.diff(np.asarray(poses)[:, :, :2], axis=0), axis=-1).max(-1)
    limit = env.profile.max_linear_speed * env.profile.dt + 1e-6
    assert (jumps[[0, 2, 3, 5]] <= limit).all() and (jumps[[1, 4]] > limit).all()


def test_returned_episode_statistics_survive_the_reset(env):
    _, state = env.reset(KEY)
    acts = {a: jnp.array([0.1, 0.0]) for a in env.agents}
    total = 0
    for i in range(3):
        _, state, rew, dones, info = env.step(jax.random.PRNGKey(i), state, acts)
        total += np.stack([rew[a] for a in env.agents])
    assert bool(dones["__all__"]) and int(state.step) == 0
    np.testing.assert_allclose(info["returned_episode_returns"], total, rtol=1e-5)
    np.testing.assert_array_equal(state.returned_episode_lengths, 3)
    np.testing.assert_array_equal(state.episode_returns, 0)


def test_vmap_over_64_envs(env):
    def reset_and_step(key):
        _, state = env.reset(key)
        return env.step(key, state, {a: jnp.array([0.2, 1.0]) for a in env.agents})

    obs, states, rew, dones, info = jax.jit(jax.vmap(reset_and_step))(jax.random.split(KEY, 64))
    assert obs["agent_2"].shape == (64, 26) and rew["agent_0"].shape == (64,) and info["collisions"].shape == (64, 4)
    assert len({tuple(np.round(p, 6)) for p in np.asarray(states.poses[:, 0])}) == 64  # every env differs


def test_deterministic_under_a_fixed_key(rollout):
    a, b, c = rollout(KEY, 7), rollout(KEY, 7), rollout(jax.random.PRNGKey(1), 7)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[2], c[2])


@pytest.mark.parametrize("n", [1, 50])
def test_initial_conditions_separated_and_inside(n):
    e = FleetEnv("gritsbot_x", num_agents=n)
    _, states = jax.vmap(e.reset)(jax.random.split(KEY, 32))
    a, d = e.profile.arena, e.profile.diameter
    for pts in (np.asarray(states.poses[..., :2]), np.asarray(states.task.goals)):
        assert (pts[..., 0] >= a.x_min + d).all() and (pts[..., 0] <= a.x_max - d).all()
        assert (pts[..., 1] >= a.y_min + d).all() and (pts[..., 1] <= a.y_max - d).all()
        if n > 1:
            gaps = np.linalg.norm(pts[:, :, None] - pts[:, None], axis=-1) + np.eye(n) * 1e9
            assert gaps.min() >= 2 * d - 1e-6
    assert len(np.unique(np.asarray(states.poses[:, 0, 0]))) > 16  # random, not a fixed layout


def test_too_many_robots_is_a_clear_error():
    with pytest.raises(ValueError, match="num_agents must be in 1..50"):
        FleetEnv("gritsbot_x", num_agents=51)


def test_collision_centres_are_shifted_along_the_heading():
    p = load_profile("gritsbot_x")  # collide when centres 0.025 m ahead are <= 0.135 m apart
    facing = jnp.array([[0.0, 0.0, 0.0], [0.18, 0.0, jnp.pi]])  # centres 0.13 apart
    away = jnp.array([[0.0, 0.0, jnp.pi], [0.18, 0.0, 0.0]])  # centres 0.23 apart
    u = jnp.zeros((2, 2))
    np.testing.assert_array_equal(violations(p, facing, u).collisions, [1, 1])
    np.testing.assert_array_equal(violations(p, away, u).collisions, [0, 0])
    outside = jnp.array([[1.7, 0.0, 0.0], [0.0, -0.5, 0.0]])
    np.testing.assert_array_equal(violations(p, outside, u).boundary_exits, [1, 0])


def test_wheel_saturation_and_actuator_excess():
    p = load_profile("gritsbot_x")
    poses = jnp.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    u = jnp.array([[1.0, 5.0], [0.05, 0.0]])
    new, viol, applied = physics_step(p, poses, u)
    np.testing.assert_array_equal(viol.actuator_excess, [1, 0])  # judged on the command as sent
    left = (2 * applied[:, 0] - p.base_length * applied[:, 1]) / (2 * p.wheel_radius)
    right = (2 * applied[:, 0] + p.base_length * applied[:, 1]) / (2 * p.wheel_radius)
    assert float(jnp.max(jnp.abs(jnp.stack([left, right])))) <= p.max_wheel_speed + 1e-4
    np.testing.assert_allclose(applied[1], u[1])
    np.testing.assert_allclose(new[1, 0], 0.5 + p.dt * 0.05, rtol=1e-6)


def test_discrete_actions_drive_toward_the_waypoint():
    e = FleetEnv("gritsbot_x", num_agents=1, action_type="discrete", max_steps=1000)
    _, state = e.reset(KEY)
    state = state.replace(poses=jnp.array([[0.0, 0.0, 0.0]]))
    step = jax.jit(e.step)
    start = state
    for action, axis, sign in ((1, 0, 1), (3, 1, 1), (2, 0, -1)):
        s = start
        for _ in range(90):  # 3 s: rps's gains turn at most 0.6 rad/s toward a waypoint 0.2 m away
            _, s, *_ = step(KEY, s, {"agent_0": jnp.array(action)})
        moved = np.asarray(s.poses[0, :2] - start.poses[0, :2])
        assert sign * moved[axis] > STEP / 2, (action, moved)
        assert abs(moved[1 - axis]) < abs(moved[axis]), (action, moved)
    s = start
    for _ in range(10):
        _, s, *_ = step(KEY, s, {"agent_0": jnp.array(0)})
    np.testing.assert_allclose(s.poses, start.poses, atol=1e-6)  # stay


def test_actuation_noise_perturbs_reproducibly(env):
    noisy = FleetEnv("gritsbot_x", num_agents=4, actuation_noise=0.1)
    _, state = env.reset(KEY)
    acts = {a: jnp.array([0.1, 0.0]) for a in env.agents}
    a = env.step(KEY, state, acts)[1].poses
    b, c = noisy.step(KEY, state, acts)[1].poses, noisy.step(KEY, state, acts)[1].poses
    assert not np.allclose(a, b, atol=1e-7)
    np.testing.assert_array_equal(b, c)
    p = env.profile  # noise std is 10 % of each limit; 6 sigma bounds the change in one step
    np.testing.assert_array_less(np.abs(b - a).max(0), 6 * 0.1 * p.dt * np.array(
        [p.max_linear_speed, p.max_linear_speed, p.max_angular_speed]))


def test_barrier_hook_filters_every_command(monkeypatch):
    calls = {}

    def unicycle_barrier(profile, num_agents, form, boxes=()):
        calls["args"] = (profile.name, num_agents, form, boxes)
        return lambda poses, u: (u * 0.0, {"intervention": jnp.linalg.norm(u, axis=-1), "status": jnp.zeros((), jnp.int32),
                                             "matrix": jnp.zeros((3, 3))})

    monkeypatch.setitem(sys.modules, "marlstack.controllers.barrier_jax", types.SimpleNamespace(unicycle_barrier=unicycle_barrier))
    e = FleetEnv("gritsbot_x", num_agents=3, barrier="unicycle_walls")
    assert calls["args"] == ("gritsbot_x", 3, "unicycle_walls", ())  # navigation has no static obstacles
    _, state = e.reset(KEY)
    _, new, _, _, info = e.step(KEY, state, {a: jnp.array([0.2, 0.0]) for a in e.agents})
    np.testing.assert_array_equal(new.poses, state.poses)  # the filter's zero command was applied
    np.testing.assert_allclose(info["barrier_intervention"], 0.2)
    np.testing.assert_array_equal(info["barrier_status"], [0, 0, 0])  # fleet-wide scalars repeated per robot
    assert "barrier_matrix" not in info  # anything else is not a per-robot quantity


def test_intervention_penalty_charges_what_the_barrier_overrides():
    """A robot driving into the wall is stopped by the barrier and pays intervention_penalty × its override (v and
    ω as fractions of the limits) on top of the scenario's reward; the other, commanded nothing the barrier
    changes, pays nothing."""
    from marlstack.sim.scenarios import navigation as nav
    e = FleetEnv("gritsbot_x", num_agents=2, barrier="unicycle_walls", intervention_penalty=0.5)
    _, state = e.reset(KEY)
    state = state.replace(poses=jnp.asarray([[e.profile.arena.x_max - 0.12, 0.0, 0.0], [-1.0, 0.0, 0.0]],
                                            state.poses.dtype))
    u = jnp.asarray([[0.2, 0.0], [0.0, 0.0]])  # robot 0 full speed at the right wall, robot 1 still
    _, new, r, _, info = jax.jit(e.step_env)(KEY, state, u)  # one compile, not the barrier's solver op by op
    scenario = nav.reward(state.poses, new.poses, state.task, info["collisions"], info["boundary_exits"], e.params)[0]
    override = float(info["barrier_intervention"][0]) / e.profile.max_linear_speed  # ω unchanged: ‖Δ‖ = Δv / v_max
    assert override > 0.3  # the barrier cut the forward speed
    np.testing.assert_allclose(np.asarray(scenario) - np.asarray(r), [0.5 * override, 0.0], rtol=1e-4, atol=1e-6)
