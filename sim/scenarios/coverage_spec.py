"""Coverage's sensor and observation spec in plain Python (no JAX), for exporters and onboard nodes.

Same conventions as `navigation_spec`: `SENSORS` per robot (the exported graph adds a leading batch
axis), `N` in a shape is the fleet size; `obs_names(k, l)` lists the observation vector element by
element, in the order `sim.scenarios.coverage.observe` writes it.
"""
from __future__ import annotations

import numpy as np

from marlstack.sim.scenarios import navigation_spec as nav

SCENARIO = "coverage"
SUCCESS_RADIUS = nav.SUCCESS_RADIUS  # m: a landmark is covered when a robot centre is this close
NUM_NEIGHBORS = nav.NUM_NEIGHBORS
# L nearest landmarks observed. K + 1: a policy trained with 4 robots has seen every landmark slot
# filled exactly when it has seen every neighbour slot filled, which is what the exporter checks.
NUM_LANDMARKS = NUM_NEIGHBORS + 1

SENSORS = {
    "pose": nav.SENSORS["pose"],
    "others": nav.SENSORS["others"],
    "landmarks": {"shape": ["N", 2], "units": ["m", "m"], "frame": "world",
                  "doc": "every landmark's position [x, y], in landmark index order (the same for every robot)"},
}

LANDMARK_FEATURES = (
    ("dx_robot", "m", "landmark position relative to the robot, robot frame (0 when padded)"),
    ("dy_robot", "m", "same, y left (0 when padded)"),
    ("distance", "m", "distance to the landmark (arena diagonal when padded)"),
    ("other_distance", "m", "distance from the landmark to its nearest other robot "
                            "(arena diagonal with no other robot, 0 when padded)"),
    ("present", "", "1 for a real landmark, 0 for padding"),
)


def point_errors(xy: np.ndarray, points: np.ndarray, shared: bool) -> np.ndarray:
    """(..., N, 2) positions, (..., M, 2) points -> (..., N): each position's distance to the nearest
    point (`shared`: coverage's landmarks), or to its own point i (navigation's goals, M = N).
    Swap the roles to ask how far each landmark's nearest robot is."""
    d = np.linalg.norm(np.asarray(xy)[..., :, None, :] - np.asarray(points)[..., None, :, :], axis=-1)
    return d.min(-1) if shared else np.diagonal(d, axis1=-2, axis2=-1)


def obs_names(num_neighbors: int = NUM_NEIGHBORS, num_landmarks: int = NUM_LANDMARKS) -> list[str]:
    """Every observation element's name; neighbours and landmarks are sorted nearest first."""
    return ([n for n, _, _ in nav.POSE_FEATURES] + nav.slot_names("neighbor", num_neighbors, nav.NEIGHBOR_FEATURES)
            + nav.slot_names("landmark", num_landmarks, LANDMARK_FEATURES))


def obs_dim(num_neighbors: int = NUM_NEIGHBORS, num_landmarks: int = NUM_LANDMARKS) -> int:
    return (len(nav.POSE_FEATURES) + num_neighbors * len(nav.NEIGHBOR_FEATURES)
            + num_landmarks * len(LANDMARK_FEATURES))


def sensor_shapes(num_agents: int) -> dict[str, list[int]]:
    """Concrete per-robot sensor shapes for a fleet of `num_agents`."""
    return nav.sensor_shapes(num_agents, SENSORS)
