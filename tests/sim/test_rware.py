"""RWARE: the rules on hand-placed robots, the observation layout, the reset, the shelves as barrier obstacles."""
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marlstack.controllers.barrier import BarrierFilter
from marlstack.controllers.barrier_qp import barrier_spec
from marlstack.hardware import load_profile
from marlstack.sim.fleet import FleetEnv, FleetState
from marlstack.sim.scenarios import rware
from marlstack.sim.scenarios import rware_spec as spec

GRITS = load_profile("gritsbot_x")
PARAMS = rware.make_params(GRITS, 3, num_requests=2)
CENTRES = PARAMS.centres  # shelves 0-3 the top row (left to right), 4-7 the bottom row


def task(waiting, load=(0, 0, 0), delivered=0.0):
    w = np.zeros(len(spec.SHELVES), bool)
    w[list(waiting)] = True
    return rware.Task(waiting=jnp.asarray(w), load=jnp.asarray(load, jnp.float32),
                      delivered=jnp.asarray(delivered, jnp.float32), shelf_centres=jnp.asarray(CENTRES, jnp.float32),
                      reached=jnp.zeros(3, bool))


def poses(*xy):
    return jnp.asarray([[x, y, 0.0] for x, y in xy], jnp.float32)


REWARD = jax.jit(rware.reward, static_argnums=5)


def step(before, after, t, params=PARAMS):
    zeros = jnp.zeros(3, jnp.int32)
    return REWARD(before, after, t, zeros, zeros, params)


def test_a_robot_takes_a_waiting_shelfs_item_within_the_pickup_radius():
    """Robot 0 comes within 0.25 m of waiting shelf 5 and takes its item (load 1, the shelf no longer waits,
    the team's pick bonus); robot 1 just outside the radius of waiting shelf 6 takes nothing; robot 2 is
    near shelf 7, which is not requested."""
    s5, s6, s7 = CENTRES[5], CENTRES[6], CENTRES[7]
    before = poses((s5[0], s5[1] - 0.4), (s6[0], s6[1] - 0.4), (s7[0], s7[1] - 0.4))
    after = poses((s5[0], s5[1] - 0.24), (s6[0], s6[1] - 0.26), (s7[0], s7[1] - 0.18))
    r, t, success, solved = step(before, after, task([5, 6]))
    assert np.asarray(t.load).tolist() == [1.0, 0.0, 0.0]
    assert np.asarray(t.waiting).nonzero()[0].tolist() == [6]
    assert not bool(solved) and not np.asarray(success).any()
    # every robot gets the pick bonus (team) and its progress on the nearest waiting shelf (robot 2: shelf 6)
    p = PARAMS.progress_gain
    gain2 = np.hypot(*(np.asarray(before[2, :2]) - s6)) - np.hypot(*(np.asarray(after[2, :2]) - s6))
    np.testing.assert_allclose(np.asarray(r), [1 + p * 0.16, 1 + p * 0.14, 1 + p * gain2], atol=1e-3)


def test_one_item_per_shelf_lowest_index_first_and_no_second_item():
    """Robots 1 and 2 reach waiting shelf 4 in the same step: robot 1 takes it; robot 0, already
    carrying, passes waiting shelf 5 and takes nothing more."""
    s4, s5 = CENTRES[4], CENTRES[5]
    at = poses((s5[0], s5[1] - 0.2), (s4[0] - 0.05, s4[1] - 0.2), (s4[0] + 0.05, s4[1] - 0.2))
    _, t, _, _ = step(at, at, task([4, 5], load=(1, 0, 0)))
    assert np.asarray(t.load).tolist() == [1.0, 1.0, 0.0]
    assert np.asarray(t.waiting).nonzero()[0].tolist() == [5]


def test_delivery_counts_and_the_last_one_solves():
    """A carrying robot that crosses x = delivery_x delivers (load 0, +1 delivered, the deliver bonus to
    all); the second of two requested items solves the episode (success bonus, success for every robot)."""
    x = PARAMS.delivery_x
    before = poses((x - 0.01, 0.0), (0.0, -0.8), (-1.0, -0.8))
    after = poses((x + 0.005, 0.0), (0.0, -0.8), (-1.0, -0.8))
    r, t, success, solved = step(before, after, task([], load=(1, 0, 0)))
    assert float(t.delivered) == 1.0 and np.asarray(t.load).tolist() == [0.0, 0.0, 0.0] and not bool(solved)
    np.testing.assert_allclose(np.asarray(r), [2 + PARAMS.progress_gain * 0.01, 2, 2], atol=1e-3)
    r, t, success, solved = step(before, after, task([], load=(1, 0, 0), delivered=1.0))
    assert bool(solved) and np.asarray(success).all() and np.asarray(t.reached).all()
    assert float(r[1]) == pytest.approx(PARAMS.deliver_bonus + PARAMS.success_bonus)
    # not carrying: crossing into the zone delivers nothing
    _, t, _, solved = step(before, after, task([3], load=(0, 0, 0)))
    assert float(t.delivered) == 0.0 and not bool(solved)


def test_a_robot_overlapping_a_shelf_is_penalised():
    """Without the barrier nothing stops a robot driving into a shelf: its body overlapping one costs
    shelf_penalty per step."""
    s0 = CENTRES[0]
    at = poses((s0[0], s0[1] - 0.1), (0.0, -0.8), (-1.0, -0.8))
    r, _, _, _ = step(at, at, task([]))
    assert np.asarray(rware.in_shelf(at, PARAMS)).tolist() == [True, False, False]
    assert float(r[0]) == pytest.approx(-PARAMS.shelf_penalty) and float(r[1]) == 0.0


