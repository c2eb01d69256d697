"""Unicycle ↔ wheel-speed mappings and actuator saturation (rps's forms), array-API neutral.

Shapes follow the rps convention of stacking per-robot quantities on the *last* axis
flipped into our convention: inputs are `(..., N)` arrays for each of v and omega.
The same code runs on numpy (onboard nodes) and on jax.numpy (simulator, training).
"""
from __future__ import annotations

import math
from typing import Any

from marlstack.controllers.arrays import xp


def uni_to_diff(v: Any, omega: Any, wheel_radius: float, base_length: float) -> tuple[Any, Any]:
    """(v, ω) → (left, right) wheel speeds in rad/s, in rps's exact operation order."""
    r, l = wheel_radius, base_length
    return 1 / (2 * r) * (2 * v - l * omega), 1 / (2 * r) * (2 * v + l * omega)


def diff_to_uni(left: Any, right: Any, wheel_radius: float, base_length: float) -> tuple[Any, Any]:
    """(left, right) wheel speeds → (v, ω), in rps's exact operation order."""
    r, l = wheel_radius, base_length
    return r / 2 * (left + right), r / l * (right - left)


def saturate(v: Any, omega: Any, profile: Any) -> tuple[Any, Any]:
    """Clip a unicycle command to what the robot can do, as the profile's `saturation` says.

    'wheel' (rps 2.1): map to wheel speeds, clip each wheel to ±max_wheel_speed, map back.
    'unicycle' (the PyPI rps simulator): clip v and ω independently to their limits.
    """
    m = xp(v, omega)
    if profile.saturation == "wheel":
        left, right = uni_to_diff(v, omega, profile.wheel_radius, profile.base_length)
        lim = profile.max_wheel_speed
        return diff_to_uni(m.clip(left, -lim, lim), m.clip(right, -lim, lim), profile.wheel_radius, profile.base_length)
    return (m.clip(v, -profile.max_linear_speed, profile.max_linear_speed),
            m.clip(omega, -profile.max_angular_speed, profile.max_angular_speed))


def wheel_excess(v: Any, omega: Any, profile: Any) -> Any:
    """True where a command asks a wheel for more than max_wheel_speed (rps's actuator error)."""
    m = xp(v, omega)
    left, right = uni_to_diff(v, omega, profile.wheel_radius, profile.base_length)
    return (m.abs(left) > profile.max_wheel_speed) | (m.abs(right) > profile.max_wheel_speed)


# --- Projection-point mappings and controllers -------------------------------------------
# These take stacked arrays: poses (..., 3) = [x, y, theta], unicycle commands (..., 2) =
# [v, omega], single-integrator (projection-point) velocities (..., 2) = [x_dot, y_dot].


def uni_to_si_states(poses: Any, projection_distance: float) -> Any:
    """The point p + d·(cos θ, sin θ) that the barrier treats as a single integrator."""
    m = xp(poses)
    th = poses[..., 2]
    return m.stack([poses[..., 0] + projection_distance * m.cos(th),
                    poses[..., 1] + projection_distance * m.sin(th)], axis=-1)


def uni_to_si(dxu: Any, poses: Any, projection_distance: float) -> Any:
    """Unicycle command → velocity of the projection point (rps's uni_to_si_dyn)."""
    m = xp(dxu, poses)
    c, s = m.cos(poses[..., 2]), m.sin(poses[..., 2])
    v, w = dxu[..., 0], dxu[..., 1]
    d = projection_distance
    return m.stack([c * v - d * s * w, s * v + d * c * w], axis=-1)


def si_to_uni(dxi: Any, poses: Any, projection_distance: float,
              angular_velocity_limit: float | None = None) -> Any:
    """Projection-point velocity → unicycle command, the exact inverse of `uni_to_si`.

    rps clips ω to ±π here; pass `angular_velocity_limit` to reproduce that, leave it None to
    keep the map invertible (our barrier bounds the wheels inside the QP instead).
    """
    m = xp(dxi, poses)
    c, s = m.cos(poses[..., 2]), m.sin(poses[..., 2])
    dx, dy = dxi[..., 0], dxi[..., 1]
    w = (-s * dx + c * dy) / projection_distance
    if angular_velocity_limit is not None:
        w = m.clip(w, -angular_velocity_limit, angular_velocity_limit)
    return m.stack([c * dx + s * dy, w], axis=-1)


def position_controller(poses: Any, goals: Any, linear_gain: float = 0.8, angular_gain: float = 3.0) -> Any:
    """rps's CLF unicycle position controller: drive (x, y) to goals (..., 2); gains are rps's defaults."""
    m = xp(poses, goals)
    ex, ey = goals[..., 0] - poses[..., 0], goals[..., 1] - poses[..., 1]
    dist = m.sqrt(ex * ex + ey * ey)
    err = m.arctan2(ey, ex) - poses[..., 2]
    return m.stack([linear_gain * dist * m.cos(err), angular_gain * dist * m.sin(err)], axis=-1)


def pose_controller(poses: Any, goals: Any, approach_angle_gain: float = 1.0,
                    desired_angle_gain: float = 2.7, rotation_error_gain: float = 1.0) -> Any:
    """rps's CLF unicycle pose controller: drive poses to goal poses (..., 3); gains are rps's defaults.

    rps divides sin α·cos α by α; we use its limit 1 at α = 0 where rps would return NaN.
    """
    m = xp(poses, goals)
    cg, sg = m.cos(goals[..., 2]), m.sin(goals[..., 2])
    ex, ey = goals[..., 0] - poses[..., 0], goals[..., 1] - poses[..., 1]
    tx, ty = cg * ex + sg * ey, -sg * ex + cg * ey          # error in the goal frame, R(-θ_g)·e
    e = m.sqrt(tx * tx + ty * ty)
    theta = m.arctan2(ty, tx)
    alpha = theta - (poses[..., 2] - goals[..., 2])
    alpha = m.arctan2(m.sin(alpha), m.cos(alpha))
    ca, sa = m.cos(alpha), m.sin(alpha)
    nonzero = alpha != 0
    sa_over_a = m.where(nonzero, sa / m.where(nonzero, alpha, 1.0), 1.0)
    v = approach_angle_gain * e * ca
    w = desired_angle_gain * alpha + approach_angle_gain * ca * sa_over_a * (alpha + rotation_error_gain * theta)
    return m.stack([v, w], axis=-1)


def si_position_controller(points: Any, goals: Any, gain: float = 1.0, magnitude_limit: float = 0.15,
                           swirl: float = 0.0) -> Any:
    """rps's single-integrator position controller: gain·(goal − point), scaled to ‖·‖ ≤ magnitude_limit.

    `swirl` (rad) rotates the command clockwise, a right-hand rule: every robot veers the same
    way, which dissolves the symmetric standoffs (antipodal swaps) where an exact barrier stops
    robots head-on. For |swirl| < π/2 the goal error still shrinks (at rate cos(swirl)).
    """
    m = xp(points, goals)
    e = gain * (goals - points)
    norm = m.sqrt(m.sum(e * e, axis=-1, keepdims=True))
    e = e * m.minimum(1.0, magnitude_limit / m.maximum(norm, 1e-12))
    if swirl:
        c, s = math.cos(swirl), math.sin(swirl)
        e = m.stack([c * e[..., 0] + s * e[..., 1], -s * e[..., 0] + c * e[..., 1]], axis=-1)
    return e
