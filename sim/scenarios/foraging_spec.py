"""Level-based foraging's sensor and observation spec in plain Python (no JAX), for exporters and onboard nodes.

Same conventions as `navigation_spec`: `SENSORS` per robot (the exported graph adds a leading batch
axis), `N` in a shape is the fleet size, `R` the number of resources; `obs_names(k, r)` lists the
observation vector element by element, in the order `sim.scenarios.foraging.observe` writes it.
"""
from __future__ import annotations

from marlstack.sim.scenarios import navigation_spec as nav

SCENARIO = "foraging"
NUM_NEIGHBORS = nav.NUM_NEIGHBORS
NUM_RESOURCES = 2  # JaxRobotarium's default
FORAGE_RADIUS = 0.25  # m: robots whose centres are this close to a resource take part in foraging it
LEVELS = (1, 2)  # robot levels, repeated over the fleet (robot i: LEVELS[i % 2]) unless `levels` is given
MAX_RESOURCE_LEVEL = 3  # resource levels are drawn from 1 .. 3: a level-3 resource needs two robots

SENSORS = {
    "pose": nav.SENSORS["pose"],
    "others": nav.SENSORS["others"],
    "level": {"shape": [1], "units": [""], "frame": "none", "doc": "own level (capability class), from the fleet's profile"},
    "other_levels": {"shape": ["N-1", 1], "units": [""], "frame": "none",
                     "doc": "the other robots' levels, ascending robot index, self removed"},
    "resources": {"shape": ["R", 3], "units": ["m", "m", ""], "frame": "world",
                  "doc": "every resource [x, y, level], resource order; level 0 once foraged (the same for every robot)"},
}

NEIGHBOR_FEATURES = nav.NEIGHBOR_FEATURES[:4] + (
    ("level", "", "the neighbour's level (0 when padded)"),
    nav.NEIGHBOR_FEATURES[4],
)
RESOURCE_FEATURES = (
    ("dx_robot", "m", "resource position relative to the robot, robot frame (0 when foraged)"),
    ("dy_robot", "m", "same, y left (0 when foraged)"),
    ("distance", "m", "distance to the resource (arena diagonal when foraged)"),
    ("level", "", "the level the robots around it must sum to (0 when foraged)"),
    ("present", "", "1 while the resource is still there, 0 once foraged"),
)


def obs_names(num_neighbors: int = NUM_NEIGHBORS, num_resources: int = NUM_RESOURCES) -> list[str]:
    """Every observation element's name; neighbours and resources are sorted nearest first."""
    return ([n for n, _, _ in nav.POSE_FEATURES] + ["level"]
            + nav.slot_names("neighbor", num_neighbors, NEIGHBOR_FEATURES)
            + nav.slot_names("resource", num_resources, RESOURCE_FEATURES))


def obs_dim(num_neighbors: int = NUM_NEIGHBORS, num_resources: int = NUM_RESOURCES) -> int:
    return len(obs_names(num_neighbors, num_resources))


def sensor_shapes(num_agents: int, num_resources: int = NUM_RESOURCES) -> dict[str, list[int]]:
    """Concrete per-robot sensor shapes for a fleet of `num_agents`."""
    shapes = nav.sensor_shapes(num_agents, SENSORS)
    shapes["resources"] = [num_resources, 3]
    return shapes
