"""Running observation statistics (Chan et al.'s parallel mean/variance update).

The statistics are part of the trained policy: the checkpoint stores them and the
exported `act` applies them, so deployment sees exactly the inputs training saw.
"""
from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

CLIP = 10.0  # normalised observations are clipped to ±CLIP standard deviations
EPS = 1e-8


@flax.struct.dataclass
class RunningStats:
    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, dim: int) -> "RunningStats":
        return cls(jnp.zeros(dim, jnp.float32), jnp.ones(dim, jnp.float32), jnp.asarray(EPS, jnp.float32))

    def update(self, x: jax.Array) -> "RunningStats":
        """Fold a batch `(..., dim)` into the statistics."""
        x = x.reshape(-1, x.shape[-1])
        n = x.shape[0]
        b_mean, b_var = jnp.mean(x, 0), jnp.var(x, 0)
        total = self.count + n
        delta = b_mean - self.mean
        mean = self.mean + delta * n / total
        m2 = self.var * self.count + b_var * n + delta**2 * self.count * n / total
        return RunningStats(mean, m2 / total, total)


def normalize(x: jax.Array, mean: jax.Array, var: jax.Array) -> jax.Array:
    return jnp.clip((x - mean) / jnp.sqrt(var + EPS), -CLIP, CLIP)
