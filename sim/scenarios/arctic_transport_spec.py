"""Arctic transport's classes, sensors and observation in plain Python (no JAX), for exporters and nodes.

Same conventions as `navigation_spec`: `SENSORS` per robot (the exported graph adds a leading batch axis),
`N` in a shape is the fleet size, `R` x `C` the tile grid (5 x 8 in the Robotarium arena with 0.4 m tiles);
`obs_names(k)` lists the observation element by element, in the order `sim.scenarios.arctic_transport.observe`
writes it.
"""
from __future__ import annotations

from marlstack.sim.scenarios import navigation_spec as nav
from marlstack.sim.scenarios import team as tm

SCENARIO = "arctic_transport"
NUM_NEIGHBORS = nav.NUM_NEIGHBORS
TILE = tm.TILE  # m: square tiles, each ice or water
GOAL_DEPTH = 0.4  # m: the goal zone is the top strip of the arena this deep
START_DEPTH = 0.8  # m: robots start in the bottom strip this deep (room for 33 robots two diameters apart)
# ice / water robots: full speed on their own terrain, 0.3 of it on the other; drones: full speed everywhere,
# they map 0.6 m around them (ground robots 0.3 m: about their own tile) and need not reach the goal
CLASSES = {"drone": tm.RobotClass(speed=1.0, water_speed=1.0, sensing_radius=0.6),
           "ice": tm.RobotClass(speed=1.0, water_speed=0.3, sensing_radius=0.3, goal=1.0),
           "water": tm.RobotClass(speed=0.3, water_speed=1.0, sensing_radius=0.3, goal=1.0)}
TEAM = ("drone", "ice", "water")
CAPABILITIES = ("speed", "water_speed", "sensing_radius", "goal")

GRID = (5, 8)  # rows x columns of TILE m tiles over the Robotarium arena
SENSORS = tm.team_sensors(CAPABILITIES) | {
    # units per element of the last axis (a map row), for the default grid; another tile size exports with the
    # same names but this unit list no longer matches its row length
    "map": {"shape": ["R", "C"], "units": [""] * GRID[1], "frame": "world",
            "doc": "the team's terrain map, tile [row from y_min, column from x_min]: +1 ice, -1 water, "
                   "0 not yet mapped (the same for every robot)"},
}

TASK_FEATURES = (("goal_gap", "m", "how far below the goal zone the robot is (0 inside it)"),) + tuple(
    (f"tile_{r}_{c}", "", f"mapped terrain {r} rows and {c} columns from the robot's tile (+1 ice, -1 water, "
                          f"0 unknown or outside the arena)")
    for r in ("down", "same", "up") for c in ("left", "same", "right"))


def obs_names(num_neighbors: int = NUM_NEIGHBORS) -> list[str]:
    """Every observation element's name; neighbours nearest first, the 3 x 3 tiles row by row from below."""
    return tm.team_obs_names(num_neighbors, CAPABILITIES) + [n for n, _, _ in TASK_FEATURES]


def obs_dim(num_neighbors: int = NUM_NEIGHBORS) -> int:
    return len(obs_names(num_neighbors))


def sensor_shapes(num_agents: int, grid: tuple[int, int] = GRID) -> dict[str, list[int]]:
    """Concrete per-robot sensor shapes for a fleet of `num_agents` on a `grid` of tiles."""
    return nav.sensor_shapes(num_agents, SENSORS) | {"map": list(grid)}
