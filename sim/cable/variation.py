"""Per-episode deviations of the true team from its profile: domain randomisation and robustness tests.

A `Variation` holds the scales of the true physical parameters (1 = the profile's value), the sensor
noise and the command latency of one episode. The physics uses the true parameters; the controllers
(INDI, the classical controller, the policy) keep the profile's nominal ones, as on a real team whose
numbers are only known approximately. Ranges come from the profile's `randomization:` section or are
given per factor (`{"load_mass": (1.3, 1.3)}`: the load is 30 % heavier in every episode).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import struct

SCALES = ("mav_mass", "mav_inertia", "load_mass", "load_inertia", "cable_length", "motor_constant",
          "motor_time_constant")
NOISES = ("noise_position", "noise_velocity", "noise_attitude", "noise_rate")
FACTORS = SCALES + NOISES + ("latency",)
Ranges = Mapping[str, tuple[float, float]]


@struct.dataclass
class Variation:
    mav_mass: jnp.ndarray             # (N,) scale of each MAV's mass
    mav_inertia: jnp.ndarray          # (N, 3)
    load_mass: jnp.ndarray            # ()
    load_inertia: jnp.ndarray         # (3,)
    cable_length: jnp.ndarray         # (N,)
    motor_constant: jnp.ndarray       # (N,) true thrust per commanded thrust
    motor_time_constant: jnp.ndarray  # (N,)
    noise: jnp.ndarray                # (4,) std of position, velocity, attitude, rate noise
    latency: jnp.ndarray              # () int32, policy steps from sensing to the vehicle
    key: jax.Array                    # the episode's sensor-noise key


def profile_ranges(profile: Any) -> dict[str, tuple[float, float]]:
    """The profile's `randomization:` section as ranges: scales 1 ± x, noise and latency 0 … x."""
    r = profile.randomization
    return {**{k: (1.0 - getattr(r, k), 1.0 + getattr(r, k)) for k in SCALES},
            **{k: (0.0, getattr(r, k)) for k in NOISES + ("latency",)}}


def check_ranges(ranges: Ranges) -> dict[str, tuple[float, float]]:
    """Validated (low, high) per factor; unknown factors and inverted or negative ranges are refused."""
    out = {}
    for name, pair in ranges.items():
        if name not in FACTORS:
            raise ValueError(f"unknown variation factor {name!r}; choose from {', '.join(FACTORS)}")
        lo, hi = (float(pair), float(pair)) if isinstance(pair, (int, float)) else map(float, pair)
        if not (0.0 <= lo <= hi and math.isfinite(hi)) or (name in SCALES and lo <= 0.0):
            raise ValueError(f"variation {name}: need 0 < low <= high for scales, 0 <= low <= high otherwise; got {pair}")
        out[name] = (lo, hi)
    return out


def max_latency_steps(ranges: Ranges, dt: float) -> int:
    """Length of the command queue the latency range needs."""
    return int(round(ranges.get("latency", (0.0, 0.0))[1] / dt))


def sample(key: jax.Array, ranges: Ranges, num_mavs: int, dt: float) -> Variation:
    """One episode's variation: every factor uniform in its range (nominal where `ranges` omits it)."""
    keys = dict(zip(FACTORS + ("noise_key",), jax.random.split(key, len(FACTORS) + 1)))

    def draw(name: str, shape: tuple[int, ...], nominal: float) -> jnp.ndarray:
        lo, hi = ranges.get(name, (nominal, nominal))
        return jax.random.uniform(keys[name], shape, jnp.float32, lo, hi)

    n = num_mavs
    steps = jnp.round(draw("latency", (), 0.0) / dt).astype(jnp.int32)
    return Variation(mav_mass=draw("mav_mass", (n,), 1.0), mav_inertia=draw("mav_inertia", (n, 3), 1.0),
                     load_mass=draw("load_mass", (), 1.0), load_inertia=draw("load_inertia", (3,), 1.0),
                     cable_length=draw("cable_length", (n,), 1.0), motor_constant=draw("motor_constant", (n,), 1.0),
                     motor_time_constant=draw("motor_time_constant", (n,), 1.0),
                     noise=jnp.stack([draw(k, (), 0.0) for k in NOISES]), latency=steps, key=keys["noise_key"])
