"""The heterogeneous-team scenarios' rules: material transport and warehouse (loading in index order, capacity,
zones per class), discovery and predator-capture-prey (only found targets can be tagged, only sensing robots
find, prey flee), arctic transport (speed per tile and class, the team's map, who must arrive), what a robot
observes (capabilities, padding, the layout each spec lists) and the fleet driving each robot at its class's
speed. Rules are checked on the scenarios' own functions with hand-placed robots (no compile of a whole env,
except the fleet speed test)."""
import dataclasses
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marlstack.hardware import load_profile
from marlstack.sim.fleet import FleetEnv
from marlstack.sim.scenarios import SCENARIOS
from marlstack.sim.scenarios import arctic_transport as at
from marlstack.sim.scenarios import discovery as dc
from marlstack.sim.scenarios import get, hetero
from marlstack.sim.scenarios import material_transport as mt
from marlstack.sim.scenarios import predator_capture_prey as pcp
from marlstack.sim.scenarios import warehouse as wh

PROFILE = load_profile("gritsbot_x")
JIT = {}


def jitted(fn, params_at: int):
    """`fn` jitted with its Params (hashable) static: one compile per function instead of one per op."""
    return JIT.setdefault((fn, params_at), jax.jit(fn, static_argnums=params_at))
TEAM_SCENARIOS = ["material_transport", "warehouse", "discovery", "predator_capture_prey", "arctic_transport"]
ZERO = jnp.zeros(4, jnp.int32)


def f32(a):
    return jnp.asarray(a, jnp.float32)


def poses(*xy):
    return f32([[x, y, 0.0] for x, y in xy])


def test_material_transport_loads_in_index_order_within_capacity_and_unloads():
    p = mt.make_params(PROFILE, 4)  # fast (1 unit), slow (2 units), fast, slow; load zone (-0.6, 0), unload (0.6, 0)
    assert p.team == ("fast", "slow", "fast", "slow") and p.column("capacity").tolist() == [1, 2, 1, 2]
    task = mt.Task(waiting=f32([2.0]), load=f32([0, 0, 0, 1]), delivered=f32(0.0), zones=f32(np.zeros((2, 2))),
                   reached=jnp.zeros(4, bool))
    before = poses((-0.3, 0.5), (-1.2, 0.8), (0.0, -0.5), (0.3, 0.0))
    # robots 1 and 2 arrive in the loading zone together: robot 1 (lower index) takes both waiting units,
    # robot 2 gets nothing; robot 3 (carrying 1) arrives in the unloading zone; robot 0 stays outside
    after = poses((-0.3, 0.5), (-0.6, 0.1), (-0.5, -0.1), (0.6, 0.0))
    r, new, success, solved = jitted(mt.reward, 5)(before, after, task, ZERO, ZERO, p)
    assert new.load.tolist() == [0, 2, 0, 0] and new.waiting.tolist() == [0] and float(new.delivered) == 1
    assert not bool(solved)  # robot 1 still carries two
    team = p.load_bonus * 2 + p.unload_bonus * 1
    # progress before the step: robots 1 and 2 towards the loading zone, robot 3 towards the unloading zone,
    # robot 0 (empty, but material waited) towards the loading zone too
    gain = lambda a, b, z: np.hypot(*(np.asarray(a) - z)) - np.hypot(*(np.asarray(b) - z))  # noqa: E731
    want = [gain((-0.3, 0.5), (-0.3, 0.5), (-0.6, 0)), gain((-1.2, 0.8), (-0.6, 0.1), (-0.6, 0)),
            gain((0.0, -0.5), (-0.5, -0.1), (-0.6, 0)), gain((0.3, 0.0), (0.6, 0.0), (0.6, 0))]
    np.testing.assert_allclose(r, team + p.progress_gain * np.asarray(want), rtol=1e-5, atol=1e-5)
    # robot 1 unloads: nothing waits, nothing is carried: solved, every robot succeeds
    r, new, success, solved = jitted(mt.reward, 5)(after, poses((-0.3, 0.5), (0.6, 0.1), (-0.5, -0.1), (0.6, 0.0)), new, ZERO, ZERO, p)
    assert bool(solved) and success.all() and float(new.delivered) == 3
    np.testing.assert_allclose(r[0], p.unload_bonus * 2 + p.success_bonus)  # robot 0 had nowhere to go: no shaping


