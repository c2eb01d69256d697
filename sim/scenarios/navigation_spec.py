"""Navigation's sensor and observation spec in plain Python (no JAX), for exporters and onboard nodes.

`SENSORS` names the raw tensors a robot senses, per robot (the exported graph adds a leading batch
axis); `N` in a shape is the fleet size. `obs_names(k)` lists the observation vector element by
element, in the order `sim.scenarios.navigation.observe` writes it.
"""
from __future__ import annotations

SCENARIO = "navigation"
SUCCESS_RADIUS = 0.1  # m: a robot has arrived when its centre is this close to its goal (issue 2)
NUM_NEIGHBORS = 3  # K nearest other robots observed, padded when the fleet is smaller. 3: a policy trained
# with 4 robots has seen every slot filled, so it exports to any larger fleet (marlstack export --num-agents)

SENSORS = {
    "pose": {"shape": [3], "units": ["m", "m", "rad"], "frame": "world",
             "doc": "own pose [x, y, theta]"},
    "others": {"shape": ["N-1", 3], "units": ["m", "m", "rad"], "frame": "world",
               "doc": "poses of the other robots in ascending robot index, self removed"},
    "goal": {"shape": [2], "units": ["m", "m"], "frame": "world", "doc": "own goal position [x, y]"},
}

GOAL_FEATURES = (
    ("goal_x_robot", "m", "goal vector in the robot frame (x forward)"),
    ("goal_y_robot", "m", "goal vector in the robot frame (y left)"),
    ("goal_distance", "m", "distance to the goal"),
)
POSE_FEATURES = (  # shared with the other ground scenarios (coverage)
    ("cos_theta", "", "heading cosine (world frame)"),
    ("sin_theta", "", "heading sine (world frame)"),
    ("x", "m", "position in the arena (world frame)"),
    ("y", "m", "position in the arena (world frame)"),
    ("wall_left", "m", "x - x_min"),
    ("wall_right", "m", "x_max - x"),
    ("wall_bottom", "m", "y - y_min"),
    ("wall_top", "m", "y_max - y"),
)
SELF_FEATURES = GOAL_FEATURES + POSE_FEATURES
NEIGHBOR_FEATURES = (
    ("dx_robot", "m", "neighbour position relative to the robot, robot frame (0 when padded)"),
    ("dy_robot", "m", "same, y left (0 when padded)"),
    ("distance", "m", "centre distance (arena diagonal when padded)"),
    ("rel_heading", "rad", "theta_neighbour - theta wrapped into [-pi, pi] (0 when padded)"),
    ("present", "", "1 for a real neighbour, 0 for padding"),
)


def obs_names(num_neighbors: int = NUM_NEIGHBORS) -> list[str]:
    """Every observation element's name; neighbours are sorted nearest first."""
    return [n for n, _, _ in SELF_FEATURES] + slot_names("neighbor", num_neighbors, NEIGHBOR_FEATURES)


def slot_names(prefix: str, slots: int, features: tuple[tuple[str, str, str], ...]) -> list[str]:
    """`{prefix}{k}_{feature}` for every slot k of a nearest-first list (neighbours, landmarks)."""
    return [f"{prefix}{k}_{n}" for k in range(slots) for n, _, _ in features]


def obs_dim(num_neighbors: int = NUM_NEIGHBORS) -> int:
    return len(SELF_FEATURES) + num_neighbors * len(NEIGHBOR_FEATURES)


def sensor_shapes(num_agents: int, sensors: dict[str, dict] = SENSORS) -> dict[str, list[int]]:
    """Concrete per-robot sensor shapes for a fleet of `num_agents` ("N" and "N-1" in `sensors`' shapes)."""
    size = {"N": num_agents, "N-1": num_agents - 1}
    return {name: [size.get(d, d) for d in s["shape"]] for name, s in sensors.items()}
