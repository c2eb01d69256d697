"""Sim-to-sim for a MAV team carrying a load: one exported cable-team policy, closed loop, in marlstack's
cable simulator and in pybullet, over a deployment's goal sequence; the load-pose gap between them.

Both engines are driven by what the team runs: per MAV the policy node's inputs (`ros_nodes.mav_io.TeamInputs`:
load odometry, own and the others' odometry, the goal, its own past commands) feeding the exported ONNX
policy, then — with `safety: onboard` — the node's barrier certificate, cable rows included
(`ros_nodes.mav_io.certify`), at the policy rate; below that each vehicle's firmware (`controllers.quadrotor`) at the profile's physics rate:
- **marlstack**: `CableEnv.step_physics` (JAX, jitted, float32: the training physics and the SITL vehicles);
- **pybullet**: `sim.pybullet.cable_twin.PybulletCableTeam` (rigid bodies, link-chain cables, numpy firmware).
Every goal is held for the same fixed time in both (no early switch on success), so the two load poses
are compared at the same instants against the same goal. Exact, noise-free sensing in both.
Only `MarlstackTeam` imports JAX (when constructed); the policy side and the pybullet side never do.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from marlstack.hardware.profile import load_profile, profile_hash
from marlstack.policies.runtime import PolicyRuntime
from marlstack.ros_nodes import mav_io
from marlstack.ros_nodes.mav_safety import SafetyStage
from marlstack.sim.pybullet.cable_twin import (Chain, PybulletCableTeam, TeamState, cable_mass, cable_spans, quat_from_rpy,
                                     xyzw)


class TeamEngine(Protocol):
    def state(self) -> TeamState: ...

    def step(self, setpoints: Any) -> TeamState:
        """(N, 5) set-points for one policy period -> the state after it."""

    def close(self) -> None: ...


class MarlstackTeam:
    """marlstack's cable physics and firmware, `CableEnv.step_physics` jitted, from the env's converged hover
    moved to `load_pos` (as the SITL MAV simulator starts). `chain` (pybullet's cables) is not used."""

    def __init__(self, profile: Any, num_mavs: int, load_pos: Any, chain: Chain | None = None):
        import jax
        import jax.numpy as jnp

        from marlstack.sim.cable.env import CableEnv
        env = CableEnv(profile, num_agents=num_mavs, task="hover")
        s = jax.jit(lambda key: env.reset(key)[1])(jax.random.PRNGKey(0))  # one compile, not op by op
        b = s.bodies
        shift = jnp.asarray(load_pos, jnp.float32) - b.load_pos
        self._s = s.replace(bodies=b.replace(pos=b.pos + shift, load_pos=b.load_pos + shift))
        self._step = jax.jit(env.step_physics)
        self._get = jax.device_get

    def state(self) -> TeamState:
        b, tension = self._get((self._s.bodies, self._s.tension))
        f64 = lambda x: np.asarray(x, np.float64)  # noqa: E731
        return TeamState(f64(b.pos), f64(b.vel), f64(b.quat), f64(b.omega), f64(b.load_pos), f64(b.load_vel),
                         f64(b.load_quat), f64(b.load_omega), f64(tension))

    def step(self, setpoints: Any) -> TeamState:
        self._s = self._step(self._s, np.asarray(setpoints, np.float32))
        return self.state()

    def close(self) -> None:
        """Nothing to release."""


ENGINES: dict[str, Callable[..., TeamEngine]] = {"marlstack": MarlstackTeam, "pybullet": PybulletCableTeam}


def _row(pos: np.ndarray, quat_wxyz: np.ndarray, vel: np.ndarray, omega: np.ndarray) -> tuple[float, ...]:
    """One body as `mav_io` keeps an odometry message: position, quaternion x y z w, world velocity, body rates."""
    return (*map(float, pos), *xyzw(quat_wxyz), *map(float, vel), *map(float, omega))


class TeamPolicy:
    """What the team's companion computers compute each period: policy node inputs -> ONNX -> certificate.

    One per flight: it carries each MAV's command history (and a recurrent policy's state). A step the
    certificate cannot certify holds the MAV where it is (`mav_io.hold_command`), as the node does.
    """

    def __init__(self, mavs: list[str], runtime: PolicyRuntime, profile: Any, safety: str):
        (cmd,) = [e for e in runtime.spec["outputs"] if e["name"] == "cmd"]
        self.limit = np.asarray(cmd["high"], np.float64)
        self.inputs = [mav_io.TeamInputs(runtime.spec["inputs"], mavs, m, self.limit, math.inf) for m in mavs]
        self.mavs, self.runtime = list(mavs), runtime
        self.hidden = runtime.initial_state(len(mavs))
        self.safety = [SafetyStage(profile, self.mavs, m) for m in mavs] if safety == "onboard" else None
        self.holds = 0

    def set_goal(self, pos: Any, quat_wxyz: Any, t: float) -> None:
        row = (*map(float, pos), *xyzw(quat_wxyz), *[0.0] * 6)
        for team in self.inputs:
            team.put(mav_io.GOAL, row, t)

    def __call__(self, s: TeamState, t: float) -> np.ndarray:
        rows = {mav_io.LOAD: _row(s.load_pos, s.load_quat, s.load_vel, s.load_omega),
                **{m: _row(s.pos[i], s.quat[i], s.vel[i], s.omega[i]) for i, m in enumerate(self.mavs)}}
        for team in self.inputs:
            for key, row in rows.items():
                team.put(key, row, t)
        feeds = [team.inputs(t) for team in self.inputs]
        out = self.runtime.run({**{k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}, **self.hidden})
        rec = self.runtime.spec["recurrent"]
        if rec is not None:
            self.hidden = {rec["input"]: out[rec["output"]]}
        cmd = np.asarray(out["cmd"], np.float64).reshape(len(self.mavs), -1)
        if self.safety is not None:  # exact sensing, no age: every MAV's and the load's odometry, cable rows included
            team = np.asarray([rows[m] for m in self.mavs])
            for i, stage in enumerate(self.safety):
                safe, _ = mav_io.certify(stage, team, np.zeros(len(self.mavs)), cmd[i], np.asarray(rows[mav_io.LOAD]))
                if safe is None:
                    self.holds += 1
                    safe = mav_io.hold_command(s.pos[i], s.vel[i], s.pos[i], self.limit)
                cmd[i] = safe
        for team, c in zip(self.inputs, cmd):
            team.latest.sent(c)
        return cmd


@dataclasses.dataclass
class Flight:
    """One engine's closed-loop flight, sampled at the policy rate (index 0: the start)."""
    goal: np.ndarray       # (T + 1,) index of the goal in force when the sample was taken
    pos: np.ndarray        # (T + 1, N, 3)
    quat: np.ndarray       # (T + 1, N, 4)
    load_pos: np.ndarray   # (T + 1, 3)
    load_quat: np.ndarray  # (T + 1, 4)
    tension: np.ndarray    # (T + 1, N)
    commands: np.ndarray   # (T, N, 5) what the firmware was sent
    holds: int             # MAV-steps the certificate could not certify (held)


def goal_poses(goals: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """Deployment goals (x, y, z, roll, pitch, yaw [deg]) -> (position, quaternion w x y z)."""
    return [(np.asarray(g[:3], np.float64), quat_from_rpy(*np.radians(g[3:6]))) for g in goals]


def fly(engine: TeamEngine, policy: TeamPolicy, goals: list[tuple[np.ndarray, np.ndarray]], steps_per_goal: int,
        dt: float, tick: Callable[[], Any] = lambda: None) -> Flight:
    """The goal sequence, each goal for `steps_per_goal` policy periods; `tick()` after each (progress bars)."""
    states, which, commands = [engine.state()], [0], []
    for g, (pos, quat) in enumerate(goals):
        policy.set_goal(pos, quat, len(commands) * dt)
        for _ in range(steps_per_goal):
            cmd = policy(states[-1], len(commands) * dt)
            commands.append(cmd)
            states.append(engine.step(cmd))
            which.append(g)
            tick()
    stack = lambda name: np.stack([getattr(s, name) for s in states])  # noqa: E731
    return Flight(np.asarray(which), stack("pos"), stack("quat"), stack("load_pos"), stack("load_quat"),
                  stack("tension"), np.stack(commands), policy.holds)


def quat_angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle [deg] of the rotation between attitudes (..., 4) w x y z (as `CableEnv.errors`)."""
    dot = np.abs(np.sum(a * b, axis=-1)) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(2 * np.arccos(np.clip(dot, 0.0, 1.0)))


def goal_errors(f: Flight, goals: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(T + 1,) load position error [m] and attitude error [deg] to the goal in force."""
    gp = np.stack([goals[g][0] for g in f.goal])
    gq = np.stack([goals[g][1] for g in f.goal])
    return np.linalg.norm(gp - f.load_pos, axis=-1), quat_angle_deg(f.load_quat, gq)


def _stats(x: np.ndarray) -> dict[str, float]:
    return {"rms": float(np.sqrt(np.mean(x ** 2))), "max": float(np.max(x)), "final": float(x[-1])}


def flight_metrics(f: Flight, goals: list[tuple[np.ndarray, np.ndarray]], profile: Any, dt: float,
                   slack_below_n: float) -> dict:
    """Per goal the success rule of `CableEnv` / SITL (load within success_position and success_orientation,
    held success_hold) and its errors; over the flight: closest MAVs, largest tilt, cable slack
    (pulling less than `slack_below_n`), the shortest hook-to-attachment distance (below the cable length:
    slack by geometry), tension range and the load's lowest altitude."""
    t = profile.task
    e_pos, e_deg = goal_errors(f, goals)
    inside = (e_pos <= t.success_position) & (e_deg <= t.success_orientation)
    hold = max(1, round(t.success_hold / dt))
    per_goal = []
    for g in range(len(goals)):
        idx = np.flatnonzero(f.goal == g)
        idx = idx[idx > 0] if g == 0 else idx           # sample 0 is the start, before any command
        start = idx[0] - 1                              # the sample at which the goal was set
        run, success_at = 0, None
        for k in idx:
            run = run + 1 if inside[k] else 0
            if run >= hold and success_at is None:
                success_at = round((k - start) * dt, 4)
        per_goal.append({"success": success_at is not None, "success_after_s": success_at,
                         "final_position_error_m": float(e_pos[idx[-1]]), "final_attitude_error_deg": float(e_deg[idx[-1]]),
                         "min_position_error_m": float(e_pos[idx].min()), "min_attitude_error_deg": float(e_deg[idx].min())})
    n = f.pos.shape[1]
    iu, ju = np.triu_indices(n, 1)
    sep = np.linalg.norm(f.pos[:, iu] - f.pos[:, ju], axis=-1)
    cos_tilt = np.clip(1 - 2 * (f.quat[..., 1] ** 2 + f.quat[..., 2] ** 2), -1, 1)  # body z's world z component
    slack = f.tension[1:] < slack_below_n
    return {"goals": per_goal, "successes": sum(g["success"] for g in per_goal),
            "min_mav_separation_m": float(sep.min()), "separation_violated": bool(sep.min() < t.min_mav_distance),
            "max_tilt_deg": float(np.degrees(np.arccos(cos_tilt)).max()),
            "slack_events": int(np.sum(slack[1:] & ~slack[:-1]) + np.sum(slack[0])),
            "min_cable_span_m": float(cable_spans(profile, f.pos, f.quat, f.load_pos, f.load_quat).min()),
            "slack_fraction": float(slack.mean()),
            "tension_n": {"min": float(f.tension[1:].min()), "max": float(f.tension[1:].max())},  # pybullet has none before a step
            "min_load_altitude_m": float(f.load_pos[:, 2].min()), "certificate_holds": f.holds}


def load_gap(a: Flight, b: Flight) -> tuple[np.ndarray, np.ndarray]:
    """(T + 1,) distance [m] and attitude angle [deg] between the two engines' loads at the same instants."""
    return np.linalg.norm(a.load_pos - b.load_pos, axis=-1), quat_angle_deg(a.load_quat, b.load_quat)


def gap_report(a: Flight, b: Flight, num_goals: int) -> dict:
    d, deg = load_gap(a, b)
    per_goal = [{"position_m": _stats(d[a.goal == g]), "attitude_deg": _stats(deg[a.goal == g])} for g in range(num_goals)]
    return {"position_m": _stats(d), "attitude_deg": _stats(deg), "per_goal": per_goal}


def compare(dep: Any, policy: str | Path, goal_time_s: float, chain: Chain = Chain(),
            tick: Callable[[], Any] = lambda: None) -> tuple[dict, dict[str, Flight]]:
    """Fly a MAV team deployment (`ros_nodes.team_plan.TeamDeployment`) in both engines; returns (report,
    flight per engine). Raises policies.runtime.PolicyError when the policy does not fit the deployment."""
    profile = load_profile(dep.profile)
    mavs = list(dep.mavs)
    runtime = PolicyRuntime(policy, expect_scenario=dep.scenario, expect_profile_hash=profile_hash(profile),
                            expect_rate_hz=dep.rate_hz, batch_size=len(mavs))
    dt = 1.0 / dep.rate_hz
    steps = max(1, round(goal_time_s / dt))
    goals = goal_poses(dep.goals)
    slack_below = cable_mass(profile, chain) * profile.gravity  # a cable pulling less than its own weight hangs slack
    flights = {}
    for name, make in ENGINES.items():
        with contextlib.closing(make(profile, len(mavs), dep.start, chain)) as engine:
            flights[name] = fly(engine, TeamPolicy(mavs, runtime, profile, dep.safety), goals, steps, dt, tick)
    t = profile.task
    report = {"config": str(dep.path), "policy": str(policy), "profile": profile.name, "mavs": mavs,
              "policy_rate_hz": dep.rate_hz, "firmware_rate_hz": profile.control.physics_rate_hz,
              "inner_loop": profile.control.inner_loop, "pybullet_rate_hz": profile.control.physics_rate_hz * chain.engine_substeps,
              "chain": {**dataclasses.asdict(chain), "cable_mass_kg": cable_mass(profile, chain)}, "cable_model_marlstack": profile.cable.model, "safety": dep.safety,
              "start": list(dep.start), "goals": [{"position": list(g[:3]), "rpy_deg": list(g[3:])} for g in dep.goals],
              "goal_time_s": steps * dt, "duration_s": steps * dt * len(goals), "slack_below_n": slack_below,
              "success_rule": {"position_m": t.success_position, "attitude_deg": t.success_orientation,
                               "hold_s": t.success_hold},
              "engines": {name: flight_metrics(f, goals, profile, dt, slack_below) for name, f in flights.items()},
              "gap": gap_report(flights["marlstack"], flights["pybullet"], len(goals)),
              "trace": trace(flights, goals, dt)}
    return report, flights


TRACE_HZ = 10.0


def trace(flights: dict[str, Flight], goals: list[tuple[np.ndarray, np.ndarray]], dt: float) -> dict:
    """The errors and the gap over time at TRACE_HZ, for plots of one's own."""
    a, b = flights["marlstack"], flights["pybullet"]
    every = max(1, round(1.0 / (TRACE_HZ * dt)))
    gap_m, gap_deg = load_gap(a, b)
    cols = [np.arange(len(a.goal)) * dt, a.goal, gap_m, gap_deg, *goal_errors(a, goals), *goal_errors(b, goals)]
    rows = np.stack(cols, axis=1)[::every]
    return {"columns": ["t_s", "goal", "gap_m", "gap_deg", "marlstack_error_m", "marlstack_error_deg",
                        "pybullet_error_m", "pybullet_error_deg"],
            "rows": [[round(float(v), 5) for v in r] for r in rows]}


def table(report: dict) -> str:
    """The report as per-goal lines: success and final errors in each engine, and the load-pose gap."""
    lines = [f"sim2sim {Path(report['config']).name}: {report['policy']}, {len(report['mavs'])} MAVs, "
             f"{len(report['goals'])} goals x {report['goal_time_s']:.1f} s, firmware {report['firmware_rate_hz']:g} Hz "
             f"({report['inner_loop']}), pybullet {report['pybullet_rate_hz']:g} Hz, safety {report['safety']}",
             f"{'goal':<34} {'engine':<10} {'success':>8} {'after [s]':>9} {'final err [m / deg]':>20} "
             f"{'gap rms / max [m]':>18} {'gap rms / max [deg]':>20}"]
    for g, goal in enumerate(report["goals"]):
        gap = report["gap"]["per_goal"][g]
        name = f"{g}: ({', '.join(f'{v:g}' for v in goal['position'])}) rpy ({', '.join(f'{v:g}' for v in goal['rpy_deg'])})"
        for k, engine in enumerate(("marlstack", "pybullet")):
            m = report["engines"][engine]["goals"][g]
            after = "-" if m["success_after_s"] is None else f"{m['success_after_s']:.2f}"
            gaps = (f"{gap['position_m']['rms']:.4f} / {gap['position_m']['max']:.4f}",
                    f"{gap['attitude_deg']['rms']:.2f} / {gap['attitude_deg']['max']:.2f}") if k == 0 else ("", "")
            lines.append(f"{name if k == 0 else '':<34} {engine:<10} {'yes' if m['success'] else 'no':>8} {after:>9} "
                         f"{m['final_position_error_m']:>9.4f} / {m['final_attitude_error_deg']:>6.2f}  "
                         f"{gaps[0]:>18} {gaps[1]:>20}")
    for engine, m in report["engines"].items():
        lines.append(f"{engine}: {m['successes']}/{len(report['goals'])} goals, min MAV separation "
                     f"{m['min_mav_separation_m']:.3f} m, max tilt {m['max_tilt_deg']:.1f} deg, slack events "
                     f"{m['slack_events']}, shortest hook-to-load {m['min_cable_span_m']:.3f} m, "
                     f"tension {m['tension_n']['min']:.2f}-{m['tension_n']['max']:.2f} N, "
                     f"certificate holds {m['certificate_holds']}")
    gap = report["gap"]
    lines.append(f"load-pose gap: position rms {gap['position_m']['rms']:.4f} m, max {gap['position_m']['max']:.4f} m; "
                 f"attitude rms {gap['attitude_deg']['rms']:.2f} deg, max {gap['attitude_deg']['max']:.2f} deg")
    return "\n".join(lines)


def run_cli(dep: Any, policy: Path, goal_time_s: float, out: Path, as_json: bool) -> int:
    """`marlstack sim2sim --config <MAV team YAML>`: fly, write cable_sim2sim.json and .png, print the report.
    Raises policies.runtime.PolicyError (the CLI prints it in one line)."""
    import json
    import sys

    from tqdm import tqdm

    from marlstack.sim2sim.cable_plot import plot_cable_comparison
    total = len(ENGINES) * len(dep.goals) * max(1, round(goal_time_s * dep.rate_hz))
    with tqdm(total=total, desc="marlstack sim2sim", unit="step", disable=as_json or not sys.stderr.isatty()) as bar:
        report, flights = compare(dep, policy, goal_time_s, tick=bar.update)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cable_sim2sim.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    png = plot_cable_comparison(flights, goal_poses(dep.goals), report, out / "cable_sim2sim.png",
                                f"{dep.name}: load pose, marlstack vs pybullet")
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print(table(report))
        print(f"wrote {out / 'cable_sim2sim.json'} and {png}")
    return 0
