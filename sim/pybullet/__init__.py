"""pybullet twins of marlstack's robots: a second, independent physics engine (sim-to-sim gap).

The only place pybullet is imported; never imports JAX, so it can run next to onboard code.
"""
from marlstack.sim.pybullet.twin import PHYSICS_HZ, PybulletFleet

__all__ = ["PHYSICS_HZ", "PybulletFleet"]
