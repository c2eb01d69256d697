"""Barrier certificates for training: pure jax.numpy, jit- and vmap-able, every sim step.

`unicycle_barrier(profile, N)` and `single_integrator_barrier(profile, N)` return
`fn(poses, u) -> (u_safe, info)`. The QP is `controllers.barrier_qp`'s, shared with the
deployment filter `controllers.barrier`, so training sees what the robots will do.

Solver: Goldfarb–Idnani's dual active-set method, specialised to the identity Hessian of
min ‖u − û‖². It starts from û, adds the most violated row, and keeps the inverse Gram matrix
of the working set up to date with rank-one bordering / Schur updates, so one iteration costs
O(M·n + n²) and there is no factorisation in the loop. It is exact (finite termination, no
tolerance-driven approximation); the iteration count is the number of working-set changes,
typically the number of active constraints. `jax.lax.while_loop` stops when every lane of a
vmapped batch is done, so a batch pays for its hardest member only.

`deadlock_free_barrier` adds the deployment's right-hand rule (`controllers.barrier_deadlock`,
the same `RightHandRule` code) with its per-robot memory carried by the caller.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from marlstack.controllers.barrier_deadlock import RightHandRule
from marlstack.controllers.barrier_qp import BarrierSpec, barrier_spec, command, fix_robots, min_barrier, nominal, nominal_si, qp_rows

OK, INFEASIBLE, NONFINITE, MAX_ITERATIONS = 0, 1, 2, 3
STATUS_NAMES = {OK: "optimal", INFEASIBLE: "infeasible", NONFINITE: "nonfinite_input",
                MAX_ITERATIONS: "max_iterations"}


def _tolerance(dtype: Any) -> float:
    """Accepted constraint violation in m/s (rows are unit norm): 1e-6 in float32, 1e-10 in float64."""
    return 1e-6 if jnp.finfo(dtype).bits == 32 else 1e-10


def solve_qp(a: jax.Array, b: jax.Array, uhat: jax.Array, max_iter: int) -> dict[str, jax.Array]:
    """min ‖x − û‖² s.t. a x ≤ b (rows of `a` unit norm) by the dual active-set method.

    Returns x, the working set's rows/bounds/multipliers, iterations, converged, infeasible.
    """
    m, n = a.shape
    k_slots = n                      # independent active rows never exceed the variables
    dt = uhat.dtype
    eps = jnp.asarray(jnp.finfo(dt).eps * 64, dt)
    tol = _tolerance(dt)
    slots = jnp.arange(k_slots)
    # state: x, working rows (K, n) and bounds, inverse Gram (identity on free slots), used slots,
    # multipliers, pending row p (-1: none), its multiplier, iterations, converged, infeasible
    init = (uhat, jnp.zeros((k_slots, n), dt), jnp.zeros(k_slots, dt), jnp.eye(k_slots, dtype=dt),
            jnp.zeros(k_slots, bool),
            jnp.zeros(k_slots, dt), jnp.int32(-1), jnp.zeros((), dt), jnp.int32(0), jnp.bool_(False), jnp.bool_(False))

    def running(s):
        return ~s[9] & ~s[10] & (s[8] < max_iter)

    def step(s):
        x, aw, bw, ginv, used, lam, p, lam_p, it, _, _ = s
        slack = b - a @ x
        worst = jnp.argmin(slack).astype(jnp.int32)
        fresh = p < 0
        converged = fresh & (slack[worst] >= -tol)
        p = jnp.where(fresh, worst, p)
        lam_p = jnp.where(fresh, 0.0, lam_p)
        ap = a[p]
        # keep the working rows active while lam_p grows: x -= t z, lam -= t r
        r = ginv @ (aw @ ap)
        z = ap - aw.T @ r
        zz = z @ z
        t_full = jnp.where(zz > eps, -slack[p] / jnp.maximum(zz, eps), jnp.inf)
        ratio = jnp.where(used & (r > eps), lam / jnp.where(r > eps, r, 1.0), jnp.inf)
        drop = jnp.argmin(ratio)
        t = jnp.minimum(t_full, ratio[drop])
        infeasible = ~converged & jnp.isinf(t)
        move = ~converged & ~infeasible
        t = jnp.where(move, t, 0.0)
        x = x - t * z
        lam = jnp.where(used, lam - t * r, 0.0)
        lam_p = lam_p + t
        add = move & (t_full <= ratio[drop])
        remove = move & ~add
        at_free = add & (slots == jnp.argmin(used))
        at_drop = remove & (slots == drop)
        # bordered inverse when row p joins; Schur complement when row `drop` leaves
        s_ = jnp.maximum(zz, eps)
        keep = 1.0 - at_free
        g_add = (ginv + jnp.outer(r, r) / s_) * keep[:, None] * keep[None, :] \
            - (jnp.outer(at_free, r) + jnp.outer(r, at_free)) / s_ + jnp.outer(at_free, at_free) / s_
        col = ginv[:, drop]
        stay = 1.0 - at_drop
        g_rm = (ginv - jnp.outer(col, col) / ginv[drop, drop]) * stay[:, None] * stay[None, :] \
            + jnp.outer(at_drop, at_drop)
        ginv = jnp.where(add, g_add, jnp.where(remove, g_rm, ginv))
        aw = jnp.where(at_free[:, None], ap[None, :], jnp.where(at_drop[:, None], 0.0, aw))
        bw = jnp.where(at_free, b[p], jnp.where(at_drop, 0.0, bw))
        used = (used | at_free) & ~at_drop
        lam = jnp.where(at_free, lam_p, jnp.where(at_drop, 0.0, lam))
        p = jnp.where(add, -1, p)
        return x, aw, bw, ginv, used, lam, p, lam_p, it + 1, converged, infeasible

    x, aw, bw, _, _, lam, _, _, it, converged, infeasible = jax.lax.while_loop(running, step, init)
    return {"x": x, "rows": aw, "bounds": bw, "multipliers": lam, "iterations": it, "converged": converged,
            "infeasible": infeasible}


def kkt_residual(a: jax.Array, b: jax.Array, uhat: jax.Array, sol: dict[str, jax.Array]) -> jax.Array:
    """Largest KKT error: primal violation, stationarity x − û + Aᵀλ, complementarity λ·slack."""
    x, rows, lam = sol["x"], sol["rows"], sol["multipliers"]
    primal = jnp.max(jnp.concatenate([a @ x - b, jnp.zeros((1,), x.dtype)]))
    stationarity = jnp.max(jnp.abs(x - uhat + rows.T @ lam))
    complementarity = jnp.max(jnp.abs(lam * (rows @ x - sol["bounds"])), initial=0.0)
    return jnp.maximum(jnp.maximum(primal, stationarity), complementarity)


def make_barrier(spec: BarrierSpec, num_robots: int, max_iter: int | None = None) -> Callable:
    """fn(poses, u) -> (u_safe, info) for `spec`; see `unicycle_barrier`."""
    n = num_robots
    cap = 4 * 2 * n + 8 if max_iter is None else max_iter

    def fn(poses: jax.Array, u: jax.Array, active: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
        finite = jnp.all(jnp.isfinite(poses)) & jnp.all(jnp.isfinite(u))
        poses = jnp.where(finite, poses, 0.0)
        u = jnp.where(finite, u, 0.0)
        a, b = qp_rows(spec, poses)
        if active is not None:  # inactive robots are fixed obstacles: velocity 0, the others avoid them
            active = jnp.asarray(active, bool).reshape(n)
            u = jnp.where(active[:, None], u, 0.0)
            a, b = fix_robots(a, b, active)
        a = a.reshape(a.shape[0], 2 * n)
        uhat = nominal_si(spec, poses, u).reshape(2 * n)
        sol = solve_qp(a, b, uhat, cap)
        residual = kkt_residual(a, b, uhat, sol)
        ok = finite & sol["converged"] & jnp.all(jnp.isfinite(sol["x"]))
        status = jnp.where(~finite, NONFINITE, jnp.where(sol["infeasible"], INFEASIBLE,
                           jnp.where(ok, OK, MAX_ITERATIONS))).astype(jnp.int32)
        safe = jnp.where(ok, command(spec, poses, sol["x"].reshape(n, 2)), 0.0)
        du = safe - nominal(spec, u)
        info = {"status": status, "intervention": jnp.sqrt(jnp.sum(du * du, axis=-1)),
                "min_barrier": min_barrier(spec, poses), "residual": residual, "iterations": sol["iterations"]}
        return safe, info

    return fn


def unicycle_barrier(profile: Any, num_robots: int, form: str = "unicycle_walls",
                     max_iter: int | None = None, boxes: Any = ()) -> Callable:
    """fn(poses (N, 3), u (N, 2) = (v, ω), active=None) -> (u_safe (N, 2), info).

    active: optional (N,) bool; robots outside it (failed, parked, masked agents) get u_safe = 0
    and enter the QP as fixed obstacles, so the active ones take each avoidance in full.
    boxes: static axis-aligned obstacles (x_min, x_max, y_min, y_max), e.g. a scenario's shelves
    (`barrier_qp.barrier_spec`); N·len(boxes) rows.

    info: "status" (int32, `STATUS_NAMES`; not OK → u_safe = 0, brake); "intervention" (N,)
    ‖u_safe − û‖ per robot (û: u saturated as the robot would, `barrier_qp.nominal`);
    "min_barrier" (`barrier_qp.min_barrier`); "residual" (largest KKT error, m/s); "iterations"
    (working-set changes). Pure jax.numpy: jit and vmap apply.
    """
    if not form.startswith("unicycle"):
        raise ValueError(f"unicycle_barrier needs a unicycle form, got {form!r}")
    return make_barrier(barrier_spec(profile, form, boxes=boxes), num_robots, max_iter)


def single_integrator_barrier(profile: Any, num_robots: int, form: str = "single_integrator",
                              max_iter: int | None = None, boxes: Any = ()) -> Callable:
    """fn(positions (N, 2), u (N, 2) = (ẋ, ẏ)) -> (u_safe (N, 2), info); û is scaled to
    ‖ûᵢ‖ ≤ max_linear_speed first, as rps does."""
    if not form.startswith("single_integrator"):
        raise ValueError(f"single_integrator_barrier needs a single-integrator form, got {form!r}")
    return make_barrier(barrier_spec(profile, form, boxes=boxes), num_robots, max_iter)


def deadlock_memory(num_robots: int) -> dict[str, jax.Array]:
    """The right-hand rule's per-robot memory at the start of an episode: nobody stuck, nobody turning."""
    zeros = jnp.zeros(num_robots, jnp.int32)
    return {"stuck": zeros, "left": zeros}


