"""The cable environment: JaxMARL contract, tasks, failures, vmap, determinism, rigid cables, pictures."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from marlstack.sim.cable.env import ACTION_DIM, CableEnv
from marlstack.sim.cable.render import animate, plot_trajectory, record
from marlstack.sim.cable.rotation import quat_to_rot
from marlstack.sim.cable.scripted import formation_actions


@pytest.fixture(scope="module")
def env():
    return CableEnv("mav_corl25", 3, task="random", world_state=True)


@pytest.fixture(scope="module")
def fns(env):
    return jax.jit(env.reset), jax.jit(env.step)


@pytest.fixture(scope="module")
def resets(env):
    """256 resets at once, compiled once for the module (un-jitted, `vmap` runs reset op by op: ~14 s of CPU)."""
    return jax.jit(jax.vmap(env.reset))


def _acts(env, arr):
    return {a: arr[i] for i, a in enumerate(env.agents)}


def test_reset_step_contract(env, fns):
    reset, step = fns
    obs, state = reset(jax.random.PRNGKey(0))
    assert set(obs) == {*env.agents, "world_state"} and env.agents == ["agent_0", "agent_1", "agent_2"]
    for a in env.agents:
        assert obs[a].shape == env.observation_space(a).shape == (env.obs_dim,)
        assert env.action_space(a).shape == (ACTION_DIM,)
    assert obs["world_state"].shape == (3, env.world_state_dim)
    np.testing.assert_array_equal(env.action_space("agent_0").high, [5.0, 5.0, 5.0, 3.0, 3.0])
    acts = {a: env.action_space(a).sample(k) for a, k in zip(env.agents, jax.random.split(jax.random.PRNGKey(1), 3))}
    obs2, state2, rew, dones, info = step(jax.random.PRNGKey(2), state, acts)
    assert set(rew) == set(env.agents) and set(dones) == {*env.agents, "__all__"}
    assert all(np.isfinite(float(r)) for r in rew.values()) and not bool(dones["__all__"])
    for k in ("tension", "slack", "success", "failed", "position_error", "orientation_error", "truncated"):
        assert info[k].shape == (3,)
    assert not bool(info["truncated"].any())
    # the last step of the time limit is a time-out (the trainer bootstraps there), not a terminal state
    _, _, _, end, info_end = step(jax.random.PRNGKey(2), state.replace(step=state.step + env.max_steps - 1), acts)
    assert bool(end["__all__"]) and bool(info_end["truncated"].all()) and int(info_end["crash_cause"][0]) == 0
    assert int(state2.step) == 1 and not np.allclose(obs2["agent_0"], obs["agent_0"])
    # the previous normalised action is the last part of each observation (history = 1)
    np.testing.assert_allclose(obs2["agent_1"][-ACTION_DIM:], acts["agent_1"] / env.action_limit, rtol=1e-5)


def test_observation_sees_the_other_mavs_positions_only(env, fns):
    """Moving MAV 1 changes MAV 0's observation only where the other MAVs' relative positions are (and the
    classical controller's command does not depend on them); a neighbour's velocity is not observed."""
    from marlstack.sim.cable import spec
    reset, _ = fns
    _, state = reset(jax.random.PRNGKey(0))
    moved = state.replace(bodies=state.bodies.replace(pos=state.bodies.pos.at[1].add(0.3)))
    a, b = env.observations(state), env.observations(moved)
    names = [n for n, _ in spec.OBS_LAYOUT]
    ends = np.cumsum(spec.layout_sizes(env.num_agents, env.history))
    k = names.index("others_pos_minus_pos")
    changed = np.flatnonzero(a[0] != b[0])
    assert changed.size == 3 and changed.min() >= ends[k - 1] and changed.max() < ends[k]
    np.testing.assert_allclose(b[0][ends[k - 1]:ends[k - 1] + 3] - a[0][ends[k - 1]:ends[k - 1] + 3], 0.3, atol=1e-5)
    spun = state.replace(bodies=state.bodies.replace(vel=state.bodies.vel.at[1].add(1.0)))
    np.testing.assert_array_equal(env.observations(spun)[0], a[0])
    assert not np.allclose(a[1], b[1])


def test_ground_contact_terminates_and_auto_resets(env, fns):
    reset, step = fns
    _, state = reset(jax.random.PRNGKey(0))
    drop = jnp.array([0.0, 0.0, 0.01 - float(state.bodies.load_pos[2])])  # the whole team, load on the floor
    crashed = state.replace(bodies=state.bodies.replace(load_pos=state.bodies.load_pos + drop,
                                                        pos=state.bodies.pos + drop))
    zero = _acts(env, jnp.zeros((3, ACTION_DIM)))
    obs, new, rew, dones, _ = step(jax.random.PRNGKey(3), crashed, zero)
    assert bool(dones["__all__"]) and int(new.step) == 0
    t = env.profile.task
    assert abs(float(new.bodies.load_pos[2]) - t.start_height) <= t.start_position_range / 2 + 1e-6
    assert float(rew["agent_0"]) < -env.profile.reward.termination + 2.0
    _, _, _, dones, _ = step(jax.random.PRNGKey(3), state, zero)
    assert not bool(dones["__all__"])


def test_tasks_and_random_goals_stay_in_the_box(env, resets):
    keys = jax.random.split(jax.random.PRNGKey(4), 256)
    _, states = resets(keys)
    t = env.profile.task
    start = np.asarray(states.bodies.load_pos)
    assert np.ptp(start[:, 0]) > t.start_position_range  # the team starts at random places
    offset = np.asarray(states.goal_pos) - start
    assert np.all(np.abs(offset) <= t.goal_position_range + 1e-6) and np.abs(offset).max() > 0.5
    assert bool(np.all(env.goal_feasible(states.goal_pos, states.goal_quat)))
    rot = np.asarray(quat_to_rot(states.goal_quat))
    roll, pitch = np.arctan2(rot[:, 2, 1], rot[:, 2, 2]), np.arcsin(-rot[:, 2, 0])
    assert np.all(np.abs(np.degrees([roll, pitch])) <= t.goal_tilt_range + 1e-3)
    assert np.ptp(np.arctan2(rot[:, 1, 0], rot[:, 0, 0])) > math.pi  # yaw spans the circle
    move = CableEnv("mav_corl25", 3, task="move")
    _, s = move.reset(jax.random.PRNGKey(0))
    np.testing.assert_allclose(s.goal_pos, np.array(t.move_offset) + [0, 0, t.start_height], atol=1e-6)


def test_thrust_loss_failure(env, fns):
    """The failed MAV's rotors spin down and its cable is released; the others still fly."""
    reset, step = fns
    _, state = reset(jax.random.PRNGKey(0))
    state = state.replace(fail_agent=jnp.int32(1), fail_step=jnp.int32(2))
    zero = _acts(env, jnp.zeros((3, ACTION_DIM)))
    _, state, _, _, info = step(jax.random.PRNGKey(5), state, zero)
    assert not bool(info["failed"].any())
    for _ in range(8):
        _, state, _, _, info = step(jax.random.PRNGKey(5), state, zero)
    np.testing.assert_array_equal(info["failed"], [False, True, False])
    assert float(info["tension"][1]) == 0.0 and float(info["tension"][0]) > 1.0
    assert float(state.bodies.thrust[1].max()) < 0.5 * float(state.bodies.thrust[0].max())
    failing = CableEnv("mav_corl25", 3, failure=True)
    fails = jax.jit(jax.vmap(failing.reset))(jax.random.split(jax.random.PRNGKey(6), 32))[1]
    assert set(np.asarray(fails.fail_agent).tolist()) == {0, 1, 2}
    assert np.all((fails.fail_step >= 0.2 * failing.max_steps) & (fails.fail_step <= 0.8 * failing.max_steps))


def test_vmap_256_envs_is_deterministic_and_matches_single_env(env, fns, resets):
    _, step = fns
    n = 256
    keys = jax.random.split(jax.random.PRNGKey(7), n)
    _, states = resets(keys)
    acts = jax.random.uniform(jax.random.PRNGKey(8), (n, 3, ACTION_DIM), minval=-1, maxval=1) * env.action_limit
    batched = jax.jit(jax.vmap(env.step))

    def roll(s):
        for i in range(3):
            _, s, rew, _, _ = batched(jax.random.split(jax.random.PRNGKey(i), n), s, acts)
        return s, rew
    s1, r1 = roll(states)
    s2, r2 = roll(states)
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2)):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(np.asarray(r1["agent_0"])).all() and np.ptp(np.asarray(r1["agent_0"])) > 0
    # environment 5 of the batch equals the same environment stepped alone
    single = jax.tree.map(lambda x: x[5], states)
    for i in range(3):
        _, single, _, _, _ = step(jax.random.split(jax.random.PRNGKey(i), n)[5], single, _acts(env, acts[5]))
    np.testing.assert_allclose(single.bodies.pos, s1.bodies.pos[5], atol=1e-5)