def test_warehouse_robots_use_their_own_colour_zones():
    p = wh.make_params(PROFILE, 4)  # red, green, red, green
    assert p.pair.tolist() == [0, 1, 0, 1]
    task = wh.reset_task(f32([0.0, 0.99]), None, None, p)  # red: 1 package, green: 2
    assert task.waiting.tolist() == [1, 2]
    red_load, green_load = p.load_zones[0][:2], p.load_zones[1][:2]
    # robot 0 (red) parks in the green loading zone, robot 1 (green) in the red one: nobody loads;
    # then they swap: each takes one package from its own colour's zone
    wrong = poses(green_load, red_load, (0, 0.9), (0, -0.9))
    _, new, _, _ = jitted(wh.reward, 5)(wrong, wrong, task, ZERO, ZERO, p)
    assert new.load.tolist() == [0, 0, 0, 0]
    right = poses(red_load, green_load, (0, 0.9), (0, -0.9))
    _, new, _, _ = jitted(wh.reward, 5)(wrong, right, task, ZERO, ZERO, p)
    assert new.load.tolist() == [1, 1, 0, 0] and new.waiting.tolist() == [0, 1]
    sensors = wh.sense(SimpleNamespace(poses=right, task=new), p)
    np.testing.assert_allclose(sensors["load_zone"][:2], [[*red_load, 0], [*green_load, 1]])  # waiting at its own zone
    np.testing.assert_allclose(sensors["unload_zone"][:2], [p.unload_zones[0][:2], p.unload_zones[1][:2]])


def discovery_task(targets, found=(False, False), tagged=(False, False), n=4, searched=None):
    searched = jnp.zeros((5, 8), bool) if searched is None else jnp.asarray(searched)
    return dc.Task(targets=f32(targets), found=jnp.asarray(found), tagged=jnp.asarray(tagged), searched=searched,
                   reached=jnp.zeros(n, bool))


def test_discovery_only_sensing_robots_find_and_only_found_targets_are_tagged():
    p = dc.make_params(PROFILE, 4)  # sensing, tagging, sensing, tagging
    task = discovery_task([[0.0, 0.0], [1.0, 0.5]])
    # tagging robot 1 sits on target A (not found), sensing robot 0 is 0.4 m from target B (radius 0.45)
    at_ = poses((1.0, 0.1), (0.0, 0.05), (-1.2, -0.8), (1.2, -0.8))
    r, new, success, solved = jitted(dc.reward, 5)(at_, at_, task, ZERO, ZERO, p)
    assert new.found.tolist() == [False, True] and new.tagged.tolist() == [False, False]
    # the tiles the sensing robots cover are searched: 4 centres within 0.45 m of robot 0, 4 of robot 2
    assert int(new.searched.sum()) == int(jitted(hetero.covered, 1)(at_[::2], dataclasses.replace(p, team=("sensing", "sensing"))).sum()) == 8
    np.testing.assert_allclose(r, p.find_bonus + p.search_bonus * 8, rtol=1e-6)  # one found, nobody moved towards anything
    # a sensing robot next to a found target does not tag it (reach 0); a tagging robot 0.1 m from it does
    r, new2, _, _ = jitted(dc.reward, 5)(at_, poses((1.0, 0.45), (0.0, 0.05), (-1.2, -0.8), (1.2, -0.8)), new, ZERO, ZERO, p)
    assert new2.tagged.tolist() == [False, False]
    r, new3, success, solved = jitted(dc.reward, 5)(at_, poses((0.05, 0.3), (0.0, 0.05), (-1.2, -0.8), (1.1, 0.5)), new, ZERO, ZERO, p)
    # robot 0 now finds A (robot 1 on it tags it the same step), robot 3 tags B: solved
    assert new3.found.all() and new3.tagged.all() and bool(solved) and success.all()


