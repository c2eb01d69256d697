"""A scenario's task state hosted outside the simulator: what a testbed's task server keeps (which zone holds how
much material, what the team has mapped, which shelves are requested) and sends each robot on its `task` topic.

The sim node hosts it on the simulated poses (SITL), the task server node (task_server_node.py) on the robots'
real ones; both advance it with the scenario's own `reset_task` / `reward` / `sense`, the functions training runs.
Testbed tooling: imports JAX (never onboard).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

TASK_RESEND_S = 1.0  # a hosted task's numbers are re-sent this often besides whenever they change


class ScenarioTask:
    """A scenario's task state (the sim node's in SITL, the task server node's on a testbed), advanced by its own rules.

    Reset with its own `reset_task` from the uniforms `seed` draws and the start poses (`setup` may then
    replace parts: RWARE's requested shelves), advanced over each step by its own `reward` on the poses
    (simulated or measured); `messages()` are, per robot, its `task` topic's numbers: the scenario's `sense()`
    of the task sensors, flattened in the layout the robots' adapter cuts them by
    (`task_adapter.task_sensors`). `speed`: each robot's top-speed factor now (a team scenario's class and
    terrain, `speed_factors`), at which the simulated robot saturates its v (`sim_node.top_speed`); None without one.
    `overrides`: scenario parameters, e.g. `team` (a class per robot; bad names: ValueError)."""

    def __init__(self, scenario: str, profile: Any, starts: np.ndarray, seed: int,
                 setup: Callable[[Any], Any] | None = None, **overrides: Any):
        import jax
        import jax.numpy as jnp
        from types import SimpleNamespace

        from marlstack.ros_nodes.task_adapter import task_sensors
        from marlstack.sim.fleet import FleetEnv, float_dtype
        from marlstack.sim.placement import uniforms

        n, self.dtype = len(starts), float_dtype()
        env = FleetEnv(profile, n, scenario, **overrides)  # the scenario's parameters and placer, as trained
        module, params = env.scenario, env.params
        self.params, self.success_label = params, module.SUCCESS_LABEL
        self.team = tuple(getattr(params, "team", ()))  # a team scenario's class per robot
        layout = list(task_sensors(scenario, n))
        factors = getattr(module, "speed_factors", None)
        poses = jnp.asarray(starts, self.dtype)

        def observed(poses, task):  # (N, numbers) of the task topics, and the speed factors there
            sensors = module.sense(SimpleNamespace(poses=poses, task=task), params)
            flat = jnp.concatenate([sensors[k].reshape(n, -1) for k in layout], -1)
            return flat, (None if factors is None else factors(poses, task, params))

        def start(poses):  # compiled whole: op by op, JAX's eager dispatch took seconds of the node's start
            u = uniforms(jax.random.PRNGKey(seed), module.num_task_uniforms(env.placer, params), self.dtype)
            task = module.reset_task(u, poses, env.placer, params)
            task = task if setup is None else setup(task)
            return task, *observed(poses, task)

        def advance(prev, poses, task):
            _, task, _, solved = module.reward(prev, poses, task, jnp.zeros(n), jnp.zeros(n), params)
            return task, solved, *observed(poses, task)

        self.state, numbers, speed = jax.jit(start)(poses)
        self._advance = jax.jit(advance)
        self._advance(poses, poses, self.state)  # compile now, not inside the first period
        self.numbers, self.speed = np.asarray(numbers, np.float64), None if speed is None else np.asarray(speed)
        self.solved = False

    def step(self, prev: np.ndarray, poses: np.ndarray) -> np.ndarray:
        """Advance over one simulated step; the robots whose task numbers changed."""
        self.state, solved, numbers, speed = self._advance(np.asarray(prev, self.dtype), np.asarray(poses, self.dtype),
                                                           self.state)
        before, self.numbers = self.numbers, np.asarray(numbers, np.float64)
        self.solved = bool(solved)
        self.speed = None if speed is None else np.asarray(speed)
        return np.flatnonzero((before != self.numbers).any(-1))

    def messages(self) -> list[list[float]]:
        """Per robot its `task` topic's numbers."""
        return self.numbers.tolist()

    def publish(self, pubs: list[Any], robots: Any = None) -> None:
        """Each robot's numbers on its `task` publisher (`pubs` in robot order); `robots`: indices, all by default."""
        from marlstack.ros_nodes.convert import numbers_to_msg
        numbers = self.messages()
        for i in range(len(pubs)) if robots is None else robots:
            pubs[i].publish(numbers_to_msg(numbers[i]))

    @property
    def reached(self) -> np.ndarray:
        """(N,) the scenario's per-robot success flag (what its SUCCESS_LABEL counts), once set kept."""
        return np.asarray(self.state.reached)


def rware_task(profile: Any, starts: np.ndarray, seed: int, boxes: np.ndarray, requests: list[int]) -> ScenarioTask:
    """RWARE's task: the deployment's shelves, and its requested shelves waiting (not the seed's draw)."""
    waiting = np.zeros(len(boxes), bool)
    waiting[requests] = True
    requested = lambda task: task.replace(waiting=waiting.astype(task.waiting.dtype))  # noqa: E731
    return ScenarioTask("rware", profile, starts, seed, requested, shelves=boxes, num_requests=len(requests))


def host_task(scenario: str, profile: Any, starts: np.ndarray, seed: int, boxes: np.ndarray, requests: list[int],
              team: list[str]) -> ScenarioTask:
    """A deployment's task as its nodes' parameters give it (RWARE: `boxes` its shelves, `requests` the waiting
    ones; a team scenario: `team`, a class per robot, empty for the spec's pattern); a bad one: StartError in one line."""
    from marlstack.ros_nodes.runner import StartError

    if scenario == "rware":
        if not requests or not len(boxes):
            raise StartError("rware: parameters 'boxes' (the shelves) and 'requests' (indices into them) are needed")
        try:
            return rware_task(profile, starts, seed, boxes, requests)
        except (ValueError, IndexError) as exc:
            raise StartError(f"rware: parameters 'boxes' (the shelves) / 'requests' ({requests}): {exc}") from None
    try:
        return ScenarioTask(scenario, profile, starts, seed, **({"team": team} if team else {}))
    except ValueError as exc:
        raise StartError(f"{scenario}: {exc}") from None
