"""Static box obstacles (shelves) as rows of the barrier QP: numpy == JAX == cvxpy, a random-command
fuzz that never enters a box's margin, the onboard (`controlled`) mode, failures and bad boxes."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marlstack.controllers.barrier import BarrierFilter
from marlstack.controllers.barrier_jax import INFEASIBLE, OK, unicycle_barrier
from marlstack.controllers.barrier_qp import barrier_points, barrier_spec, min_barrier, qp_rows
from marlstack.controllers.unicycle import uni_to_si
from marlstack.hardware import load_profile
from marlstack.sim.fleet import physics_step, violations

GRITS = load_profile("gritsbot_x")
FORM = "unicycle_walls"
# A warehouse-like layout for the fuzz: two rows of shelves with an aisle and gaps between them.
SHELVES = ((-1.2, -0.6, 0.25, 0.37), (-0.3, 0.3, 0.25, 0.37), (-1.2, -0.6, -0.37, -0.25), (-0.3, 0.3, -0.37, -0.25),
           (0.7, 0.8, -0.6, 0.6))


def box_margin(boxes, points):
    """(N, B) distance of each point to each box (0 inside)."""
    b = np.asarray(boxes, float)
    near = np.clip(points[:, None, :], b[None, :, [0, 2]], b[None, :, [1, 3]])
    return np.linalg.norm(points[:, None, :] - near, axis=-1)


def random_layout(n, num_boxes, rng, boxes=None):
    """Random boxes inside the arena (or `boxes`) and n robots clustered around them, every barrier point
    outside each box's margin and the wall margins, every pair safe: the QP's safe set. Commands
    anywhere in ±1.5× the limits."""
    a = GRITS.arena
    if boxes is None:
        lo = rng.uniform([a.x_min + 0.3, a.y_min + 0.3], [a.x_max - 0.7, a.y_max - 0.5], (num_boxes, 2))
        size = rng.uniform([0.05, 0.05], [0.4, 0.3], (num_boxes, 2))
        boxes = tuple(tuple(map(float, (x0, x0 + w, y0, y0 + h))) for (x0, y0), (w, h) in zip(lo, size))
    spec = barrier_spec(GRITS, FORM, boxes=boxes)
    c = spec.distance / 2
    poses, points = [], []
    while len(poses) < n:
        k = rng.integers(num_boxes)
        centre = np.array([(boxes[k][0] + boxes[k][1]) / 2, (boxes[k][2] + boxes[k][3]) / 2])
        pose = np.append(centre + rng.normal(0, 0.25, 2), rng.uniform(-np.pi, np.pi))
        p = barrier_points(spec, pose[None])[0]
        inside = a.x_min + c <= p[0] <= a.x_max - c and a.y_min + c <= p[1] <= a.y_max - c
        clear = box_margin(boxes, p[None]).min() >= c + 1e-3
        if inside and clear and all(np.linalg.norm(q - p) >= spec.distance * 1.001 for q in points):
            poses.append(pose)
            points.append(p)
    u = rng.uniform(-1.5, 1.5, (n, 2)) * np.array([GRITS.max_linear_speed, GRITS.max_angular_speed])
    return boxes, np.array(poses), u


def si(u, poses):
    return uni_to_si(np.asarray(u, float), poses, barrier_spec(GRITS, FORM).projection_distance)


def test_box_rows_hold_and_numpy_equals_cvxpy(rng):
    """Random layouts: the fast filter == cvxpy (1e-6), every row holds, and the box rows act."""
    acted = 0
    for _ in range(12):
        boxes, poses, u = random_layout(5, 3, rng)
        fast = BarrierFilter(GRITS, 5, FORM, boxes=boxes).filter(poses, u)
        ref = BarrierFilter(GRITS, 5, FORM, boxes=boxes, solver="cvxpy").filter(poses, u)
        assert fast.ok and ref.ok and fast.residual < 1e-9
        np.testing.assert_allclose(si(fast.u, poses), si(ref.u, poses), atol=1e-6)
        a, b = qp_rows(fast_spec := barrier_spec(GRITS, FORM, boxes=boxes), poses)
        assert np.max(np.einsum("mnk,nk->m", a, si(fast.u, poses)) - b) <= 1e-9
        plain = BarrierFilter(GRITS, 5, FORM).filter(poses, u)
        acted += not np.allclose(plain.u, fast.u, atol=1e-6)
        assert a.shape[0] == qp_rows(barrier_spec(GRITS, FORM), poses)[0].shape[0] + 5 * 3
        assert fast.min_barrier == pytest.approx(float(min_barrier(fast_spec, poses)))
    assert acted >= 3                           # the layouts put robots where the boxes bind


N = 5


@functools.lru_cache(maxsize=None)
def layouts():
    """One random box layout (compiled once: boxes are static) and 32 random robot layouts among it."""
    rng = np.random.default_rng(17)
    boxes, poses, u = random_layout(N, 3, rng)
    more = [random_layout(N, 3, rng, boxes)[1:] for _ in range(31)]
    poses = np.stack([poses] + [p for p, _ in more])
    u = np.stack([u] + [c for _, c in more])
    return boxes, poses, u, jax.jit(jax.vmap(unicycle_barrier(GRITS, N, FORM, boxes=boxes)))


def test_jax_equals_numpy_on_random_layouts():
    """The training form (float32) with the same boxes == the deployment filter (float64), 1e-4 m/s."""
    boxes, poses, u, fn = layouts()
    got, info = fn(jnp.asarray(poses, jnp.float32), jnp.asarray(u, jnp.float32), jnp.ones((32, N), bool))
    assert np.all(np.asarray(info["status"]) == OK) and float(np.asarray(info["residual"]).max()) < 1e-5
    filt = BarrierFilter(GRITS, N, FORM, boxes=boxes)
    for k in range(32):
        np.testing.assert_allclose(si(np.asarray(got[k]), poses[k]), si(filt.filter(poses[k], u[k]).u, poses[k]),
                                   atol=1e-4)


def test_onboard_mode_and_stopped_robots_respect_boxes(rng):
    """`controlled` (numpy) and `active` (JAX) masks: the moving robots' box rows still hold with the
    others at zero, and the two forms agree."""
    boxes, poses, u, fn = layouts()
    mask = rng.random((32, N)) < 0.6
    mask[:, 0] = True
    safe, info = fn(jnp.asarray(poses, jnp.float32), jnp.asarray(u, jnp.float32), jnp.asarray(mask))
    assert np.all(np.asarray(info["status"]) == OK)
    spec = barrier_spec(GRITS, FORM, boxes=boxes)
    filt = BarrierFilter(GRITS, N, FORM, boxes=boxes)
    for k in range(32):
        got = filt.filter(poses[k], np.where(mask[k][:, None], u[k], 0.0), controlled=mask[k])
        assert got.ok and np.all(np.asarray(safe[k])[~mask[k]] == 0.0)
        np.testing.assert_allclose(si(np.asarray(safe[k]), poses[k]), si(got.u, poses[k]), atol=1e-4)
        a, b = qp_rows(spec, poses[k])
        assert np.max(np.einsum("mnk,nk->m", a, si(got.u, poses[k])) - b) <= 1e-9


def test_fuzz_never_enters_a_shelf_margin():
    """6 robots among shelves, random commands in ±2× the limits held 0.5 s, 3000 steps × 3 seeds, the
    simulator's physics: the barrier points never come within the margin D/2 of a shelf (beyond 0.1 mm
    of the projection point's arc within a step), no collision, no exit, never a braked step."""
    n = 6
    spec = barrier_spec(GRITS, FORM, boxes=SHELVES)
    barrier = unicycle_barrier(GRITS, n, FORM, boxes=SHELVES)
    limits = jnp.array([GRITS.max_linear_speed, GRITS.max_angular_speed])
    lo, hi = jnp.asarray(SHELVES, jnp.float32)[:, ::2], jnp.asarray(SHELVES, jnp.float32)[:, 1::2]
    start = jnp.asarray(np.column_stack([np.linspace(-1.3, 1.3, n), np.full(n, -0.8), np.full(n, np.pi / 2)]),
                        jnp.float32)

    def run(key):
        def step(carry, t):
            poses, worst, coll, exits, bad = carry
            u = jax.random.uniform(jax.random.fold_in(key, t // 15), (n, 2), minval=-2, maxval=2) * limits
            u = u.at[:, 0].add(0.1 * jnp.sign(jnp.sin(t / 300.0)))   # drift through the shelves and back
            safe, info = barrier(poses, u)
            new, _, _ = physics_step(GRITS, poses, safe)
            v = violations(GRITS, new, safe)
            points = barrier_points(spec, new)
            h = jnp.min(jnp.linalg.norm(points[:, None] - jnp.clip(points[:, None], lo, hi), axis=-1)) - spec.distance / 2
            return (new, jnp.minimum(worst, h), coll + v.collisions.sum(), exits + v.boundary_exits.sum(),
                    bad + (info["status"] != OK)), None
        zero = jnp.zeros((), jnp.int32)
        init = (start, jnp.asarray(jnp.inf, jnp.float32), zero, zero, zero)
        return jax.lax.scan(step, init, jnp.arange(3000))[0][1:]

    worst, coll, exits, bad = jax.jit(jax.vmap(run))(jax.random.split(jax.random.PRNGKey(7), 3))
    assert int(bad.sum()) == 0 and int(coll.sum()) == 0 and int(exits.sum()) == 0
    print("smallest shelf margin (m):", np.asarray(worst))
    assert -1e-4 <= float(worst.min()) < 0.05     # the fuzz reached the shelves, never their margin


def test_inside_a_box_like_beyond_a_wall_and_bad_boxes_are_refused():
    """Inside a box's margin the row asks for motion back out (as a wall's does): a robot 1 cm into the
    margin is pushed out, one deep inside a large box is infeasible (brake); both forms agree."""
    boxes, poses, u, fn = layouts()
    b = boxes[0]
    spec = barrier_spec(GRITS, FORM, boxes=boxes)
    d = spec.projection_distance
    poses = poses.copy()
    poses[0, 0] = [b[1] + spec.distance / 2 - 0.01 - d, (b[2] + b[3]) / 2, 0.0]   # facing away, 1 cm inside the margin
    safe, info = fn(jnp.asarray(poses, jnp.float32), jnp.asarray(u, jnp.float32), jnp.ones((32, N), bool))
    filt = BarrierFilter(GRITS, N, FORM, boxes=boxes)
    want = filt.filter(poses[0], u[0])
    if want.ok:                                 # the other robots of the layout may make it infeasible
        assert int(info["status"][0]) == OK and float(want.min_barrier) < 0
        assert si(want.u, poses[0])[0, 0] > 0     # pushed out of the margin, away from the box
        np.testing.assert_allclose(si(np.asarray(safe[0]), poses[0]), si(want.u, poses[0]), atol=1e-4)
    else:
        assert int(info["status"][0]) == INFEASIBLE
    deep = BarrierFilter(GRITS, 2, FORM, boxes=((0.0, 0.6, 0.0, 0.6),))
    r = deep.filter(np.array([[0.27, 0.3, 0.0], [1.0, -0.5, 0.0]]), np.full((2, 2), 0.05))
    assert r.status == "infeasible" and np.all(r.u == 0.0) and r.min_barrier < -0.3
    for bad in [((0.2, 0.0, 0.0, 0.2),), ((0.0, 0.2, 0.0),), ((0.0, np.nan, 0.0, 0.2),)]:
        with pytest.raises(ValueError, match="obstacle box 0"):
            barrier_spec(GRITS, FORM, boxes=bad)