def test_discovery_sensing_robots_work_towards_the_nearest_unsearched_tile():
    """The sensing robots' shaping (`targets_for`, also the scripted search's goals) uses what the team shares
    (the searched map), not the hidden targets; tagging robots with nothing found get no shaping."""
    p = dc.make_params(PROFILE, 4)
    searched = np.ones((5, 8), bool)
    searched[1, 5] = False  # the one unsearched tile: centre (0.6, -0.4)
    task = discovery_task([[-1.4, -0.8], [1.4, 0.8]], searched=searched)  # both hidden, far from everyone
    before = poses((0.0, -0.4), (0.0, 0.4), (-1.0, -0.4), (1.2, -0.8))
    after = poses((0.1, -0.4), (0.0, 0.5), (-1.1, -0.4), (1.2, -0.7))  # robot 0 gains 0.1 m on the tile, robot 2 loses 0.1
    r, new, _, _ = jitted(dc.reward, 5)(before, after, task, ZERO, ZERO, p)
    assert not new.found.any() and int(new.searched.sum()) == 39
    np.testing.assert_allclose(r, p.progress_gain * np.asarray([0.1, 0.0, -0.1, 0.0]), atol=1e-5)


def test_discovery_sensors_hide_targets_not_found_and_observation_pads_them():
    p = dc.make_params(PROFILE, 2, team=["sensing", "tagging"], num_targets=2)
    searched = np.ones((5, 8), bool)
    searched[1, 5] = False  # the one unsearched tile: centre (0.6, -0.4)
    task = discovery_task([[0.5, 0.0], [-0.3, 0.0]], found=(True, False), n=2, searched=searched)
    s = jax.jit(lambda at_, task: dc.sense(SimpleNamespace(poses=at_, task=task), p))(poses((0, 0), (0, 0.4)), task)
    np.testing.assert_allclose(s["targets"][0], [[0.5, 0.0, 1.0], [0.0, 0.0, 0.0]])  # the unfound one reads zeros
    names = dc.spec.obs_names(p.num_neighbors, 2)
    obs = dict(zip(names, np.asarray(jitted(dc.observe, 1)(s, p))[0]))
    assert len(names) == dc.obs_dim(p) == 8 + 2 + 3 * (4 + 2 + 1) + 2 * 4 + 4
    want = {"sensing_radius": 0.45, "reach": 0.0, "neighbor0_dy_robot": 0.4, "neighbor0_sensing_radius": 0.0,
            "neighbor0_reach": 0.25, "neighbor0_present": 1, "neighbor1_present": 0, "neighbor1_reach": 0,
            "target0_dx_robot": 0.5, "target0_present": 1, "target1_present": 0, "target1_distance": p.far,
            "unsearched_dx_robot": 0.6, "unsearched_dy_robot": -0.4, "unsearched_present": 1}
    for k, v in want.items():
        assert obs[k] == pytest.approx(v, abs=1e-6), k
    np.testing.assert_allclose(jitted(dc.observe, 1)(s, dataclasses.replace(p, gather_above=0)), jitted(dc.observe, 1)(s, p), atol=1e-6)


def test_prey_flee_from_a_near_robot_and_stay_inside():
    p = pcp.make_params(PROFILE, 4)
    assert p.prey_step == pytest.approx(0.05 * PROFILE.dt)
    task = discovery_task([[0.0, 0.0], [1.5, 0.0]])
    # robot 0 is 0.2 m left of prey A (within 0.3 m): A steps right; prey B, far from everyone, stays
    moved = jitted(dc.flee, 2)(poses((-0.2, 0.0), (-1.0, -0.8), (-1.2, 0.8), (0.5, 0.8)), task, p)
    np.testing.assert_allclose(moved, [[p.prey_step, 0.0], [1.5, 0.0]], atol=1e-7)
    # a prey at the wall is kept `margin` inside
    wall = discovery_task([[p.x_max - p.margin, 0.0], [1.5, 0.9]])
    moved = jitted(dc.flee, 2)(poses((p.x_max - p.margin - 0.1, 0.0), (-1.0, -0.8), (-1.2, 0.8), (1.5, 0.7)), wall, p)
    assert moved[0, 0] == pytest.approx(p.x_max - p.margin) and moved[1, 1] == pytest.approx(p.y_max - p.margin)
    with pytest.raises(ValueError, match="slower than a robot"):
        pcp.make_params(PROFILE, 4, prey_speed=0.3)


