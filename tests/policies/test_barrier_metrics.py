"""Issue 14: how often and how much the barrier changed the policy's commands, per PPO update (metrics.csv,
progress bar) and in `marlstack eval`, read from the env's per-agent `info["barrier_intervention"]`."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marlstack.policies import ppo
from marlstack.policies.checkpoint import FILENAME, load_policy, make_meta, save
from marlstack.policies.config import build_config
from marlstack.policies.envs import BARRIER_TOL, ArrayEnv
from marlstack.policies.evaluate import evaluate
from marlstack.policies.evaluate_cable import summarise
from marlstack.policies.run_dir import METRIC_COLUMNS
from marlstack.sim.spaces import Box


class Clipped:
    """Two agents, a 'barrier' that clips each command to [-0.5, 0.5] (and adds `shift`) and reports
    ‖safe − command‖."""
    agents = ["a", "b"]
    max_steps = 4

    def __init__(self, barrier: bool = True, shift: float = 0.0):
        self.barrier = "clip" if barrier else None
        self.shift = shift

    def action_space(self, agent):
        return Box.make(-1.0, 1.0, (2,))

    def reset(self, key):
        return {a: jnp.zeros(2) for a in self.agents}, jnp.zeros((), jnp.int32)

    def step(self, key, state, actions):
        u = jnp.stack([actions[a] for a in self.agents])
        safe = jnp.clip(u, -0.5, 0.5) + jnp.asarray([self.shift, 0.0])
        state = state + 1
        done = state >= self.max_steps
        info = {"barrier_intervention": jnp.linalg.norm(u - safe, axis=-1)} if self.barrier else {}
        return ({a: safe[i] for i, a in enumerate(self.agents)}, jnp.where(done, 0, state),
                {a: -jnp.sum(safe[i] ** 2) for i, a in enumerate(self.agents)}, {a: done for a in self.agents} | {"__all__": done},
                info)


def test_each_step_counts_the_changed_agents_and_their_change():
    aenv = ArrayEnv(Clipped())
    _, _, log = jax.jit(aenv.reset)(jax.random.PRNGKey(0))
    # agent a: 0.8 -> 0.5 (changed by 0.3); agent b: inside the limits, and a change below the tolerance
    out = jax.jit(aenv.step)(jax.random.PRNGKey(1), log, jnp.asarray([[0.8, 0.0], [0.5 + BARRIER_TOL / 2, 0.2]]))[-1]
    assert float(out["barrier_changed"]) == 1.0
    np.testing.assert_allclose(float(out["barrier_change"]), 0.3, rtol=1e-5)
    no_barrier = jax.eval_shape(ArrayEnv(Clipped(barrier=False)).step, jax.random.PRNGKey(1), log, jnp.ones((2, 2)))
    assert "barrier_changed" not in no_barrier[-1]


def test_update_metrics_are_the_share_of_agent_steps_and_the_mean_change():
    # a rollout of 2 steps x 3 envs x 2 agents = 12 agent-steps, 3 of them changed by 0.2, 0.4 and 0.9
    info = {"barrier_changed": jnp.asarray([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]]),
            "barrier_change": jnp.asarray([[0.2, 0.0, 0.0], [1.3, 0.0, 0.0]])}
    m = ppo.barrier_metrics(info, num_agents=2)
    assert float(m["barrier_rate"]) == pytest.approx(3 / 12) and float(m["barrier_change"]) == pytest.approx(0.5)
    none_changed = ppo.barrier_metrics({k: v * 0 for k, v in info.items()}, num_agents=2)
    assert float(none_changed["barrier_rate"]) == 0.0 and math.isnan(float(none_changed["barrier_change"]))
    assert all(math.isnan(float(v)) for v in ppo.barrier_metrics({}, num_agents=2).values())


def test_a_rollout_logs_the_barrier_and_eval_reports_it(tmp_path, monkeypatch):
    """The trainer's own rollout on `Clipped` (no PPO epochs compiled), then `evaluate` of the same policy."""
    cfg = build_config({"scenario": "navigation", "num_agents": 2, "barrier": "none", "num_envs": 4, "num_steps": 4,
                        "num_minibatches": 1, "hidden_sizes": [8], "log_std_init": 0.0})
    monkeypatch.setattr(ppo, "make_env", lambda cfg: Clipped())
    trainer = ppo.Trainer(cfg)
    runner = jax.jit(trainer.init)(jax.random.PRNGKey(0))
    traj = jax.jit(lambda r: jax.lax.scan(trainer._rollout_step, r, None, length=cfg.num_steps)[1])(runner)
    m = {k: float(v) for k, v in ppo.barrier_metrics(traj.info, trainer.n).items()}
    # actions ~ N(0, 1) squashed into [-1, 1]: some but not all agent-steps leave [-0.5, 0.5]
    assert 0.0 < m["barrier_rate"] < 1.0 and 0.0 < m["barrier_change"] <= math.sqrt(2) / 2
    assert {"barrier_rate", "barrier_change"} <= set(METRIC_COLUMNS)  # metrics.csv, the progress bar's source
    save(tmp_path / FILENAME, make_meta(cfg, trainer.spec, "clipped", 0, 0), jax.tree.map(lambda a: a[None], runner))
    # the deterministic (mean) actions of an untrained policy stay inside the limits: every change is the shift
    result = evaluate(load_policy(tmp_path), episodes=4, env=Clipped(shift=0.1))
    assert result["barrier_rate"] == 1.0 and result["barrier_change"] == pytest.approx(0.1, rel=1e-5)


@pytest.mark.parametrize("make", ["fleet", "cable"])
def test_the_envs_report_the_barrier_per_agent(make):
    """The info key the trainer reads, per agent, from both barrier-filtered envs (traced, not compiled)."""
    if make == "fleet":
        from marlstack.sim.fleet import FleetEnv
        env = FleetEnv(num_agents=3, barrier="unicycle_walls")
    else:
        from marlstack.sim.cable.env import CableEnv
        env = CableEnv("mav_corl25", 3, barrier=True)
    _, state = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
    actions = {a: jax.ShapeDtypeStruct(env.action_space(a).shape, jnp.float32) for a in env.agents}
    info = jax.eval_shape(env.step, jax.random.PRNGKey(1), state, actions)[-1]
    assert ArrayEnv(env).has_barrier and info["barrier_intervention"].shape == (3,)


def test_cable_eval_summary_reports_the_mav_barrier():
    episodes = {"success": np.array([1, 0]), "crashed": np.array([0, 0]), "crash_cause": np.array([0, 0]),
                "steps": np.array([10.0, 30.0]), "position_error": np.zeros(2), "orientation_error": np.zeros(2),
                "slack_steps": np.zeros(2), "effort": np.zeros(2), "goal_tilt_deg": np.array([10.0, 40.0])}
    assert "barrier_rate" not in summarise(episodes, 0.01)  # no barrier in the loop
    with_barrier = {**episodes, "barrier_changed": np.array([3.0, 5.0]), "barrier_change": np.array([1.5, 2.5]),
                    "agent_steps": np.array([30.0, 90.0])}
    s = summarise(with_barrier, 0.01)
    assert s["barrier_rate"] == pytest.approx(8 / 120) and s["barrier_change"] == pytest.approx(0.5)
