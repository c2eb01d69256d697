"""Action and observation spaces with the JaxMARL duck type (`shape`, `low`/`high`, `n`, `sample`).

Our own small classes, so `sim/` does not depend on jaxmarl (a dev-only peer).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class Box:
    """A box of real vectors; low/high are numpy arrays (static, so a jitted function can close over them)."""
    low: np.ndarray
    high: np.ndarray
    shape: tuple[int, ...]

    @property
    def dtype(self) -> Any:
        """float32, or float64 when JAX x64 is on (decided when asked, like every array we make)."""
        return jax.dtypes.canonicalize_dtype(jnp.float64)

    @classmethod
    def make(cls, low: Any, high: Any, shape: tuple[int, ...]) -> "Box":
        return cls(np.broadcast_to(np.asarray(low, np.float64), shape).copy(),
                   np.broadcast_to(np.asarray(high, np.float64), shape).copy(), tuple(shape))

    def sample(self, key: jax.Array) -> jax.Array:
        """Uniform in the box; unbounded dimensions draw from a standard normal instead."""
        bounded = np.isfinite(self.low) & np.isfinite(self.high)
        if not bounded.any():
            return jax.random.normal(key, self.shape, self.dtype)
        lo, hi = np.where(bounded, self.low, 0.0), np.where(bounded, self.high, 1.0)
        u = lo.astype(self.dtype) + jax.random.uniform(key, self.shape, self.dtype) * (hi - lo).astype(self.dtype)
        if bounded.all():
            return u
        return jnp.where(bounded, u, jax.random.normal(jax.random.fold_in(key, 1), self.shape, self.dtype))

    def contains(self, x: Any) -> jax.Array:
        x = jnp.asarray(x)
        return (x.shape == self.shape) & jnp.all((x >= self.low) & (x <= self.high))


@dataclass(frozen=True)
class Discrete:
    """Integers 0 … n-1."""
    n: int
    shape: tuple[int, ...] = ()
    dtype: Any = jnp.int32

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.randint(key, self.shape, 0, self.n, self.dtype)

    def contains(self, x: Any) -> jax.Array:
        x = jnp.asarray(x)
        return (x.shape == self.shape) & (x >= 0) & (x < self.n)
