"""Scenarios: what the robots of a fleet are asked to do (goals, rewards, what they sense and observe).

Each scenario module provides `Params`/`make_params(profile, num_agents, **overrides)`,
`num_task_uniforms(placer, params)`, `reset_task(uniforms, poses, placer, params)`, `sense(state, params)`, `observe(sensors, params)`,
`obs_dim(params)`, `reward(...)` and `SUCCESS_LABEL` (what the per-robot `success` flags count); `FleetEnv`
only talks to that interface. The task state has `goals` (N, 2) (the points the world state and the
pictures show) and `reached` (N,).
"""
from __future__ import annotations

import importlib
from types import ModuleType

SCENARIOS = {"navigation": "marlstack.sim.scenarios.navigation", "coverage": "marlstack.sim.scenarios.coverage",
             "formation": "marlstack.sim.scenarios.formation", "foraging": "marlstack.sim.scenarios.foraging",
             "material_transport": "marlstack.sim.scenarios.material_transport", "warehouse": "marlstack.sim.scenarios.warehouse",
             "discovery": "marlstack.sim.scenarios.discovery", "predator_capture_prey": "marlstack.sim.scenarios.predator_capture_prey",
             "arctic_transport": "marlstack.sim.scenarios.arctic_transport", "rware": "marlstack.sim.scenarios.rware"}


def get(name: str) -> ModuleType:
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; available: {', '.join(sorted(SCENARIOS))}")
    return importlib.import_module(SCENARIOS[name])
