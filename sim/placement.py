"""Random placements with a guaranteed minimum separation, cheap enough to run every step.

A fixed grid of cells covers the arena (less a margin); each robot gets its own cell and a
jitter inside it of at most half the slack between cell spacing and separation, so two points
never come closer than the separation, with no rejection loop (same cost for 1 robot or 50).

Auto-reset computes a fresh start for every env at every step, so picking the cells must be
cheap: a sort over all cells per env made the reset cost more than the physics. Instead the
placer holds a table of random partial permutations (drawn once with numpy) and each reset
picks a row and relabels it with a random affine map i -> (a·i + b) mod cells (a coprime to
the cell count: a bijection). Each draw is a uniformly random partial permutation; the table
bounds how many distinct cell patterns exist (rows × cells × multipliers, millions), and the
continuous jitter and headings make every start distinct.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

SLACK = 1.25  # cell spacing >= SLACK * separation, leaving room for the jitter
TABLE_ROWS = 1024


@dataclass(frozen=True, eq=False)
class Placer:
    centres: np.ndarray  # (cells, 2) m
    jitter: tuple[float, float]  # m, per axis
    table: np.ndarray = field(repr=False)  # (TABLE_ROWS, n) cell indices, each row a random partial permutation
    multipliers: np.ndarray = field(repr=False)  # integers coprime to the cell count

    @property
    def cells(self) -> int:
        return len(self.centres)

    @property
    def n(self) -> int:
        return self.table.shape[1]

    @property
    def num_uniforms(self) -> int:
        """How many U(0, 1) numbers `place` consumes."""
        return 3 + 2 * self.n


def make_placer(arena, separation: float, margin: float, n: int, seed: int = 0) -> Placer:
    """Places n points `margin` from every wall and `separation` apart.

    Per axis with c cells over free length L = span − 2·margin: spacing s = (L + separation)/c
    and jitter j = (s − separation)/2, centres from margin + j to span − margin − j, so neighbours
    in a row differ by at least s − 2j = separation and a jittered point keeps the margin.
    """
    axes, jitter = [], []
    for lo, hi in ((arena.x_min, arena.x_max), (arena.y_min, arena.y_max)):
        free = hi - lo - 2 * margin
        if free < 0:
            raise ValueError(f"arena {arena} is too small for a {margin:.3f} m wall margin")
        count = math.floor(free / (SLACK * separation)) + 1
        spacing = (free + separation) / count
        j = (spacing - separation) / 2 if count > 1 else 0.0
        axes.append(np.linspace(lo + margin + j, hi - margin - j, count) if count > 1 else np.array([(lo + hi) / 2]))
        jitter.append(j)
    centres = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    cells = len(centres)
    if n > cells:
        raise ValueError(f"the arena fits at most {cells} robots {separation:.2f} m apart, asked for {n}")
    rng = np.random.default_rng(seed)
    table = np.stack([rng.permutation(cells)[:n] for _ in range(TABLE_ROWS)]).astype(np.int32)
    multipliers = np.array([a for a in range(1, max(cells, 2)) if math.gcd(a, cells) == 1], np.int32)
    return Placer(centres, (jitter[0], jitter[1]), table, multipliers)


def place(u: jax.Array, placer: Placer) -> jax.Array:
    """(n, 2) positions from `placer.num_uniforms` uniforms in [0, 1)."""
    pick = lambda x, m: jnp.minimum((x * m).astype(jnp.int32), m - 1)  # noqa: E731
    row = jnp.asarray(placer.table)[pick(u[0], len(placer.table))]
    a = jnp.asarray(placer.multipliers)[pick(u[1], len(placer.multipliers))]
    cells = (row * a + pick(u[2], placer.cells)) % placer.cells
    jitter = (2 * u[3:].reshape(placer.n, 2) - 1) * jnp.asarray(placer.jitter, u.dtype)
    return jnp.asarray(placer.centres, u.dtype)[cells] + jitter


def _mix(x: jax.Array) -> jax.Array:
    """lowbias32: a bijective integer hash with good avalanche (Wellons' hash-prospector)."""
    x = (x ^ (x >> 16)) * jnp.uint32(0x7FEB352D)
    x = (x ^ (x >> 15)) * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def uniforms(key: jax.Array, count: int, dtype=None) -> jax.Array:
    """`count` U(0, 1) numbers hashed from the key's bits, with no threefry call.

    Resets run every step for every env (auto-reset) and a threefry draw costs more than a
    physics step. The key is already random bits (split by the caller), so an integer hash of
    (key, index) is plenty uniform for placing robots and headings.
    """
    dtype = dtype or jax.dtypes.canonicalize_dtype(jnp.float64)
    words = jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    words = words.astype(jnp.uint32).reshape(-1)
    seed = jnp.uint32(0)
    for i in range(words.shape[0]):  # a static handful of words (2 for threefry keys)
        seed = _mix(seed ^ words[i])
    x = _mix(seed + jnp.arange(count, dtype=jnp.uint32) * jnp.uint32(0x9E3779B9))
    return (x >> 8).astype(dtype) * (1.0 / (1 << 24))


def sample_positions(key: jax.Array, placer: Placer, dtype=None) -> jax.Array:
    """(n, 2) random positions at least the separation apart, inside the margins."""
    return place(uniforms(key, placer.num_uniforms, dtype), placer)
