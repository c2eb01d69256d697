"""Angle wrapping without trig, array-API neutral (numpy or jax.numpy)."""
from __future__ import annotations

import math
from typing import Any

from marlstack.controllers.arrays import xp


def wrap_angle(a: Any) -> Any:
    """Into [-π, π]: what rps's arctan2(sin a, cos a) computes, to rounding (~1e-16 rad), and exact
    for angles already in range. No transcendentals (they dominate a simulator step's cost) and
    round is an ONNX op."""
    return a - (2 * math.pi) * xp(a).round(a / (2 * math.pi))
