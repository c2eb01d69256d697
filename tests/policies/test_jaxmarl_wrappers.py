"""JaxMARL's own wrappers work around our environments out of the box (`pip install marlstack[jaxmarl]`)."""
import jax
import jax.numpy as jnp


def test_jaxmarl_log_wrapper_runs_our_fleet_env_to_an_episode_end():
    from jaxmarl.wrappers.baselines import LogWrapper   # gymnax underneath needs `six` (pinned in the extra)

    from marlstack.policies.config import build_config
    from marlstack.policies.envs import make_env
    env = make_env(build_config({"scenario": "navigation", "max_steps": 5}))
    wrapped = LogWrapper(env)
    reset, step = jax.jit(wrapped.reset), jax.jit(wrapped.step)
    _, state = reset(jax.random.PRNGKey(0))
    zero = {a: jnp.zeros(env.action_space(a).shape) for a in env.agents}
    total = 0.0
    for t in range(5):
        _, state, rew, done, info = step(jax.random.PRNGKey(t + 1), state, zero)
        total += float(sum(rew[a] for a in env.agents)) / env.num_agents
    assert bool(done["__all__"]) and bool(info["returned_episode"].all())
    # the wrapper's episode bookkeeping agrees with the rewards we handed it
    assert jnp.allclose(info["returned_episode_returns"], total, atol=1e-4)
    assert int(info["returned_episode_lengths"][0]) == 5
