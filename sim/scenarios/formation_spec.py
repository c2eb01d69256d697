"""Formation's sensor and observation spec in plain Python (no JAX): coverage's, with the ring's slots as landmarks.

Same conventions as `navigation_spec`; `obs_names(k, l)` lists the observation element by element in the
order `sim.scenarios.formation.observe` (coverage's) writes it.
"""
from __future__ import annotations

from marlstack.sim.scenarios import coverage_spec as cov

SCENARIO = "formation"
SUCCESS_RADIUS = cov.SUCCESS_RADIUS  # m: a slot is filled when a robot centre is this close
NUM_NEIGHBORS = cov.NUM_NEIGHBORS
NUM_LANDMARKS = cov.NUM_LANDMARKS  # the L nearest slots observed (K + 1, for coverage's reason)
SLOT_SPACING = 0.25  # m between neighbouring slots of the ring: 2.3 robot diameters, beyond the barrier's 0.15 m
MIN_RADIUS = 0.3  # m: the ring of a small team (4 robots: 0.3 m; 20 robots: 0.80 m, the most the arena fits)

SENSORS = {
    "pose": cov.SENSORS["pose"],
    "others": cov.SENSORS["others"],
    "landmarks": {"shape": ["N", 2], "units": ["m", "m"], "frame": "world",
                  "doc": "every slot of the formation ring [x, y], in slot order (the same for every robot)"},
}

obs_names = cov.obs_names
obs_dim = cov.obs_dim
LANDMARK_FEATURES = cov.LANDMARK_FEATURES


def sensor_shapes(num_agents: int) -> dict[str, list[int]]:
    """Concrete per-robot sensor shapes for a fleet of `num_agents`."""
    return cov.sensor_shapes(num_agents)
