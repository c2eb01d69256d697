"""Barrier-certificate safety filter for deployment: numpy + cvxpy, never JAX.

`BarrierFilter(profile, N).filter(poses, u_nominal)` solves the QP of `controllers.barrier_qp`
(the same rows the training form uses) and returns a `BarrierResult`. Two exact solvers:

* "fast" (default): Goldfarb–Idnani's dual active-set method on the unit-norm rows, in numpy,
  finished by one exact re-solve of the final working set; typically a handful of iterations.
  It needs numpy only, so the onboard safety node stays free of JAX.
* "cvxpy": the parameterised cvxpy problem (built once per problem size, Clarabel by default),
  the reference the fast path is tested against. Importing cvxpy probes its optional solvers,
  which imports JAX where JAX is installed: keep it off robots.

Bad input never raises and never yields NaN: non-finite poses or commands, an infeasible QP
or a solver failure return zero commands (brake) with a status string saying why.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from marlstack.controllers.barrier_qp import barrier_points, barrier_spec, command, min_barrier, nominal, qp_rows, row_robots
from marlstack.controllers.unicycle import uni_to_si

TOLERANCE = 1e-9   # accepted constraint violation (rows are unit norm, so m/s)
CLARABEL_TIGHT = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-10, "tol_ktratio": 1e-10}


@dataclasses.dataclass(frozen=True)
class BarrierResult:
    u: np.ndarray              # (N, 2) safe command; zeros when status is not "optimal"
    status: str                # optimal | infeasible | nonfinite_input | max_iterations | solver_error
    intervention: np.ndarray   # (N,) ‖u − nominal‖ per robot, nominal as the robot would execute it
    min_barrier: float         # smallest barrier value before the step (< 0: already unsafe)
    residual: float            # largest KKT error of the returned solution (m/s)
    iterations: int            # working-set changes (fast) or solver iterations (cvxpy)
    solver: str                # "fast" or "cvxpy"

    @property
    def ok(self) -> bool:
        return self.status == "optimal"


def solve_qp(a: np.ndarray, b: np.ndarray, uhat: np.ndarray, max_iter: int,
             warm: Sequence[int] = (), farkas: bool = False) -> tuple[np.ndarray | None, str, int, np.ndarray]:
    """min ‖x − û‖² s.t. a x ≤ b (rows unit norm) by Goldfarb–Idnani's dual active-set method.

    `warm`: rows active at the previous call; they seed the working set when their equality
    solution has non-negative multipliers (rows with negative ones are dropped first), which
    is a valid starting point of the method. Returns (x or None, status, iterations, multipliers (M,)).
    `farkas`: when the rows have no common point, return in place of the multipliers the method's proof,
    y ≥ 0 with aᵀy = 0 and b·y < 0 (the violated row, weight 1, and the working set it depends on), which a
    caller can check against its next call's rows before solving (`controllers.mav_barrier`).
    """
    work, lam, ginv = _warm_start(a, b, uhat, [k for k in warm if k < b.size])
    x = uhat - a[work].T @ lam
    p, lam_p = -1, 0.0
    for it in range(1, max_iter + 1):
        slack = b - a @ x
        if p < 0:
            p = int(slack.argmin()) if slack.size else -1
            if p < 0 or slack[p] >= -TOLERANCE:
                return _finish(a, b, uhat, work, lam, x, it)
            lam_p = 0.0
        ap = a[p]
        aw = a[work]
        r = ginv @ (aw @ ap)
        z = ap - aw.T @ r
        zz = float(z @ z)
        t_full = -slack[p] / zz if zz > 1e-14 else math.inf
        blocking = r > 1e-14
        t_drop, drop = math.inf, -1
        if blocking.any():
            ratios = np.where(blocking, lam / np.where(blocking, r, 1.0), math.inf)
            drop = int(np.argmin(ratios))
            t_drop = float(ratios[drop])
        t = min(t_full, t_drop)
        if math.isinf(t):
            proof = np.zeros(b.size)
            if farkas:   # a_p = a_Wᵀ r with r ≤ 0 (nothing blocks) and a_p·x ≤ b_p unreachable
                proof[work], proof[p] = np.maximum(-r, 0.0), 1.0
            return None, "infeasible", it, proof
        x = x - t * z
        lam = lam - t * r
        lam_p += t
        k = len(work)
        if t_full <= t_drop:      # row p becomes active: bordered inverse
            grown = np.empty((k + 1, k + 1))
            grown[:k, :k] = ginv + np.outer(r, r) / zz
            grown[:k, k] = grown[k, :k] = -r / zz
            grown[k, k] = 1.0 / zz
            ginv = grown
            work.append(p)
            lam = np.append(lam, lam_p)
            p = -1
        else:                     # row `drop` leaves: Schur complement
            keep = np.arange(k) != drop
            col = ginv[keep, drop]
            ginv = ginv[np.ix_(keep, keep)] - np.outer(col, col) / ginv[drop, drop]
            del work[drop]
            lam = lam[keep]
    return None, "max_iterations", max_iter, np.zeros(b.size)


def _warm_start(a: np.ndarray, b: np.ndarray, uhat: np.ndarray,
                work: list[int]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Shrink `work` (dropping rows with negative multipliers) until its equality solution has
    λ ≥ 0: returns (rows, λ, inverse Gram); empty when nothing is left or the rows are dependent."""
    while work:
        aw = a[work]
        try:
            ginv = _inverse(aw @ aw.T)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(ginv)) or np.abs(ginv).max() > 1e8:   # (nearly) dependent rows
            break
        lam = ginv @ (aw @ uhat - b[work])
        if lam.min() >= 0:
            return work, lam, ginv
        work = [k for k, lk in zip(work, lam) if lk > 0]
    return [], np.zeros(0), np.zeros((0, 0))


