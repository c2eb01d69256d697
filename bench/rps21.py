"""`marlstack bench rps21`: our batched JAX fleet env against rps 2.1.0, the Robotarium's own simulator.

Issue 18's goal: a full environment step ≥ 1000× rps. The baseline is rps 2.1.0 (what the
Robotarium runs submissions on; it is not on the package index) in its own virtual environment
(`.venv-rps21`, made by the Robotarium tests: tests/targets/rps21_env.py), run in a subprocess that
times its own loop (`get_poses`, `set_velocities`, `step`: one fleet, no figure, not in real time),
so interpreter start-up is not counted. Ours, in this process, on the profile that matches rps 2.1's
physics (`gritsbot_x`, parity 1e-9 in tests/targets/test_gritsbot_parity.py):
- `env`: B fleets, jit(lax.scan(vmap(FleetEnv.step))): physics, reward, every robot's observation,
  episode bookkeeping and auto-reset, every output consumed, as training steps it;
- `physics`: B fleets, the physics step alone (saturation, violations, integration): rps's work.
rps steps one fleet at a time, so its rate for B fleets is its one-fleet rate. Rounds alternate rps
and ours; every round's rates are kept and the row gives their medians. Wall-clock rates and process
CPU-time rates (ours may use both cores; CPU time is the steadier figure on a shared machine).
"""
from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any, Callable

import numpy as np

