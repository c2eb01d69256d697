"""Discrete waypoint actions: stay or step 0.2 m along ±x / ±y, kept inside the walls.

The simulator tracks a waypoint with rps's position controller (`controllers.unicycle.position_controller`).
Array-API neutral (numpy or jax.numpy via `controllers.arrays.xp`).
"""
from __future__ import annotations

from typing import Any

from marlstack.controllers.arrays import xp

# Action index -> unit direction: stay, +x, -x, +y, -y (the waypoint is STEP metres that way).
DIRECTIONS = ((0.0, 0.0), (1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0))
NUM_ACTIONS = len(DIRECTIONS)
STEP = 0.2  # m: how far ahead a discrete action puts the waypoint (issue 2)


def waypoints(positions: Any, actions: Any, arena: Any, margin: float) -> Any:
    """positions (..., 2), integer actions (...) -> waypoints (..., 2), kept `margin` inside the walls."""
    m = xp(positions)
    step = m.asarray(DIRECTIONS, dtype=positions.dtype)[actions] * STEP
    target = positions + step
    x = m.clip(target[..., 0], arena.x_min + margin, arena.x_max - margin)
    y = m.clip(target[..., 1], arena.y_min + margin, arena.y_max - margin)
    return m.stack([x, y], axis=-1)
