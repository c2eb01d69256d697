"""The training barrier's right-hand rule (`barrier_jax.deadlock_free_barrier`) against the deployment's
`DeadlockFreeFilter` on the same inputs, and inside FleetEnv (`deadlock_hold_s`)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marlstack.bench.barrier import numpy_step, swap_nominal, swap_start
from marlstack.controllers.barrier_deadlock import DeadlockFreeFilter
from marlstack.controllers.barrier_jax import NONFINITE, OK, deadlock_free_barrier, deadlock_memory
from marlstack.controllers.barrier_qp import barrier_spec
from marlstack.controllers.unicycle import uni_to_si
from marlstack.hardware import load_profile
from marlstack.sim.fleet import FleetEnv

GRITS = load_profile("gritsbot_x")
BOX = (-0.15, 0.15, -0.1, 0.1)
STEPS = 500
TURN_CALLS = round(2.0 / GRITS.dt)   # DeadlockFreeFilter's turn_s


def scene():
    """(poses, goals, controlled, boxes): two robots crossing past a box (the box-following part of the rule)
    with a third parked beside it, not controlled; below them two robots swapping head-on."""
    poses = np.array([[-0.8, 0.02, 0.0], [0.8, -0.02, np.pi], [0.0, 0.35, np.pi / 2],
                      [-0.6, -0.6, 0.0], [0.6, -0.6, np.pi]])
    goals = np.array([[0.8, 0.02], [-0.8, -0.02], [0.0, 0.35], [0.6, -0.6], [-0.6, -0.6]])
    return poses, goals, np.array([True, True, False, True, True]), (BOX,)


def numpy_run(steps):
    """The deployment filter's closed loop: its inputs and, per call, its command and rule events."""
    poses, goals, controlled, boxes = scene()
    rule = DeadlockFreeFilter(GRITS, len(poses), GRITS.dt, boxes=boxes)
    rec = {k: [] for k in ("poses", "nominal", "u", "turning", "started")}
    for _ in range(steps):
        u_nom = np.where(controlled[:, None], swap_nominal(GRITS, poses, goals, swirl=0.0), 0.0)
        turning, before = rule.engaged & controlled, rule.deadlocks.copy()
        r = rule.filter(poses, u_nom, controlled=controlled)
        assert r.ok, r.status
        for k, v in zip(rec, (poses, u_nom, r.u, turning, rule.deadlocks > before)):
            rec[k].append(v)
        poses = numpy_step(GRITS, poses, r.u)
    return {k: np.array(v) for k, v in rec.items()}, controlled, boxes


def test_same_commands_and_turns_as_the_deployment_filter():
    """Fed the deployment filter's inputs call by call, the JAX form turns the same robots at the same calls
    and returns the same certified commands (float32 against float64); then a non-finite pose brakes and
    leaves the memory as it was."""
    ref, controlled, boxes = numpy_run(STEPS)
    # the rule did act: the head-on pair and the box (a turn lasts 61 calls, longer while a box is ahead)
    assert ref["started"][:, 3:].sum() > 0 and ref["turning"][:, :2].sum(0).max() > 2 * TURN_CALLS
    poses = np.concatenate([ref["poses"], ref["poses"][-1:]])
    poses[-1, 0, 0] = np.nan
    nominal = np.concatenate([ref["nominal"], ref["nominal"][-1:]])
    fn = deadlock_free_barrier(GRITS, len(controlled), GRITS.dt, boxes=boxes)

    def call(memory, x):
        safe, info, after = fn(x[0], x[1], memory, jnp.asarray(controlled))
        return after, (safe, info["deadlock_turning"], info["deadlock_started"], info["status"], memory, after)
    _, (u, turning, started, status, before, after) = jax.jit(lambda xs: jax.lax.scan(
        call, deadlock_memory(len(controlled)), xs))((jnp.asarray(poses, jnp.float32), jnp.asarray(nominal, jnp.float32)))
    assert np.all(np.asarray(status[:-1]) == OK)
    np.testing.assert_array_equal(np.asarray(turning[:-1]), ref["turning"])
    np.testing.assert_array_equal(np.asarray(started[:-1]), ref["started"])
    # the QP's variable, the projection-point velocity (as test_barrier_jax compares the two solvers)
    d = barrier_spec(GRITS, "unicycle_walls").projection_distance
    got = uni_to_si(np.asarray(u[:-1], np.float64), ref["poses"], d)
    np.testing.assert_allclose(got, uni_to_si(ref["u"], ref["poses"], d), atol=1e-4)
    assert int(status[-1]) == NONFINITE and not np.any(np.asarray(u[-1]))
    assert all(np.array_equal(before[k][-1], after[k][-1]) for k in before)


def test_fleet_env_carries_the_rule_and_resets_it():
    """Two robots head-on, each heading for the other's start (the swap's goal-seeking nominal, which ignores
    the other robot; the plain barrier parks such a swap for good, test_barrier_deadlock): with
    `deadlock_hold_s` the rule fires and they pass. Its memory lives in FleetState and starts fresh each episode."""
    env = FleetEnv("gritsbot_x", num_agents=2, max_steps=1000, barrier="unicycle_walls", deadlock_hold_s=0.5)
    start = jnp.array([[-0.6, 0.0, 0.0], [0.6, 0.0, jnp.pi]])
    goals = start[::-1, :2]

    def go():
        state = env.reset(jax.random.PRNGKey(0))[1].replace(poses=start)

        def body(s, k):
            _, s, _, _, info = env.step_env(k, s, swap_nominal(GRITS, s.poses, goals, swirl=0.0))
            return s, (info["barrier_deadlock_started"], info["collisions"], info["boundary_exits"],
                       info["barrier_intervention"])
        passed, (started, collisions, exits, intervention) = jax.lax.scan(body, state, jax.random.split(jax.random.PRNGKey(1), 600))
        # the last step of an episode: the auto-reset hands the next episode a fresh memory
        last = passed.replace(step=jnp.asarray(env.max_steps - 1, jnp.int32),
                              barrier_memory={"stuck": jnp.array([4, 0], jnp.int32), "left": jnp.array([0, 9], jnp.int32)})
        return passed, started, collisions, exits, intervention, env.step(jax.random.PRNGKey(2), last, jnp.zeros((2, 2)))[1]
    passed, started, collisions, exits, intervention, nxt = jax.jit(go)()
    assert float(passed.poses[0, 0]) > 0.5 and float(passed.poses[1, 0]) < -0.5
    assert int(started.sum()) > 0 and float(intervention.max()) > 0          # the rule and the filter acted
    assert int(collisions.sum()) == 0 and int(exits.sum()) == 0
    assert int(nxt.step) == 0 and all(not np.any(np.asarray(v)) for v in nxt.barrier_memory.values())
    with pytest.raises(ValueError, match="needs a barrier"):
        FleetEnv("gritsbot_x", num_agents=2, deadlock_hold_s=0.5)
