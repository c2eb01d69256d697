"""The MAV team's barrier certificate for training and evaluation: jit- and vmap-able.

`mav_barrier(profile, N)` returns `fn(pos, vel, a_nom, active=None) -> (a_safe, info)`: the exact QP of
`controllers.mav_barrier` solved by the ground fleet's dual active-set solver (`controllers.barrier_jax`).
Inactive MAVs (failed, stopped) are obstacles whose acceleration is zero; their command passes through.
A non-finite input or an infeasible QP yields zero acceleration command for everyone (hover) and a status.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from controllers.barrier_jax import INFEASIBLE, MAX_ITERATIONS, NONFINITE, OK, kkt_residual, solve_qp
from controllers.mav_barrier import barriers, mav_barrier_spec, rows


def mav_barrier(profile: Any, num_mavs: int, max_iter: int | None = None) -> Callable:
    spec = mav_barrier_spec(profile)
    n = num_mavs
    cap = 10 * n + 16 if max_iter is None else max_iter

    def fn(pos: jax.Array, vel: jax.Array, a_nom: jax.Array, active: jax.Array | None = None):
        active = jnp.ones(n, bool) if active is None else active
        finite = jnp.all(jnp.isfinite(pos)) & jnp.all(jnp.isfinite(vel)) & jnp.all(jnp.isfinite(a_nom))
        pos, vel = jnp.where(finite, pos, 0.0), jnp.where(finite, vel, 0.0)
        a_nom = jnp.where(finite, a_nom, 0.0)
        a, b = rows(spec, pos, vel)
        # an inactive MAV's columns are pinned at zero acceleration: its rows move to the right-hand side
        # with a zero contribution, and its own wall / limit rows are dropped (it is not ours to steer)
        cols = jnp.repeat(active, 3)
        a = jnp.where(cols[None, :], a, 0.0)
        norm = jnp.linalg.norm(a, axis=-1)
        keep = norm > 1e-9
        a = a / jnp.where(keep, norm, 1.0)[:, None]
        b = jnp.where(keep, b / jnp.where(keep, norm, 1.0), jnp.maximum(b, 0.0))
        uhat = jnp.where(cols, a_nom.reshape(-1), 0.0)
        sol = solve_qp(a, b, uhat, cap)
        ok = finite & sol["converged"] & jnp.all(jnp.isfinite(sol["x"]))
        status = jnp.where(~finite, NONFINITE, jnp.where(sol["infeasible"], INFEASIBLE,
                           jnp.where(ok, OK, MAX_ITERATIONS))).astype(jnp.int32)
        safe = jnp.where(ok, sol["x"].reshape(n, 3), 0.0)
        safe = jnp.where(active[:, None], safe, a_nom)
        du = jnp.where(active[:, None], safe - a_nom, 0.0)
        info = {"status": status, "intervention": jnp.linalg.norm(du, axis=-1),
                "residual": kkt_residual(a, b, uhat, sol), "iterations": sol["iterations"],
                **barriers(spec, pos)}
        return safe, info

    return fn


def fuzz(profile: Any, num_mavs: int, seeds: int, steps: int, active: Any = None, dt: float = 0.01,
         states: bool = False, delay_steps: int = 0) -> dict:
    """The certificate on its own model under random commands: double integrators with a zero-order hold
    at `dt`, starting 0.8 m apart, commanded ±5 m/s² per axis (redrawn on 10 % of the steps) plus a pull
    towards the team's centre; inactive MAVs stay put. Per seed and step: `separation` and `box` margins
    to the certified values, `status`, `intervention` (mean over MAVs); with `states`, also the filter's
    inputs `pos`, `vel`, `a_nom` (N, 3) each. With `delay_steps`, the filter sees the state that many steps
    old with positions carried forward by velocity over that age (as the onboard stage does), and the margins
    are the true state's. `run_s`, `run_cpu_s`: the compiled run's wall and CPU time (all threads; for the bench)."""
    n = num_mavs
    fn = mav_barrier(profile, n)
    spec = mav_barrier_spec(profile)
    grid = jnp.asarray([[0.0, 0.0, 2.0], [0.8, 0.0, 2.0], [0.0, 0.8, 2.0], [0.8, 0.8, 2.0]][:n])
    act = jnp.ones(n, bool) if active is None else jnp.asarray(active)

    def run(key):
        k0, k1 = jax.random.split(key)
        pos0 = grid + jax.random.uniform(k0, (n, 3), minval=-0.1, maxval=0.1)

        def step(c, k):
            pos, vel, a_prev, past_pos, past_vel = c   # past_*: the last delay_steps + 1 states, oldest first
            past_pos = jnp.concatenate([past_pos[1:], pos[None]])
            past_vel = jnp.concatenate([past_vel[1:], vel[None]])
            seen_pos, seen_vel = past_pos[0] + past_vel[0] * (delay_steps * dt), past_vel[0]
            k_a, k_redraw = jax.random.split(k)
            a_nom = jax.random.uniform(k_a, (n, 3), minval=-5.0, maxval=5.0) + 3.0 * (seen_pos.mean(0) - seen_pos)
            a_nom = jnp.where(jax.random.uniform(k_redraw) < 0.1, a_nom, a_prev)
            a, info = fn(seen_pos, seen_vel, a_nom, act)
            out = {**barriers(spec, pos), "status": info["status"], "intervention": info["intervention"].mean()}
            if states:
                out.update(pos=seen_pos, vel=seen_vel, a_nom=a_nom)
            vel = vel + jnp.where(act[:, None], a, 0.0) * dt
            return (pos + vel * dt, vel, a_nom, past_pos, past_vel), out

        history = lambda x: jnp.repeat(x[None], delay_steps + 1, 0)  # noqa: E731
        init = (pos0, jnp.zeros((n, 3)), jnp.zeros((n, 3)), history(pos0), history(jnp.zeros((n, 3))))
        return jax.lax.scan(step, init, jax.random.split(k1, steps))[1]

    keys = jax.random.split(jax.random.PRNGKey(n), seeds)
    compiled = jax.jit(jax.vmap(run)).lower(keys).compile()
    t0, c0 = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(compiled(keys))
    timing = {"run_s": time.perf_counter() - t0, "run_cpu_s": time.process_time() - c0}
    return {**timing, **{k: np.asarray(v) for k, v in out.items()}}


__all__ = ["mav_barrier", "fuzz", "OK", "INFEASIBLE", "NONFINITE", "MAX_ITERATIONS"]
