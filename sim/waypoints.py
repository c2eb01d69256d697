"""Discrete waypoint actions and the unicycle position controller that tracks them.

Array-API neutral (numpy or jax.numpy via `controllers.arrays.xp`), so the scripted policies
of the CLI, the simulator and any numpy caller share one implementation.
"""
from __future__ import annotations

from typing import Any

from controllers.arrays import xp

# Action index -> unit direction: stay, +x, -x, +y, -y (the waypoint is STEP metres that way).
DIRECTIONS = ((0.0, 0.0), (1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0))
NUM_ACTIONS = len(DIRECTIONS)
STEP = 0.2  # m: how far ahead a discrete action puts the waypoint (issue 2)
LINEAR_GAIN = 0.8  # rps create_clf_unicycle_position_controller defaults
ANGULAR_GAIN = 3.0


def position_controller(poses: Any, targets: Any, linear_gain: float = LINEAR_GAIN,
                        angular_gain: float = ANGULAR_GAIN) -> Any:
    """rps's CLF unicycle position controller: poses (..., 3), targets (..., 2) -> (v, ω) (..., 2).

    Same formula as rps (v = k_v d cos(α − θ), ω = k_ω d sin(α − θ)); zero at the target.
    """
    m = xp(poses, targets)
    err = targets - poses[..., :2]
    bearing = m.arctan2(err[..., 1], err[..., 0])
    dist = m.sqrt(err[..., 0] ** 2 + err[..., 1] ** 2)
    rel = bearing - poses[..., 2]
    return m.stack([linear_gain * dist * m.cos(rel), angular_gain * dist * m.sin(rel)], axis=-1)


def waypoints(positions: Any, actions: Any, arena: Any, margin: float) -> Any:
    """positions (..., 2), integer actions (...) -> waypoints (..., 2), kept `margin` inside the walls."""
    m = xp(positions)
    step = m.asarray(DIRECTIONS, dtype=positions.dtype)[actions] * STEP
    target = positions + step
    x = m.clip(target[..., 0], arena.x_min + margin, arena.x_max - margin)
    y = m.clip(target[..., 1], arena.y_min + margin, arena.y_max - margin)
    return m.stack([x, y], axis=-1)