def test_observation_layout_on_a_hand_placed_robot():
    """obs_dim == the spec's names; a robot at (0.5, -0.1) facing +x, shelf 3 waiting: the delivery zone
    0.6 m ahead, the nearest shelf (7, footprint x 0.5-0.7, y -0.35 to -0.25) 0.15 m to its right, request
    slot 0 shelf 3, slot 1 padding."""
    names = spec.obs_names()
    assert rware.obs_dim(PARAMS) == len(names) == spec.obs_dim()
    observe = jax.jit(lambda p, t: rware.observe(rware.sense(SimpleNamespace(poses=p, task=t), PARAMS), PARAMS))
    obs = dict(zip(names, np.asarray(observe(poses((0.5, -0.1), (-1.0, -0.8), (-0.5, -0.8)), task([3])))[0]))
    assert obs["delivery_dx_robot"] == pytest.approx(0.6) and obs["delivery_distance"] == pytest.approx(0.6)
    assert obs["shelf_dx_robot"] == pytest.approx(0.0, abs=1e-6) and obs["shelf_dy_robot"] == pytest.approx(-0.15)
    assert obs["shelf_distance"] == pytest.approx(0.15)
    c3 = CENTRES[3]
    assert obs["request0_dx_robot"] == pytest.approx(c3[0] - 0.5, abs=1e-5)
    assert obs["request0_dy_robot"] == pytest.approx(c3[1] + 0.1, abs=1e-5)
    assert obs["request0_present"] == 1.0 and obs["request1_present"] == 0.0
    assert obs["request1_distance"] == pytest.approx(PARAMS.far) and obs["load"] == 0.0


def test_reset_requests_distinct_shelves_and_starts_below_them():
    """`num_requests` distinct shelves per episode, every shelf drawn over 256 episodes; the start cells
    (with their jitter) lie in the bottom strip, every barrier point clear of the shelves' margins."""
    params = rware.make_params(GRITS, 6, num_requests=3)
    u = jax.random.uniform(jax.random.PRNGKey(1), (256, len(spec.SHELVES)))
    waiting = np.asarray(jax.jit(jax.vmap(lambda v: rware.reset_task(v, None, None, params).waiting))(u))
    assert (waiting.sum(-1) == 3).all() and waiting.any(0).all()
    env = FleetEnv(GRITS, 6, "rware", num_requests=3)
    top = env.placer.centres[:, 1].max() + env.placer.jitter[1]
    b = barrier_spec(GRITS, "unicycle_walls", boxes=spec.SHELVES)
    assert top + b.projection_distance <= min(s[2] for s in spec.SHELVES) - b.distance / 2


def test_bad_parameters_are_refused_with_a_reason():
    for kwargs, match in [({"num_requests": 9}, "num_requests"), ({"shelves": [[0.0, -0.1, 0.0, 0.1]]}, "shelves"),
                          ({"shelves": [[1.0, 1.3, 0.0, 0.1]]}, "delivery zone"), ({"delivery_x": 2.0}, "delivery_x")]:
        with pytest.raises(ValueError, match=match):
            rware.make_params(GRITS, 4, **kwargs)


def test_fleet_env_gives_the_shelves_to_its_barrier():
    """FleetEnv(barrier=...) takes the shelves from the scenario (env.obstacles) as box rows: a robot driving
    at full speed at a shelf 1 cm outside its margin is slowed exactly as the deployment filter with the same
    shelves slows it (the others are far away)."""
    env = FleetEnv(GRITS, 3, "rware", barrier="unicycle_walls", num_requests=1)
    assert env.obstacles == spec.SHELVES
    b = barrier_spec(GRITS, "unicycle_walls", boxes=spec.SHELVES)
    y = spec.SHELVES[4][2] - b.distance / 2 - 0.01 - b.projection_distance
    at = np.array([[CENTRES[4][0], y, np.pi / 2], [1.3, -0.8, 0.0], [-1.3, -0.8, 0.0]])
    zeros = jnp.zeros(3, jnp.float32)
    state = FleetState(poses=jnp.asarray(at, jnp.float32), task=task([4]), step=jnp.zeros((), jnp.int32),
                       episode_returns=zeros, returned_episode_returns=zeros,
                       returned_episode_lengths=jnp.zeros(3, jnp.int32), returned_episode_success=jnp.zeros(3, bool))
    u = np.array([[GRITS.max_linear_speed, 0.0], [0.0, 0.0], [0.0, 0.0]])
    info = jax.jit(env.step_env)(jax.random.PRNGKey(1), state, jnp.asarray(u, jnp.float32))[4]
    want = BarrierFilter(GRITS, 3, "unicycle_walls", boxes=spec.SHELVES).filter(at, u)
    assert want.ok and want.intervention[0] > 0.1            # the shelf row binds: the robot must nearly stop
    np.testing.assert_allclose(np.asarray(info["barrier_intervention"]), want.intervention, atol=1e-4)


def test_in_boxes_counts_a_body_touching_a_box():
    """What the SITL sim node counts as shelf_collision_steps: the body (a radius around the centre) overlaps a box."""
    box = [(-0.1, 0.1, 0.25, 0.35)]
    poses = jnp.array([[0.0, 0.25 - 0.054, 0.0], [0.0, 0.25 - 0.056, 0.0], [0.0, 0.3, 1.0], [0.135, 0.385, 0.0], [0.15, 0.4, 0.0]])
    np.testing.assert_array_equal(np.asarray(rware.in_boxes(poses, box, 0.055)), [True, False, True, True, False])
