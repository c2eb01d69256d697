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
import yaml

from marlstack.hardware import load_profile
from marlstack.ros_nodes.adapters import ADAPTERS, InvalidInput, MissingInput, make_adapter
from marlstack.ros_nodes.sim_node import ScenarioTask, make_physics
from marlstack.ros_nodes.task_adapter import TaskAdapter, task_sensors
from marlstack.sim.fleet import FleetEnv, FleetState
from marlstack.sim.scenarios import SCENARIOS

from ros_fixtures import REPO

PROFILE = load_profile("gritsbot_x")
ROBOTS = [f"robot_{i}" for i in range(4)]
STARTS = np.array([[-1.0, -0.7, 1.5708], [-0.4, -0.7, 1.5708], [0.2, -0.7, 1.5708], [0.8, -0.7, 1.5708]])
AT_4 = REPO / "tests" / "data" / "arctic_transport_4" / "policy.onnx"


def test_the_deployed_chain_drives_a_deployed_team_as_the_training_fleet_does(tmp_path, monkeypatch):
    """A deployment that names a team other than the trained one (water, drone, ice, ice) through the chain without
    DDS: the sim node's hosted task sends each robot its task message, its adapter cuts it, the committed export runs
    (its command stage scales v by the robot's class's speed on its tile, from its sensors), the certificate filters,
    the simulated robots saturate at their top speed and move. Per robot and step that command equals the one
    FleetEnv's transition drives (≤ 1e-5) from the same state and the same actions, with the barrier in the loop, and
    so do the poses and the task state. Robots 0 and 1 start head-on: the certificate pushes the slow one back
    beyond its top speed, which the clip takes off (as training clips the barrier's output); then the policy drives
    and the terrain slows robots as the map grows. Last, each adapter gives the env's `sense()` back (≤ 1e-6)."""
    from marlstack.controllers.barrier import BarrierFilter
    from marlstack.policies.export import sensed_speed
    from marlstack.policies.runtime import PolicyRuntime
    from marlstack.ros_nodes.plan import fleet_plan, load_deployment
    from marlstack.ros_nodes.sim_node import top_speed
    from marlstack.sim import fleet
    from ros_fixtures import config_with_policy

    config = config_with_policy("arctic_transport4.yaml", AT_4, tmp_path)
    data = yaml.safe_load(config.read_text())
    team = ["water", "drone", "ice", "ice"]
    starts = [[-0.15, -0.5, 0.0], [0.15, -0.5, np.pi], [-1.0, -0.7, np.pi / 2], [0.8, -0.7, np.pi / 2]]
    for robot, cls, start in zip(data["robots"], team, starts):  # robots 0 and 1 head-on
        robot.update({"class": cls, "start": start})
    config.write_text(yaml.safe_dump(data))
    sim = next(s for s in fleet_plan(load_deployment(config), sitl=True) if s.executable == "sim_node").parameters
    assert sim["team"] == team
    starts = np.reshape(sim["starts"], (4, 3))
    hosted = ScenarioTask("arctic_transport", PROFILE, starts, seed=sim["seed"], team=sim["team"])
    env = FleetEnv(PROFILE, 4, "arctic_transport", barrier="unicycle_walls", team=sim["team"])
    driven = []  # what FleetEnv's transition drives: the command its physics step receives
    physics_step = fleet.physics_step

    def spy(profile, poses, u, noise=None):
        jax.debug.callback(lambda x: driven.append(np.asarray(x)), u)
        return physics_step(profile, poses, u, noise)
    monkeypatch.setattr(fleet, "physics_step", spy)
    transition = jax.jit(env._transition)
    zeros = np.zeros(4, np.float32)
    state = FleetState(poses=starts.astype(np.float32), task=hosted.state, step=np.int32(0), episode_returns=zeros,
                       returned_episode_returns=zeros, returned_episode_lengths=zeros.astype(np.int32),
                       returned_episode_success=zeros > 0)
    runtime, certificate, physics = PolicyRuntime(AT_4), BarrierFilter(PROFILE, 4, "unicycle_walls"), make_physics(PROFILE)
    speed = jax.jit(sensed_speed(env))
    adapters = [make_adapter("arctic_transport", ROBOTS, r, max_age_s=1.0) for r in ROBOTS]
    poses, changes, clipped, slowed = starts.copy(), 0, 0, set()
    for t in range(40):
        for i, adapter in enumerate(adapters):
            for r, (x, y, yaw) in zip(ROBOTS, poses):
                adapter.update_pose(r, x, y, yaw, 0.0)
            adapter.update_task(hosted.messages()[i], 0.0)
        inputs = [a.inputs(0.0) for a in adapters]
        sensors = {k: np.concatenate([x[k] for x in inputs]) for k in inputs[0]}
        factor = np.asarray(speed(sensors))  # the graph's factor from the sensors = the scenario's speed_factors
        np.testing.assert_array_equal(factor, hosted.speed.astype(np.float32))
        if t < 10:  # robots 0 and 1 drive at each other flat out (the graph's command for that action)
            action = np.asarray([[PROFILE.max_linear_speed, 0.0]] * 2 + [[0.0, 0.0]] * 2, np.float32)
            nominal = action * np.stack([factor, np.ones(4)], -1).astype(np.float64)
        else:
            nominal = runtime.run(sensors)["cmd"].astype(np.float64)
            action = (nominal / np.stack([factor, np.ones(4)], -1)).astype(np.float32)
        safe = np.asarray(certificate.filter(poses, nominal).u)
        u = top_speed(PROFILE, safe, hosted.speed)
        clipped += int(np.abs(u - safe).max() > 1e-3)
        slowed |= set(np.flatnonzero(factor < 1).tolist())
        state, _, _, _ = transition(jax.random.PRNGKey(t), state, action)
        jax.block_until_ready(state.poses)
        np.testing.assert_allclose(u, driven[-1], atol=1e-5, err_msg=f"step {t}")
        prev, (poses, _, _) = poses, physics(poses, u)
        changes += len(hosted.step(prev, poses))
        np.testing.assert_allclose(poses, state.poses, atol=1e-5)
        for a, b in zip(jax.tree_util.tree_leaves(hosted.state), jax.tree_util.tree_leaves(state.task)):
            np.testing.assert_array_equal(a, b)
    assert clipped >= 5 and changes > 0 and {0, 3} <= slowed, (clipped, changes, slowed)  # water on ice, ice on water
    sensed = jax.jit(env.sense)(state)
    for i, adapter in enumerate(adapters):
        for r, (x, y, yaw) in zip(ROBOTS, poses):
            adapter.update_pose(r, x, y, yaw, 0.0)
        adapter.update_task(hosted.messages()[i], 0.0)
        inputs = adapter.inputs(0.0)
        assert list(inputs) == ["pose", "others", "capabilities", "other_capabilities", "map"] and set(sensed) == set(inputs)
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
    """RWARE's message ([load, then x, y, waiting per shelf], as its sim node sends it: test_rware_sitl.py) is cut
    by the generic adapter into the model's `load` (1,) and `requests` (shelves, 3)."""
    assert set(ADAPTERS) == set(SCENARIOS)
    assert all(issubclass(ADAPTERS[s], TaskAdapter) for s in SCENARIOS if s not in ("navigation", "coverage"))
    from marlstack.sim.scenarios.rware_spec import SHELF_CENTRES
    requests = [(x, y, float(x > 0)) for x, y in SHELF_CENTRES]
    adapter = make_adapter("rware", ROBOTS, "robot_2", 1.0)
    for r, (x, y, yaw) in zip(ROBOTS, STARTS):
        adapter.update_pose(r, x, y, yaw, 0.0)
    adapter.update_task([1.0, *(v for row in requests for v in row)], 0.0)
    assert adapter.input_names == ("pose", "others", "load", "requests")
    assert adapter.shapes() == {"pose": (3,), "others": (len(ROBOTS) - 1, 3), "load": (1,), "requests": (len(requests), 3)}
    inputs = adapter.inputs(0.0)
    assert inputs["load"].tolist() == [[1.0]]
    np.testing.assert_array_equal(inputs["requests"][0], np.asarray(requests, np.float32))


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
