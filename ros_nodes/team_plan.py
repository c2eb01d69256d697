"""Deployment YAML of a MAV team carrying a load -> the same kind of node plan as the ground fleets'.

`plan.load_deployment` hands a config with a `mavs:` list here and `plan.fleet_plan` hands a
`TeamDeployment` back to `team_plan`, so `marlstack sitl`, `ros2 launch` and the recorder treat both
robot kinds alike (NodeSpec, PlanError, path rules and number checks are plan.py's). Pure Python.

    name: cable3
    profile: mav_corl25            # a mav_team profile
    scenario: cable                # what the model was trained on (checked against it)
    policy: ../out/demo/cable.onnx
    watchdog_periods: 3            # optional; set-points / inputs older than this many policy periods are stale
    safety: {mode: onboard}        # optional; each policy node filters its set-point through the barrier
                                   # certificate (ros_nodes/mav_safety.py); mode "off" (a bare off reads as false) flies without
    mavs: [mav_0, mav_1, mav_2]    # agent order of the policy; the profile needs an attachment layout for this size
    start: [0.0, 0.0, 1.5]         # load position at the start (the team starts in hover there, or lifts it there)
    takeoff: {climb_rate: 0.5}     # optional: start on the ground beside the load, slack cables, and climb (m/s)
    goals:                         # the mission, in order; each held success_hold s (or goal_timeout_s), then land
      - {position: [0.5, 0.0, 1.6], rpy_deg: [0, 0, 30]}
      - {position: [0.0, 0.0, 1.5], scored: false}  # a waypoint: flown and reported, not in the success rate
      - {position: [0.3, 0.0, 1.5], start: [0.0, 0.0, 1.4]}  # SITL only: begun from rest with the load at `start`
    goal_timeout_s: 15             # optional
    failsafe: {hold_s: 2.0, descent_rate: 0.3}      # optional: the profile's `failsafe:` by default; the flight
                                   # controllers' hold and descent and the team landing's rate (ros_nodes/mav_sim.py)
    sensors: {odom_rate_hz: 100, imu_rate_hz: 100, load_rate_hz: 100, latency_s: 0.0, drop_fraction: 0.0,
              noise: {position: 0.0, velocity: 0.0, attitude: 0.0, rate: 0.0}}   # optional, SITL only
    sim: {seed: 0, clock: sim}     # optional, SITL only; clock: sim (default: /clock, lockstep with the set-points,
                                   # lockstep_timeout_s 0.5 of wall clock) or wall; faults: blind_mav, blind_at_s,
                                   # blind_for_s, fail_mav, fail_at_s, kill_mavs ([names] or all: their motors
                                   # cut as by /<mav>/kill), kill_at_s
    links: {mav_0: {link: mavlink, url: "udpin:0.0.0.0:14540"}, ...}   # optional: real vehicles (ros_nodes/link_plan.py)
    arrangement: process_per_node  # optional: one policy node per MAV (each its own computer, the default);
                                   # fleet_container (those in one process); fleet_policy (one team policy node for
                                   # every MAV, one batched model call: a ground computer, ros_nodes/mav_team_policy_node.py)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from marlstack.hardware.profile import ProfileError, load_profile
from marlstack.ros_nodes import topics
from marlstack.ros_nodes.link_plan import link_specs, load_links
from marlstack.ros_nodes.mav_safety import MODES as SAFETY_MODES
from marlstack.ros_nodes.plan import ARRANGEMENTS, NAME, NodeSpec, _fail, _number_list, _resolve

KNOWN = {"name", "profile", "scenario", "policy", "rate_hz", "watchdog_periods", "safety", "mavs", "start", "goals",
         "goal_timeout_s", "failsafe", "sensors", "sim", "links", "takeoff", "arrangement"}
TAKEOFF = {"climb_rate": (0.5, 0.05, 2.0)}
FAILSAFE = {"hold_s": (0.0, 60.0), "descent_rate": (0.05, 2.0)}  # bounds; the defaults are the profile's failsafe
SENSORS = {"odom_rate_hz": (100.0, 1.0, 1000.0), "imu_rate_hz": (100.0, 1.0, 1000.0), "load_rate_hz": (100.0, 1.0, 1000.0),
           "latency_s": (0.0, 0.0, 1.0), "drop_fraction": (0.0, 0.0, 0.99)}
FAULT = {"blind_at_s": (0.0, 0.0, 3600.0), "blind_for_s": (0.0, 0.0, 3600.0),
         "fail_at_s": (0.0, 0.0, 3600.0), "kill_at_s": (0.0, 0.0, 3600.0)}  # sim: the fault injection, a scheduled kill
LOCKSTEP = {"lockstep_timeout_s": (0.5, 0.01, 60.0)}  # sim: on simulated time, the longest wait for set-points
CLOCKS = ("sim", "wall")
NOISE = {"position": (0.0, 0.0, 1.0), "velocity": (0.0, 0.0, 10.0), "attitude": (0.0, 0.0, 1.0), "rate": (0.0, 0.0, 10.0)}


@dataclass(frozen=True)
class TeamDeployment:
    path: Path
    name: str
    profile: str
    scenario: str
    policy: Path
    rate_hz: float
    watchdog_periods: float
    safety: str                              # a mav_safety.MODES entry
    mavs: tuple[str, ...]
    start: tuple[float, float, float]
    goals: tuple[tuple[float, ...], ...]     # (x, y, z, roll, pitch, yaw [deg])
    goal_timeout_s: float
    scored: tuple[bool, ...] = ()            # per goal: counted in the success rate (False: a waypoint)
    climb_rate: float = 0.0                  # take-off climb rate (m/s); 0: the team starts in hover
    failsafe: Mapping[str, float] = field(default_factory=dict)
    sensors: Mapping[str, float] = field(default_factory=dict)  # incl. noise_<kind>
    seed: int = 0
    fault: Mapping[str, Any] = field(default_factory=dict)      # blind_mav, ..., fail_at_s, kill_mavs, kill_at_s
    links: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # real MAV -> its flight link (empty: simulated)
    clock: str = "sim"                       # SITL time base: "sim" (/clock, lockstep) or "wall"
    lockstep_timeout_s: float = 0.5          # SITL on simulated time: step anyway after this long without set-points
    goal_starts: tuple[tuple[float, float, float] | None, ...] = ()  # per goal: begun from rest there (SITL)
    arrangement: str = "process_per_node"    # one of plan.ARRANGEMENTS

    @property
    def robot_names(self) -> list[str]:
        return list(self.mavs)


def _numbers(raw: Any, table: dict[str, tuple[float, float, float]], where: str, key: str) -> dict[str, float]:
    """A mapping of bounded numbers with defaults (`table`: name -> (default, low, high))."""
    raw = raw or {}
    if not isinstance(raw, Mapping) or set(raw) - set(table):
        raise _fail(where, f"key '{key}' must be a mapping with keys among {', '.join(table)}, got {raw!r}")
    out = {}
    for k, (default, lo, hi) in table.items():
        v = raw.get(k, default)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi:
            raise _fail(where, f"key '{key}.{k}' must be a number in [{lo}, {hi}], got {v!r}")
        out[k] = float(v)
    return out


def load_team(path: Path, data: Mapping[str, Any]) -> TeamDeployment:
    where = str(path)
    unknown = sorted(set(data) - KNOWN)
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(unknown)} (a MAV team config has: {', '.join(sorted(KNOWN))})")
    for key in ("profile", "policy", "mavs", "start", "goals"):
        if key not in data:
            raise _fail(where, f"missing key '{key}'")
    try:
        profile = load_profile(str(_resolve(path, str(data["profile"]))) if str(data["profile"]).endswith((".yaml", ".yml"))
                               else str(data["profile"]))
    except ProfileError as exc:
        raise _fail(where, f"key 'profile': {exc}") from None
    if profile.kind != "mav_team":
        raise _fail(where, f"key 'profile': a config with 'mavs' needs a 'mav_team' profile, got kind {profile.kind!r}")
    mavs = data["mavs"]
    if not isinstance(mavs, list) or not mavs or not all(isinstance(m, str) and NAME.match(m) for m in mavs) \
            or len(set(mavs)) != len(mavs):
        raise _fail(where, f"key 'mavs' must list distinct ROS names (letters, digits, _), got {mavs!r}")
    try:
        profile.team(len(mavs))
    except ProfileError as exc:
        raise _fail(where, f"key 'mavs': {exc}") from None
    rate = data.get("rate_hz", profile.control.policy_rate_hz)
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 1 <= rate <= 1000:
        raise _fail(where, f"key 'rate_hz' must be a number in [1, 1000] Hz, got {rate!r}")
    periods = data.get("watchdog_periods", 3)
    if not isinstance(periods, (int, float)) or isinstance(periods, bool) or not 1 <= periods <= 100:
        raise _fail(where, f"key 'watchdog_periods' must be a number in [1, 100], got {periods!r}")
    safety = data.get("safety", {}) or {}
    mode = safety.get("mode", "onboard") if isinstance(safety, Mapping) and set(safety) <= {"mode"} else None
    mode = "off" if mode is False else mode  # YAML 1.1 reads a bare off as false
    if mode not in SAFETY_MODES:
        raise _fail(where, f"key 'safety.mode' must be one of {', '.join(SAFETY_MODES)}, got {safety!r}")
    lo, hi = profile.task.workspace.low, profile.task.workspace.high

    def inside(point: tuple[float, ...], key: str) -> tuple[float, ...]:
        if not all(a < v < b for v, a, b in zip(point, lo, hi)):
            raise _fail(where, f"key '{key}' = {list(point)} is outside the workspace of profile {profile.name} "
                               f"({list(lo)} .. {list(hi)})")
        return point
    start = inside(_number_list(data["start"], 3, where, "start"), "start")
    goals = data["goals"]
    if not isinstance(goals, list) or not goals:
        raise _fail(where, "key 'goals' must be a non-empty list of {position: [x, y, z], rpy_deg: [r, p, y]}")
    parsed = []
    for i, g in enumerate(goals):
        if not isinstance(g, Mapping) or set(g) - {"position", "rpy_deg", "scored", "start"} or "position" not in g \
                or not isinstance(g.get("scored", True), bool):
            raise _fail(where, f"key 'goals[{i}]' must be a mapping with position [x, y, z] and optional rpy_deg [r, p, y], "
                               f"scored (true/false) and start [x, y, z]")
        pos = inside(_number_list(g["position"], 3, where, f"goals[{i}].position"), f"goals[{i}].position")
        rpy = _number_list(g.get("rpy_deg", [0, 0, 0]), 3, where, f"goals[{i}].rpy_deg")
        if max(abs(rpy[0]), abs(rpy[1])) > profile.task.goal_tilt_range:
            raise _fail(where, f"key 'goals[{i}].rpy_deg': roll/pitch beyond the trained ±{profile.task.goal_tilt_range}°")
        parsed.append(pos + rpy)
    takeoff = {} if data.get("takeoff") is True else data.get("takeoff")
    climb = _numbers(takeoff, TAKEOFF, where, "takeoff")["climb_rate"] if takeoff not in (None, False) else 0.0
    timeout = data.get("goal_timeout_s", 15.0)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0.1 <= timeout <= 3600:
        raise _fail(where, f"key 'goal_timeout_s' must be a number in [0.1, 3600] s, got {timeout!r}")
    sensors_raw = dict(data.get("sensors") or {})
    noise = _numbers(sensors_raw.pop("noise", None), NOISE, where, "sensors.noise")
    sensors = {**_numbers(sensors_raw, SENSORS, where, "sensors"), **{f"noise_{k}": v for k, v in noise.items()}}
    sim = dict(data.get("sim", {}) or {}) if isinstance(data.get("sim", {}) or {}, Mapping) else None
    seed = sim.pop("seed", 0) if sim is not None else None
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise _fail(where, f"key 'sim' must be a mapping like {{seed: 0}}, got {data.get('sim')!r}")
    named = {k: sim.pop(k, "") for k in ("blind_mav", "fail_mav")}
    clock = sim.pop("clock", "sim")
    if clock not in CLOCKS:
        raise _fail(where, f"key 'sim.clock' must be one of {', '.join(CLOCKS)}, got {clock!r}")
    lockstep = _numbers({k: sim.pop(k) for k in LOCKSTEP if k in sim}, LOCKSTEP, where, "sim")
    for k, m in named.items():
        if m and m not in mavs:
            raise _fail(where, f"key 'sim.{k}' must be one of {mavs}, got {m!r}")
    kill = sim.pop("kill_mavs", [])
    kill = list(mavs) if kill == "all" else kill
    if not isinstance(kill, list) or not all(isinstance(m, str) and m in mavs for m in kill):
        raise _fail(where, f"key 'sim.kill_mavs' must list MAVs of {mavs} or be 'all', got {kill!r}")
    fault = {**named, **({"kill_mavs": kill} if kill else {}), **_numbers(sim, FAULT, where, "sim")}
    arrangement = data.get("arrangement", "process_per_node")
    if arrangement not in ARRANGEMENTS:
        raise _fail(where, f"key 'arrangement' must be one of {', '.join(ARRANGEMENTS)}, got {arrangement!r}")
    return TeamDeployment(path=path, name=str(data.get("name", path.stem)), profile=profile.name,
                          scenario=str(data.get("scenario", "cable")), policy=_resolve(path, str(data["policy"])),
                          rate_hz=float(rate), watchdog_periods=float(periods), safety=mode, mavs=tuple(mavs), start=start,
                          goals=tuple(parsed), goal_timeout_s=float(timeout),
                          scored=tuple(bool(g.get("scored", True)) for g in goals), climb_rate=climb,
                          failsafe=_numbers(data.get("failsafe"), {k: (getattr(profile.failsafe, k), *b) for k, b in
                                                                   FAILSAFE.items()}, where, "failsafe"),
                          sensors=sensors, seed=seed,
                          fault=fault, links=load_links(data.get("links"), mavs, where), clock=clock, **lockstep,
                          goal_starts=tuple(inside(_number_list(g["start"], 3, where, f"goals[{i}].start"),
                                                   f"goals[{i}].start") if "start" in g else None
                                            for i, g in enumerate(goals)), arrangement=arrangement)


def team_plan(dep: TeamDeployment, sitl: bool = False, record: str | Path | None = None,
              summary_path: str | Path | None = None, arrangement: str | None = None) -> list[NodeSpec]:
    """One policy node per MAV, or with `arrangement` (default: the deployment's) `fleet_policy` one team policy
    node for every MAV (+ the recorder); with `sitl`, the MAV sim node stands in for the vehicles, else each real
    MAV (`links`) gets its flight link node."""
    mavs = list(dep.mavs)
    central = (arrangement or dep.arrangement) == "fleet_policy"
    policy_nodes = 1 if central else len(mavs)
    sim_time = sitl and dep.clock == "sim"   # the nodes read the MAV sim node's /clock; the recorder logs wall clock
    common = {"profile": dep.profile, "mavs": mavs, "rate_hz": dep.rate_hz, "watchdog_periods": dep.watchdog_periods,
              **({"use_sim_time": True} if sim_time else {})}
    specs: list[NodeSpec] = []
    if sitl:
        # every policy node subscribes to every MAV's odom and to the load; the recorder too
        specs.append(NodeSpec("mav_sim_node", "mav_sim", "/", {
            "profile": dep.profile, "mavs": mavs, "watchdog_periods": dep.watchdog_periods, "seed": dep.seed,
            "start": list(dep.start), "goals": [v for g in dep.goals for v in g], "goal_timeout_s": dep.goal_timeout_s,
            "scored": [int(v) for v in dep.scored] or [1], "takeoff_climb_rate": dep.climb_rate,
            **{f"failsafe_{k}": v for k, v in dep.failsafe.items()},
            **dep.sensors, **dep.fault,
            "summary_path": str(summary_path or ""), "odom_subscribers": policy_nodes + bool(record),
            "load_subscribers": policy_nodes + bool(record), "setpoint_publishers": 1,
            "clock": dep.clock, "lockstep_timeout_s": dep.lockstep_timeout_s,
            "clock_subscribers": policy_nodes if sim_time else 0,
            "from_rest": [int(s is not None) for s in dep.goal_starts] or [0],
            "goal_starts": [float(v) for s in dep.goal_starts for v in (s or (0.0, 0.0, 0.0))] or [0.0]}))
    policy = {**common, "scenario": dep.scenario, "policy_path": str(dep.policy), "safety": dep.safety,
              "landing_descent_rate": dep.failsafe["descent_rate"], "failsafe_hold_s": dep.failsafe["hold_s"]}
    if central:
        specs.append(NodeSpec("mav_team_policy_node", "mav_team_policy", "/", policy))
    for m in () if central else mavs:
        specs.append(NodeSpec("mav_policy_node", "mav_policy", f"/{m}", {**policy, "mav": m}))
    if not sitl:
        specs += link_specs(dep.links, dep.profile, dep.failsafe["hold_s"])
    if record:
        specs.append(NodeSpec("recorder_node", "recorder", "/", {
            "output": str(record), "topics": sorted(topics.robot_topics(mavs, topics.MAV))}))
    return specs
