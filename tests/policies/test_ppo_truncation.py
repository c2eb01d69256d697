"""Time limits are truncations, not terminations (issue 17): GAE bootstraps at a time-out, and the
environments tell a time-out from a terminal state."""
import jax
import jax.numpy as jnp
import numpy as np

from marlstack.policies.envs import ArrayEnv
from marlstack.policies.ppo import Transition, gae

GAMMA, LAM = 0.9, 0.95


def transitions(done, truncated, value, reward=1.0):
    """Time-major (T, E=1, N=1) transitions with the given flags, one value for every step."""
    done = jnp.asarray(done, bool)[:, None]
    t = done.shape[0]
    full = lambda x: jnp.full((t, 1, 1), x, jnp.float32)  # noqa: E731
    return Transition(None, None, None, None, None, full(value), full(reward), done,
                      jnp.asarray(truncated, bool)[:, None], {})


def test_a_time_out_bootstraps_and_a_terminal_state_does_not():
    v = 3.0
    # steps 0..5; an episode ends at step 2 by its time limit, another at step 5 in a terminal state
    traj = transitions([0, 0, 1, 0, 0, 1], [0, 0, 1, 0, 0, 0], v)
    adv, targets = gae(traj, jnp.full((1, 1), 100.0), GAMMA, LAM)
    adv = np.asarray(adv[:, 0, 0])
    # the time-out's own transition carries no signal; the step before it bootstraps from its value
    assert adv[2] == 0.0 and float(targets[2, 0, 0]) == v
    np.testing.assert_allclose(adv[1], 1 + GAMMA * v - v, rtol=1e-6)
    # (treating the time-out as terminal gave 1 - v at step 2 and pulled step 1 towards it)
    # a terminal state ends the return: no bootstrap from the next episode's value (100)
    np.testing.assert_allclose(adv[5], 1 - v, rtol=1e-6)
    np.testing.assert_allclose(adv[4], (1 + GAMMA * v - v) + GAMMA * LAM * (1 - v), rtol=1e-6)


def test_values_of_an_endless_task_cut_by_time_outs_reach_the_discounted_sum():
    """Reward 1 every step, episodes of 5 steps cut by their time limit, one observation throughout:
    the task never ends, so the value is 1 / (1 - gamma) = 10. Fitting the value to the GAE targets
    (value iteration) reaches it; treating the time-outs as terminal converged to 2.7."""
    done = np.tile([0, 0, 0, 0, 1], 8)
    traj = transitions(done, done, 0.0)

    def fit(v, _):
        _, targets = gae(traj._replace(value=jnp.full_like(traj.value, v)), jnp.full((1, 1), v), GAMMA, LAM)
        return targets.mean(), None

    v, _ = jax.jit(lambda: jax.lax.scan(fit, jnp.zeros(()), None, length=300))()
    assert abs(float(v) - 1 / (1 - GAMMA)) < 0.05


class Countdown:
    """The MultiAgentEnv duck type at its smallest: one agent, reward 1, `max_steps` steps, no
    `info["truncated"]` (like JaxMARL's MPE); action 1 ends the episode in a terminal state."""
    agents = ["a"]
    max_steps = 3

    def action_space(self, agent):
        from marlstack.sim.spaces import Discrete
        return Discrete(2)

    def reset(self, key):
        return {"a": jnp.zeros(1)}, jnp.zeros((), jnp.int32)

    def step(self, key, state, actions):
        state = state + 1
        done = (state >= self.max_steps) | (actions["a"] == 1)
        state = jnp.where(done, 0, state)
        return {"a": jnp.zeros(1)}, state, {"a": jnp.ones(())}, {"a": done, "__all__": done}, {}


def run_flags(env, actions):
    aenv = ArrayEnv(env)
    _, _, log = aenv.reset(jax.random.PRNGKey(0))
    flags = []
    for i, a in enumerate(actions):
        _, _, log, _, done, out = aenv.step(jax.random.PRNGKey(i), log, a)
        flags.append((bool(done), bool(out["truncated"])))
    return flags


def test_array_env_tells_time_outs_from_terminal_states_without_the_envs_flag():
    a = lambda x: jnp.asarray([x])  # noqa: E731
    assert run_flags(Countdown(), [a(0), a(0), a(0), a(0), a(1)]) == [
        (False, False), (False, False), (True, True), (False, False), (True, False)]


def test_fleet_env_flags_a_time_out_but_not_a_solved_episode():
    from marlstack.sim.fleet import FleetEnv
    env = FleetEnv(num_agents=2, max_steps=2)
    step = jax.jit(env.step)
    obs, state = env.reset(jax.random.PRNGKey(0))
    still = {a: jnp.zeros(2) for a in env.agents}
    _, state, _, dones, info = step(jax.random.PRNGKey(1), state, still)
    assert not dones["__all__"] and not info["truncated"].any()
    _, state, _, dones, info = step(jax.random.PRNGKey(2), state, still)
    assert dones["__all__"] and info["truncated"].all()
    # robots put on their goals: the episode is solved (a terminal state), not truncated
    state = state.replace(poses=state.poses.at[:, :2].set(state.task.goals))
    _, _, _, dones, info = step(jax.random.PRNGKey(3), state, still)
    assert dones["__all__"] and not info["truncated"].any()
