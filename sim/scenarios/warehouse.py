"""Warehouse: red and green robots each carry packages from their colour's loading zone to its unloading zone.

JaxRobotarium's (after MARBLER's) warehouse, played by the fleet: material transport with one zone pair
per class. The loading zones are on the right, the unloading zones on the left (red on top, green below); robots
start anywhere, so the two colours' streams cross on their first trips (with the zones crossed, the
scripted go-to-zone policy deadlocked behind the barrier in the middle and delivered nothing in 1200 steps).
Packages wait in each loading zone (`material`, drawn per episode); solved, and ended, when every package
of both colours is delivered. Sensing, observation (a robot sees its own colour's zones), reward and
success are material transport's; the observation layout is `warehouse_spec.obs_names` (= its).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from marlstack.sim.scenarios import hetero
from marlstack.sim.scenarios import material_transport as mt
from marlstack.sim.scenarios import warehouse_spec as spec

SUCCESS_LABEL = "robots whose team delivered every package"
Task = mt.Task
(speed_factors, obs_dim, num_task_uniforms, reset_task, sense, observe, world_features, scripted_goals,
 reward) = (mt.speed_factors, mt.obs_dim, mt.num_task_uniforms, mt.reset_task, mt.sense, mt.observe,
            mt.world_features, mt.scripted_goals, mt.reward)


@dataclasses.dataclass(frozen=True)
class Params(mt.Params):
    """Material transport's constants with the warehouse's zones, colours and package counts."""
    load_zones: tuple[tuple[float, float, float], ...] = spec.LOAD_ZONES
    unload_zones: tuple[tuple[float, float, float], ...] = spec.UNLOAD_ZONES
    class_zones: tuple[tuple[str, int], ...] = spec.CLASS_ZONES
    material: tuple[int, int] = spec.MATERIAL


def make_params(profile: Any, num_agents: int, **overrides: Any) -> Params:
    return mt.checked(hetero.make_params(Params, spec, profile, num_agents, **mt.tuples(overrides)))