def deadlock_free_barrier(profile: Any, num_robots: int, dt: float, form: str = "unicycle_walls",
                          max_iter: int | None = None, boxes: Any = (), **rule_args: Any) -> Callable:
    """`unicycle_barrier` plus the right-hand rule of the deployment's `DeadlockFreeFilter`:
    fn(poses, u, memory, active=None) -> (u_safe, info, memory), memory from `deadlock_memory`.

    dt: the period fn is called at (s); rule_args: `RightHandRule.make`'s (hold_s, turn_s, angle, ...),
    the deployment's defaults. Only the nominal changes, the QP is `unicycle_barrier`'s, so each step is
    certified as without the rule. info adds "deadlock_turning" (N,) (the nominal was turned this call) and
    "deadlock_started" (N,) (a robot was found deadlocked: its turn starts next call). A non-finite input
    brakes (as `unicycle_barrier`) and leaves the memory as it was. Pure jax.numpy: jit and vmap apply.
    """
    spec = barrier_spec(profile, form, boxes=boxes)
    rule = RightHandRule.make(spec, profile, dt, **rule_args)
    barrier = make_barrier(spec, num_robots, max_iter)
    n = num_robots

    def fn(poses: jax.Array, u: jax.Array, memory: dict[str, jax.Array], active: jax.Array | None = None
           ) -> tuple[jax.Array, dict[str, jax.Array], dict[str, jax.Array]]:
        mask = jnp.ones(n, bool) if active is None else jnp.asarray(active, bool).reshape(n)
        u_in, want, turn = rule.steer(poses, u, memory["left"], mask)
        safe, info = barrier(poses, u_in, active)
        stuck, left, start = rule.update(poses, want, turn, safe, info["status"] == OK, memory["stuck"],
                                         memory["left"], mask)
        finite = info["status"] != NONFINITE
        memory = {"stuck": jnp.where(finite, stuck, memory["stuck"]), "left": jnp.where(finite, left, memory["left"])}
        return safe, info | {"deadlock_turning": turn & finite, "deadlock_started": start & finite}, memory

    return fn