def arctic_state(p, pose_rows, terrain, known=None):
    terrain = f32(terrain)
    known = jnp.zeros(terrain.shape, bool) if known is None else jnp.asarray(known)
    return SimpleNamespace(poses=pose_rows, task=at.Task(terrain=terrain, known=known, ends=f32(np.zeros((2, 2))),
                                                         reached=jnp.zeros(len(pose_rows), bool)))


def test_arctic_speed_per_tile_map_and_who_must_arrive():
    p = at.make_params(PROFILE, 3)  # drone, ice, water; 5 x 8 tiles of 0.4 m
    assert p.grid == (5, 8) and p.goal_y == pytest.approx(0.6)
    terrain = np.ones((5, 8))
    terrain[:, 4:] = -1  # water right of x = 0
    on = poses((0.2, -0.8), (0.2, -0.8), (-0.2, -0.8))  # drone and ice robot on water, water robot on ice
    s = arctic_state(p, on, terrain)
    np.testing.assert_allclose(at.speed_factors(on, s.task, p), [1.0, 0.3, 0.3])
    # the drone maps the tiles whose centres are within 0.6 m; the ground robots about their own tile
    known = np.asarray(hetero.covered(on[:1], dataclasses.replace(p, team=("drone",))))
    cx, cy = (np.asarray(c) for c in hetero.centres(p))
    assert known.sum() == ((cx[None, :] - 0.2) ** 2 + (cy[:, None] + 0.8) ** 2 <= 0.36 + 1e-9).sum() > 1
    # the ice robot in the goal zone is not enough: the water robot must be there too; the drone never
    up = poses((0.2, -0.8), (0.2, 0.7), (-0.2, 0.5))
    r, task, success, solved = jitted(at.reward, 5)(on, up, s.task, ZERO[:3], ZERO[:3], p)
    assert success.tolist() == [True, True, False] and not bool(solved)
    gains = np.array([0.0, 1.4, 1.3])  # metres gained on the goal line y = 0.6 (0 once inside)
    mapped = int(np.sum(task.known & ~s.task.known))
    np.testing.assert_allclose(r, p.progress_gain * np.array([gains[1:].mean(), *gains[1:]]) + p.map_bonus * mapped,
                               rtol=1e-5)
    _, _, success, solved = jitted(at.reward, 5)(up, poses((0.2, -0.8), (0.2, 0.7), (-0.2, 0.65)), task, ZERO[:3], ZERO[:3], p)
    assert bool(solved) and success.all()


def test_arctic_observes_the_mapped_tiles_around_it():
    p = at.make_params(PROFILE, 3)
    terrain = np.where(np.add.outer(np.arange(5), np.arange(8)) % 2 == 0, 1.0, -1.0)  # a checkerboard
    known = np.zeros((5, 8), bool)
    known[0:2, 0:2] = True  # only the bottom-left 2 x 2 tiles are mapped
    s = arctic_state(p, poses((-1.4, -0.8), (0.0, 0.0), (1.0, 0.0)), terrain, known)
    names = at.spec.obs_names(p.num_neighbors)
    obs = dict(zip(names, np.asarray(jitted(at.observe, 1)(at.sense(s, p), p))[0]))  # robot 0 on tile (0, 0), a corner
    assert len(names) == at.obs_dim(p)
    want = {"tile_same_same": 1, "tile_same_right": -1, "tile_up_same": -1, "tile_up_right": 1,
            "tile_down_same": 0, "tile_same_left": 0, "tile_down_left": 0,  # outside the arena
            "goal_gap": 1.4, "speed": 1.0, "water_speed": 1.0, "sensing_radius": 0.6, "goal": 0.0}
    for k, v in want.items():
        assert obs[k] == pytest.approx(v, abs=1e-6), k
    assert set(np.asarray(at.sense(s, p)["map"][1]).ravel().tolist()) == {0.0, 1.0, -1.0}  # unknown tiles read 0


