"""Quaternion helpers (w, x, y, z; body to world), jax.numpy, any leading batch dims."""
from __future__ import annotations

import jax.numpy as jnp


def quat_mul(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    aw, ax, ay, az = jnp.moveaxis(a, -1, 0)
    bw, bx, by, bz = jnp.moveaxis(b, -1, 0)
    return jnp.stack([aw * bw - ax * bx - ay * by - az * bz,
                      aw * bx + ax * bw + ay * bz - az * by,
                      aw * by - ax * bz + ay * bw + az * bx,
                      aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def quat_to_rot(q: jnp.ndarray) -> jnp.ndarray:
    w, x, y, z = jnp.moveaxis(q, -1, 0)
    return jnp.stack([
        jnp.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        jnp.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        jnp.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], -2)


def quat_from_euler(roll: jnp.ndarray, pitch: jnp.ndarray, yaw: jnp.ndarray) -> jnp.ndarray:
    """Z-Y-X (yaw, then pitch, then roll) Euler angles → quaternion."""
    cr, sr = jnp.cos(roll / 2), jnp.sin(roll / 2)
    cp, sp = jnp.cos(pitch / 2), jnp.sin(pitch / 2)
    cy, sy = jnp.cos(yaw / 2), jnp.sin(yaw / 2)
    return jnp.stack([cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy,
                      cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy], axis=-1)


def quat_integrate(q: jnp.ndarray, omega_body: jnp.ndarray, dt: float) -> jnp.ndarray:
    """q ⊗ exp(ω dt / 2): exact for a constant body rate over dt; re-normalised against round-off."""
    half = 0.5 * dt * omega_body
    angle = jnp.linalg.norm(half, axis=-1, keepdims=True)
    # sin(a)/a without dividing by zero at rest
    sinc = jnp.where(angle > 1e-8, jnp.sin(angle) / jnp.where(angle > 1e-8, angle, 1.0), 1.0 - angle ** 2 / 6)
    dq = jnp.concatenate([jnp.cos(angle), sinc * half], axis=-1)
    out = quat_mul(q, dq)
    return out / jnp.linalg.norm(out, axis=-1, keepdims=True)


def quat_angle(q_a: jnp.ndarray, q_b: jnp.ndarray) -> jnp.ndarray:
    """Angle (rad) of the rotation between two attitudes; atan2 keeps small angles exact."""
    conj = q_a * jnp.asarray([1.0, -1.0, -1.0, -1.0], q_a.dtype)
    rel = quat_mul(conj, q_b)
    return 2 * jnp.arctan2(jnp.linalg.norm(rel[..., 1:], axis=-1), jnp.abs(rel[..., 0]))
