"""`marlstack bench sim`: fleet simulator env-steps/s vs the robotarium-python-simulator (rps).

Both run in this process on the same machine. rps steps one fleet at a time (set_velocities,
get_poses, step), so its throughput for B environments is its single-fleet rate: B fleets
run one after another. Ours: one env stepped from a Python loop (jit per step), and B envs
batched with jit + vmap + lax.scan. The ratio is ours / rps in env-steps/s (higher is better).
"""
from __future__ import annotations

import argparse
import time

from bench.report import Row

BASELINE = "rps (robotarium-python-simulator)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="short run: fewer steps, N = 4 and 10 only")
    parser.add_argument("--agents", type=int, nargs="+", default=None, help="fleet sizes (default 4 10 50)")
    parser.add_argument("--envs", type=int, nargs="+", default=None, help="batch sizes (default 1 64 1024)")
    parser.add_argument("--profile", default="rps_v1", help="vehicle profile (default rps_v1: the model rps simulates)")
    parser.add_argument("--seconds", type=float, default=None, help="target wall time per measurement (default 1, quick 0.3)")


def _rps_steps_per_s(initial, commands) -> float:
    import numpy as np
    from rps.robotarium import Robotarium

    n = initial.shape[0]
    r = Robotarium(number_of_robots=n, show_figure=False, sim_in_real_time=False, initial_conditions=initial.T.copy())
    ids = np.arange(n)
    t0 = time.perf_counter()
    for u in commands:
        r.get_poses()
        r.set_velocities(ids, u.T.copy())
        r.step()
    return len(commands) / (time.perf_counter() - t0)


def _timed(fn, *args) -> float:
    import jax
    jax.block_until_ready(fn(*args))  # compile and warm up
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


def run(args: argparse.Namespace) -> list[Row]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from tqdm import tqdm

    from sim.fleet import FleetEnv

    agents = args.agents or ([4, 10] if args.quick else [4, 10, 50])
    batches = args.envs or [1, 64, 1024]
    budget = args.seconds or (0.3 if args.quick else 1.0)
    rows: list[Row] = []
    jobs = [(n, b) for n in agents for b in [None, *batches]]
    bar = tqdm(jobs, desc="bench sim", unit="config", leave=False)
    rps_rate: dict[int, float] = {}
    for n, b in bar:
        env = FleetEnv(args.profile, num_agents=n, max_steps=10**6)
        key = jax.random.PRNGKey(n)
        limits = env.action_space(env.agents[0]).high
        if n not in rps_rate:  # the baseline: as many steps as fit the time budget (after a probe)
            bar.set_postfix_str(f"rps N={n}")
            _, state = env.reset(key)
            initial = np.asarray(state.poses, np.float64)
            rng = np.random.default_rng(n)
            probe = _rps_steps_per_s(initial, rng.uniform(-1, 1, (20, n, 2)) * limits)
            steps = max(20, int(probe * budget))
            rps_rate[n] = _rps_steps_per_s(initial, rng.uniform(-1, 1, (steps, n, 2)) * limits)
        actions = lambda k, shape: jax.random.uniform(k, shape, minval=-1.0) * jnp.asarray(limits, jnp.float32)  # noqa: E731
        if b is None:  # one env, one jitted step per Python call: what an interactive user sees
            bar.set_postfix_str(f"ours N={n} single")
            step = jax.jit(env.step)
            _, state = env.reset(key)
            u = actions(key, (n, 2))
            jax.block_until_ready(step(key, state, u))
            steps = max(50, int(budget / max(_timed(step, key, state, u), 1e-6)))
            t0 = time.perf_counter()
            for _ in range(steps):
                _, state, *_ = step(key, state, u)
            jax.block_until_ready(state)
            rate, envs, mode = steps / (time.perf_counter() - t0), 1, "single"
        else:
            bar.set_postfix_str(f"ours N={n} envs={b}")
            _, states = jax.vmap(env.reset)(jax.random.split(key, b))
            u = actions(key, (b, n, 2))  # fixed per env: the cost of a step does not depend on the command
            vstep = jax.vmap(env.step, in_axes=(None, 0, 0))

            def make(steps):
                @jax.jit
                def scan(states):
                    return jax.lax.scan(lambda s, k: (vstep(k, s, u)[1], None), states,
                                        jax.random.split(key, steps))[0]
                return scan
            probe_steps = 10
            per_step = _timed(make(probe_steps), states) / probe_steps
            steps = int(min(2000, max(probe_steps, budget / max(per_step, 1e-9))))
            rate, envs, mode = b * steps / _timed(make(steps), states), b, "batched"
        rows.append(Row({"agents": n, "envs": envs, "mode": mode}, "env_steps_per_s", "steps/s", rate,
                        rps_rate[n], BASELINE, extra={"robot_steps_per_s": rate * n}))
    return rows
