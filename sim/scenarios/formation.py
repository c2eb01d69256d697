"""Formation: the robots take up a regular ring (one slot per robot) at a random place and rotation.

What differs from coverage is only where the points come from: coverage's landmarks are scattered over
the arena, formation's are the N slots of a ring, `SLOT_SPACING` apart, so the robots must arrive
close together without colliding (the barrier keeps them apart) and agree who takes which slot (no slot
belongs to a robot). Sensing, observation (slots as landmarks), the reward (progress towards a greedy
robot-slot pairing, a team bonus when every slot is filled) and success are coverage's.
The observation layout is `formation_spec.obs_names` (= coverage's).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from marlstack.sim.scenarios import coverage as cov
from marlstack.sim.scenarios import formation_spec as spec

SUCCESS_LABEL = "formation slots filled"
Task = cov.Task
sense, observe, obs_dim, reward = cov.sense, cov.observe, cov.obs_dim, cov.reward


@dataclasses.dataclass(frozen=True)
class Params(cov.Params):
    """Coverage's constants plus the ring: `radius` 0 = the smallest with `SLOT_SPACING` between slots
    (at least `MIN_RADIUS`); `margin` keeps every slot this far inside the walls."""
    radius: float = 0.0
    margin: float = 0.15

    @property
    def ring_radius(self) -> float:
        if self.radius > 0:
            return self.radius
        n = self.num_agents
        return max(spec.MIN_RADIUS, spec.SLOT_SPACING / (2 * math.sin(math.pi / n)) if n > 1 else 0.0)


def make_params(profile: Any, num_agents: int, **overrides: Any) -> Params:
    params = Params.from_profile(profile, num_agents, **overrides)
    reach = params.ring_radius + params.margin
    if 2 * reach > min(params.x_max - params.x_min, params.y_max - params.y_min):
        raise ValueError(f"a ring of {num_agents} slots (radius {params.ring_radius:.2f} m + {params.margin} m "
                         f"margin) does not fit the arena")
    return params


def num_task_uniforms(placer: Any, params: Params) -> int:
    return 3  # centre x, centre y, rotation


def reset_task(u: jax.Array, poses: jax.Array, placer: Any, params: Params) -> Task:
    """The ring's centre uniform over the places where the whole ring keeps `margin` from the walls,
    its rotation uniform."""
    reach = params.ring_radius + params.margin
    cx = params.x_min + reach + u[0] * (params.x_max - params.x_min - 2 * reach)
    cy = params.y_min + reach + u[1] * (params.y_max - params.y_min - 2 * reach)
    angles = 2 * jnp.pi * (u[2] + jnp.arange(params.num_agents, dtype=u.dtype) / params.num_agents)
    slots = jnp.stack([cx + params.ring_radius * jnp.cos(angles), cy + params.ring_radius * jnp.sin(angles)], -1)
    return Task(landmarks=slots, reached=jnp.zeros(params.num_agents, bool))
