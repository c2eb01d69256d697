"""Array-API-neutral helpers: one implementation serves numpy (onboard) and jax.numpy (training).

`xp(*arrays)` returns `jax.numpy` when any argument is a JAX array or tracer and `numpy`
otherwise. It never imports JAX itself, so onboard code that only passes numpy arrays
keeps JAX out of the process.
"""
from __future__ import annotations

import sys
from types import ModuleType

import numpy as np


def xp(*arrays) -> ModuleType:
    jax = sys.modules.get("jax")
    if jax is not None and any(isinstance(a, jax.Array) for a in arrays):
        return sys.modules["jax.numpy"]
    return np