@pytest.mark.parametrize("name", TEAM_SCENARIOS)
def test_layout_sensors_and_registration(name):
    module = get(name)
    p = module.make_params(PROFILE, 4)
    spec = __import__(f"{module.__name__}_spec", fromlist=["x"])
    assert name in SCENARIOS and spec.SCENARIO == name
    state = jax.eval_shape(FleetEnv(PROFILE, 4, scenario=name).reset, jax.random.PRNGKey(0))[1]
    sensors = jax.eval_shape(lambda st: module.sense(st, p), state)
    assert sorted(sensors) == sorted(spec.SENSORS)  # eval_shape hands a dict back with sorted keys
    assert {k: list(v.shape[1:]) for k, v in sensors.items()} == spec.sensor_shapes(4)
    # one unit per element of the last axis: the exporter draws its parity inputs by unit (a map row with two
    # units for eight tiles once made a (B, 5, 2) input and a failed export)
    assert all(len(s["units"]) == spec.sensor_shapes(4)[k][-1] for k, s in spec.SENSORS.items())
    assert len(spec.obs_names(p.num_neighbors)) == module.obs_dim(p) == len(set(spec.obs_names(p.num_neighbors)))
    assert jax.eval_shape(lambda s: module.observe(s, p), sensors).shape == (4, module.obs_dim(p))


def test_bad_teams_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown robot class 'tank'; classes: fast, slow"):
        mt.make_params(PROFILE, 2, team="fast,tank")
    with pytest.raises(ValueError, match="team lists 3 robots, the fleet has 4"):
        mt.make_params(PROFILE, 4, team=["fast", "slow", "fast"])
    with pytest.raises(ValueError, match="needs a robot that senses"):
        dc.make_params(PROFILE, 2, team=["tagging", "tagging"], num_targets=2)
    with pytest.raises(ValueError, match="class 'fast'.*capabilities: speed"):
        mt.make_params(PROFILE, 2, classes={"fast": {"wings": 2}})
    p = mt.make_params(PROFILE, 2, classes={"slow": {"speed": 0.25}})  # a capability changed from the config
    assert p.column("speed").tolist() == [1.0, 0.25]


def test_fleet_drives_each_robot_at_its_class_speed_even_behind_the_barrier():
    env = FleetEnv(PROFILE, 2, scenario="material_transport", barrier="unicycle_walls")  # fast (1.0), slow (0.6)
    _, state = env.reset(jax.random.PRNGKey(0))
    start = poses((-1.0, -0.6), (-1.0, 0.6))  # both facing +x, far apart and from the walls
    # full speed ahead: scaled to each class's top speed before the barrier, which leaves it alone here
    step = jax.jit(env.step_env)
    _, moved, _, _, info = step(jax.random.PRNGKey(1), state.replace(poses=start), f32([[0.2, 0.0], [0.2, 0.0]]))
    np.testing.assert_allclose(np.asarray(moved.poses[:, 0] - start[:, 0]) / (0.2 * PROFILE.dt), [1.0, 0.6], rtol=1e-4)
    # head-on 0.2 m apart the barrier brakes and may push back: never faster than the class allows
    close = poses((-0.1, 0.0), (0.1, 0.0)).at[1, 2].set(np.pi)
    _, moved, _, _, info = step(jax.random.PRNGKey(1), state.replace(poses=close), f32([[0.2, 0.0], [0.2, 0.0]]))
    travelled = np.hypot(*np.asarray(moved.poses[:, :2] - close[:, :2]).T) / (0.2 * PROFILE.dt)
    assert np.asarray(info["barrier_intervention"]).any() and (travelled <= np.array([1.0, 0.6]) + 1e-4).all()
