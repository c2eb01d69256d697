"""Export: an untrained (randomised) checkpoint → policy.onnx; parity with JAX, checker, metadata, refusal.

The checkpoint comes from the trainer's public API (init + save, no training); its weights and
observation statistics are randomised so the actions span the whole action range.
"""
import collections
import datetime
import itertools
import json
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import pytest

from marlstack.bench.policy import write_untrained_run
from marlstack.hardware import load_profile, profile_hash
from marlstack.policies import export_cli, inspect_cli
from marlstack.policies.checkpoint import load_policy
from marlstack.policies.export import IR_VERSION, OPSET, ExportError, check_obs_dim, choose_agent
from marlstack.policies.runtime import PolicyRuntime, SpecMismatch, load_spec
from marlstack.policies.spec import SPEC_KEY, dumps

TOL = 1e-5  # issue 5: ONNX command == JAX deterministic action to 1e-5 (physical units)
PROFILE = "gritsbot_x"
# Weight noise of the randomised checkpoint: actions cover the range, and the network stays as well
# conditioned as a trained one (at 0.5, float32 JAX itself is 1.5e-5 away from float64).
NOISE = 0.2


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """A navigation run (N = 4) exported through the CLI, with its LoadedPolicy and environment."""
    tmp = tmp_path_factory.mktemp("mlp")
    run = write_untrained_run(tmp / "run", {"scenario": "navigation", "num_agents": 4, "profile": PROFILE}, noise=NOISE)
    path = tmp / "policy.onnx"
    assert export_cli.main([str(run), "-o", str(path)]) == 0
    loaded = load_policy(run)
    env = loaded.make_env()
    policy = jax.jit(lambda s: loaded.act(loaded.params, env.scenario.observe(s, env.params)))
    return SimpleNamespace(path=path, loaded=loaded, env=env, policy=policy, runtime=PolicyRuntime(path))


@pytest.fixture(scope="module")
def rollouts(mlp):
    """10,000 sensor samples: 50 fleets of 4 robots, 50 random-action steps each (fleet-major, then time)."""
    return rollout_sensors(mlp.env, jax.random.PRNGKey(1), 50, 50)


def rollout_sensors(env, key, num_envs: int, num_steps: int) -> dict[str, np.ndarray]:
    """Every robot's sensors over random-action rollouts: name -> (num_envs * num_steps * N, ...)."""
    space = env.action_space(env.agents[0])
    low, high = jnp.asarray(space.low, jnp.float32), jnp.asarray(space.high, jnp.float32)

    def step(state, k):
        k_act, k_env = jax.random.split(k)
        u = jax.random.uniform(k_act, (env.num_agents, 2), jnp.float32, low, high)
        state = env.step(k_env, state, u)[1]
        return state, env.sense(state)

    def run(k):
        k0, k1 = jax.random.split(k)
        return jax.lax.scan(step, env.reset(k0)[1], jax.random.split(k1, num_steps))[1]

    out = jax.jit(jax.vmap(run))(jax.random.split(key, num_envs))
    return {n: np.asarray(v, np.float32).reshape(-1, *v.shape[3:]) for n, v in out.items()}


