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
from typing import Any

import numpy as np

from controllers.barrier_qp import barrier_points, barrier_spec, command, min_barrier, nominal_si, qp_rows, row_robots
from controllers.unicycle import uni_to_si

_EPS = 1e-12
TOLERANCE = 1e-9   # accepted constraint violation (rows are unit norm, so m/s)
CLARABEL_TIGHT = {"tol_gap_abs": 1e-13, "tol_gap_rel": 1e-13, "tol_feas": 1e-12, "max_iter": 100}


@dataclasses.dataclass(frozen=True)
class BarrierResult:
    u: np.ndarray              # (N, 2) safe command; zeros when status is not "optimal"
    status: str                # optimal | infeasible | nonfinite_input | max_iterations | solver_error
    intervention: np.ndarray   # (N,) ‖u − u_nominal‖ per robot
    min_barrier: float         # smallest barrier value before the step (< 0: already unsafe)
    residual: float            # largest KKT error of the returned solution (m/s)
    iterations: int            # working-set changes (fast) or solver iterations (cvxpy)
    solver: str                # "fast" or "cvxpy"

    @property
    def ok(self) -> bool:
        return self.status == "optimal"


def solve_qp(a: np.ndarray, b: np.ndarray, uhat: np.ndarray, max_iter: int) -> tuple[np.ndarray | None, str, int]:
    """min ‖x − û‖² s.t. a x ≤ b (rows unit norm): dual active set, then an exact re-solve.

    Returns (x or None, status, iterations).
    """
    x = uhat.copy()
    work: list[int] = []
    lam = np.zeros(0)
    ginv = np.zeros((0, 0))
    p, lam_p = -1, 0.0
    for it in range(1, max_iter + 1):
        slack = b - a @ x
        if p < 0:
            p = int(np.argmin(slack)) if slack.size else -1
            if p < 0 or slack[p] >= -TOLERANCE:
                return _refine(a, b, uhat, work, x), "optimal", it
            lam_p = 0.0
        ap = a[p]
        aw = a[work]
        r = ginv @ (aw @ ap)
        z = ap - aw.T @ r
        zz = float(z @ z)
        t_full = -slack[p] / zz if zz > 1e-14 else math.inf
        blocking = r > 1e-14
        ratios = np.where(blocking, lam / np.where(blocking, r, 1.0), math.inf)
        drop = int(np.argmin(ratios)) if ratios.size else -1
        t_drop = ratios[drop] if ratios.size else math.inf
        t = min(t_full, t_drop)
        if math.isinf(t):
            return None, "infeasible", it
        x = x - t * z
        lam = lam - t * r
        lam_p += t
        if t_full <= t_drop:      # row p becomes active: bordered inverse
            ginv = np.block([[ginv + np.outer(r, r) / zz, -r[:, None] / zz], [-r[None, :] / zz, np.full((1, 1), 1 / zz)]])
            work.append(p)
            lam = np.append(lam, lam_p)
            p = -1
        else:                     # row `drop` leaves: Schur complement
            col = ginv[:, drop]
            ginv = np.delete(np.delete(ginv - np.outer(col, col) / ginv[drop, drop], drop, 0), drop, 1)
            del work[drop]
            lam = np.delete(lam, drop)
    return None, "max_iterations", max_iter


def _refine(a: np.ndarray, b: np.ndarray, uhat: np.ndarray, work: list[int], x: np.ndarray) -> np.ndarray:
    """Re-solve the final working set's equality problem exactly (removes update round-off)."""
    if not work:
        return x
    aw = a[work]
    try:
        lam = np.linalg.solve(aw @ aw.T, aw @ uhat - b[work])
    except np.linalg.LinAlgError:
        return x
    refined = uhat - aw.T @ lam
    return refined if np.all(lam >= -1e-9) and np.all(a @ refined - b <= TOLERANCE) else x


def kkt_residual(a: np.ndarray, b: np.ndarray, uhat: np.ndarray, x: np.ndarray) -> float:
    """Largest KKT error of x: primal violation, and the stationarity / complementarity error of
    the best non-negative multipliers on the rows active at x."""
    viol = a @ x - b
    primal = float(max(viol.max(initial=0.0), 0.0))
    active = viol > -1e-7
    if not active.any():
        return max(primal, float(np.abs(x - uhat).max(initial=0.0)))
    aw = a[active]
    lam = np.linalg.lstsq(aw.T, uhat - x, rcond=None)[0]
    stationarity = float(np.abs(x - uhat + aw.T @ lam).max())
    return max(primal, stationarity, float(-lam.min(initial=0.0)), float(np.abs(lam * viol[active]).max()))


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

    def solve(self, a: np.ndarray, b: np.ndarray, uhat: np.ndarray) -> tuple[np.ndarray | None, str, int]:
        """a: (M, N, 2) rows as `qp_rows` returns them."""
        rows = np.arange(a.shape[0])
        c2 = np.where((self.first != self.second)[:, None], a[rows, self.second], 0.0)
        self.c1.value, self.c2.value, self.b.value = a[rows, self.first], c2, b
        self.uhat.value = uhat.reshape(-1, 2)
        try:
            self.problem.solve(solver=self.solver, warm_start=True, **self.options)
        except Exception as exc:  # noqa: BLE001 - any solver failure brakes, never escapes
            return None, f"solver_error: {type(exc).__name__}", 0
        status = self.problem.status
        iters = int(getattr(self.problem.solver_stats, "num_iters", 0) or 0)
        if status in ("infeasible", "infeasible_inaccurate"):
            return None, "infeasible", iters
        if status not in ("optimal", "optimal_inaccurate") or self.u.value is None:
            return None, f"solver_error: {status}", iters
        return np.asarray(self.u.value).reshape(-1), "optimal", iters


