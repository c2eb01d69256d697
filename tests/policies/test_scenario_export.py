"""A discrete-action foraging policy exports to ONNX: the robot's level, the others' levels and the resources
are sensor inputs, and the graph ends with the discrete waypoint action -> (v, omega) map, so the robot
receives what the simulator's FleetEnv.commands makes of the policy's action (foraged resources included)."""
import jax
import jax.numpy as jnp
import numpy as np
from test_export import NOISE, TOL

from marlstack.bench.policy import write_untrained_run
from marlstack.policies import export_cli
from marlstack.policies.checkpoint import load_policy
from marlstack.policies.runtime import PolicyRuntime, load_spec


def test_discrete_foraging_policy_exports_levels_and_unicycle_commands(tmp_path):
    run = write_untrained_run(tmp_path / "run", {"scenario": "foraging", "num_agents": 4, "action_type": "discrete",
                                                 "barrier": "none"}, noise=NOISE)
    path = tmp_path / "policy.onnx"
    assert export_cli.main([str(run), "-o", str(path)]) == 0
    spec = load_spec(path)
    assert [(e["name"], e["shape"]) for e in spec["inputs"]] == [
        ("pose", ["B", 3]), ("others", ["B", 3, 3]), ("level", ["B", 1]), ("other_levels", ["B", 3, 1]),
        ("resources", ["B", 2, 3])]
    cmd = spec["outputs"][0]
    assert cmd["name"] == "cmd" and cmd["shape"] == ["B", 2] and cmd["units"] == ["m/s", "rad/s"]
    loaded = load_policy(run)
    env = loaded.make_env()
    _, states = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(5), 50))  # poses all over the arena
    states = states.replace(task=states.task.replace(foraged=states.task.foraged.at[::2, 0].set(True)))

    def one(state):  # the simulator's command for the policy's action, and the sensors a robot's node gets
        return env.commands(state, loaded.act(loaded.params, env.observations(state))), env.sense(state)

    want, sensors = jax.jit(jax.vmap(one))(states)
    want = np.asarray(want).reshape(-1, 2)
    got = PolicyRuntime(path).run({k: np.asarray(v, np.float32).reshape(200, *v.shape[2:])
                                   for k, v in sensors.items()})["cmd"]
    assert got.shape == want.shape == (200, 2) and np.max(np.abs(got - want)) <= TOL
    assert len({tuple(np.round(w, 3)) for w in want}) > 20  # many different commands: the map was exercised
    assert np.all(np.abs(got) <= np.asarray(cmd["high"]) + 1e-6)
    assert not np.any(np.asarray(sensors["resources"])[::2, :, 0, 2])  # half the samples saw resource 0 foraged

