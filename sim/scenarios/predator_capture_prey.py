"""Predator-capture-prey: sensing predators find prey, capturing predators catch them, and the prey flee.

JaxRobotarium's (after MARBLER's) predator-capture-prey, played by the fleet: discovery with targets that
move. A prey whose nearest robot is within `flee_radius` steps straight away from it at `prey_speed`
(slower than a robot, so two predators can corner it; the walls stop it `margin` inside). Classes, sensing,
observation (`predator_capture_prey_spec.obs_names` = discovery's), reward and success are discovery's.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from marlstack.sim.scenarios import discovery as dc
from marlstack.sim.scenarios import hetero
from marlstack.sim.scenarios import predator_capture_prey_spec as spec

SUCCESS_LABEL = "robots whose team captured every prey"
Task = dc.Task
(speed_factors, obs_dim, num_task_uniforms, reset_task, sense, observe, world_features, scripted_goals,
 reward) = (dc.speed_factors, dc.obs_dim, dc.num_task_uniforms, dc.reset_task, dc.sense, dc.observe,
            dc.world_features, dc.scripted_goals, dc.reward)


@dataclasses.dataclass(frozen=True)
class Params(dc.Params):
    """Discovery's constants with prey that flee."""
    flee_radius: float = spec.FLEE_RADIUS


def make_params(profile: Any, num_agents: int, **overrides: Any) -> Params:
    """`prey_speed` (m/s, default `spec.PREY_SPEED`) becomes the per-step distance with the profile's dt."""
    speed = float(overrides.pop("prey_speed", spec.PREY_SPEED))
    if not 0 <= speed < profile.max_linear_speed:
        raise ValueError(f"prey_speed must be in [0, {profile.max_linear_speed}) m/s (slower than a robot), got {speed}")
    params = hetero.make_params(Params, spec, profile, num_agents, prey_step=speed * profile.dt, **overrides)
    return dc.checked(params, num_agents)