def _inverse(g: np.ndarray) -> np.ndarray:
    """g⁻¹; a 1 × 1 or 2 × 2 Gram matrix (what a warm start usually holds) in closed form: `np.linalg.inv`'s own
    cost is ~15 µs a call, the onboard MAV stage's whole budget is 300 µs. Singular: LinAlgError, as `inv`."""
    if g.shape[0] == 1 and g[0, 0] != 0.0:
        return 1.0 / g
    if g.shape[0] == 2:
        det = g[0, 0] * g[1, 1] - g[0, 1] * g[1, 0]
        if det != 0.0:
            return np.array([[g[1, 1], -g[0, 1]], [-g[1, 0], g[0, 0]]]) / det
    return np.linalg.inv(g)


def _finish(a: np.ndarray, b: np.ndarray, uhat: np.ndarray, work: list[int], lam: np.ndarray, x: np.ndarray,
            it: int) -> tuple[np.ndarray, str, int, np.ndarray]:
    """Re-solve the final working set's equality problem exactly, removing update round-off (none when
    the first iteration found the warm start optimal: its λ came from a direct inverse, not updates)."""
    if work and it > 1:
        aw = a[work]
        try:
            exact = np.linalg.solve(aw @ aw.T, aw @ uhat - b[work])
        except np.linalg.LinAlgError:
            exact = None
        if exact is not None and np.all(exact >= 0) and np.all(a @ (uhat - aw.T @ exact) - b <= TOLERANCE):
            lam, x = exact, uhat - aw.T @ exact
    full = np.zeros(b.size)
    full[work] = lam
    return x, "optimal", it, full


def kkt_residual(a: np.ndarray, b: np.ndarray, uhat: np.ndarray, x: np.ndarray, lam: np.ndarray) -> float:
    """Largest KKT error of (x, λ) for min ‖x − û‖² s.t. a x ≤ b: primal violation, stationarity
    x − û + aᵀλ, dual sign, complementarity λ·slack."""
    viol = a @ x - b
    terms = [viol.max(initial=0.0), np.abs(x - uhat + a.T @ lam).max(initial=0.0), -lam.min(initial=0.0),
             np.abs(lam * viol).max(initial=0.0)]
    return float(max(terms))


