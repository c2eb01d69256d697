"""The MAV team's barrier certificate for training and evaluation: jit- and vmap-able.

`mav_barrier(profile, N)` returns `fn(pos, vel, a_nom, active=None, cables=None) -> (a_safe, info)`: the
exact QP of `controllers.mav_barrier` solved by the ground fleet's dual active-set solver
(`controllers.barrier_jax`). Inactive MAVs (failed, stopped) are obstacles whose acceleration is zero; their
command passes through, and their cable (released) leaves the cable rows. With `cables`
(`controllers.mav_barrier.Cables`) and a profile `safety.cable_separation`, the soft cable rows join: held
exactly by a first solve, relaxed by a second (with their slacks) only in the lanes where the first has no solution.
A non-finite input or an infeasible QP yields zero acceleration command for everyone (hover) and a status.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from marlstack.controllers.barrier_jax import INFEASIBLE, MAX_ITERATIONS, NONFINITE, OK, kkt_residual, solve_qp
from marlstack.controllers.mav_barrier import (CABLE_SLACK_COST, FREE, Cables, barriers, cable_geometry, cable_row_span,
                                               hook_pairs, mav_barrier_spec, pairs, rows, soften)


def mav_barrier(profile: Any, num_mavs: int, max_iter: int | None = None) -> Callable:
    spec = mav_barrier_spec(profile)
    n = num_mavs
    first, npair, nangle = cable_row_span(spec, n, True)
    cap = 10 * (n + npair + nangle) + 16 if max_iter is None else max_iter  # per solve; the soft rows add variables
    iu, ju = (np.concatenate(x) for x in zip(pairs(n), hook_pairs(n)))   # the MAVs of each cable pair / hook row

    def fn(pos: jax.Array, vel: jax.Array, a_nom: jax.Array, active: jax.Array | None = None,
           cables: Cables | None = None):
        active = jnp.ones(n, bool) if active is None else active
        inputs = (pos, vel, a_nom) + (() if cables is None else tuple(cables))
        finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in inputs]))
        clean = lambda x: jnp.where(finite, x, 0.0)  # noqa: E731
        pos, vel, a_nom = clean(pos), clean(vel), clean(a_nom)
        cables = None if cables is None else Cables(*(clean(x) for x in cables))
        a, b = rows(spec, pos, vel, cables, active)
        count = npair + nangle if cables is not None else 0
        # an inactive MAV's columns are pinned at zero acceleration: its rows move to the right-hand side
        # with a zero contribution, and its own wall / limit rows are dropped (it is not ours to steer);
        # its cable is released: the cable rows it is part of are dropped
        cols = jnp.repeat(active, 3)
        rows_on = jnp.ones(a.shape[0], bool)
        rows_on = rows_on.at[first:first + npair].set(active[iu] & active[ju]) if count and npair else rows_on
        rows_on = rows_on.at[first + npair:first + count].set(active) if count and nangle else rows_on
        a = jnp.where(cols[None, :] & rows_on[:, None], a, 0.0)
        norm = jnp.linalg.norm(a, axis=-1)
        keep = norm > 1e-9
        a = a / jnp.where(keep, norm, 1.0)[:, None]
        b = jnp.where(keep, b / jnp.where(keep, norm, 1.0), jnp.maximum(b, 0.0))
        uhat = jnp.where(cols, a_nom.reshape(-1), 0.0)
        sol = solve_qp(a, b, uhat, cap)          # every row held, the soft ones too
        residual, slack = kkt_residual(a, b, uhat, sol), jnp.zeros((), a.dtype)
        if count:
            # only where that has no solution (the soft rows conflict with the hard ones, or the cap) do the
            # soft rows give way; the other lanes' second solve binds nothing and ends at once
            give = ~sol["converged"]
            sa, sb = soften(a, b, first, count)
            sa = jnp.where(keep[:, None], sa, 0.0)   # a dropped row stays empty (its slack column too)
            suhat = jnp.concatenate([uhat, jnp.zeros(count, uhat.dtype)])
            soft = solve_qp(sa, jnp.where(give, sb, FREE), suhat, cap)
            pick = lambda x, y: jnp.where(give, x, y)  # noqa: E731
            residual = pick(kkt_residual(sa, sb, suhat, soft), residual)
            slack = pick(jnp.max(jnp.maximum(soft["x"][3 * n:], 0.0)) / CABLE_SLACK_COST ** 0.5, slack)
            sol = {"x": pick(soft["x"][:3 * n], sol["x"]), "converged": pick(soft["converged"], sol["converged"]),
                   "infeasible": pick(soft["infeasible"], sol["infeasible"]),
                   "iterations": sol["iterations"] + jnp.where(give, soft["iterations"], 0)}
        ok = finite & sol["converged"] & jnp.all(jnp.isfinite(sol["x"]))
        status = jnp.where(~finite, NONFINITE, jnp.where(sol["infeasible"], INFEASIBLE,
                           jnp.where(ok, OK, MAX_ITERATIONS))).astype(jnp.int32)
        safe = jnp.where(ok, sol["x"].reshape(n, 3), 0.0)
        safe = jnp.where(active[:, None], safe, a_nom)
        du = jnp.where(active[:, None], safe - a_nom, 0.0)
        info = {"status": status, "intervention": jnp.linalg.norm(du, axis=-1),
                "residual": residual, "iterations": sol["iterations"],
                "cable_slack": jnp.where(ok, slack, 0.0), **barriers(spec, pos, cables)}
        return safe, info

    return fn


def fuzz(profile: Any, num_mavs: int, seeds: int, steps: int, active: Any = None, dt: float = 0.01,
         states: bool = False, delay_steps: int = 0, cables: bool = False) -> dict:
    """The certificate on its own model under random commands: double integrators with a zero-order hold
    at `dt`, starting 0.8 m apart, commanded ±5 m/s² per axis (redrawn on 10 % of the steps) plus a pull
    towards the team's centre; inactive MAVs stay put. Per seed and step: `separation` and `box` margins
    to the certified values, `status`, `intervention` (mean over MAVs); with `states`, also the filter's
    inputs `pos`, `vel`, `a_nom` (N, 3) each. With `delay_steps`, the filter sees the state that many steps
    old with positions carried forward by velocity over that age (as the onboard stage does), and the margins
    are the true state's. With `cables`, each MAV hangs a cable to the profile's attachment point on a load
    held still 1 m below the team (the rows' assumption: the load does not accelerate), the MAVs start above
    their attachments spread outwards, and the filter has the cable rows: margin `cables` to the certified
    cable separation, `cable_slack` the largest relaxation of a cable row (m/s²).
    `run_s`, `run_cpu_s`: the compiled run's wall and CPU time (all threads; for the bench)."""
    n = num_mavs
    fn = mav_barrier(profile, n)
    spec = mav_barrier_spec(profile)
    grid = jnp.asarray([[0.0, 0.0, 2.0], [0.8, 0.0, 2.0], [0.0, 0.8, 2.0], [0.8, 0.8, 2.0]][:n])
    if cables:
        attach = jnp.asarray(cable_geometry(profile, n).attach) + jnp.asarray([0.0, 0.0, 1.0])   # the load's centre
        grid = attach * jnp.asarray([2.2, 2.2, 1.0]) + jnp.asarray([0.0, 0.0, 1.0])
        still = jnp.zeros((n, 3))
        team_cables = lambda top, top_vel: Cables(top, top_vel, attach, still, still)  # noqa: E731
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
            a, info = fn(seen_pos, seen_vel, a_nom, act, team_cables(seen_pos, seen_vel) if cables else None)
            out = {**barriers(spec, pos, team_cables(pos, vel) if cables else None), "status": info["status"],
                   "intervention": info["intervention"].mean(), **({"cable_slack": info["cable_slack"]} if cables else {})}
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
    load = {"load_pos": np.asarray([0.0, 0.0, 1.0])} if cables else {}   # where the cables' load is held
    return {**timing, **load, **{k: np.asarray(v) for k, v in out.items()}}


__all__ = ["mav_barrier", "fuzz", "OK", "INFEASIBLE", "NONFINITE", "MAX_ITERATIONS"]
