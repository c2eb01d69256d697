"""Sim-to-sim: one deployment's policy and safety filter, closed loop, in marlstack's simulator and in pybullet.

Why: the fleet simulator integrates the ideal unicycle (rps's step), pybullet simulates bodies,
wheels, contact and friction. Both are driven by what a robot runs — the policy node's task
adapter feeding the exported ONNX policy, then the safety node's barrier certificate — from the
same starts and goals (or landmarks), so the gap between their trajectories is what the ideal model hides.
Tooling, not onboard: the marlstack side runs `sim.fleet.physics_step` in JAX (sim.pybullet stays JAX-free).
"""
from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from marlstack.hardware.profile import load_profile, profile_hash
from marlstack.policies.runtime import PolicyRuntime
from marlstack.ros_nodes.adapters import make_adapter
from marlstack.ros_nodes.plan import Deployment
from marlstack.ros_nodes.safety_node import Certificate
from marlstack.sim.pybullet import PybulletFleet
from marlstack.sim.scenarios.coverage_spec import point_errors
from marlstack.sim.scenarios.navigation_spec import SUCCESS_RADIUS


class Engine(Protocol):
    def step(self, u: Any) -> np.ndarray:
        """(N, 2) [v, ω] for one control period -> (N, 3) poses after it."""

    def close(self) -> None: ...


class Pipeline:
    """What the deployed fleet computes each control period: adapters -> ONNX policy -> barrier certificate.

    One per run: it carries the policy's recurrent state and the certificates' warm starts.
    """

    def __init__(self, dep: Deployment, runtime: PolicyRuntime, profile: Any):
        self.names = dep.robot_names
        max_age = dep.watchdog_periods / dep.rate_hz
        self.adapters = [make_adapter(dep.scenario, self.names, r.name, max_age) for r in dep.robots]
        for i, adapter in enumerate(self.adapters):
            adapter.update_task(dep.task_input(i))
        self.runtime = runtime
        self.hidden = runtime.initial_state(len(self.names))
        groups = [self.names] if dep.safety_mode == "fleet" else [[r] for r in self.names]
        self.certificates = [(np.isin(self.names, g), Certificate(profile, self.names, g, dep.safety_form))
                             for g in groups]

    def __call__(self, poses: np.ndarray, t_s: float) -> tuple[np.ndarray, bool]:
        """(N, 3) poses at `t_s` -> ((N, 2) safe command, whether every certificate solved)."""
        for adapter in self.adapters:
            for name, (x, y, yaw) in zip(self.names, poses):
                adapter.update_pose(name, x, y, yaw, t_s)
        feeds = [adapter.inputs(t_s) for adapter in self.adapters]
        out = self.runtime.run({**{k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}, **self.hidden})
        rec = self.runtime.spec["recurrent"]
        if rec is not None:
            self.hidden = {rec["input"]: out[rec["output"]]}
        u_nominal = np.asarray(out["cmd"], np.float64).reshape(len(self.names), 2)
        u, solved = np.zeros_like(u_nominal), True
        for mask, certificate in self.certificates:
            u[mask], status, _ = certificate(poses, u_nominal[mask])
            solved &= status == "optimal"
        return u, solved


@dataclasses.dataclass
class Trajectory:
    poses: np.ndarray     # (T + 1, N, 3), the start included
    commands: np.ndarray  # (T, N, 2) safe commands sent to the engine
    brakes: int           # control periods in which a certificate failed and braked


def closed_loop(engine: Engine, starts: np.ndarray, pipeline: Pipeline, steps: int, dt: float,
                tick: Callable[[], Any] = lambda: None) -> Trajectory:
    """Run `pipeline` against `engine` for `steps` control periods; `tick()` after each (progress bars)."""
    poses = [np.asarray(starts, np.float64)]
    commands, brakes = [], 0
    for k in range(steps):
        u, solved = pipeline(poses[-1], k * dt)
        brakes += not solved
        commands.append(u)
        poses.append(np.asarray(engine.step(u), np.float64))
        tick()
    return Trajectory(np.stack(poses), np.stack(commands), brakes)


