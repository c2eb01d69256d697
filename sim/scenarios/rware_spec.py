"""RWARE's layout, sensors and observation in plain Python (no JAX), for exporters, nodes and the barrier.

Same conventions as `navigation_spec`: `SENSORS` per robot (the exported graph adds a leading batch axis),
`N` in a shape is the fleet size, `S` the number of shelves; `obs_names(k, q)` lists the observation
element by element, in the order `sim.scenarios.rware.observe` writes it. `SHELVES` is the one place the
default shelves are written: the scenario's task, its observation and the barrier's obstacle rows
(`FleetEnv(barrier=...)`, `marlstack.controllers.barrier_qp.barrier_spec(boxes=...)`) all read them.
"""
from __future__ import annotations

from marlstack.sim.scenarios import navigation_spec as nav

SCENARIO = "rware"
NUM_NEIGHBORS = nav.NUM_NEIGHBORS
NUM_REQUEST_SLOTS = 2  # the nearest requested shelves a robot observes
SHELF_SIZE = (0.2, 0.1)  # m (x, y): a shelf's footprint, an obstacle to every robot
# JaxRobotarium's 8 storage cells: 4 columns from x = -1.1 to 0.6 in two rows; the rows at y = ±0.3 (theirs
# ±0.25) leave a 0.5 m aisle, where two GRITSbots pass with the barrier's 0.21 m between projection points.
SHELF_CENTRES = tuple((round(-1.1 + i * 1.7 / 3, 4), y) for y in (0.3, -0.3) for i in range(4))
SHELVES = tuple((x - SHELF_SIZE[0] / 2, x + SHELF_SIZE[0] / 2, y - SHELF_SIZE[1] / 2, y + SHELF_SIZE[1] / 2)
                for x, y in SHELF_CENTRES)  # (x_min, x_max, y_min, y_max) m
DELIVERY_X = 1.1  # m: the delivery zone is the arena's right strip x >= 1.1 (JaxRobotarium's 0.5 m zone)
PICK_RADIUS = 0.25  # m: a robot whose centre is this close to a requested shelf's centre takes its item (JaxRobotarium: 0.2;
# a robot facing a shelf stops ~0.18 m from its centre, where the barrier lets it approach at a crawl)
NUM_REQUESTS = 2  # items requested per episode (JaxRobotarium: one per robot; 0 asks for that): what a 10-minute
# training run on the shared 2 cores learns (docs/sim.md)
START_DEPTH = 0.45  # m: robots start in the bottom strip of the arena, below the shelves (JaxRobotarium: a line)

SENSORS = {
    "pose": nav.SENSORS["pose"],
    "others": nav.SENSORS["others"],
    "load": {"shape": [1], "units": [""], "frame": "none", "doc": "1 while the robot carries an item, else 0"},
    "requests": {"shape": ["S", 3], "units": ["m", "m", ""], "frame": "world",
                 "doc": "every shelf [x, y, waiting]: waiting 1 while it is requested and its item not taken "
                        "(the same for every robot)"},
}

REQUEST_FEATURES = (
    ("dx_robot", "m", "requested shelf centre relative to the robot, robot frame (0 when padded)"),
    ("dy_robot", "m", "same, y left (0 when padded)"),
    ("distance", "m", "distance to its centre (arena diagonal when padded)"),
    ("present", "", "1 for a shelf whose item waits, 0 for padding"),
)
TASK_FEATURES = (
    ("load", "", "1 while carrying an item"),
    ("delivery_dx_robot", "m", "the delivery zone's nearest point, robot frame x (0 inside)"),
    ("delivery_dy_robot", "m", "same, y left"),
    ("delivery_distance", "m", "distance to the delivery zone (0 inside)"),
    ("shelf_dx_robot", "m", "the nearest shelf's nearest point, robot frame x"),
    ("shelf_dy_robot", "m", "same, y left"),
    ("shelf_distance", "m", "distance to the nearest shelf's footprint"),
)


def obs_names(num_neighbors: int = NUM_NEIGHBORS, num_slots: int = NUM_REQUEST_SLOTS) -> list[str]:
    """Every observation element's name; neighbours and requests are sorted nearest first."""
    return ([n for n, _, _ in nav.POSE_FEATURES] + nav.slot_names("neighbor", num_neighbors, nav.NEIGHBOR_FEATURES)
            + [n for n, _, _ in TASK_FEATURES] + nav.slot_names("request", num_slots, REQUEST_FEATURES))


def obs_dim(num_neighbors: int = NUM_NEIGHBORS, num_slots: int = NUM_REQUEST_SLOTS) -> int:
    return len(obs_names(num_neighbors, num_slots))


def sensor_shapes(num_agents: int, num_shelves: int = len(SHELVES)) -> dict[str, list[int]]:
    """Concrete per-robot sensor shapes for a fleet of `num_agents`."""
    shapes = nav.sensor_shapes(num_agents, SENSORS)
    shapes["requests"] = [num_shelves, 3]
    return shapes
