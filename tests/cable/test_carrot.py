"""The classical carrot controller, feasible goals, the held-success rule and residual commands."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marlstack.sim.cable import carrot
from marlstack.sim.cable.env import CableEnv, classical
from marlstack.sim.cable.rotation import quat_from_euler, quat_to_rot


@pytest.fixture(scope="module")
def env():
    return CableEnv("mav_corl25", 3, task="random", residual=0.3)


@pytest.fixture(scope="module")
def states(env):
    """256 random resets, compiled once (an un-jitted reset runs op by op: seconds of CPU per call)."""
    return jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), 256))[1]


def one(states, i):
    return jax.tree.map(lambda x: x[i], states)


def test_spd_solve_matches_numpy():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(5, 6, 6))
    a = m @ np.swapaxes(m, -1, -2) + 0.1 * np.eye(6)
    b = rng.normal(size=(5, 6))
    np.testing.assert_allclose(carrot.spd_solve(jnp.asarray(a), jnp.asarray(b)), np.linalg.solve(a, b[..., None])[..., 0],
                               rtol=1e-3, atol=1e-4)


def test_equilibrium_places_balance_the_load(env):
    """At the level start pose the places are the resting hover's (up to the hook's tilt); at a tilted
    pose the cable forces the places imply hold the load's weight with zero torque."""
    c = env.team_constants
    level = carrot.places(jnp.asarray(env.hover.load_pos, jnp.float32), jnp.eye(3), c)
    np.testing.assert_allclose(level, env.hover.pos, atol=0.01)
    rot = quat_to_rot(quat_from_euler(0.4, -0.3, 1.0))
    pos = jnp.asarray([0.2, -0.1, 1.4])
    mavs = carrot.places(pos, rot, c)
    arms = (np.asarray(rot) @ c.arms.T).T
    cable = np.asarray(mavs) - [0, 0, c.hook] - (np.asarray(pos) + arms)
    direction = cable / np.linalg.norm(cable, axis=1, keepdims=True)
    # tensions that balance the weight along these directions; then the torque about the load centre vanishes
    t = np.linalg.solve(direction.T, [0.0, 0.0, c.load_weight])
    assert np.all(t > 0)
    torque = sum(np.cross(arms[i], t[i] * direction[i]) for i in range(3))
    assert np.abs(torque).max() < 1e-3 * c.load_weight


def test_random_goals_are_feasible_and_rejection_is_reported(env, states):
    from marlstack.policies.evaluate_cable import goal_rejection_rate
    rate = goal_rejection_rate(env, samples=2048)
    assert 0.02 < rate < 0.3  # the box holds some poses the cables cannot reach (measured: ~0.09)
    assert bool(np.all(env.goal_feasible(states.goal_pos, states.goal_quat)))
    # a load pose too close to the ground is refused, the level start pose is kept
    assert not bool(env.goal_feasible(jnp.asarray([0.0, 0.0, 0.2]), jnp.asarray([1.0, 0, 0, 0])))
    assert bool(env.goal_feasible(jnp.asarray(env.hover.load_pos, jnp.float32), jnp.asarray([1.0, 0, 0, 0])))


def test_success_needs_the_goal_held_for_success_hold(env, states):
    """A team resting at its goal succeeds exactly after hold_steps steps (which ends the episode)."""
    state = one(states, 1)
    state = state.replace(goal_pos=state.bodies.load_pos, goal_quat=state.bodies.load_quat)
    step = jax.jit(env.step)
    zero = jnp.zeros((3, 5))
    for i in range(env.hold_steps):
        _, nxt, rew, dones, info = step(jax.random.PRNGKey(2), state, zero)
        if i < env.hold_steps - 1:
            assert not bool(dones["__all__"]) and not bool(info["success"][0])
            state = nxt
    assert bool(dones["__all__"]) and bool(info["success"].all())
    assert float(rew["agent_0"]) > env.profile.reward.success - 1.0


def test_residual_command_adds_the_classical_controller_and_clips(env, states):
    state = one(states, 3)
    sensors = env.sense(state)
    base = classical(sensors, env.team_constants)
    act = jnp.ones((3, 5)) * 0.5
    far = float(np.linalg.norm(state.goal_pos - state.bodies.load_pos)) > env.team_constants.fade_position
    assert far  # this reset's goal is far enough for the full correction
    cmd = env.command(sensors, act)
    np.testing.assert_allclose(cmd[:, :3], np.clip(base + 0.5, -5.0, 5.0), atol=1e-6)
    np.testing.assert_allclose(cmd[:, 3:], 0.5)
    # at the goal the correction fades out: the classical controller alone makes the final approach
    at_goal = {**sensors, "goal_pos": sensors["load_pos"], "goal_rot": sensors["load_rot"]}
    np.testing.assert_allclose(env.command(at_goal, act)[:, 3:], 0.0, atol=1e-3)
    huge = env.command(sensors, jnp.full((3, 5), 100.0))
    np.testing.assert_allclose(huge, np.broadcast_to(env.action_limit, (3, 5)))
    assert env.action_space("agent_0").high[0] == pytest.approx(0.3 * env.action_limit[0])
    with pytest.raises(ValueError, match="residual"):
        CableEnv("mav_corl25", 3, residual=-1.0)