class MarlstackFleet:
    """The fleet simulator's physics (`sim.fleet.physics_step`: rps's step and saturation), jitted, as an Engine."""

    def __init__(self, profile: Any, starts: Any):
        import jax

        from marlstack.sim.fleet import physics_step
        self._step = jax.jit(lambda poses, u: physics_step(profile, poses, u)[0])
        self.poses = np.asarray(starts, np.float64)

    def step(self, u: Any) -> np.ndarray:
        self.poses = np.asarray(self._step(self.poses, np.asarray(u)), np.float64)
        return self.poses

    def close(self) -> None:
        """Nothing to release."""


ENGINES: dict[str, Callable[[Any, np.ndarray], Engine]] = {"marlstack": MarlstackFleet, "pybullet": PybulletFleet}


def engine_metrics(traj: Trajectory, goals: np.ndarray, profile: Any, shared: bool = False) -> list[dict]:
    """Per robot: goal reached (within SUCCESS_RADIUS) and first when, final goal error, closest
    approach to another robot, and the simulator's collision / boundary-exit rule per step.
    `shared` (coverage): `goals` are landmarks and a robot's error is to the nearest one."""
    from marlstack.sim.fleet import violations
    p = traj.poses
    viol = violations(profile, p[:-1], traj.commands)
    collisions, exits = np.asarray(viol.collisions) > 0, np.asarray(viol.boundary_exits) > 0
    err = point_errors(p[..., :2], goals, shared)  # (T + 1, robot)
    gaps = np.linalg.norm(p[:, :, None, :2] - p[:, None, :, :2], axis=-1)
    gaps[:, np.arange(p.shape[1]), np.arange(p.shape[1])] = np.inf
    out = []
    for i in range(p.shape[1]):
        within = np.flatnonzero(err[:, i] <= SUCCESS_RADIUS)
        reach_s = round(float(within[0]) * profile.dt, 6) if within.size else None
        out.append({"reached": reach_s is not None, "reach_time_s": reach_s, "final_goal_error_m": float(err[-1, i]),
                    "min_distance_m": float(gaps[:, i].min()), "collision_steps": int(collisions[:, i].sum()),
                    "boundary_exit_steps": int(exits[:, i].sum())})
    return out


def deviation(a: Trajectory, b: Trajectory) -> list[dict]:
    """Per robot: RMS and largest distance between the two engines' positions at the same instants."""
    d = np.linalg.norm(a.poses[:, :, :2] - b.poses[:, :, :2], axis=-1)
    return [{"rms_m": float(np.sqrt(np.mean(d[:, i] ** 2))), "max_m": float(d[:, i].max())} for i in range(d.shape[1])]


def num_steps(profile: Any, duration_s: float) -> int:
    """Control periods in `duration_s` (at least one)."""
    return max(1, round(duration_s / profile.dt))


def compare(dep: Deployment, policy: str | Path, steps: int,
            tick: Callable[[], Any] = lambda: None) -> tuple[dict, dict[str, Trajectory]]:
    """Run the deployment in both engines for `steps` control periods; returns (report, trajectory per engine).

    Raises policies.runtime.PolicyError when the policy does not fit the deployment.
    """
    profile = load_profile(dep.profile)
    starts = np.array([r.start for r in dep.robots])
    goals = np.array(dep.task_points)
    runtime = PolicyRuntime(policy, expect_scenario=dep.scenario, expect_profile_hash=profile_hash(profile),
                            expect_rate_hz=1.0 / profile.dt, batch_size=len(dep.robots))
    trajs = {}
    for name, make in ENGINES.items():
        with contextlib.closing(make(profile, starts)) as engine:
            trajs[name] = closed_loop(engine, starts, Pipeline(dep, runtime, profile), steps, profile.dt, tick)
    metrics = {name: engine_metrics(trajs[name], goals, profile, not dep.per_robot_goals) for name in ENGINES}
    dev = deviation(trajs["marlstack"], trajs["pybullet"])
    robots = [{"name": name, "deviation": dev[i], **{e: metrics[e][i] for e in ENGINES}}
              for i, name in enumerate(dep.robot_names)]
    report = {"config": str(dep.path), "scenario": dep.scenario, "policy": str(policy), "profile": profile.name, "dt_s": profile.dt,
              "steps": steps, "duration_s": steps * profile.dt, "success_radius_m": SUCCESS_RADIUS,
              "safety": {"mode": dep.safety_mode, "form": dep.safety_form},
              "brakes": {e: trajs[e].brakes for e in ENGINES}, "robots": robots,
              "max_deviation_m": max(d["max_m"] for d in dev)}
    return report, trajs
