"""A non-learned team policy: each MAV flies a PD loop to its place in the hover formation around the
goal (rotated with the goal's yaw). Used by the controller tests, the renderer demo and as a baseline."""
from __future__ import annotations

import jax.numpy as jnp

from marlstack.sim.cable.env import CableEnv, CableState


def formation_actions(env: CableEnv, state: CableState, kp: float = 4.0, kd: float = 3.0) -> jnp.ndarray:
    """(N, 5) actions: acceleration = kp·(place − position) − kd·velocity, zero rate references.

    kp, kd (1/s², 1/s) set a slow, well-damped MAV position loop (natural frequency 2 rad/s); it does
    not try to damp the load's swing, which is what a learned policy can add."""
    h, b = env.hover, state.bodies
    q = state.goal_quat
    yaw = jnp.arctan2(2 * (q[0] * q[3] + q[1] * q[2]), 1 - 2 * (q[2] ** 2 + q[3] ** 2))
    c, s = jnp.cos(yaw), jnp.sin(yaw)
    rz = jnp.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    place = state.goal_pos + (jnp.asarray(h.pos - h.load_pos, jnp.float32) @ rz.T)
    acc = kp * (place - b.pos) - kd * b.vel
    return jnp.concatenate([acc, jnp.zeros((env.num_agents, 2), acc.dtype)], axis=-1)
