"""`marlstack bench barrier`: barrier-certificate speed, always next to its safety record.

Deployment rows: per-call latency (p50, p99; wall clock and CPU time) of
`controllers.barrier.BarrierFilter` along an antipodal swap, against rps's
`create_unicycle_barrier_certificate_with_boundary` (cvxopt) on the same inputs.
Training rows: safe simulator steps per second (barrier + physics every step, vmapped over
environments) against rps's barrier + a numpy step in a loop. Each row carries the swap's
minimum collision-centre distance and collision count, the solver's largest KKT residual and
its iteration counts.
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from marlstack.bench.report import Row
from marlstack.hardware import load_profile

SUCCESS_RADIUS = 0.1   # m: "at the goal" (the navigation scenario's radius)
SWIRL = 0.3            # rad: right-hand rule of the swap's nominal controller (see swap_nominal)


def swap_nominal(profile: Any, poses: Any, goals: Any, form: str = "unicycle_walls", swirl: float = SWIRL) -> Any:
    """The swap's nominal command, rps's barrier-example pipeline: the single-integrator position
    controller on the projection point (rps's 0.15 m/s = 0.75 of the speed limit), mapped to
    (v, ω) through the projection. A 0.3 rad right-hand swirl breaks the head-on standoffs in which
    an exact barrier (ours or rps's) otherwise parks the robots for good; `swirl=0` is the plain
    goal-seeking controller that ignores the others (the deadlock rows and tests use it with
    `controllers.barrier_deadlock`)."""
    from marlstack.controllers.barrier_qp import barrier_spec
    from marlstack.controllers.unicycle import si_position_controller, si_to_uni, uni_to_si_states
    d = barrier_spec(profile, form).projection_distance
    dxi = si_position_controller(uni_to_si_states(poses, d), goals, magnitude_limit=0.75 * profile.max_linear_speed,
                                 swirl=swirl)
    return si_to_uni(dxi, poses, d)


def swap_start(profile: Any, n: int, phase: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """n robots evenly spaced (by arc length) on an ellipse at 80 % of the arena's half-extents,
    in more rings inside (each 0.25 smaller) once they would be closer than 0.26 m, all facing
    their goal: the antipodal point. `phase` in [0, 1) shifts the robots by that fraction of their
    spacing. Returns poses (n, 3) and goals (n, 2)."""
    a = profile.arena
    centre = np.array([(a.x_min + a.x_max) / 2, (a.y_min + a.y_max) / 2])
    half = np.array([(a.x_max - a.x_min) / 2, (a.y_max - a.y_min) / 2])
    t = np.linspace(0, 2 * np.pi, 4001)
    offsets, scale = np.zeros((0, 2)), 0.8
    while len(offsets) < n and scale > 0:
        ring = half * scale * np.column_stack([np.cos(t), np.sin(t)])
        arc = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(ring, axis=0), axis=1))])
        k = min(n - len(offsets), int(arc[-1] // 0.26))
        at = np.interp((np.arange(k) + phase) * arc[-1] / k, arc, t)
        offsets = np.concatenate([offsets, half * scale * np.column_stack([np.cos(at), np.sin(at)])])
        scale -= 0.25
    if len(offsets) < n:
        raise ValueError(f"an antipodal swap of {n} robots does not fit in the arena of {profile.name}")
    start, goals = centre + offsets, centre - offsets
    heading = np.arctan2(goals[:, 1] - start[:, 1], goals[:, 0] - start[:, 0])
    return np.column_stack([start, heading]), goals


def pair_distances(profile: Any, poses: Any) -> Any:
    """(..., N, 3) poses → (..., N(N−1)/2) distances between collision centres (the profile's
    rule: centres shifted collision_offset along the heading). numpy or jax.numpy."""
    from marlstack.controllers.arrays import xp
    from marlstack.controllers.barrier_qp import pairs
    m = xp(poses)
    th = poses[..., 2:3]
    c = poses[..., :2] + profile.collision_offset * m.concatenate([m.cos(th), m.sin(th)], axis=-1)
    i, j = pairs(poses.shape[-2])
    diff = c[..., i, :] - c[..., j, :]
    return m.sqrt(m.sum(diff * diff, axis=-1))


def outside(profile: Any, poses: Any) -> Any:
    """(..., N) True where a robot's centre is outside the arena (rps's boundary rule)."""
    a = profile.arena
    x, y = poses[..., 0], poses[..., 1]
    return (x < a.x_min) | (x > a.x_max) | (y < a.y_min) | (y > a.y_max)


def swap_summary(profile: Any, traj: np.ndarray, goals: np.ndarray) -> dict[str, Any]:
    """traj (T+1, N, 3) → min distance, collisions (pair-steps), exits, arrival time (s) or None."""
    d = pair_distances(profile, traj)
    there = np.all(np.linalg.norm(traj[..., :2] - goals, axis=-1) <= SUCCESS_RADIUS, axis=-1)
    # arrived: the first step from which every robot stays within the radius to the end
    stays = np.flip(np.cumprod(np.flip(there)))
    arrival = int(np.argmax(stays)) if stays[-1] else None
    return {"min_distance": float(d.min(initial=np.inf)), "collisions": int((d <= profile.collision_distance).sum()),
            "boundary_exits": int(outside(profile, traj).sum()),
            "arrival_s": None if arrival is None else arrival * profile.dt}


def numpy_step(profile: Any, poses: np.ndarray, u: np.ndarray) -> np.ndarray:
    """rps's step in numpy: saturate like the profile, forward Euler, wrap the heading."""
    from marlstack.controllers.unicycle import saturate
    v, w = saturate(u[:, 0], u[:, 1], profile)
    th = poses[:, 2]
    new = np.column_stack([poses[:, 0] + profile.dt * np.cos(th) * v, poses[:, 1] + profile.dt * np.sin(th) * v,
                           th + profile.dt * w])
    new[:, 2] = np.arctan2(np.sin(new[:, 2]), np.cos(new[:, 2]))
    return new


def swap_numpy(profile: Any, n: int, steps: int, filt: Any = None, form: str = "unicycle_walls",
               record: bool = False, swirl: float = SWIRL) -> dict[str, Any]:
    """Antipodal swap with the deployment filter and `swap_nominal`, in numpy.

    Returns the `swap_summary` plus worst status/residual, and with `record` the (poses, nominal)
    inputs of every call (the latency benchmark replays them)."""
    from marlstack.controllers.barrier import BarrierFilter
    filt = filt or BarrierFilter(profile, n, form)
    poses, goals = swap_start(profile, n)
    traj, calls, statuses, residual, iters = [poses], [], set(), 0.0, []
    for _ in range(steps):
        u = swap_nominal(profile, poses, goals, form, swirl)
        if record:
            calls.append((poses, u))
        res = filt.filter(poses, u)
        statuses.add(res.status)
        residual = max(residual, res.residual)
        iters.append(res.iterations)
        poses = numpy_step(profile, poses, res.u)
        traj.append(poses)
    out = swap_summary(profile, np.array(traj), goals)
    out |= {"statuses": sorted(statuses), "residual": residual, "iterations_max": int(max(iters, default=0))}
    if record:
        out["calls"] = calls
    return out


def swap_jax(profile: Any, n: int, steps: int, form: str = "unicycle_walls", batch: int | None = None) -> Any:
    """A jitted antipodal swap with the training barrier and the simulator's physics; with
    `batch`, that many swaps vmapped, each turned by a different phase.

    Returns a function () -> dict of numpy aggregates per environment: min_distance (collision
    centres), collisions (pair-steps), boundary_exits (robot-steps), arrival_s (NaN: never
    settled), not_optimal (steps whose status was not OK), residual (max), iterations (mean, max)."""
    import jax
    import jax.numpy as jnp

    from marlstack.controllers.barrier_jax import OK, unicycle_barrier
    from marlstack.sim.fleet import physics_step

    barrier = unicycle_barrier(profile, n, form)

    def rollout(poses, goals):
        def step(carry, t):
            p, dmin, coll, exits, last_away, bad, res, it_sum, it_max = carry
            u_safe, info = barrier(p, swap_nominal(profile, p, goals, form))
            new, _, _ = physics_step(profile, p, u_safe)
            d, out = pair_distances(profile, new), outside(profile, new)
            away = jnp.any(jnp.linalg.norm(new[:, :2] - goals, axis=-1) > SUCCESS_RADIUS)
            return (new, jnp.minimum(dmin, jnp.min(d, initial=jnp.inf)), coll + jnp.sum(d <= profile.collision_distance),
                    exits + jnp.sum(out), jnp.where(away, t + 1, last_away), bad + (info["status"] != OK),
                    jnp.maximum(res, info["residual"]),
                    it_sum + info["iterations"], jnp.maximum(it_max, info["iterations"])), None
        zero = jnp.zeros((), jnp.int32)
        inf, nought = jnp.asarray(jnp.inf, poses.dtype), jnp.zeros((), poses.dtype)
        init = (poses, inf, zero, zero, zero, zero, nought, zero, zero)
        carry, _ = jax.lax.scan(step, init, jnp.arange(steps))
        return carry[1:]

    run = jax.jit(rollout if batch is None else jax.vmap(rollout))
    # a batch turns each environment's start by a different fraction of the robots' spacing
    starts = [swap_start(profile, n, k / batch) for k in range(batch)] if batch else [swap_start(profile, n)]
    p0, g0 = (jnp.asarray(np.stack(x), jnp.float32) for x in zip(*starts))
    if batch is None:
        p0, g0 = p0[0], g0[0]

    def call() -> dict[str, np.ndarray]:
        dmin, coll, exits, last_away, bad, res, it_sum, it_max = map(np.asarray, jax.block_until_ready(run(p0, g0)))
        arrival = np.where(last_away < steps, last_away * profile.dt, np.nan)
        return {"min_distance": dmin, "collisions": coll, "boundary_exits": exits, "arrival_s": arrival,
                "not_optimal": bad, "residual": res, "iterations_mean": it_sum / steps, "iterations_max": it_max}
    return call


def rps_barrier(profile: Any, form: str = "unicycle_walls") -> Any:
    """rps's own certificate with the profile's parameters: f(dxu (2, N), x (3, N)) -> (2, N)."""
    from rps.utilities import barrier_certificates as rb
    from marlstack.controllers.barrier_qp import barrier_spec
    spec = barrier_spec(profile, form)
    params = getattr(profile.barrier, form)
    a = profile.arena
    return rb.create_unicycle_barrier_certificate_with_boundary(
        barrier_gain=params.gamma, safety_radius=params.safety_radius, projection_distance=spec.projection_distance,
        magnitude_limit=profile.max_linear_speed, boundary_points=np.array([a.x_min, a.x_max, a.y_min, a.y_max]))


def _latency(fn, calls: list) -> tuple[np.ndarray, np.ndarray]:
    """Per-call wall time and CPU time (ms): on a shared machine the wall-clock tail is mostly
    the scheduler, the CPU time is the work itself."""
    wall, cpu = np.empty(len(calls)), np.empty(len(calls))
    for k, (poses, u) in enumerate(calls):
        t0, c0 = time.perf_counter(), time.process_time()
        fn(poses, u)
        wall[k], cpu[k] = time.perf_counter() - t0, time.process_time() - c0
    return wall * 1e3, cpu * 1e3


def deployment_rows(profile: Any, sizes: list[int], steps: int, rps_calls: int) -> list[Row]:
    from marlstack.controllers.barrier import BarrierFilter
    rows = []
    rps = rps_barrier(profile)
    for n in sizes:
        filt = BarrierFilter(profile, n)
        swap = swap_numpy(profile, n, steps, filt, record=True)
        calls = swap.pop("calls")
        replay = BarrierFilter(profile, n)
        ours = _latency(replay.filter, calls)
        sub = calls[:: max(1, len(calls) // rps_calls)]
        base = _latency(lambda p, u: rps(u.T.copy(), p.T.copy()), sub)
        extra = {"min_distance_m": swap["min_distance"], "collisions": swap["collisions"],
                 "boundary_exits": swap["boundary_exits"], "arrival_s": swap["arrival_s"],
                 "residual": swap["residual"], "iterations_max": swap["iterations_max"], "calls": len(calls)}
        for clock, k in (("latency", 0), ("cpu_time", 1)):
            for q in (50, 99):
                rows.append(Row({"path": "deployment", "N": n}, f"{clock}_p{q}", "ms", float(np.percentile(ours[k], q)),
                                float(np.percentile(base[k], q)), "rps 0.0.0 barrier (cvxopt)", higher_is_better=False,
                                extra=extra))
    return rows


def deadlock_rows(profile: Any, sizes: list[int], steps: int) -> list[Row]:
    """Antipodal swaps with the plain goal-seeking nominal (no swirl): arrival time (s) of the last
    robot with the right-hand rule (`controllers.barrier_deadlock`), against the plain filter,
    which parks the fleet (baseline None: never arrived) or arrives later."""
    from marlstack.controllers.barrier import BarrierFilter
    from marlstack.controllers.barrier_deadlock import DeadlockFreeFilter
    rows = []
    for n in sizes:
        rule = DeadlockFreeFilter(profile, n, profile.dt)
        ours = swap_numpy(profile, n, steps, rule, swirl=0.0)
        plain = swap_numpy(profile, n, steps, BarrierFilter(profile, n), swirl=0.0)
        rows.append(Row({"path": "deadlock", "N": n}, "all_arrived_s", "s", ours["arrival_s"], plain["arrival_s"],
                        "plain exact barrier, same nominal", higher_is_better=False,
                        extra={"min_distance_m": ours["min_distance"], "collisions": ours["collisions"],
                               "boundary_exits": ours["boundary_exits"], "statuses": ours["statuses"],
                               "deadlocks_broken": int(rule.deadlocks.sum()), "steps": steps}))
    return rows


def variant_rows(profile: Any, sizes: list[int], steps: int) -> list[Row]:
    """Per-call cost of the safety node's variants against the plain filter, on one swap's calls:
    a quarter of the robots stopped (fixed obstacles, `controlled` mask) and the delay-aware
    certificate (`lookahead_s` = 3 periods of delay + 1 period). Same rows, other bounds: the cost
    should not move."""
    from marlstack.controllers.barrier import BarrierFilter
    rows = []
    for n in sizes:
        calls = swap_numpy(profile, n, steps, record=True)["calls"]
        moving = np.arange(n) >= n // 4
        base = _latency(BarrierFilter(profile, n).filter, calls)[1]
        stopped_filter = BarrierFilter(profile, n)
        stopped = _latency(lambda p, u: stopped_filter.filter(p, np.where(moving[:, None], u, 0.0), controlled=moving),
                           calls)[1]
        delayed = _latency(BarrierFilter(profile, n, lookahead_s=4 * profile.dt).filter, calls)[1]
        for name, ours in (("stopped_quarter", stopped), ("lookahead_4_periods", delayed)):
            for q in (50, 99):
                rows.append(Row({"path": name, "N": n}, f"cpu_time_p{q}", "ms", float(np.percentile(ours, q)),
                                float(np.percentile(base, q)), "plain BarrierFilter, same calls",
                                higher_is_better=False, extra={"calls": len(calls)}))
    return rows


def shelf_fuzz(profile: Any, n: int, steps: int, boxes: Any, batch: int | None = None, record: bool = False) -> Any:
    """A jitted random-command run among static boxes (RWARE's shelves) with the training barrier and the
    simulator's physics: robots start beside the shelves (in a row below them beyond eight), commands
    uniform in ±1.5× the limits held 0.5 s. `boxes=()` is the same run without the obstacle rows. Returns
    () -> dict: per environment the smallest margin to a shelf (barrier points, m), collisions (pair-steps),
    exits, steps not optimal; with `record`, also the poses and commands of every step ((env, T, N, ·))."""
    import jax
    import jax.numpy as jnp

    from marlstack.controllers.barrier_jax import OK, unicycle_barrier
    from marlstack.controllers.barrier_qp import barrier_points, barrier_spec
    from marlstack.sim.fleet import physics_step, violations
    from marlstack.sim.scenarios import rware_spec

    shelves = np.asarray(rware_spec.SHELVES)
    spec = barrier_spec(profile, "unicycle_walls", boxes=rware_spec.SHELVES)
    barrier = unicycle_barrier(profile, n, "unicycle_walls", boxes=boxes)
    centres = np.column_stack([shelves[:, :2].mean(1), shelves[:, 2:].mean(1)])
    beside = centres + np.column_stack([np.zeros(len(centres)), 0.2 * np.sign(centres[:, 1])])
    row = np.column_stack([np.linspace(-1.3, 0.9, max(n - len(beside), 1)), np.full(max(n - len(beside), 1), -0.8)])
    start = np.column_stack([np.concatenate([beside, row])[:n], np.zeros(n)])
    limits = jnp.array([profile.max_linear_speed, profile.max_angular_speed])
    lo, hi = jnp.asarray(shelves[:, ::2], jnp.float32), jnp.asarray(shelves[:, 1::2], jnp.float32)

    def rollout(key):
        def step(carry, t):
            p, margin, coll, exits, bad = carry
            u = jax.random.uniform(jax.random.fold_in(key, t // 15), (n, 2), minval=-1.5, maxval=1.5) * limits
            safe, info = barrier(p, u)
            new, _, _ = physics_step(profile, p, safe)
            v = violations(profile, new, safe)
            q = barrier_points(spec, new)
            m = jnp.min(jnp.linalg.norm(q[:, None] - jnp.clip(q[:, None], lo, hi), axis=-1)) - spec.distance / 2
            carry = (new, jnp.minimum(margin, m), coll + v.collisions.sum() // 2, exits + v.boundary_exits.sum(),
                     bad + (info["status"] != OK))
            return carry, ((p, u) if record else None)
        zero = jnp.zeros((), jnp.int32)
        init = (jnp.asarray(start, jnp.float32), jnp.asarray(jnp.inf, jnp.float32), zero, zero, zero)
        carry, calls = jax.lax.scan(step, init, jnp.arange(steps))
        return carry[1:], calls

    keys = jax.random.split(jax.random.PRNGKey(n), batch or 1)
    run = jax.jit(jax.vmap(rollout))

    def call() -> dict[str, np.ndarray]:
        (margin, coll, exits, bad), calls = jax.block_until_ready(run(keys))
        out = {"margin": np.asarray(margin), "collisions": np.asarray(coll), "boundary_exits": np.asarray(exits),
               "not_optimal": np.asarray(bad)}
        return out | ({"poses": np.asarray(calls[0]), "u": np.asarray(calls[1])} if record else {})
    return call


def obstacle_rows(profile: Any, sizes: list[int], steps: int, batch: int) -> list[Row]:
    """What RWARE's 8 shelves as box rows cost (N·8 more rows), same run, same inputs: per-call CPU time of
    the deployment filter with and without them on the calls of one shelf fuzz, and batched safe simulator
    steps per second of the training form with and without them (the run without lets robots into the
    shelves: its margin says how far)."""
    from marlstack.controllers.barrier import BarrierFilter
    from marlstack.sim.scenarios import rware_spec
    rows = []
    for n in sizes:
        fuzz = shelf_fuzz(profile, n, steps, rware_spec.SHELVES, record=True)()
        calls = list(zip(fuzz["poses"][0].astype(float), fuzz["u"][0].astype(float)))
        safety = {"shelf_margin_min_m": float(fuzz["margin"].min()), "collisions": int(fuzz["collisions"].sum()),
                  "boundary_exits": int(fuzz["boundary_exits"].sum()), "not_optimal": int(fuzz["not_optimal"].sum()),
                  "calls": len(calls)}
        with_boxes = _latency(BarrierFilter(profile, n, boxes=rware_spec.SHELVES).filter, calls)[1]
        plain = _latency(BarrierFilter(profile, n).filter, calls)[1]
        for q in (50, 99):
            rows.append(Row({"path": "shelves_deployment", "N": n}, f"cpu_time_p{q}", "ms",
                            float(np.percentile(with_boxes, q)), float(np.percentile(plain, q)),
                            "no obstacle rows, same calls", higher_is_better=False, extra=safety))
        runs = [shelf_fuzz(profile, n, steps, boxes, batch) for boxes in (rware_spec.SHELVES, ())]
        margins = [float(run()["margin"].min()) for run in runs]          # also compiles
        rates, per_cpu = [0.0, 0.0], [0.0, 0.0]
        for _ in range(3):                       # best of three, interleaved: the shared machine's load moves
            for k, run in enumerate(runs):
                t0, c0 = time.perf_counter(), time.process_time()
                run()
                rates[k] = max(rates[k], batch * steps / (time.perf_counter() - t0))
                per_cpu[k] = max(per_cpu[k], batch * steps / (time.process_time() - c0))
        rows.append(Row({"path": "shelves_training", "N": n}, "safe_sim_steps_per_s", "steps/s", rates[0], rates[1],
                        "no obstacle rows, same run", extra={"shelf_margin_min_m": margins[0],
                                                             "shelf_margin_min_without_rows_m": margins[1],
                                                             "steps_per_cpu_s": per_cpu[0],
                                                             "steps_per_cpu_s_without_rows": per_cpu[1],
                                                             "batch": batch, "steps": steps}))
    return rows


def training_rows(profile: Any, sizes: list[tuple[int, int]], steps: int, rps_steps: int) -> list[Row]:
    """sizes: (robots, environments per batch) pairs."""
    rows = []
    rps = rps_barrier(profile)
    for n, batch in sizes:
        run = swap_jax(profile, n, steps, batch=batch)
        run()                                               # compile
        t0, c0 = time.perf_counter(), time.process_time()
        out = run()
        ours = batch * steps / (time.perf_counter() - t0)
        per_cpu_s = batch * steps / (time.process_time() - c0)   # all threads' CPU time: robust to load
        poses, goals = swap_start(profile, n)
        t0 = time.perf_counter()
        for _ in range(rps_steps):
            u = rps(swap_nominal(profile, poses, goals).T.copy(), poses.T.copy()).T
            poses = numpy_step(profile, poses, u)
        base = rps_steps / (time.perf_counter() - t0)
        extra = {"min_distance_m": float(out["min_distance"].min()), "collisions": int(out["collisions"].sum()),
                 "boundary_exits": int(out["boundary_exits"].sum()), "arrival_s": float(np.nanmax(out["arrival_s"])),
                 "residual": float(out["residual"].max()), "iterations_mean": float(out["iterations_mean"].mean()),
                 "iterations_max": int(out["iterations_max"].max()), "not_optimal": int(out["not_optimal"].sum()),
                 "steps_per_cpu_s": per_cpu_s, "batch": batch, "steps": steps}
        rows.append(Row({"path": "training", "N": n}, "safe_sim_steps_per_s", "steps/s", ours, base,
                        "rps 0.0.0 barrier (cvxopt) + numpy step", extra=extra))
    return rows


def solver_rows(profile: Any, n: int, steps: int) -> list[Row]:
    """The training solver alone against qpax (an interior-point JAX QP solver, default
    settings), vmapped over the same batch of QPs: the states and nominal commands of a numpy
    antipodal swap. Extras: how many answers differ by more than 1e-4 (qpax stops after 30
    iterations on a few of these QPs; ours matches the float64 numpy filter there)."""
    import jax
    import jax.numpy as jnp
    import qpax

    from marlstack.controllers.barrier_jax import solve_qp
    from marlstack.controllers.barrier_qp import barrier_spec, nominal_si, qp_rows
    spec = barrier_spec(profile, "unicycle_walls")
    calls = swap_numpy(profile, n, steps, record=True)["calls"]
    poses = jnp.asarray(np.stack([c[0] for c in calls]), jnp.float32)
    u = jnp.asarray(np.stack([c[1] for c in calls]), jnp.float32)

    def data(p, c):
        a, b = qp_rows(spec, p)
        return a.reshape(a.shape[0], -1), b, nominal_si(spec, p, c).reshape(-1)

    def ours(p, c):
        a, b, uhat = data(p, c)
        return solve_qp(a, b, uhat, 16 * n + 8)["x"]

    def theirs(p, c):
        a, b, uhat = data(p, c)
        k = uhat.shape[0]
        return qpax.solve_qp(jnp.eye(k), -uhat, jnp.zeros((0, k)), jnp.zeros((0,)), a, b)[0]

    rates, answers = [], []
    for fn in (ours, theirs):
        batched = jax.jit(jax.vmap(fn))
        jax.block_until_ready(batched(poses, u))
        t0 = time.perf_counter()
        answers.append(np.asarray(jax.block_until_ready(batched(poses, u))))
        rates.append(len(calls) / (time.perf_counter() - t0))
    diff = np.abs(answers[0] - answers[1]).max(axis=1)
    return [Row({"path": "training", "N": n}, "qp_solves_per_s", "QPs/s", rates[0], rates[1], "qpax 0.1.4 (vmapped)",
                extra={"median_diff_vs_qpax": float(np.median(diff)), "differ_gt_1e-4": int((diff > 1e-4).sum()),
                       "batch": len(calls)})]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="fewer steps and sizes (a smoke run, ~1 min)")
    parser.add_argument("--profile", default="gritsbot_x", help="vehicle profile (default gritsbot_x)")
    parser.add_argument("--only", choices=("deployment", "variants", "training", "deadlock", "obstacles", "mav"),
                        help="run one path only (mav: the MAV team's filter, `marlstack bench mav_barrier --only "
                             "latency fuzz`; obstacles: RWARE's shelves as box rows against none, ~17 min at load 14; "
                             "neither in the default run)")
    parser.add_argument("--batch", type=int, default=4096, help="environments per batch on the training path at N = 4 "
                        "(N = 10 uses an eighth)")


def run(args: argparse.Namespace) -> list[Row]:
    import os
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    profile = load_profile(args.profile)
    rows = []
    if args.only in (None, "deployment"):
        sizes = [4, 10] if args.quick else [4, 10, 20, 50]
        rows += deployment_rows(profile, sizes, steps=300 if args.quick else 1200, rps_calls=50 if args.quick else 200)
    if args.only in (None, "variants"):
        rows += variant_rows(profile, [4, 10] if args.quick else [4, 10, 20], steps=300 if args.quick else 1200)
    if args.only in (None, "deadlock"):
        rows += deadlock_rows(profile, [4, 10] if args.quick else [4, 8, 12, 16, 20], steps=int(60 / profile.dt))
    if args.only == "obstacles":
        rows += obstacle_rows(profile, [4, 8], steps=300 if args.quick else 1200, batch=256 if args.quick else 1024)
    if args.only in (None, "training"):
        sizes = [(4, min(args.batch, 1024))] if args.quick else [(4, args.batch), (10, max(1, args.batch // 8))]
        rows += training_rows(profile, sizes, steps=300 if args.quick else 900, rps_steps=100 if args.quick else 300)
        rows += solver_rows(profile, 4, steps=300 if args.quick else 1200)
    if args.only == "mav":
        from marlstack.bench import mav_barrier
        rows += mav_barrier.run(argparse.Namespace(quick=args.quick, teams=[3, 4], only=["latency", "fuzz"]))
    return rows
