"""A scenario's task over ROS, without DDS: the sim node's hosted task (sim_node.ScenarioTask) against the training
fleet's own transition, and the generic task adapter (ros_nodes/task_adapter.py) against the scenario's `sense()`.

Arctic transport: its task topic changes as the team maps the terrain, and its robots' speed depends on the tile.
"""
import subprocess
import sys
from types import SimpleNamespace

import jax
import numpy as np
import pytest

from marlstack.hardware import load_profile
from marlstack.ros_nodes.adapters import ADAPTERS, InvalidInput, MissingInput, RwareAdapter, make_adapter
from marlstack.ros_nodes.sim_node import ScenarioTask, make_physics
from marlstack.ros_nodes.task_adapter import TaskAdapter, task_sensors
from marlstack.sim.fleet import FleetEnv, FleetState
from marlstack.sim.scenarios import SCENARIOS

from ros_fixtures import REPO

PROFILE = load_profile("gritsbot_x")
ROBOTS = [f"robot_{i}" for i in range(4)]
STARTS = np.array([[-1.0, -0.7, 1.5708], [-0.4, -0.7, 1.5708], [0.2, -0.7, 1.5708], [0.8, -0.7, 1.5708]])
AT_4 = REPO / "tests" / "data" / "arctic_transport_4" / "policy.onnx"


def test_the_hosted_task_follows_the_training_fleet_and_the_adapter_gives_sense_back():
    """The sim node's loop (class / terrain speed, physics, the scenario's rule) from the same start as FleetEnv's
    transition without a barrier, 45 steps up the field: the same poses, the same task state, and each robot's
    adapter, fed its task message and the poses, gives exactly the env's `sense()` (≤ 1e-6)."""
    env = FleetEnv(PROFILE, 4, "arctic_transport")
    hosted = ScenarioTask("arctic_transport", PROFILE, STARTS, seed=3)
    zeros = np.zeros(4, np.float32)
    state = FleetState(poses=STARTS.astype(np.float32), task=hosted.state, step=np.int32(0), episode_returns=zeros,
                       returned_episode_returns=zeros, returned_episode_lengths=zeros.astype(np.int32),
                       returned_episode_success=zeros > 0)
    step = jax.jit(env._transition)  # the training step without the observations (one compile less)
    physics = make_physics(PROFILE)
    u = np.tile([PROFILE.max_linear_speed, 0.3], (4, 1))
    poses, changes = STARTS.copy(), 0
    adapters = [make_adapter("arctic_transport", ROBOTS, r, max_age_s=1.0) for r in ROBOTS]
    for t in range(45):
        state, _, _, _ = step(jax.random.PRNGKey(t), state, u)
        prev, (poses, _, _) = poses, physics(poses, u * np.stack([hosted.speed, np.ones(4)], -1))
        changes += len(hosted.step(prev, poses))
        np.testing.assert_allclose(poses, state.poses, atol=1e-6)
        for a, b in zip(jax.tree_util.tree_leaves(hosted.state), jax.tree_util.tree_leaves(state.task)):
            np.testing.assert_array_equal(a, b)
    assert changes > 0 and hosted.speed.tolist() != [1.0] * 4  # the map grew on the way; ice / water robots slowed
    sensed = env.sense(state)
    for i, adapter in enumerate(adapters):
        for r, (x, y, yaw) in zip(ROBOTS, poses):
            adapter.update_pose(r, x, y, yaw, 0.0)
        adapter.update_task(hosted.messages()[i], 0.0)
        inputs = adapter.inputs(0.0)
        assert list(inputs) == list(sensed) == ["pose", "others", "capabilities", "other_capabilities", "map"]
        for name, value in inputs.items():
            np.testing.assert_allclose(value[0], sensed[name][i], atol=1e-6, err_msg=name)


def test_a_wrong_length_task_message_is_refused_and_the_last_good_one_stands():
    adapter = make_adapter("material_transport", ROBOTS, "robot_1", max_age_s=1.0)
    for r, (x, y, yaw) in zip(ROBOTS, STARTS):
        adapter.update_pose(r, x, y, yaw, 0.0)
    with pytest.raises(MissingInput, match="task: none received yet"):
        adapter.inputs(0.0)
    size = sum(np.prod(s) for s in task_sensors("material_transport", 4).values())
    assert adapter.task_shape() == (size,) == (14,)  # capabilities 2, other_capabilities 3 x 2, load 1, zones 3 + 2
    good = np.arange(size, dtype=float)
    adapter.update_task(good)
    assert adapter.inputs(0.0)["unload_zone"].tolist() == [[12.0, 13.0]]
    adapter.update_task(good[:-1])
    with pytest.raises(InvalidInput, match="task: expected 14 numbers for this fleet of 4, got 13"):
        adapter.inputs(0.0)
    adapter.update_task(good + 1)
    assert adapter.inputs(0.0)["load"].tolist() == [[9.0]]