class _CvxpyProblem:
    """The QP in cvxpy, parameterised so it is canonicalised once per (robots, obstacles) size."""

    def __init__(self, first: np.ndarray, second: np.ndarray, n: int, solver: str, options: dict[str, Any]):
        import cvxpy as cp

        m = first.size
        self.first, self.second = first, second
        self.u = cp.Variable((n, 2))
        self.uhat = cp.Parameter((n, 2))
        self.c1 = cp.Parameter((m, 2))
        self.c2 = cp.Parameter((m, 2))
        self.b = cp.Parameter(m)
        cons = []
        if m:
            lhs = cp.sum(cp.multiply(self.c1, self.u[first]) + cp.multiply(self.c2, self.u[second]), axis=1)
            cons.append(lhs <= self.b)
        self.problem = cp.Problem(cp.Minimize(cp.sum_squares(self.u - self.uhat)), cons)
        self.solver, self.options = solver, options

    def solve(self, a: np.ndarray, b: np.ndarray, uhat: np.ndarray) -> tuple[np.ndarray | None, str, int, np.ndarray]:
        """a: (M, N, 2) rows as `qp_rows` returns them."""
        rows = np.arange(a.shape[0])
        c2 = np.where((self.first != self.second)[:, None], a[rows, self.second], 0.0)
        self.c1.value, self.c2.value, self.b.value = a[rows, self.first], c2, b
        self.uhat.value = uhat.reshape(-1, 2)
        try:
            self.problem.solve(solver=self.solver, warm_start=True, **self.options)
        except Exception as exc:  # noqa: BLE001 - any solver failure brakes, never escapes
            return None, f"solver_error: {type(exc).__name__}", 0, np.zeros(b.size)
        status = self.problem.status
        iters = int(getattr(self.problem.solver_stats, "num_iters", 0) or 0)
        if status in ("infeasible", "infeasible_inaccurate"):
            return None, "infeasible", iters, np.zeros(b.size)
        if status not in ("optimal", "optimal_inaccurate") or self.u.value is None:
            return None, f"solver_error: {status}", iters, np.zeros(b.size)
        # cvxpy minimises ‖u − û‖² without the ½, so its multipliers are twice ours
        lam = np.asarray(self.problem.constraints[0].dual_value).reshape(-1) / 2 if b.size else np.zeros(0)
        return np.asarray(self.u.value).reshape(-1), "optimal", iters, lam