def edge_cases(profile, num_others: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Robots on the walls and corners, headings at and near ±π, at their goal, neighbours on top of them or tied."""
    a = profile.arena
    xs, ys = [a.x_min, 0.0, a.x_max], [a.y_min, 0.0, a.y_max]
    headings = [-np.pi, -np.pi + 1e-6, -np.pi / 2, 0.0, np.pi / 2, np.pi - 1e-6, np.pi]
    pose, others, goal = [], [], []
    for x, y, th, g, o in itertools.product(xs, ys, headings, range(3), range(3)):
        p = np.array([x, y, th])
        corner = np.array([a.x_max if x <= 0 else a.x_min, a.y_max if y <= 0 else a.y_min])
        goal.append([p[:2], rng.uniform([a.x_min, a.y_min], [a.x_max, a.y_max]), corner][g])
        random = np.c_[rng.uniform(a.x_min, a.x_max, num_others), rng.uniform(a.y_min, a.y_max, num_others),
                       rng.uniform(-np.pi, np.pi, num_others)]
        ring = p + np.c_[0.3 * np.cos(np.arange(num_others)), 0.3 * np.sin(np.arange(num_others)), np.zeros(num_others)]
        others.append([random, np.repeat(p[None], num_others, 0), ring][o])  # random, on top of me, all equally far
        pose.append(p)
    return {k: np.asarray(v, np.float32) for k, v in (("pose", pose), ("others", others), ("goal", goal))}


def test_parity_on_rollouts_and_edge_cases(mlp, rollouts):
    assert len(rollouts["pose"]) == 10_000
    edges = edge_cases(mlp.env.profile, mlp.env.num_agents - 1, np.random.default_rng(0))
    cmds = []
    for batch in (rollouts, edges):
        got = mlp.runtime.run(batch)["cmd"]
        want = np.asarray(mlp.policy(batch))
        assert got.shape == want.shape == (len(batch["pose"]), 2)
        assert np.max(np.abs(got - want)) <= TOL
        cmds.append(got)
    # the comparison means something: over the rollouts, both command components vary across their range
    limits = np.array([mlp.env.profile.max_linear_speed, mlp.env.profile.max_angular_speed])
    assert np.all(cmds[0].std(0) > 0.1 * limits) and np.all(np.ptp(cmds[0], 0) > 0.5 * limits)


def test_one_call_serves_many_agents_like_many_calls(mlp, rollouts):
    sensors = {k: v[:12] for k, v in rollouts.items()}
    together = mlp.runtime.run(sensors)["cmd"]
    one = PolicyRuntime(mlp.path, batch_size=1)  # the onboard node's session: shapes folded at load
    alone = np.concatenate([one.run({k: v[i:i + 1] for k, v in sensors.items()})["cmd"] for i in range(12)])
    np.testing.assert_allclose(together, alone, rtol=0, atol=TOL)  # other Gemm kernels, same result


def test_checker_full_check_versions_and_dynamic_batch(mlp):
    model = onnx.load(str(mlp.path))
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == IR_VERSION <= 9
    assert {(i.domain, i.version) for i in model.opset_import} == {("", OPSET)}
    for value in model.graph.input:
        assert value.type.tensor_type.shape.dim[0].dim_param == "B"
    assert [o.name for o in model.graph.output] == ["cmd"]


def test_metadata_round_trip(mlp):
    model = onnx.load(str(mlp.path))
    props = {p.key: p.value for p in model.metadata_props}
    spec = load_spec(mlp.path)
    assert props[SPEC_KEY] == dumps(spec) and json.loads(props[SPEC_KEY]) == spec
    profile = load_profile(PROFILE)
    assert spec["scenario"] == "navigation" and spec["vehicle_kind"] == "ground"
    assert spec["profile"] == {"name": PROFILE, "hash": profile_hash(profile)}
    assert spec["control_rate_hz"] == pytest.approx(1 / profile.dt)
    assert spec["training_run_id"] == mlp.loaded.run_id
    assert spec["agent"] == {"role": "shared", "agents": list(mlp.loaded.agent_names)}
    assert [(e["name"], e["shape"]) for e in spec["inputs"]] == [("pose", ["B", 3]), ("others", ["B", 3, 3]),
                                                                 ("goal", ["B", 2])]
    assert spec["inputs"][0]["units"] == ["m", "m", "rad"] and spec["inputs"][0]["frame"] == "world"
    cmd = spec["outputs"][0]
    assert cmd["name"] == "cmd" and cmd["units"] == ["m/s", "rad/s"] and cmd["shape"] == ["B", 2]
    assert cmd["high"] == [profile.max_linear_speed, profile.max_angular_speed]
    assert spec["recurrent"] is None and spec["git_revision"] and spec["marlstack_version"]
    assert datetime.datetime.fromisoformat(spec["created"]).tzinfo is not None


def test_model_for_another_scenario_or_profile_is_refused(mlp, tmp_path):
    here = dict(expect_scenario="navigation", expect_profile_hash=profile_hash(load_profile(PROFILE)),
                expect_rate_hz=1 / load_profile(PROFILE).dt)
    PolicyRuntime(mlp.path, **here)  # the matching configuration loads
    other_hash = profile_hash(load_profile("rps_v1"))
    with pytest.raises(SpecMismatch, match=f"expected {other_hash}, found {here['expect_profile_hash']}"):
        PolicyRuntime(mlp.path, **{**here, "expect_profile_hash": other_hash})
    # a file whose spec says another scenario and profile, as if exported elsewhere
    model = onnx.load(str(mlp.path))
    spec = load_spec(mlp.path)
    spec.update(scenario="formation", profile={"name": "rps_v1", "hash": other_hash})
    onnx.helper.set_model_props(model, {SPEC_KEY: dumps(spec)})
    onnx.save(model, str(tmp_path / "other.onnx"))
    with pytest.raises(SpecMismatch) as err:
        PolicyRuntime(tmp_path / "other.onnx", **here)
    assert "scenario: expected 'navigation', found 'formation'" in str(err.value)
    assert "rps_v1" in str(err.value)


def test_agent_specific_policies_need_an_agent():
    names = ("agent_0", "agent_1")
    with pytest.raises(ExportError, match="--agent"):
        choose_agent(SimpleNamespace(agent_names=names, config={"agent_id": True}), None)
    with pytest.raises(ExportError, match="--agent"):
        choose_agent(SimpleNamespace(agent_names=names, config={"roles": [0, 1]}), None)
    assert choose_agent(SimpleNamespace(agent_names=names, config={"roles": [0, 1]}), "agent_1") == (1, "agent_1", ["agent_1"])
    assert choose_agent(SimpleNamespace(agent_names=names, config={}), None) == (0, "shared", list(names))
    with pytest.raises(ExportError, match="agent_7"):
        choose_agent(SimpleNamespace(agent_names=names, config={}), "agent_7")


def test_checkpoint_from_an_older_observe_is_refused(mlp):
    stale = SimpleNamespace(obs_dim=mlp.loaded.obs_dim + 4, scenario="navigation")
    with pytest.raises(ExportError, match=f"trained on {mlp.loaded.obs_dim + 4}-dim observations .* now observes "
                                          f"{mlp.loaded.obs_dim}"):
        check_obs_dim(stale, mlp.env, 0)
    check_obs_dim(mlp.loaded, mlp.env, 0)


def test_export_cli_errors_are_one_line(tmp_path, capsys):
    assert export_cli.main([str(tmp_path / "missing"), "-o", str(tmp_path / "p.onnx")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("marlstack export:") and "missing" in err and "\n" not in err
    assert not (tmp_path / "p.onnx").exists()


def test_inspect_prints_spec_inputs_outputs_and_graph(mlp, capsys):
    assert inspect_cli.main([str(mlp.path)]) == 0
    out = capsys.readouterr().out
    for text in ("navigation", PROFILE, profile_hash(load_profile(PROFILE)), "pose", "(B, 3, 3)", "cmd",
                 "[m/s, rad/s]", "ir_version 9", "'ai.onnx': 20"):
        assert text in out, text
    model = onnx.load(str(mlp.path))
    ops = collections.Counter(n.op_type for n in model.graph.node)
    assert f"{len(model.graph.node)} nodes" in out and all(f"{op} {n}" in out for op, n in ops.items())
    assert inspect_cli.main([str(mlp.path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["spec"] == load_spec(mlp.path) and doc["graph"]["ops"] == dict(ops)


def test_recurrent_policy_carries_its_hidden_state(tmp_path, rollouts):
    run = write_untrained_run(tmp_path / "run", {"scenario": "navigation", "num_agents": 4, "recurrent": True,
                                                 "gru_size": 8}, noise=NOISE)
    path = tmp_path / "gru.onnx"
    assert export_cli.main([str(run), "-o", str(path)]) == 0
    loaded = load_policy(run)
    env = loaded.make_env()
    rt = PolicyRuntime(path)
    assert rt.recurrent and rt.spec["recurrent"] == {"input": "hidden", "output": "hidden_next", "size": 8}
    step = jax.jit(lambda s, h: loaded.act(loaded.params, env.scenario.observe(s, env.params), h))
    # 8 fleets x 10 consecutive steps x 4 robots, time-major: each robot's own sequence
    seq = {k: v.reshape(50, 50, 4, *v.shape[1:])[:8, :10].swapaxes(0, 1).reshape(10, 32, *v.shape[1:])
           for k, v in rollouts.items()}
    h_onnx = rt.initial_state(32)["hidden"]
    h_jax = loaded.init_hidden(32)
    for t in range(10):
        out = rt.run({**{k: v[t] for k, v in seq.items()}, "hidden": h_onnx})
        cmd, h_jax = step({k: v[t] for k, v in seq.items()}, h_jax)
        assert np.max(np.abs(out["cmd"] - np.asarray(cmd))) <= TOL
        assert np.max(np.abs(out["hidden_next"] - np.asarray(h_jax))) <= TOL
        h_onnx = out["hidden_next"]
    assert np.abs(h_onnx).max() > 0.1  # the state really evolves


def test_num_agents_exports_the_same_policy_for_a_larger_fleet_and_refuses_unseen_slots(mlp, tmp_path, capsys):
    big = tmp_path / "policy_8.onnx"
    assert export_cli.main([str(mlp.loaded.path), "-o", str(big), "--num-agents", "8"]) == 0
    spec = load_spec(big)
    assert spec["agent"]["agents"] == [f"agent_{i}" for i in range(8)]
    assert {e["name"]: e["shape"] for e in spec["inputs"]}["others"] == ["B", 7, 3]
    # 8 robots: the same parameters, the 3 nearest of 7 others -> the JAX policy on the big env
    env8 = mlp.loaded.make_env(num_agents=8)
    sensors = rollout_sensors(env8, jax.random.PRNGKey(2), 4, 25)
    want = np.asarray(mlp.loaded.act(mlp.loaded.params, env8.scenario.observe(sensors, env8.params)))
    assert np.max(np.abs(PolicyRuntime(big).run(sensors)["cmd"] - want)) <= TOL
    # a fleet of 3 leaves a neighbour slot empty that this 4-robot policy always saw filled
    capsys.readouterr()
    assert export_cli.main([str(mlp.loaded.path), "-o", str(tmp_path / "p3.onnx"), "--num-agents", "3"]) == 1
    err = capsys.readouterr().err
    assert "trained with 4 agents, the policy observed 3 neighbour(s); a fleet of 3 fills 2" in err
    assert not (tmp_path / "p3.onnx").exists()


def test_a_team_command_is_scaled_by_the_speed_its_robots_sense_or_the_export_refuses():
    """The command stage (`sensed_speed`): material transport scales by the sensed class speed; navigation has no
    speed per robot; a discovery team whose classes differ in speed, which its robots do not sense, is refused in
    one line (its exported command could not be the one training drives)."""
    from marlstack.policies.export import sensed_speed
    from marlstack.sim.fleet import FleetEnv
    speed = sensed_speed(FleetEnv(PROFILE, 4, "material_transport"))
    assert np.asarray(speed({"capabilities": np.asarray([[0.6, 2.0], [1.0, 1.0]], np.float32)})).tolist() == \
        pytest.approx([0.6, 1.0])
    assert sensed_speed(FleetEnv(PROFILE, 4, "navigation")) is None
    assert sensed_speed(FleetEnv(PROFILE, 4, "discovery")) is None  # every class at the profile's speed
    with pytest.raises(ExportError, match="its robots do not sense them") as err:
        sensed_speed(FleetEnv(PROFILE, 4, "discovery", classes={"sensing": {"speed": 0.5}}))
    assert "\n" not in str(err.value)
