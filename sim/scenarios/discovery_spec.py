"""Discovery's classes, sensors and observation in plain Python (no JAX), for exporters and onboard nodes.

Same conventions as `navigation_spec`: `SENSORS` per robot (the exported graph adds a leading batch axis),
`N` in a shape is the fleet size, `T` the number of targets; `obs_names(k, t)` lists the observation element
by element, in the order `sim.scenarios.discovery.observe` writes it.
"""
from __future__ import annotations

from marlstack.sim.scenarios import navigation_spec as nav
from marlstack.sim.scenarios import team as tm

SCENARIO = "discovery"
NUM_NEIGHBORS = nav.NUM_NEIGHBORS
NUM_TARGETS = 3
# JaxRobotarium's radii: sensing robots see 0.45 m around them and cannot tag; tagging robots sense nothing
# themselves and tag a found target within 0.25 m (0.15 m, tried first, made the task harder than theirs:
# docs/training.md)
CLASSES = {"sensing": tm.RobotClass(sensing_radius=0.45), "tagging": tm.RobotClass(reach=0.25)}
TEAM = ("sensing", "tagging")
CAPABILITIES = ("sensing_radius", "reach")

GRID = (5, 8)  # rows x columns of team.TILE m tiles over the Robotarium arena (the searched map)
SENSORS = tm.team_sensors(CAPABILITIES) | {
    "targets": {"shape": ["T", 3], "units": ["m", "m", ""], "frame": "world",
                "doc": "every target [x, y, 1] once the team has found it and until it is tagged; [0, 0, 0] "
                       "otherwise (target order, the same for every robot)"},
    # units per element of a map row, for the default grid (as arctic transport's map)
    "searched": {"shape": ["R", "C"], "units": [""] * GRID[1], "frame": "world",
                 "doc": "the team's searched map, tile [row from y_min, column from x_min]: 1 once a sensing "
                        "robot has covered its centre, else 0 (the same for every robot)"},
}

UNSEARCHED_FEATURES = (
    ("unsearched_dx_robot", "m", "the nearest tile centre not yet searched, robot frame x (0 when all are searched)"),
    ("unsearched_dy_robot", "m", "same, y left"),
    ("unsearched_distance", "m", "distance to it (arena diagonal when all are searched)"),
    ("unsearched_present", "", "1 while some tile is unsearched"),
)
TARGET_FEATURES = (
    ("dx_robot", "m", "found, untagged target, robot frame x (0 when absent)"),
    ("dy_robot", "m", "same, y left (0 when absent)"),
    ("distance", "m", "distance to it (arena diagonal when absent)"),
    ("present", "", "1 for a found, untagged target, 0 otherwise (absent ones sort last)"),
)


def obs_names(num_neighbors: int = NUM_NEIGHBORS, num_targets: int = NUM_TARGETS) -> list[str]:
    """Every observation element's name; neighbours and targets nearest first."""
    return (tm.team_obs_names(num_neighbors, CAPABILITIES) + nav.slot_names("target", num_targets, TARGET_FEATURES)
            + [n for n, _, _ in UNSEARCHED_FEATURES])


def obs_dim(num_neighbors: int = NUM_NEIGHBORS, num_targets: int = NUM_TARGETS) -> int:
    return len(obs_names(num_neighbors, num_targets))


def sensor_shapes(num_agents: int, num_targets: int = NUM_TARGETS) -> dict[str, list[int]]:
    """Concrete per-robot sensor shapes for a fleet of `num_agents`."""
    return nav.sensor_shapes(num_agents, SENSORS) | {"targets": [num_targets, 3], "searched": list(GRID)}
