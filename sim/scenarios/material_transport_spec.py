"""Material transport's classes, sensors and observation in plain Python (no JAX), for exporters and nodes.

Same conventions as `navigation_spec`: `SENSORS` per robot (the exported graph adds a leading batch axis),
`N` in a shape is the fleet size; `obs_names(k)` lists the observation element by element, in the order
`sim.scenarios.material_transport.observe` writes it.
"""
from __future__ import annotations

from marlstack.sim.scenarios import navigation_spec as nav
from marlstack.sim.scenarios import team as tm

SCENARIO = "material_transport"
NUM_NEIGHBORS = nav.NUM_NEIGHBORS
# Fast robots carry one unit, slow ones two at 0.6 of the top speed: the same units per metre per second
# when everyone shuttles, so who goes depends on where each robot is, not on a fixed ranking.
CLASSES = {"fast": tm.RobotClass(speed=1.0, capacity=1.0), "slow": tm.RobotClass(speed=0.6, capacity=2.0)}
TEAM = ("fast", "slow")  # repeated over the fleet unless `team` is given
CAPABILITIES = ("speed", "capacity")
LOAD_ZONES = ((-0.6, 0.0, 0.25),)  # (x, y, radius) m
UNLOAD_ZONES = ((0.6, 0.0, 0.25),)
MATERIAL = (2, 4)  # units waiting in each loading zone, uniform integers per episode (4 robots carry 6)

SENSORS = tm.team_sensors(CAPABILITIES) | {
    "load": {"shape": [1], "units": [""], "frame": "none", "doc": "units the robot carries"},
    "load_zone": {"shape": [3], "units": ["m", "m", ""], "frame": "world",
                  "doc": "the robot's loading zone [x, y, units waiting there]"},
    "unload_zone": {"shape": [2], "units": ["m", "m"], "frame": "world", "doc": "the robot's unloading zone [x, y]"},
}

TASK_FEATURES = (
    ("load", "", "units carried"),
    ("load_zone_dx_robot", "m", "loading zone centre, robot frame x"),
    ("load_zone_dy_robot", "m", "same, y left"),
    ("load_zone_distance", "m", "distance to the loading zone centre"),
    ("load_zone_waiting", "", "units waiting in the loading zone"),
    ("unload_zone_dx_robot", "m", "unloading zone centre, robot frame x"),
    ("unload_zone_dy_robot", "m", "same, y left"),
    ("unload_zone_distance", "m", "distance to the unloading zone centre"),
)


def obs_names(num_neighbors: int = NUM_NEIGHBORS) -> list[str]:
    """Every observation element's name; neighbours nearest first."""
    return tm.team_obs_names(num_neighbors, CAPABILITIES) + [n for n, _, _ in TASK_FEATURES]


def obs_dim(num_neighbors: int = NUM_NEIGHBORS) -> int:
    return len(obs_names(num_neighbors))


def sensor_shapes(num_agents: int) -> dict[str, list[int]]:
    """Concrete per-robot sensor shapes for a fleet of `num_agents`."""
    return nav.sensor_shapes(num_agents, SENSORS)
