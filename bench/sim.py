"""`marlstack bench sim`: fleet simulator env-steps/s vs the robotarium-python-simulator (rps).

Both run in this process on the same machine. rps steps one fleet at a time (set_velocities,
get_poses, step), so its throughput for B environments is its single-fleet rate: B fleets run
one after another. Our modes:
- `single`: one env, one jitted `FleetEnv.step` call per Python iteration;
- `physics`: B fleets, jit + vmap + lax.scan over `fleet.physics_step` — the same work as rps's
  step (saturate, count violations, integrate), nothing more;
- `env`: B envs, jit + vmap + lax.scan over the full `FleetEnv.step` (physics, reward,
  observations for every robot, auto-reset), each env with its own key every step, the
  observations and rewards consumed, as training does.
Each row gives wall-clock rates (`ours`, `baseline`, `ratio`) and process CPU-time rates
(`ours_cpu`, `baseline_cpu`, `cpu_ratio`): on a shared machine the CPU figures are the steadier
comparison. Ratio > 1: we are faster.
"""
from __future__ import annotations

import argparse
import time

from marlstack.bench.report import Row

BASELINE = "rps (robotarium-python-simulator)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="short run: shorter measurements, N = 4 and 10 only")
    parser.add_argument("--agents", type=int, nargs="+", default=None, help="fleet sizes (default 4 10 50)")
    parser.add_argument("--envs", type=int, nargs="+", default=None, help="batch sizes (default 1 64 1024)")
    parser.add_argument("--profile", default="rps_v1", help="vehicle profile (default rps_v1: the model rps simulates)")
    parser.add_argument("--seconds", type=float, default=None, help="target time per measurement (default 1, quick 0.3)")


def _clock(fn) -> tuple[float, float]:
    """(wall s, process CPU s) of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def _rps_run(initial, commands) -> tuple[float, float]:
    import numpy as np
    from rps.robotarium import Robotarium

    n = initial.shape[0]
    r = Robotarium(number_of_robots=n, show_figure=False, sim_in_real_time=False, initial_conditions=initial.T.copy())
    ids = np.arange(n)

    def go():
        for u in commands:
            r.get_poses()
            r.set_velocities(ids, u.T.copy())
            r.step()
    return _clock(go)


def run(args: argparse.Namespace) -> list[Row]:
    import jax
    import numpy as np
    from tqdm import tqdm

    from marlstack.sim.fleet import FleetEnv

    agents = args.agents or ([4, 10] if args.quick else [4, 10, 50])
    batches = args.envs or [1, 64, 1024]
    budget = args.seconds or (0.3 if args.quick else 1.0)
    rows: list[Row] = []
    bar = tqdm([(n, b) for n in agents for b in [None, *batches]], desc="bench sim", unit="config", leave=False)
    rps_rates: dict[int, tuple[float, float]] = {}
    for n, b in bar:
        env = FleetEnv(args.profile, num_agents=n, max_steps=10**6)
        key = jax.random.PRNGKey(n)
        limits = np.asarray(env.action_space(env.agents[0]).high)
        if n not in rps_rates:  # the baseline, sized to the time budget after a short probe
            bar.set_postfix_str(f"rps N={n}")
            initial = np.asarray(env.reset(key)[1].poses, np.float64)
            rng = np.random.default_rng(n)
            probe = 20 / _rps_run(initial, rng.uniform(-1, 1, (20, n, 2)) * limits)[0]
            steps = max(20, int(probe * budget))
            wall, cpu = _rps_run(initial, rng.uniform(-1, 1, (steps, n, 2)) * limits)
            rps_rates[n] = (steps / wall, steps / cpu)
        configs = [("single", None)] if b is None else [("physics", b), ("env", b)]
        for mode, envs in configs:
            bar.set_postfix_str(f"ours N={n} {mode} envs={envs or 1}")
            if mode == "single":
                wall, cpu, total = _single(env, key, limits, budget)
            else:
                wall, cpu, total = _batched(env, key, limits, envs, budget, physics_only=mode == "physics")
            rows.append(_row(n, envs or 1, mode, wall, cpu, total, rps_rates[n]))
    return rows


def _row(n: int, envs: int, mode: str, wall: float, cpu: float, total: int, rps: tuple[float, float]) -> Row:
    rate, rate_cpu = total / wall, total / max(cpu, 1e-9)
    base, base_cpu = rps
    return Row({"agents": n, "envs": envs, "mode": mode}, "env_steps_per_s", "steps/s", rate, base, BASELINE,
               extra={"ours_cpu": rate_cpu, "baseline_cpu": base_cpu, "cpu_ratio": rate_cpu / base_cpu})


def _single(env, key, limits, budget: float) -> tuple[float, float, int]:
    """One env, one jitted `step` call per Python iteration: what interactive use sees."""
    import jax
    import jax.numpy as jnp

    step = jax.jit(env.step)
    _, state = env.reset(key)
    u = jax.random.uniform(key, (env.num_agents, 2), minval=-1.0) * jnp.asarray(limits, jnp.float32)
    keys = list(jax.random.split(key, 64))

    def loop(count):
        s = state
        for i in range(count):
            _, s, *_ = step(keys[i % 64], s, u)
        jax.block_until_ready(s)
    loop(2)
    steps = max(50, int(50 * budget / _clock(lambda: loop(50))[0]))
    return (*_clock(lambda: loop(steps)), steps)


def _batched(env, key, limits, batch: int, budget: float, physics_only: bool) -> tuple[float, float, int]:
    """`batch` fleets under jit(lax.scan(vmap(...))); every output is consumed so none is compiled away."""
    import jax
    import jax.numpy as jnp

    from marlstack.sim.fleet import physics_step

    _, states = jax.vmap(env.reset)(jax.random.split(key, batch))
    u = jax.random.uniform(key, (batch, env.num_agents, 2), minval=-1.0) * jnp.asarray(limits, jnp.float32)
    dim = env.observation_space(env.agents[0]).shape[0]

    def physics(carry, k):
        poses, count = carry
        poses, viol, _ = jax.vmap(lambda p, c: physics_step(env.profile, p, c))(poses, u)
        return (poses, count + viol.collisions + viol.boundary_exits + viol.actuator_excess), None

    def full(carry, k):
        s, acc = carry
        obs, s, rew, _, _ = jax.vmap(env.step)(jax.random.split(k, batch), s, u)
        for a in env.agents:
            acc = acc + obs[a] + rew[a][:, None]
        return (s, acc), None

    if physics_only:
        body, init = physics, (states.poses, jnp.zeros((batch, env.num_agents), jnp.int32))
    else:
        body, init = full, (states, jnp.zeros((batch, dim), states.poses.dtype))

    def make(steps: int):
        scan = jax.jit(lambda c: jax.lax.scan(body, c, jax.random.split(key, steps))[0])
        jax.block_until_ready(scan(init))  # compile
        return lambda: jax.block_until_ready(scan(init))

    probe = 10
    per_step = _clock(make(probe))[0] / probe
    steps = int(min(5000, max(probe, budget / max(per_step, 1e-9))))
    return (*_clock(make(steps)), batch * steps)