@pytest.fixture(scope="module")
def rigid_flight():
    """Three seconds of the 'move' task with rigid-taut cables under the scripted formation controller."""
    rigid = CableEnv("mav_corl25", 3, task="move", cable_model="rigid")
    _, state = rigid.reset(jax.random.PRNGKey(0))
    return rigid, record(rigid, state, formation_actions, 300)


def test_rigid_taut_cables_keep_their_length(rigid_flight):
    env, traj = rigid_flight
    length = np.linalg.norm(traj["top"] - traj["bottom"], axis=-1)
    assert np.abs(length - env.profile.cable.length).max() <= 1e-3
    assert np.linalg.norm(traj["load_pos"][-1] - traj["load_pos"][0]) > 0.5  # the team really moved


def test_trajectory_png_and_gif(rigid_flight, tmp_path):
    _, traj = rigid_flight
    short = {k: (v[::30] if v.ndim > 1 else v) for k, v in traj.items()}
    png = plot_trajectory(short, tmp_path / "t.png")
    gif = animate(short, tmp_path / "t.gif")
    assert Image.open(png).size[0] > 300
    with Image.open(gif) as im:
        assert im.n_frames == len(short["pos"])


def test_spec_and_scenarios_match_the_env(env, fns):
    from marlstack.sim.cable import spec
    from marlstack.sim.cable.scenarios import SCENARIOS, make
    _, state = fns[0](jax.random.PRNGKey(0))
    sensors = env.sense(state)
    assert set(sensors) == set(spec.SENSORS)
    for name, s in spec.SENSORS.items():
        assert list(sensors[name].shape[1:]) == spec.concrete_shape(s["shape"], env.num_agents, env.history), name
    assert sum(spec.layout_sizes(env.num_agents, env.history)) == env.obs_dim
    assert len(spec.ACTIONS["names"]) == ACTION_DIM
    assert {make(name).task for name in SCENARIOS} == {"hover", "move", "random"}
    with pytest.raises(ValueError, match="unknown cable scenario"):
        make("cable_loop")
