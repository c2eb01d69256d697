"""`marlstack bench cable`: cable-load environment steps/s next to a free-flying quadrotor.

One env step = one 100 Hz policy step: `substeps` × (low-level controller + physics of N MAVs, N
cables and the load), then observations, rewards, terminations and the automatic reset. The baseline,
in the same run and batch size, is one quadrotor flying free under the same controller and integrator
(the same code path with its cable released), controller + physics substeps only: the ratio is the
price of the team, the cables and the environment around them.
Both are timed inside one jitted `lax.scan` over steps with `vmap` over environments (no Python per step).
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
from tqdm import tqdm

from marlstack.bench.report import Row
from marlstack.hardware import ProfileError, load_profile
from marlstack.hardware.mav_profile import Team
from marlstack.sim.cable.env import ACTION_DIM, CableEnv

REPEATS = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="mav_corl25", help="MAV team profile (default: mav_corl25)")
    parser.add_argument("--quick", action="store_true", help="batches 1 and 256 only, fewer steps")
    parser.add_argument("--batches", type=int, nargs="+", help="environment batch sizes (default: 1 256 4096)")
    parser.add_argument("--teams", type=int, nargs="+", default=[3, 4], help="team sizes (default: 3 4)")
    parser.add_argument("--env-steps", type=int, help="env steps per measurement, summed over the batch")
    parser.add_argument("--chunk", type=int, default=256, help="step larger batches as vmapped chunks of this many "
                        "envs (lax.map), which keeps each chunk in the CPU cache; 0 = one vmap (default: 256)")


def _rate(env: CableEnv, batch: int, total: int, key: jax.Array, chunk: int, physics_only: bool = False) -> float:
    """Env steps/s with zero actions, vmapped over `batch` (in chunks), scanned over steps: the full
    `env.step` (auto-reset included), or only `env.step_physics` (controller + physics substeps)."""
    steps = max(10, total // batch)
    _, states = jax.vmap(env.reset)(jax.random.split(key, batch))
    zero = jnp.zeros((env.num_agents, ACTION_DIM), jnp.float32)

    def one(k, state):
        return env.step_physics(state, zero) if physics_only else env.step(k, state, zero)[1]

    def advance(states, k):
        keys = jax.random.split(k, batch)
        if chunk and batch > chunk and batch % chunk == 0:
            return jax.lax.map(lambda ks: one(*ks), (keys, states), batch_size=chunk)
        return jax.vmap(one)(keys, states)

    @jax.jit
    def run(states, key):
        return jax.lax.scan(lambda c, k: (advance(c, k), None), states, jax.random.split(key, steps))[0]

    jax.block_until_ready(run(states, key))  # compile and warm up
    best = float("inf")
    for _ in range(REPEATS):  # best of a few: other processes on a shared machine only ever slow us down
        t0 = time.perf_counter()
        jax.block_until_ready(run(states, key))
        best = min(best, time.perf_counter() - t0)
    return steps * batch / best


def _free_flyer(profile: Any) -> CableEnv:
    """One quadrotor under the same controller and integrator, its cable released (the load's free fall
    is the only extra work)."""
    one = dataclasses.replace(profile, load=dataclasses.replace(profile.load, teams=(
        Team(attachment_points=(profile.load.teams[0].attachment_points[0],), cable_tilt=0.0),)))
    return CableEnv(one, 1, free_flight=True)


def run(args: argparse.Namespace) -> list[Row]:
    try:
        profile = load_profile(args.profile)
    except ProfileError as exc:
        raise SystemExit(f"marlstack bench cable: {exc}") from None
    batches = args.batches or ([1, 256] if args.quick else [1, 256, 4096])
    total = args.env_steps or (20_000 if args.quick else 100_000)
    key = jax.random.PRNGKey(0)
    rows = []
    jobs = [(n, b) for b in batches for n in args.teams]
    baseline: dict[int, float] = {}
    for n, b in tqdm(jobs, desc="bench cable", unit="case"):
        if b not in baseline:
            baseline[b] = _rate(_free_flyer(profile), b, total, key, args.chunk, physics_only=True)
        ours = _rate(CableEnv(profile, n), b, total, key, args.chunk)
        chunked = args.chunk if args.chunk and b > args.chunk and b % args.chunk == 0 else b
        rows.append(Row(params={"profile": profile.name, "mavs": n, "envs": b, "vmap_chunk": chunked,
                                "substeps": profile.substeps,
                                "integrator": profile.control.integrator, "inner_loop": profile.control.inner_loop},
                        metric="env steps/s", unit="1/s", ours=ours, baseline=baseline[b],
                        baseline_name="1 free quadrotor: controller + physics substeps only", higher_is_better=True))
    return rows
