"""Heterogeneous teams: robot classes with their own capabilities, in plain Python (no JAX).

A scenario with classes names them in its spec (`CLASSES`: name -> `RobotClass`), lists which capabilities
its robots observe (`CAPABILITIES`), and takes the team as `team=(class name per robot, ...)` (default: the
spec's `TEAM` pattern repeated over the fleet). Every robot observes its own capabilities and those of its
K nearest neighbours as numbers, not as a class index, so one policy serves every class and a class never
seen in training is still described by the same features. The fleet applies `speed` as the robot's own top
speed (a fraction of the profile's), after the barrier too (`sim.fleet.FleetEnv`).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from marlstack.sim.scenarios import navigation_spec as nav


TILE = 0.4  # m: the square tiles of a team map (5 x 8 over the Robotarium arena)


@dataclasses.dataclass(frozen=True)
class RobotClass:
    """What one kind of robot can do. Unused capabilities stay 0."""
    speed: float = 1.0  # its top linear speed as a fraction of the profile's (on ice, in arctic transport)
    water_speed: float = 1.0  # the same fraction on water tiles (arctic transport)
    sensing_radius: float = 0.0  # m: it detects targets / terrain this close
    reach: float = 0.0  # m: it captures / tags a target this close (0: it cannot)
    capacity: float = 0.0  # payload units it carries
    goal: float = 0.0  # 1 when the task needs this robot at the goal (arctic transport's ground robots)


CAPABILITY_DOCS = {
    "speed": ("", "top linear speed as a fraction of the profile's (on ice in arctic transport)"),
    "water_speed": ("", "top linear speed on water as a fraction of the profile's"),
    "sensing_radius": ("m", "detects targets / terrain within this distance"),
    "reach": ("m", "captures / tags a target within this distance (0: cannot)"),
    "capacity": ("", "payload units it carries"),
    "goal": ("", "1 when the task needs this robot in the goal zone"),
}


def resolve_team(team: Any, classes: dict[str, RobotClass], pattern: tuple[str, ...], num_agents: int) -> tuple[str, ...]:
    """Class name per robot: `team` as given (a list or a comma-separated string) or `pattern` repeated."""
    if isinstance(team, str):
        team = [t.strip() for t in team.split(",") if t.strip()]
    names = tuple(team) if team else tuple(pattern[i % len(pattern)] for i in range(num_agents))
    if len(names) != num_agents:
        raise ValueError(f"team lists {len(names)} robots, the fleet has {num_agents}")
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise ValueError(f"unknown robot class {unknown[0]!r}; classes: {', '.join(classes)}")
    return names


def resolve_classes(overrides: Any, classes: dict[str, RobotClass]) -> tuple[tuple[str, RobotClass], ...]:
    """The spec's classes with `overrides` ({class: {capability: value}}) applied, as a hashable tuple."""
    table = dict(classes)
    for name, values in dict(overrides or {}).items():
        try:
            table[name] = dataclasses.replace(table.get(name, RobotClass()), **dict(values))
        except TypeError as exc:
            raise ValueError(f"class {name!r}: {exc}; capabilities: {', '.join(CAPABILITY_DOCS)}") from None
    return tuple(table.items())


def capabilities(team: tuple[str, ...], classes: tuple[tuple[str, RobotClass], ...], fields: tuple[str, ...]) -> np.ndarray:
    """(N, len(fields)) float32: each robot's capabilities named by `fields`, in robot order."""
    table = dict(classes)
    return np.asarray([[getattr(table[t], f) for f in fields] for t in team], np.float32).reshape(len(team), len(fields))


def capability_features(fields: tuple[str, ...], prefix: str = "") -> tuple[tuple[str, str, str], ...]:
    """(name, unit, doc) per observed capability, for the specs' observation tables."""
    return tuple((f"{prefix}{f}", *CAPABILITY_DOCS[f]) for f in fields)


def team_sensors(fields: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The sensors every team scenario shares: pose, others (navigation's) and the capabilities."""
    c = len(fields)
    return {"pose": nav.SENSORS["pose"], "others": nav.SENSORS["others"],
            "capabilities": {"shape": [c], "units": [CAPABILITY_DOCS[f][0] for f in fields], "frame": "none",
                             "doc": f"own capabilities {list(fields)}, from the robot's class"},
            "other_capabilities": {"shape": ["N-1", c], "units": [CAPABILITY_DOCS[f][0] for f in fields],
                                   "frame": "none", "doc": "the other robots' capabilities, ascending robot index, self removed"}}


def team_obs_names(num_neighbors: int, fields: tuple[str, ...]) -> list[str]:
    """The observation's first part (`hetero.observe_team`): pose features, own capabilities, K neighbours."""
    neighbour = nav.NEIGHBOR_FEATURES[:4] + capability_features(fields) + nav.NEIGHBOR_FEATURES[4:]
    return ([n for n, _, _ in nav.POSE_FEATURES] + list(fields)
            + nav.slot_names("neighbor", num_neighbors, neighbour))
