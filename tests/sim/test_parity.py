"""Parity with the real robotarium-python-simulator (PyPI `rps`), float64, 1000 steps.

Both simulators start from the same poses and receive the same command sequences (random
commands held for a while, and bang-bang commands far beyond every limit); poses must agree to
1e-9 m / rad and the per-step collision / boundary / actuator counts exactly.
rps's `_validate(self, errors={})` keeps its counts in a mutable default shared by every
Robotarium in the process, so we clear it and compare per-step increments.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marlstack.hardware import load_profile
from marlstack.sim.fleet import FleetEnv

rps_robotarium = pytest.importorskip("rps.robotarium")
STEPS = 1000
HOLD = 40  # steps each random command is held, so robots travel far enough to meet walls and each other


def command_sequences(rng: np.random.Generator, n: int, profile) -> dict[str, np.ndarray]:
    lim = np.array([profile.max_linear_speed, profile.max_angular_speed])
    held = rng.uniform(-1.5, 1.5, (STEPS // HOLD, n, 2)) * lim
    random = np.repeat(held, HOLD, axis=0)
    random[rng.random(random.shape[:2]) < 0.05] *= 0.0  # some stops
    bang = np.sign(rng.uniform(-1, 1, (STEPS, n, 2))) * lim * 5.0
    bang[:, :, 1] *= (rng.random((STEPS, n)) < 0.2)  # mostly straight, so they travel and leave the arena
    return {"random": random, "saturating": bang}


def run_rps(initial: np.ndarray, commands: np.ndarray):
    from rps.robotarium_abc import RobotariumABC
    counts = RobotariumABC._validate.__defaults__[0]
    counts.clear()
    n = initial.shape[0]
    r = rps_robotarium.Robotarium(number_of_robots=n, show_figure=False, sim_in_real_time=False,
                                  initial_conditions=initial.T.copy())
    poses, errs = [], []
    for u in commands:
        r.get_poses()
        before = [counts.get(k, 0) for k in ("collision", "boundary", "actuator")]
        r.set_velocities(np.arange(n), u.T.copy())
        r.step()
        poses.append(r.poses.T.copy())
        errs.append([counts.get(k, 0) - b for k, b in zip(("collision", "boundary", "actuator"), before)])
    return np.array(poses), np.array(errs)


@pytest.mark.parametrize("n", [2, 5, 12])
def test_matches_rps_for_1000_steps(n):
    profile = load_profile("rps_v1")
    rng = np.random.default_rng(n)
    with jax.enable_x64(True):
        env = FleetEnv(profile, num_agents=n, max_steps=10 * STEPS)
        _, state = env.reset(jax.random.PRNGKey(n))
        # Robot 1 starts 5 cm from robot 0, so collisions are certain to be counted; goals are
        # unreachable, so the episode never ends and auto-reset never interferes.
        poses = state.poses.at[1, :2].set(state.poses[0, :2] + 0.05)
        state = state.replace(poses=poses, task=state.task.replace(goals=jnp.full((n, 2), 100.0)))
        initial = np.asarray(state.poses)
        assert initial.dtype == np.float64

        @jax.jit
        def rollout(state, commands):
            def body(s, u):
                _, s, _, dones, info = env.step(jax.random.PRNGKey(0), s, u)
                return s, (s.poses, info["collisions"].sum() // 2, info["boundary_exits"].sum(),
                           info["actuator_excess"].max(), dones["__all__"])
            return jax.lax.scan(body, state, commands)[1]

        totals = np.zeros(3, int)
        for name, commands in command_sequences(rng, n, profile).items():
            poses, coll, bound, act, done = map(np.asarray, rollout(state, jnp.asarray(commands)))
            ref_poses, ref_errs = run_rps(initial, commands)
            assert not done.any()
            np.testing.assert_allclose(poses[..., :2], ref_poses[..., :2], rtol=0, atol=1e-9, err_msg=name)
            dth = np.angle(np.exp(1j * (poses[..., 2] - ref_poses[..., 2])))
            assert np.abs(dth).max() <= 1e-9, name
            np.testing.assert_array_equal(np.stack([coll, bound, act], -1), ref_errs, err_msg=name)
            totals += ref_errs.sum(0)
    # The comparison is only meaningful if every kind of violation actually happened.
    assert (totals > 0).all(), totals
