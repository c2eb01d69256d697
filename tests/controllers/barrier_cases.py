"""Barrier-QP inputs shared by the numpy and JAX tests: random safe configurations, grid starts."""
import numpy as np

from marlstack.controllers.barrier_qp import barrier_points, barrier_spec


def safe_configuration(profile, form, n, rng, spread=0.12):
    """Poses (n, 3) clustered around a random centre, every pair of barrier points at least the
    pair distance apart and inside the wall margins: the QP's safe set, where u = 0 is feasible.
    Commands (n, 2) anywhere in the actuator box (single integrators: any direction, ≤ 2× speed)."""
    spec = barrier_spec(profile, form)
    a, c = profile.arena, spec.distance / 2 + 1e-3
    centre = rng.uniform([a.x_min + 0.5, a.y_min + 0.4], [a.x_max - 0.5, a.y_max - 0.4])
    poses, points = [], []
    while len(poses) < n:
        pose = np.append(centre + rng.normal(0, spread * np.sqrt(n), 2), rng.uniform(-np.pi, np.pi))
        p = barrier_points(spec, pose[None] if spec.unicycle else pose[None, :2])[0]
        inside = a.x_min + c <= p[0] <= a.x_max - c and a.y_min + c <= p[1] <= a.y_max - c
        if inside and all(np.linalg.norm(q - p) >= spec.distance * 1.001 for q in points):
            poses.append(pose)
            points.append(p)
    poses = np.array(poses)
    if spec.unicycle:
        return poses, rng.uniform(-1, 1, (n, 2)) * np.array([profile.max_linear_speed, profile.max_angular_speed])
    return poses[:, :2], rng.normal(0, profile.max_linear_speed, (n, 2))


def grid_start(profile, n, spacing=0.35):
    """n robots on a grid `spacing` apart, centred in the arena, random headings (fixed seed)."""
    a = profile.arena
    cols = int((a.x_max - a.x_min - 0.4) // spacing) + 1
    idx = np.arange(n)
    x = a.x_min + 0.2 + (idx % cols) * spacing
    y = a.y_min + 0.3 + (idx // cols) * spacing
    x += (a.x_max - 0.2 - x.max()) / 2
    heading = np.random.default_rng(n).uniform(-np.pi, np.pi, n)
    return np.column_stack([x, y, heading])