from marlstack.bench.report import Row

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 1000.0
RPS_LOOP = """
import json, sys, time
import numpy as np
import rps.robotarium as robotarium
n, seconds = int(sys.argv[1]), float(sys.argv[2])
initial = np.array(json.loads(sys.argv[3])).T.copy()
r = robotarium.Robotarium(number_of_robots=n, show_figure=False, sim_in_real_time=False,
                          initial_conditions=initial, skip_initialization=True)
rng = np.random.default_rng(n)
u = rng.uniform(-1, 1, (64, 2, n)) * np.array([[0.2], [3.0]])
ids = np.arange(n)
steps, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
while time.perf_counter() - wall0 < seconds:
    for i in range(64):
        r.get_poses()
        r.set_velocities(ids, u[i])
        r.step()
    steps += 64
print(json.dumps({"steps": steps, "wall": time.perf_counter() - wall0, "cpu": time.process_time() - cpu0}))
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agents", type=int, nargs="+", default=[4, 10], help="fleet sizes (default 4 10)")
    parser.add_argument("--envs", type=int, nargs="+", default=[64, 1024], help="batch sizes (default 64 1024)")
    parser.add_argument("--modes", default="env,physics",
                        help="ours, comma-separated: physics (rps's work), transition (+ reward), observe (+ every "
                             "robot's observation), env (+ auto-reset: the full step); default env,physics; all four "
                             "give the full step's breakdown")
    parser.add_argument("--rounds", type=int, default=5, help="alternations of rps and ours (default 5)")
    parser.add_argument("--seconds", type=float, default=1.0, help="time per rps measurement (default 1)")
    parser.add_argument("--steps", type=int, default=200, help="steps per batched scan of ours (default 200)")
    parser.add_argument("--rps-python", type=Path, default=ROOT / ".venv-rps21" / "bin" / "python",
                        help="python of a venv with rps 2.1.0 (default .venv-rps21, made by the Robotarium tests)")


def rps_rate(python: Path, initial: np.ndarray, seconds: float) -> tuple[float, float]:
    """(steps/s wall, steps/s CPU) of rps 2.1 stepping one fleet from `initial` (N, 3)."""
    done = subprocess.run([str(python), "-c", RPS_LOOP, str(len(initial)), str(seconds), json.dumps(initial.tolist())],
                          capture_output=True, text=True, timeout=120 + 10 * seconds)
    if done.returncode:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"bench rps21: rps 2.1.0 failed in {python}: {tail}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return out["steps"] / out["wall"], out["steps"] / max(out["cpu"], 1e-9)


MODES = ("physics", "transition", "observe", "env")  # each stage the one before plus one piece


def batched_fn(env: Any, batch: int, steps: int, mode: str) -> Callable[[], Any]:
    """A compiled scan of `steps` steps of `batch` fleets (random commands within the limits) up to stage
    `mode`: `physics` (rps's work), `transition` (+ reward and episode bookkeeping, `FleetEnv._transition`),
    `observe` (+ every robot's observation, `FleetEnv.step_env`), `env` (+ the auto-reset: `FleetEnv.step`)."""
    import jax
    import jax.numpy as jnp

    from marlstack.sim.fleet import physics_step
    key = jax.random.PRNGKey(batch)
    _, states = jax.vmap(env.reset)(jax.random.split(key, batch))
    limits = jnp.asarray(env.action_space(env.agents[0]).high, jnp.float32)
    u = jax.random.uniform(key, (steps, batch, env.num_agents, 2), minval=-1.0) * limits

    def physics(poses, ui):
        poses, viol, _ = jax.vmap(lambda p, c: physics_step(env.profile, p, c))(poses, ui)
        return poses, viol.collisions.sum() + viol.boundary_exits.sum()

    def stage(carry, x):
        s, acc = carry
        k, ui = x
        keys = jax.random.split(k, batch)
        if mode == "transition":
            s, rew, _, _ = jax.vmap(env._transition)(keys, s, ui)
            return (s, acc + rew.sum()), None
        obs, s, rew, _, _ = jax.vmap(env.step_env if mode == "observe" else env.step)(keys, s, ui)
        if isinstance(rew, dict):
            rew = jnp.stack([rew[a] for a in env.agents], -1)
        return (s, acc + rew.sum() + sum(obs[a].sum() for a in env.agents)), None

    keys = jax.random.split(key, steps)
    if mode == "physics":
        run = jax.jit(lambda: jax.lax.scan(physics, states.poses, u))
    else:
        run = jax.jit(lambda: jax.lax.scan(stage, (states, jnp.zeros(())), (keys, u)))
    jax.block_until_ready(run())  # compile
    return lambda: jax.block_until_ready(run())


def run(args: argparse.Namespace) -> list[Row]:
    import os
    import time
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    from marlstack.sim.fleet import FleetEnv
    if not Path(args.rps_python).is_file():
        raise SystemExit(f"bench rps21: no rps 2.1.0 venv at {args.rps_python}; the Robotarium tests make it "
                         f"(`pytest tests/targets/test_gritsbot_parity.py`, the wheel in ../shared/wheels/), or pass --rps-python")
    rows: list[Row] = []
    for n in args.agents:
        env = FleetEnv("gritsbot_x", num_agents=n)
        initial = np.asarray(env.reset(jax.random.PRNGKey(n))[1].poses, np.float64)
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        if not modes or set(modes) - set(MODES):
            raise SystemExit(f"bench rps21: --modes takes {', '.join(MODES)}, got {args.modes!r}")
        fns = {(mode, b): batched_fn(env, b, args.steps, mode) for b in args.envs for mode in modes}
        rps_runs, ours_runs = [], {k: [] for k in fns}
        for _ in range(args.rounds):
            rps_runs.append(rps_rate(args.rps_python, initial, args.seconds))
            for (mode, b), fn in fns.items():
                wall, cpu = time.perf_counter(), time.process_time()
                fn()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                ours_runs[(mode, b)].append((b * args.steps / wall, b * args.steps / max(cpu, 1e-9)))
        rps_wall, rps_cpu = (float(np.median([r[i] for r in rps_runs])) for i in (0, 1))
        for (mode, b), runs in ours_runs.items():
            wall, cpu = (float(np.median([r[i] for r in runs])) for i in (0, 1))
            rows.append(Row({"agents": n, "envs": b, "mode": mode}, "env_steps_per_s", "steps/s", wall, rps_wall,
                            "rps 2.1.0 (one fleet, own venv)", True,
                            {"ours_cpu": cpu, "baseline_cpu": rps_cpu, "cpu_ratio": cpu / rps_cpu,
                             "runs_ratio": [round(o[0] / r[0], 1) for o, r in zip(runs, rps_runs)],
                             "runs_ours": [round(o[0]) for o in runs], "runs_rps": [round(r[0]) for r in rps_runs],
                             **({"goal_ratio": GOAL_RATIO} if mode == "env" else {})}))
    return rows
