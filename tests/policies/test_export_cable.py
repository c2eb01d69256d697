"""Export of a cable-team policy: observe() + actor + the residual command in one ONNX, parity with JAX.

The checkpoint is an untrained, randomised `cable` run (MAPPO, residual actions) written through the
trainer's public API; the sensors come from `CableEnv.sense` over random-command rollouts, plus edge
cases (load at its goal, goal a half turn away, far goals, fast and spinning bodies, MAVs stacked).
"""
from types import SimpleNamespace

import jax
import numpy as np
import pytest

from marlstack.bench.policy import write_untrained_run
from marlstack.hardware import profile_hash
from marlstack.policies import export_cli, inspect_cli
from marlstack.policies.checkpoint import load_policy
from marlstack.policies.export import rollout_inputs
from marlstack.policies.runtime import PolicyRuntime, SpecMismatch
from marlstack.sim.cable import spec as cable_spec

TOL = 1e-5


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cable")
    run = write_untrained_run(tmp / "run", {"scenario": "cable", "num_seeds": 1, "hidden_sizes": [32, 32],
                                                 # the training shield is not part of the exported graph
                                                 "env_kwargs": {"residual": 0.2}}, noise=0.2)
    path = tmp / "cable.onnx"
    assert export_cli.main([str(run), "-o", str(path)]) == 0
    loaded = load_policy(run)
    env = loaded.make_env()
    policy = jax.jit(lambda s: env.command(s, loaded.act(loaded.params, env.observe(s))))
    return SimpleNamespace(path=path, env=env, policy=policy, runtime=PolicyRuntime(path))


def edge_cases(base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Copies of rollout rows with one sensor pushed to an extreme each."""
    n = 8
    rows = {k: v[:n].copy() for k, v in base.items()}
    out = []
    half_turn = np.diag([-1.0, -1.0, 1.0]).astype(np.float32)

    def variant(**changes):
        out.append({**{k: v.copy() for k, v in rows.items()}, **changes})
    variant(goal_pos=rows["load_pos"].copy(), goal_rot=rows["load_rot"].copy())            # at the goal
    variant(goal_rot=np.einsum("bij,jk->bik", rows["load_rot"], half_turn))                # half a turn away
    variant(goal_pos=np.tile(np.float32([[4.0, -4.0, 5.0]]), (n, 1)))                      # workspace corner
    variant(vel=np.full_like(rows["vel"], 10.0), load_vel=np.full_like(rows["load_vel"], -10.0))
    variant(omega=np.full_like(rows["omega"], 20.0), load_omega=np.full_like(rows["load_omega"], -20.0))
    variant(pos=rows["load_pos"].copy())                                                   # MAV at the load
    variant(others_pos=np.repeat(rows["pos"][:, None], rows["others_pos"].shape[1], 1))  # others on top of me
    variant(past_actions=np.ones_like(rows["past_actions"]))
    return {k: np.concatenate([v[k] for v in out]).astype(np.float32) for k in rows}


def test_cable_export_parity_on_rollouts_and_edge_cases(team):
    rollouts = rollout_inputs(team.env, 20, 50, seed=1)
    assert len(rollouts["pos"]) == 20 * 50 * 3
    for batch in (rollouts, edge_cases(rollouts)):
        got = team.runtime.run(batch)["cmd"]
        want = np.asarray(team.policy(batch))
        assert got.shape == want.shape == (len(batch["pos"]), 5)
        assert np.max(np.abs(got - want)) <= TOL
    # the comparison means something: accelerations vary by metres per second squared across the rollouts
    assert np.all(got.std(0) > 0) and np.all(np.ptp(team.runtime.run(rollouts)["cmd"][:, :3], 0) > 1.0)


def test_cable_spec_follows_the_sensor_contract(team, capsys):
    spec = team.runtime.spec
    n = team.env.num_agents
    assert [e["name"] for e in spec["inputs"]] == list(cable_spec.SENSORS)
    for e in spec["inputs"]:
        s = cable_spec.SENSORS[e["name"]]
        assert e["shape"][1:] == cable_spec.concrete_shape(s["shape"], n, team.env.history)
        assert e["units"] == s["units"] and e["frame"] == s["frame"]
    (cmd,) = spec["outputs"]
    assert cmd["units"] == cable_spec.ACTIONS["units"] and cmd["frames"] == cable_spec.ACTIONS["frame"]
    np.testing.assert_allclose(cmd["high"], team.env.action_limit)
    assert spec["control_rate_hz"] == team.env.profile.control.policy_rate_hz == 100.0
    assert spec["vehicle_kind"] == "mav_team" and spec["scenario"] == "cable"
    PolicyRuntime(team.path, expect_scenario="cable", expect_profile_hash=profile_hash(team.env.profile),
                  expect_rate_hz=100.0, expect_agent="agent_2")
    with pytest.raises(SpecMismatch, match="control rate"):
        PolicyRuntime(team.path, expect_rate_hz=400.0)
    assert inspect_cli.main([str(team.path)]) == 0
    text = capsys.readouterr().out
    assert "cable (mav_team)" in text and "others_pos" in text and "m/s^2" in text
