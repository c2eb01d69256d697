"""Named cable-load scenarios for trainers: `make("cable_hover", profile=..., num_agents=...)`.

A trainer registers these names next to the fleet scenarios; each is `CableEnv` with one task.
"""
from __future__ import annotations

from typing import Any

# `cable` is the default task of `marlstack train cable`: random goal poses (the paper's task)
SCENARIOS: dict[str, str] = {"cable": "random", "cable_hover": "hover", "cable_move": "move", "cable_random": "random"}
DEFAULT_PROFILE = "mav_corl25"


def make(name: str, profile: Any = DEFAULT_PROFILE, **kwargs: Any) -> Any:
    """A `CableEnv` for scenario `name`; keyword arguments go to the constructor (num_agents, max_steps, ...)."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown cable scenario {name!r} (available: {', '.join(SCENARIOS)})")
    from marlstack.sim.cable.env import CableEnv
    return CableEnv(profile, task=SCENARIOS[name], **kwargs)