class BarrierFilter:
    """Filter nominal commands of `num_robots` robots through the barrier QP of `form`.

    obstacles: optional (K, 2) static points kept `spec.distance` away from every barrier point.
    boxes: optional static axis-aligned boxes (x_min, x_max, y_min, y_max) (shelves, furniture) kept
    the wall margin away, the same rows as the training form's (`barrier_qp.barrier_spec`).
    solver: "fast" (exact active set, numpy only) or "cvxpy" (the reference formulation).
    lookahead_s: sense-to-actuate delay + control period to certify for (`barrier_qp.barrier_spec`).
    """

    def __init__(self, profile: Any, num_robots: int, form: str = "unicycle_walls", obstacles: Any = None,
                 solver: str = "fast", cvxpy_solver: str = "CLARABEL", cvxpy_options: dict[str, Any] | None = None,
                 max_iter: int | None = None, lookahead_s: float = 0.0, boxes: Any = ()):
        if solver not in ("fast", "cvxpy"):
            raise ValueError(f"solver must be 'fast' or 'cvxpy', got {solver!r}")
        self.spec = barrier_spec(profile, form, lookahead_s, boxes)
        self.num_robots = int(num_robots)
        self.obstacles = np.zeros((0, 2)) if obstacles is None else np.asarray(obstacles, float).reshape(-1, 2)
        self.solver = solver
        self.cvxpy_solver = cvxpy_solver
        # the objective gap bounds the solution error by its square root: ask for 1e-12 to agree to ~1e-6
        self.cvxpy_options = dict(CLARABEL_TIGHT if cvxpy_solver == "CLARABEL" else {}, **(cvxpy_options or {}))
        self.max_iter = max_iter
        self._problems: dict[tuple[int, int], _CvxpyProblem] = {}
        self._active: dict[tuple[int, int], list[int]] = {}   # warm start: rows active last call

    @property
    def state_dim(self) -> int:
        return 3 if self.spec.unicycle else 2

    def filter(self, poses: Any, u_nominal: Any, controlled: Any = None, margins: Any = None) -> BarrierResult:
        """Safe commands for `poses` (N, 3) [(N, 2) for single integrators] and `u_nominal` (N, 2).

        controlled: optional (N,) bool mask. Robots outside it are not commanded: they become
        moving obstacles whose velocity is their row of `u_nominal` (pass zeros if unknown),
        and their rows come back unchanged. This is the onboard mode: one robot, its
        neighbours' poses. margins: optional (N,) extra distance (m) kept from each robot outside
        `controlled` (e.g. speed limit × the age of its pose). Raises ValueError only for wrong shapes.
        """
        n, k = self.num_robots, self.state_dim
        poses = np.asarray(poses, dtype=float)
        u_nominal = np.asarray(u_nominal, dtype=float)
        if poses.shape != (n, k) or u_nominal.shape != (n, 2):
            raise ValueError(f"BarrierFilter for {n} robots needs poses ({n}, {k}) and u_nominal ({n}, 2); "
                             f"got {poses.shape} and {u_nominal.shape}")
        solver = self.solver
        mask = np.ones(n, bool) if controlled is None else np.asarray(controlled, bool).reshape(n)
        if not (np.all(np.isfinite(poses)) and np.all(np.isfinite(u_nominal))):
            return self._brake(u_nominal, mask, "nonfinite_input", math.nan, solver)
        h_min = float(min_barrier(self.spec, poses, self.obstacles))
        if not mask.any():
            return BarrierResult(u_nominal.copy(), "optimal", np.zeros(n), h_min, 0.0, 0, solver)
        mine, obstacles, velocities, reach = poses, self.obstacles, None, None
        if not mask.all():
            mine, others = poses[mask], poses[~mask]
            obstacles = np.concatenate([self.obstacles, barrier_points(self.spec, others)])
            velocities = np.concatenate([np.zeros_like(self.obstacles), self._velocities(others, u_nominal[~mask])])
            if margins is not None:
                reach = np.concatenate([np.zeros(len(self.obstacles)), np.asarray(margins, float).reshape(n)[~mask]])
        executed = nominal(self.spec, u_nominal[mask])
        uhat = uni_to_si(executed, mine, self.spec.projection_distance) if self.spec.unicycle else executed
        uhat = uhat.reshape(-1)
        a3, b = qp_rows(self.spec, mine, obstacles, velocities, reach)
        a = a3.reshape(a3.shape[0], -1)
        size = (mine.shape[0], obstacles.shape[0])
        if solver == "fast":
            cap = self.max_iter or 8 * uhat.size + 16
            x, status, iters, lam = solve_qp(a, b, uhat, cap, self._active.get(size, ()))
            self._active[size] = np.flatnonzero(lam > 0).tolist()
        else:
            x, status, iters, lam = self._cvxpy(*size).solve(a3, b, uhat)
        if x is None or not np.all(np.isfinite(x)):
            status = status if x is None else "solver_error: non-finite"
            return self._brake(u_nominal, mask, status, h_min, solver, iters)
        u = u_nominal.copy()
        u[mask] = command(self.spec, mine, x.reshape(-1, 2))
        intervention = np.zeros(n)
        intervention[mask] = np.linalg.norm(u[mask] - executed, axis=1)
        return BarrierResult(u, "optimal", intervention, h_min, kkt_residual(a, b, uhat, x, lam), iters, solver)

    def _velocities(self, poses: np.ndarray, u: np.ndarray) -> np.ndarray:
        if self.spec.unicycle:
            return uni_to_si(u, poses, self.spec.projection_distance).reshape(-1, 2)
        return u.reshape(-1, 2)

    def _cvxpy(self, n: int, num_obstacles: int) -> _CvxpyProblem:
        prob = self._problems.get((n, num_obstacles))
        if prob is None:
            first, second = row_robots(self.spec, n, num_obstacles)
            prob = _CvxpyProblem(first, second, n, self.cvxpy_solver, self.cvxpy_options)
            self._problems[(n, num_obstacles)] = prob
        return prob

    def _brake(self, u_nominal: np.ndarray, mask: np.ndarray, status: str, h_min: float, solver: str,
               iters: int = 0) -> BarrierResult:
        u = np.where(mask[:, None], 0.0, np.nan_to_num(u_nominal, nan=0.0, posinf=0.0, neginf=0.0))
        delta = np.nan_to_num(u - nominal(self.spec, u_nominal), nan=math.inf, posinf=math.inf, neginf=math.inf)
        return BarrierResult(u, status, np.linalg.norm(delta, axis=1), h_min, math.nan, iters, solver)
