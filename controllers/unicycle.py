"""Unicycle ↔ wheel-speed mappings and actuator saturation (rps's forms), array-API neutral.

Shapes follow the rps convention of stacking per-robot quantities on the *last* axis
flipped into our convention: inputs are `(..., N)` arrays for each of v and omega.
The same code runs on numpy (onboard nodes) and on jax.numpy (simulator, training).
"""
from __future__ import annotations

from typing import Any

from controllers.arrays import xp


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
