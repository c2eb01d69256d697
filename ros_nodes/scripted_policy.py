"""A scripted go-to-goal controller, exported like a trained policy (SITL tests and `bench ros`).

Why: tests and benchmarks of the ROS side need a `policy.onnx` that reliably drives every robot
to its goal, in seconds, without a training run. This wraps rps's CLF unicycle position
controller (controllers.unicycle), applied to the navigation *observation* (the goal in the robot
frame, elements 0-1 of `observe()`), in the LoadedPolicy duck type and runs it through `policies.export.export`,
so the artifact goes through exactly the same tracing, spec and parity checks as a trained one.
SITL tooling: imports JAX (never loaded by onboard nodes).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

RUN_ID = "scripted-go-to-goal"


class ScriptedNavigation:
    """The LoadedPolicy contract (policies.checkpoint) for a parameter-free controller."""

    scenario = "navigation"
    recurrent = False
    run_id = RUN_ID
    path = RUN_ID
    params: dict = {}

    def __init__(self, num_agents: int, profile: str = "gritsbot_x"):
        self.profile, self.num_agents = profile, num_agents
        self.agent_names = [f"agent_{i}" for i in range(num_agents)]
        self.config = {"scripted": "rps CLF position controller on the observation", "num_agents": num_agents}

    def make_env(self) -> Any:
        from marlstack.sim.fleet import FleetEnv
        return FleetEnv(profile=self.profile, num_agents=self.num_agents, scenario=self.scenario)

    @property
    def act(self):
        """act(params, obs (B, obs_dim)) -> (B, 2) in physical units, clipped to the action box."""
        import jax.numpy as jnp

        from marlstack.controllers.unicycle import position_controller
        space = self.make_env().action_space(self.agent_names[0])
        low, high = jnp.asarray(space.low, jnp.float32), jnp.asarray(space.high, jnp.float32)

        def act(params, obs, agent_index=None):  # one controller serves every agent
            goal = obs[..., 0:2]  # the goal in the robot frame: the robot sits at the origin, heading 0
            cmd = position_controller(jnp.zeros((*goal.shape[:-1], 3), goal.dtype), goal)
            return jnp.clip(cmd, low, high)
        return act


def export_scripted(out: str | Path, num_agents: int, profile: str = "gritsbot_x") -> dict:
    """Write the scripted controller as `out` (policy.onnx) for a fleet of `num_agents`; returns its spec."""
    from marlstack.policies.export import export
    return export(ScriptedNavigation(num_agents, profile), out)