class BarrierFilter:
    """Filter nominal commands of `num_robots` robots through the barrier QP of `form`.

    obstacles: optional (K, 2) static points kept `spec.distance` away from every barrier point.
    solver: "fast" (exact active set, numpy only) or "cvxpy" (the reference formulation).
    """

    def __init__(self, profile: Any, num_robots: int, form: str = "unicycle_walls", obstacles: Any = None,
                 solver: str = "fast", cvxpy_solver: str = "CLARABEL", cvxpy_options: dict[str, Any] | None = None,
                 max_iter: int | None = None):
        if solver not in ("fast", "cvxpy"):
            raise ValueError(f"solver must be 'fast' or 'cvxpy', got {solver!r}")
        self.spec = barrier_spec(profile, form)
        self.num_robots = int(num_robots)
        self.obstacles = np.zeros((0, 2)) if obstacles is None else np.asarray(obstacles, float).reshape(-1, 2)
        self.solver = solver
        self.cvxpy_solver = cvxpy_solver
        # the objective gap bounds the solution error by its square root: ask for 1e-13 to agree to ~1e-6
        self.cvxpy_options = dict(CLARABEL_TIGHT if cvxpy_solver == "CLARABEL" else {}, **(cvxpy_options or {}))
        self.max_iter = max_iter
        self._problems: dict[tuple[int, int], _CvxpyProblem] = {}

    @property
    def state_dim(self) -> int:
        return 3 if self.spec.unicycle else 2

    def filter(self, poses: Any, u_nominal: Any, controlled: Any = None) -> BarrierResult:
        """Safe commands for `poses` (N, 3) [(N, 2) for single integrators] and `u_nominal` (N, 2).

        controlled: optional (N,) bool mask. Robots outside it are not commanded: they become
        moving obstacles whose velocity is their row of `u_nominal` (pass zeros if unknown),
        and their rows come back unchanged. This is the onboard mode: one robot, its
        neighbours' poses. Raises ValueError only for wrong shapes.
        """
        n, k = self.num_robots, self.state_dim
        poses = np.asarray(poses, dtype=float)
        u_nominal = np.asarray(u_nominal, dtype=float)
        if poses.shape != (n, k) or u_nominal.shape != (n, 2):
            raise ValueError(f"BarrierFilter for {n} robots needs poses ({n}, {k}) and u_nominal ({n}, 2); "
                             f"got {poses.shape} and {u_nominal.shape}")
        mask = np.ones(n, bool) if controlled is None else np.asarray(controlled, bool).reshape(n)
        solver = self.solver
        if not (np.all(np.isfinite(poses)) and np.all(np.isfinite(u_nominal))):
            return self._brake(u_nominal, mask, "nonfinite_input", math.nan, solver)
        others = poses[~mask]
        obstacles = np.concatenate([self.obstacles, self._points(others)])
        velocities = np.concatenate([np.zeros_like(self.obstacles), self._velocities(others, u_nominal[~mask])])
        mine = poses[mask]
        h_min = float(min_barrier(self.spec, poses, self.obstacles))
        if not mask.any():
            return BarrierResult(u_nominal.copy(), "optimal", np.zeros(n), h_min, 0.0, 0, solver)
        a3, b = qp_rows(self.spec, mine, obstacles, velocities)
        a = a3.reshape(a3.shape[0], -1)
        uhat = nominal_si(self.spec, mine, u_nominal[mask]).reshape(-1)
        if solver == "fast":
            x, status, iters = solve_qp(a, b, uhat, self.max_iter or 8 * uhat.size + 16)
        else:
            x, status, iters = self._cvxpy(mine.shape[0], obstacles.shape[0]).solve(a3, b, uhat)
        if x is None or not np.all(np.isfinite(x)):
            return self._brake(u_nominal, mask, status if x is None else "solver_error: non-finite", h_min, solver, iters)
        u = u_nominal.copy()
        u[mask] = command(self.spec, mine, x.reshape(-1, 2))
        residual = kkt_residual(a, b, uhat, x)
        return BarrierResult(u, "optimal", np.linalg.norm(u - u_nominal, axis=1), h_min, residual, iters, solver)

    def _points(self, poses: np.ndarray) -> np.ndarray:
        return barrier_points(self.spec, poses).reshape(-1, 2)

    def _velocities(self, poses: np.ndarray, u: np.ndarray) -> np.ndarray:
        if self.spec.unicycle:
            return uni_to_si(u, poses, self.spec.projection_distance).reshape(-1, 2)
        return u.reshape(-1, 2)

    def _cvxpy(self, n: int, num_obstacles: int) -> _CvxpyProblem:
        prob = self._problems.get((n, num_obstacles))
        if prob is None:
            first, second = row_robots(self.spec, n, num_obstacles)
            prob = self._problems[(n, num_obstacles)] = _CvxpyProblem(first, second, n, self.cvxpy_solver, self.cvxpy_options)
        return prob

    def _brake(self, u_nominal: np.ndarray, mask: np.ndarray, status: str, h_min: float, solver: str,
               iters: int = 0) -> BarrierResult:
        u = np.where(mask[:, None], 0.0, np.nan_to_num(u_nominal, nan=0.0, posinf=0.0, neginf=0.0))
        delta = np.nan_to_num(u - u_nominal, nan=math.inf, posinf=math.inf, neginf=math.inf)
        return BarrierResult(u, status, np.linalg.norm(delta, axis=1), h_min, math.nan, iters, solver)