def test_every_scenario_has_an_adapter_and_rware_is_a_case_of_the_generic_one():
    """The generic adapter cuts RWARE's message ([load, then x, y, waiting per shelf]) exactly as RwareAdapter does
    (that class can go; test_rware_sitl.py runs the sim node's hosted RWARE task)."""
    assert set(ADAPTERS) == set(SCENARIOS)
    assert all(issubclass(ADAPTERS[s], TaskAdapter) for s in SCENARIOS if s not in ("navigation", "coverage", "rware"))
    from marlstack.sim.scenarios.rware_spec import SHELF_CENTRES
    message = [1.0, *(v for x, y in SHELF_CENTRES for v in (x, y, float(x > 0)))]
    generic = type("Rware", (TaskAdapter,), {"scenario": "rware"})(ROBOTS, "robot_2", 1.0)
    special = RwareAdapter(ROBOTS, "robot_2", 1.0)
    for a in (generic, special):
        for r, (x, y, yaw) in zip(ROBOTS, STARTS):
            a.update_pose(r, x, y, yaw, 0.0)
        a.update_task(message, 0.0)
    assert generic.shapes() == special.shapes()
    mine, theirs = generic.inputs(0.0), special.inputs(0.0)
    assert list(mine) == list(theirs) and all(np.array_equal(mine[k], theirs[k]) for k in mine)


def test_the_policy_node_start_checks_pass_for_an_exported_model_and_the_adapter_needs_no_jax():
    """open_policy (the policy node's and `marlstack sitl`'s start-up check: metadata, shapes, one inference)
    accepts the committed arctic transport export for 4 robots and refuses it for 3; in a fresh interpreter
    the adapter and its spec modules load no JAX."""
    from marlstack.ros_nodes.policy_node import open_policy
    from marlstack.ros_nodes.runner import StartError
    runtime, adapter = open_policy(str(AT_4), "arctic_transport", PROFILE, 1 / PROFILE.dt, ROBOTS, "robot_0", 0.1)
    assert [e["name"] for e in runtime.spec["inputs"]] == ["pose", *adapter.input_names[1:]]
    with pytest.raises(StartError, match=r"model input 'others' expects per-robot shape \[3, 3\]"):
        open_policy(str(AT_4), "arctic_transport", PROFILE, 1 / PROFILE.dt, ROBOTS[:3], "robot_0", 0.1)
    code = ("import sys; from marlstack.ros_nodes.adapters import make_adapter; "
            "make_adapter('discovery', ['a', 'b'], 'a', 0.1).task_shape(); "
            "print(sorted(m for m in ('jax', 'flax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]


def test_sim2sim_refuses_a_hosted_task_in_one_line(tmp_path, capsys):
    """sim2sim runs fleets with static task inputs (goals, landmarks); a hosted task is SITL's (was a traceback)."""
    from marlstack.cli import main
    assert main(["sim2sim", "--config", str(REPO / "launch" / "arctic_transport4.yaml"), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "task state lives in the sim node" in err[0] and "marlstack sitl --config" in err[0], err


def test_every_task_scenarios_adapter_takes_what_its_sense_gives():
    """For each scenario on the task topic, the adapter's inputs are `sense()`'s, with its per-robot shapes (traced,
    not run): what the sim node sends and what the exporter makes the model take (both in `SENSORS` order)."""
    for name in SCENARIOS:
        if not issubclass(ADAPTERS[name], TaskAdapter) and name != "rware":
            continue
        env = FleetEnv(PROFILE, 4, name)
        m = env.scenario
        poses = STARTS.astype(np.float32)
        state = lambda u: SimpleNamespace(poses=poses, task=m.reset_task(u, poses, env.placer, env.params))  # noqa: E731
        u = jax.ShapeDtypeStruct((m.num_task_uniforms(env.placer, env.params),), np.float32)
        sensed = jax.eval_shape(lambda u: env.sense(state(u)), u)
        shapes = make_adapter(name, ROBOTS, "robot_0", 1.0).shapes()
        assert set(shapes) == set(sensed) and all(tuple(shapes[k]) == sensed[k].shape[1:] for k in shapes), name
