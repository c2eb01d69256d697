"""Deployment YAML -> fleet plan: the list of nodes (executable, name, namespace, parameters, remaps).

Pure Python (yaml + the profile loader), so the same plan drives `ros2 launch` (launch files
turn each spec into a `launch_ros` Node) and `marlstack sitl` (each spec becomes a process with
`--ros-args`), and can be tested without DDS. Errors name the file and key, in one line.

Deployment YAML (relative paths are relative to the YAML file):

    name: robotarium_nav4
    profile: gritsbot_x          # vehicle profile name or path
    scenario: navigation
    policy: ../out/demo/policy.onnx
    rate_hz: 30.3                # optional; default 1 / profile.dt
    watchdog_periods: 3          # optional; inputs older than this many control periods -> stop
    safety: {mode: fleet, form: unicycle_walls}   # mode: fleet | onboard; optional delay_s: the
                                 # sense-to-actuate delay the certificate allows for (docs/barrier.md)
    robots:
      - {name: robot_0, start: [-1.2, 0.6, 0.0], goal: [1.2, -0.6], remaps: {pose: /mocap/robot_0/pose}}
    sim: {seed: 0}               # optional, SITL only; sensing model: pose_delay_s, pose_jitter_s,
                                 # pose_noise_m, pose_drop (fraction), all 0 by default
    arrangement: process_per_node  # optional: or fleet_container (the onboard nodes in one process,
                                 # ros_nodes/container.py: SITL / bench), or fleet_policy (one fleet policy
                                 # node commands every robot, ros_nodes/fleet_policy_node.py: a central computer)

A coverage deployment (`scenario: coverage`) has no per-robot goals but one top-level list
`landmarks: [[x, y], ...]`, as many as robots, published on `/landmarks`.

Static obstacles: `obstacles: [[x_min, x_max, y_min, y_max], ...]` (m, axis-aligned boxes: shelves,
furniture) go to the safety node's certificate as box rows and to the sim node, which counts a robot
whose body overlaps one (`shelf_collision_steps`). An RWARE deployment (`scenario: rware`) has no goals; its
obstacles are the shelves its policy was trained among (default `rware_spec.SHELVES`, the one place they are
written) and `requests: [i, ...]` names the shelves whose items are wanted (indices into the obstacles).
Every other scenario (material transport, arctic transport, ...) has no goals either: its task state (zones,
material, terrain, targets) is the sim node's in SITL, the task server node's on a testbed (the same reset from
`sim.seed` and the starts), and reaches each robot on its `task` topic.
A team scenario's robots may each name their class (`{name: robot_0, start: [...], class: ice}`, one of the
spec's `CLASSES`; every robot or none: none is the spec's `TEAM` pattern, as trained); the task's host (the sim
node, the task server) sends each robot its class's capabilities, and the exported policy drives at the class's speed.
"""
from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from marlstack.hardware.profile import ProfileError, load_profile
from marlstack.ros_nodes import topics
from marlstack.ros_nodes.task_adapter import robot_classes

SAFETY_MODES = ("fleet", "onboard")
SCENARIOS = tuple(topics.TASK_TOPIC)  # every scenario: each has a ROS task adapter (ros_nodes/adapters.py, task_adapter.py)
# and the sim node simulates each
SAFETY_FORMS = ("unicycle", "unicycle_walls")
# deployment `sim:` sensing-model keys -> (sim node parameter, largest accepted value)
SENSING = {"pose_delay_s": ("pose_delay_s", 10.0), "pose_jitter_s": ("pose_jitter_s", 10.0),
           "pose_noise_m": ("pose_noise_m", 1.0), "pose_drop": ("drop_pose_fraction", 0.99)}  # barrier forms of controllers.barrier for unicycle robots
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
REMAPPABLE = tuple(t.name for t in topics.GROUND if t.per_robot)
# how the plan's nodes run: `fleet_policy` plans one fleet policy node instead of the per-robot policy nodes
# (`fleet_plan`); `fleet_container` hosts the onboard nodes in one process (`arrange`)
ARRANGEMENTS = ("process_per_node", "fleet_container", "fleet_policy")
# what a fleet container hosts: the robots' onboard nodes; the simulator (the world), the recorder and the
# live view stay processes of their own
CONTAINED = ("policy_node", "safety_node", "hardware_adapter_node", "mav_policy_node")


class PlanError(ValueError):
    """A deployment config that cannot become a fleet; the message names file and key."""


@dataclass(frozen=True)
class RobotConfig:
    name: str
    start: tuple[float, float, float]
    goal: tuple[float, float] | None  # navigation only
    remaps: Mapping[str, str] = field(default_factory=dict)
    robot_class: str | None = None  # a team scenario's class (its spec's CLASSES); None: the TEAM pattern


@dataclass(frozen=True)
class HardwareConfig:
    """Real robots behind hardware adapter nodes (ros_nodes/hardware_adapter_node.py); `{robot}` in a
    topic is replaced by the robot's name. In SITL the sim node plays the drivers and the mocap."""
    robot_cmd_topic: str = "/{robot}/driver/cmd_vel"
    robot_cmd_stamped: bool = False
    mocap_topic: str = "/mocap/{robot}/pose"
    mocap_up_axis: str = "z"
    timeout_s: float = 0.25

    def for_robot(self, robot: str) -> dict[str, Any]:
        return {"robot_cmd_topic": self.robot_cmd_topic.format(robot=robot), "robot_cmd_stamped": self.robot_cmd_stamped,
                "mocap_topic": self.mocap_topic.format(robot=robot), "mocap_up_axis": self.mocap_up_axis,
                "timeout_s": self.timeout_s}


@dataclass(frozen=True)
class Deployment:
    path: Path
    name: str
    profile: str
    scenario: str
    policy: Path
    rate_hz: float
    watchdog_periods: float
    safety_mode: str
    safety_form: str
    robots: tuple[RobotConfig, ...]
    seed: int = 0
    sensing: Mapping[str, float] = field(default_factory=dict)   # SITL sensing model (sim node parameters)
    safety_delay_s: float = 0.0
    landmarks: tuple[tuple[float, float], ...] = ()  # coverage only
    hardware: HardwareConfig | None = None  # real robots behind adapter nodes (docs/hardware.md)
    obstacles: tuple[tuple[float, float, float, float], ...] = ()  # static boxes (x_min, x_max, y_min, y_max)
    requests: tuple[int, ...] = ()  # rware: the requested shelves (indices into obstacles)
    arrangement: str = "process_per_node"  # one of ARRANGEMENTS

    @property
    def robot_names(self) -> list[str]:
        return [r.name for r in self.robots]

    @property
    def team(self) -> tuple[str, ...]:
        """Each robot's class where the deployment names them (a team scenario), else () (the scenario's pattern)."""
        return tuple(r.robot_class for r in self.robots if r.robot_class is not None)

    @property
    def per_robot_goals(self) -> bool:
        """Each robot has its own goal (navigation), rather than the fleet sharing landmarks (coverage)."""
        return topics.TASK_TOPIC[self.scenario] is topics.GOAL

    @property
    def task_points(self) -> list[tuple[float, float]]:
        """What the sim publishes: robot i's goal (navigation) or landmark i (coverage)."""
        return [r.goal for r in self.robots] if self.per_robot_goals else list(self.landmarks)

    def task_input(self, robot: int) -> list[float]:
        """What robot `robot`'s node receives on its task topic: its goal, or every landmark (coverage)."""
        return list(self.robots[robot].goal) if self.per_robot_goals else [v for p in self.landmarks for v in p]


@dataclass(frozen=True)
class NodeSpec:
    """One node of the fleet, independent of how it is started."""
    executable: str                      # console script / `ros2 run marlstack <executable>`
    name: str
    namespace: str
    parameters: Mapping[str, Any]
    remaps: Mapping[str, str] = field(default_factory=dict)
    hosted: tuple["NodeSpec", ...] = ()  # a container (executable "container"): the nodes it runs

    @property
    def module(self) -> str:
        """Python module whose `main()` runs this node (`python -m` in SITL)."""
        return f"marlstack.ros_nodes.{self.executable}"

    @property
    def fqn(self) -> str:
        return f"{self.namespace.rstrip('/')}/{self.name}"

    def ros_args(self) -> list[str]:
        """The `--ros-args` tail that gives a plain process this node's identity and parameters."""
        args = ["--ros-args", "-r", f"__node:={self.name}", "-r", f"__ns:={self.namespace}"]
        for key, value in self.parameters.items():
            args += ["-p", f"{key}:={json.dumps(value)}"]  # JSON is YAML: typed values survive
        for src, dst in self.remaps.items():
            args += ["-r", f"{src}:={dst}"]
        return args

    def command(self, python: str = sys.executable) -> list[str]:
        if self.hosted:  # ros_nodes/container.py: each hosted node's module, name and --ros-args as one JSON argument
            return [python, "-m", self.module, *(json.dumps({"module": h.module, "fqn": h.fqn, "args": h.ros_args()})
                                                 for h in self.hosted)]
        return [python, "-m", self.module, *self.ros_args()]


def _fail(where: str, msg: str) -> PlanError:
    return PlanError(f"{where}: {msg}")


def _number_list(raw: Any, n: int, where: str, key: str) -> tuple[float, ...]:
    if (not isinstance(raw, (list, tuple)) or len(raw) != n
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in raw)):
        raise _fail(where, f"key '{key}' must be a list of {n} finite numbers, got {raw!r}")
    return tuple(float(v) for v in raw)


def load_deployment(path: str | Path) -> Deployment:
    """Read and check a deployment YAML; raises PlanError naming the file and key."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise _fail(where, "no such deployment config (examples: launch/robotarium_nav4.yaml)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise _fail(where, f"not valid YAML: {_yaml_error(exc)}") from None
    if not isinstance(data, Mapping):
        raise _fail(where, "a deployment config must be a YAML mapping")
    if "mavs" in data:  # a MAV team carrying a load (ros_nodes/team_plan.py)
        from marlstack.ros_nodes.team_plan import load_team
        return load_team(path, data)
    known = {"name", "profile", "scenario", "policy", "rate_hz", "watchdog_periods", "safety", "robots", "sim", "landmarks",
             "hardware", "obstacles", "requests", "arrangement"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(unknown)} (expected: {', '.join(sorted(known))})")
    for key in ("profile", "policy", "robots"):
        if key not in data:
            raise _fail(where, f"missing key '{key}'")
    try:
        profile = load_profile(_resolve(path, str(data["profile"])) if str(data["profile"]).endswith((".yaml", ".yml"))
                               else str(data["profile"]))
    except ProfileError as exc:
        raise _fail(where, f"key 'profile': {exc}") from None
    if profile.kind != "ground":
        raise _fail(where, f"key 'profile': the ground-robot fleet plan needs a 'ground' profile, got kind {profile.kind!r}")

    rate = data.get("rate_hz", 1.0 / profile.dt)
    low, high = 0.5 / profile.dt, 2.0 / profile.dt
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not low <= rate <= high:
        raise _fail(where, f"key 'rate_hz' must be a number within a factor 2 of profile {profile.name}'s control rate "
                           f"1 / dt = {1 / profile.dt:.4g} Hz (its limits and barrier gains are for that period; "
                           f"[{low:.4g}, {high:.4g}] Hz), got {rate!r}")
    periods = data.get("watchdog_periods", 3)
    if not isinstance(periods, (int, float)) or isinstance(periods, bool) or not 1 <= periods <= 100:
        raise _fail(where, f"key 'watchdog_periods' must be a number in [1, 100], got {periods!r}")
    safety = data.get("safety", {}) or {}
    if not isinstance(safety, Mapping) or set(safety) - {"mode", "form", "delay_s"}:
        raise _fail(where, f"key 'safety' must be a mapping with 'mode', 'form' (and optional 'delay_s'), got {safety!r}")
    delay = safety.get("delay_s", 0.0)
    if not isinstance(delay, (int, float)) or isinstance(delay, bool) or not 0 <= delay <= 1:
        raise _fail(where, f"key 'safety.delay_s' must be a number of seconds in [0, 1], got {delay!r}")
    mode, form = safety.get("mode", "fleet"), safety.get("form", "unicycle_walls")
    if mode not in SAFETY_MODES:
        raise _fail(where, f"key 'safety.mode' must be one of {', '.join(SAFETY_MODES)}, got {mode!r}")
    if form not in SAFETY_FORMS:
        raise _fail(where, f"key 'safety.form' must be one of {', '.join(SAFETY_FORMS)}, got {form!r}")
    sim = data.get("sim", {}) or {}
    seed = sim.get("seed", 0) if isinstance(sim, Mapping) else None
    if not isinstance(seed, int) or isinstance(seed, bool) or set(sim) - {"seed", *SENSING} or not 0 <= seed < 2 ** 32:
        raise _fail(where, f"key 'sim' must be a mapping like {{seed: 0}} with 0 <= seed < 2**32 and optional "
                           f"{', '.join(SENSING)}, got {sim!r}")
    sensing = {}
    for key, (param, high) in SENSING.items():
        value = sim.get(key, 0.0)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= high:
            raise _fail(where, f"key 'sim.{key}' must be a number in [0, {high}], got {value!r}")
        sensing[param] = float(value)
    arrangement = data.get("arrangement", "process_per_node")
    if arrangement not in ARRANGEMENTS:
        raise _fail(where, f"key 'arrangement' must be one of {', '.join(ARRANGEMENTS)}, got {arrangement!r}")
    policy = _resolve(path, str(data["policy"]))
    if policy.is_dir():
        raise _fail(where, f"key 'policy' = {policy} is a directory; point it at the exported policy.onnx file")

    scenario = data.get("scenario", "navigation")
    if scenario not in SCENARIOS:
        raise _fail(where, f"key 'scenario' must be one of {', '.join(SCENARIOS)}, got {scenario!r}")
    robots = _robots(data["robots"], profile, where, scenario)
    obstacles = _obstacles(data.get("obstacles"), scenario, profile, where)
    _check_starts(robots, profile, form, where, obstacles)
    requests = _requests(data.get("requests"), scenario, len(obstacles), where)
    landmarks: tuple[tuple[float, float], ...] = ()
    if topics.TASK_TOPIC[scenario] is topics.LANDMARKS:
        raw = data.get("landmarks")
        if not isinstance(raw, list) or len(raw) != len(robots):
            raise _fail(where, f"key 'landmarks' must list one [x, y] per robot ({len(robots)}) for scenario coverage, "
                               f"got {raw!r}")
        landmarks = tuple(_in_arena(_number_list(v, 2, where, f"landmarks[{i}]"), profile, where, f"landmarks[{i}]")
                          for i, v in enumerate(raw))
    elif "landmarks" in data:
        raise _fail(where, f"key 'landmarks' is for scenario coverage, this is {scenario}")
    return Deployment(path=path, name=str(data.get("name", path.stem)), profile=profile.name,
                      scenario=scenario, policy=policy,
                      rate_hz=float(rate), watchdog_periods=float(periods), safety_mode=mode, safety_form=form,
                      robots=robots, seed=seed, sensing=sensing, safety_delay_s=float(delay), landmarks=landmarks,
                      hardware=_hardware(data.get("hardware"), where), obstacles=obstacles, requests=requests,
                      arrangement=arrangement)


def _obstacles(raw: Any, scenario: str, profile: Any, where: str) -> tuple[tuple[float, float, float, float], ...]:
    """The optional 'obstacles' boxes, checked; RWARE's default and required count are its shelves."""
    shelves = None
    if scenario == "rware":
        from marlstack.sim.scenarios.rware_spec import SHELVES as shelves
    if raw is None:
        return tuple(shelves or ())
    if not isinstance(raw, list):
        raise _fail(where, f"key 'obstacles' must be a list of boxes [x_min, x_max, y_min, y_max], got {raw!r}")
    boxes = tuple(_number_list(v, 4, where, f"obstacles[{i}]") for i, v in enumerate(raw))
    a = profile.arena
    for i, (x0, x1, y0, y1) in enumerate(boxes):
        if not (x0 < x1 and y0 < y1):
            raise _fail(where, f"key 'obstacles[{i}]' = {list(boxes[i])}: a box is [x_min, x_max, y_min, y_max] with "
                               f"min < max")
        if not (a.x_min <= x0 and x1 <= a.x_max and a.y_min <= y0 and y1 <= a.y_max):
            raise _fail(where, f"key 'obstacles[{i}]' = {list(boxes[i])} is not inside the arena of profile "
                               f"{profile.name} (x in [{a.x_min}, {a.x_max}], y in [{a.y_min}, {a.y_max}])")
    if shelves is not None and len(boxes) != len(shelves):
        raise _fail(where, f"key 'obstacles': scenario rware's obstacles are the {len(shelves)} shelves its policy was "
                           f"trained among (its observation holds them as constants), got {len(boxes)}; leave the key "
                           f"out for rware_spec.SHELVES")
    return boxes


def _requests(raw: Any, scenario: str, num_shelves: int, where: str) -> tuple[int, ...]:
    """RWARE's requested shelves: distinct indices into the obstacles; no other scenario takes the key."""
    if scenario != "rware":
        if raw is not None:
            raise _fail(where, f"key 'requests' is for scenario rware, this is {scenario}")
        return ()
    if (not isinstance(raw, list) or not raw or len(set(map(str, raw))) != len(raw)
            or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < num_shelves for i in raw)):
        raise _fail(where, f"key 'requests' must list the requested shelves as distinct indices in 0..{num_shelves - 1} "
                           f"(scenario rware), got {raw!r}")
    return tuple(raw)


def _hardware(raw: Any, where: str) -> HardwareConfig | None:
    """The optional 'hardware' section: adapter parameters shared by every robot."""
    if raw is None:
        return None
    fields = HardwareConfig.__dataclass_fields__
    if not isinstance(raw, Mapping) or set(raw) - set(fields):
        raise _fail(where, f"key 'hardware' must be a mapping with some of {', '.join(fields)}, got {raw!r}")
    cfg = HardwareConfig(**raw)
    for key in ("robot_cmd_topic", "mocap_topic"):
        value = getattr(cfg, key)
        if not isinstance(value, str) or not value.startswith("/") or "{robot}" not in value:
            raise _fail(where, f"key 'hardware.{key}' must be an absolute topic containing {{robot}}, got {value!r}")
    if cfg.mocap_up_axis not in ("z", "y"):
        raise _fail(where, f"key 'hardware.mocap_up_axis' must be 'z' or 'y', got {cfg.mocap_up_axis!r}")
    if not isinstance(cfg.robot_cmd_stamped, bool):
        raise _fail(where, f"key 'hardware.robot_cmd_stamped' must be true or false, got {cfg.robot_cmd_stamped!r}")
    if not isinstance(cfg.timeout_s, (int, float)) or isinstance(cfg.timeout_s, bool) or not 0.01 <= cfg.timeout_s <= 10:
        raise _fail(where, f"key 'hardware.timeout_s' must be a number in [0.01, 10], got {cfg.timeout_s!r}")
    return cfg


def _yaml_error(exc: yaml.YAMLError) -> str:
    """PyYAML's several-line message as one: what is wrong and where."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


def _check_starts(robots: tuple[RobotConfig, ...], profile: Any, form: str, where: str,
                  obstacles: tuple[tuple[float, float, float, float], ...] = ()) -> None:
    """Refuse starts the barrier certificate cannot start from (its QP is infeasible there, so the whole
    fleet would stay braked): every pair of projection points at least the pair distance apart and,
    for the walled form, each one at least half of it inside the arena and outside every obstacle box
    (docs/barrier.md)."""
    params = getattr(profile.barrier, "unicycle_walls" if form == "unicycle_walls" else "unicycle")
    d = params.projection_distance
    dist = params.safety_radius + d
    points = [(r.start[0] + d * math.cos(r.start[2]), r.start[1] + d * math.sin(r.start[2])) for r in robots]
    for j, (pj, rj) in enumerate(zip(points, robots)):
        for i in range(j):
            gap = math.dist(points[i], pj)
            if gap < dist:
                raise _fail(where, f"key 'robots[{j}].start': {rj.name} starts {math.dist(robots[i].start[:2], rj.start[:2]):.3f} m "
                                   f"from {robots[i].name} (projection points {gap:.3f} m apart); the barrier certificate "
                                   f"({form}) needs {dist:.3f} m between them: move the starts apart "
                                   f"(at least {dist + 2 * d:.3f} m between centres is always enough)")
        a = profile.arena
        margin = dist / 2
        if form == "unicycle_walls" and not (a.x_min + margin <= pj[0] <= a.x_max - margin
                                             and a.y_min + margin <= pj[1] <= a.y_max - margin):
            raise _fail(where, f"key 'robots[{j}].start': {rj.name} starts within {margin:.3f} m of a wall (its projection "
                               f"point); the barrier certificate ({form}) needs that margin: move it inwards")
        for k, (x0, x1, y0, y1) in enumerate(obstacles):
            if math.hypot(pj[0] - min(max(pj[0], x0), x1), pj[1] - min(max(pj[1], y0), y1)) < margin:
                raise _fail(where, f"key 'robots[{j}].start': {rj.name} starts within {margin:.3f} m of obstacles[{k}] "
                                   f"(its projection point); the barrier certificate needs that margin: move it away")


def _in_arena(point: tuple[float, ...], profile: Any, where: str, key: str) -> tuple[float, ...]:
    a = profile.arena
    x, y = point[:2]
    if not (a.x_min < x < a.x_max and a.y_min < y < a.y_max):
        raise _fail(where, f"key '{key}' = ({x}, {y}) is outside the arena of profile {profile.name} "
                           f"(x in ({a.x_min}, {a.x_max}), y in ({a.y_min}, {a.y_max}))")
    return point


def _resolve(config: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (config.parent / p).resolve()


def _robots(raw: Any, profile: Any, where: str, scenario: str) -> tuple[RobotConfig, ...]:
    if not isinstance(raw, list) or not raw:
        raise _fail(where, "key 'robots' must be a non-empty list")
    if len(raw) > profile.max_robots:
        raise _fail(where, f"key 'robots': {len(raw)} robots, profile {profile.name} allows at most {profile.max_robots}")
    out = []
    needs_goal = topics.TASK_TOPIC[scenario] is topics.GOAL
    shared = "coverage robots share the landmarks" if topics.TASK_TOPIC[scenario] is topics.LANDMARKS else \
        f"{scenario}'s task comes on each robot's {topics.TASK.name} topic"
    fields = {"name", "start", "goal"} if needs_goal else {"name", "start"}
    classes = robot_classes(scenario)
    optional = {"remaps", "class"} if classes else {"remaps"}
    for i, r in enumerate(raw):
        key = f"robots[{i}]"
        if not isinstance(r, Mapping) or set(r) - fields - optional or not fields <= set(r):
            raise _fail(where, f"key '{key}' must be a mapping with name, start [x, y, yaw]"
                               f"{', goal [x, y]' if needs_goal else f' (no goal: {shared})'}"
                               f" (and optional {' and '.join(sorted(optional))})")
        robot_class = r.get("class")
        if "class" in r and robot_class not in classes:
            raise _fail(where, f"key '{key}.class' = {robot_class!r} is not a class of scenario {scenario} "
                               f"(classes: {', '.join(classes)})")
        if ("class" in r) != ("class" in raw[0]):
            raise _fail(where, f"key '{key}': give every robot a 'class' or none (none: {scenario}'s default team, "
                               f"as trained); robots[0] {'has' if 'class' in raw[0] else 'has none'}")
        name = r["name"]
        if not isinstance(name, str) or not NAME.match(name):
            raise _fail(where, f"key '{key}.name' must be a ROS name (letters, digits, _), got {name!r}")
        start = _in_arena(_number_list(r["start"], 3, where, f"{key}.start"), profile, where, f"{key}.start")
        goal = _in_arena(_number_list(r["goal"], 2, where, f"{key}.goal"), profile, where, f"{key}.goal") if needs_goal else None
        remaps = r.get("remaps", {}) or {}
        if not isinstance(remaps, Mapping) or not all(isinstance(v, str) for v in remaps.values()):
            raise _fail(where, f"key '{key}.remaps' must map topic names to topic names")
        bad = sorted(set(remaps) - set(REMAPPABLE))
        if bad:
            raise _fail(where, f"key '{key}.remaps': unknown topic(s) {', '.join(bad)} (remappable: {', '.join(REMAPPABLE)})")
        out.append(RobotConfig(name=name, start=start, goal=goal, remaps=dict(remaps), robot_class=robot_class))
    names = [r.name for r in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise _fail(where, f"key 'robots': duplicate name(s) {', '.join(dup)}")
    return tuple(out)


def robot_remaps(dep: Deployment) -> dict[str, str]:
    """Every robot's remaps as absolute rules, so any node (onboard or fleet-wide) resolves them alike."""
    return {topics.BY_NAME[t].path(r.name): dst if dst.startswith("/") else f"/{r.name}/{dst}"
            for r in dep.robots for t, dst in r.remaps.items()}


def fleet_plan(dep: Deployment, sitl: bool = False, record: str | Path | None = None,
               summary_path: str | Path | None = None, arrangement: str | None = None) -> list[NodeSpec]:
    """The nodes of a deployment; with `sitl`, the sim node stands in for the robots and mocap. `arrangement`
    (default: the deployment's) `fleet_policy` plans one fleet policy node in place of the per-robot ones."""
    if not isinstance(dep, Deployment):  # a MAV team (ros_nodes/team_plan.py)
        from marlstack.ros_nodes.team_plan import team_plan
        return team_plan(dep, sitl, record, summary_path, arrangement)
    central = (arrangement or dep.arrangement) == "fleet_policy"
    robots = dep.robot_names
    common = {"profile": dep.profile, "robots": robots, "rate_hz": dep.rate_hz,
              "watchdog_periods": dep.watchdog_periods}
    fleet_remaps = robot_remaps(dep)
    specs: list[NodeSpec] = []
    # the task: its points (goals, landmarks) or, on the task topic, what resets it (a hosted task: the sim node's in
    # SITL, the task server's on a testbed, which reads the poses the policy nodes read)
    task = {"scenario": dep.scenario, "seed": dep.seed, "starts": [v for r in dep.robots for v in r.start],
            **_task_parameters(dep), **({"team": list(dep.team)} if dep.team else {})}
    if not sitl and topics.TASK_TOPIC[dep.scenario] is topics.TASK:
        specs.append(NodeSpec("task_server_node", "task_server", "/", {**common, **task}, fleet_remaps))
    if sitl:
        # the sim holds the robots until every node below is connected: each policy node and safety
        # node reads every pose, each policy node its own goal (coverage: every policy node the
        # landmarks), the recorder all of them
        safety_nodes = 1 if dep.safety_mode == "fleet" else len(robots)
        policy_nodes = 1 if central else len(robots)
        task_readers = 1 if topics.TASK_TOPIC[dep.scenario].per_robot else policy_nodes
        pose_readers = policy_nodes + safety_nodes + bool(record)
        sim_remaps = dict(fleet_remaps)
        if dep.hardware is not None:  # the sim plays each robot's driver and mocap body; the adapters read them
            pose_readers = 1
            for r in robots:
                hw = dep.hardware.for_robot(r)
                sim_remaps[topics.CMD_VEL.path(r)] = hw["robot_cmd_topic"]
                sim_remaps[topics.POSE.path(r)] = hw["mocap_topic"]
        specs.append(NodeSpec("sim_node", "sim", "/", {
            **common, **task, "summary_path": str(summary_path or ""), "pose_subscribers": pose_readers,
            "task_subscribers": task_readers + bool(record), "cmd_vel_publishers": 1, **dep.sensing}, sim_remaps))
    if dep.hardware is not None:
        for r in robots:
            specs.append(NodeSpec("hardware_adapter_node", "hardware_adapter", f"/{r}", {
                "robot": r, "profile": dep.profile, "rate_hz": dep.rate_hz, **dep.hardware.for_robot(r)}, fleet_remaps))
    if central:
        specs.append(NodeSpec("fleet_policy_node", "fleet_policy", "/", {
            **common, "scenario": dep.scenario, "policy_path": str(dep.policy)}, fleet_remaps))
    for r in () if central else dep.robots:
        specs.append(NodeSpec("policy_node", "policy", f"/{r.name}", {
            **common, "robot": r.name, "scenario": dep.scenario, "policy_path": str(dep.policy)}, fleet_remaps))
    safety = {**common, "form": dep.safety_form, "delay_s": dep.safety_delay_s,
              **({"boxes": _flat(dep.obstacles)} if dep.obstacles else {})}
    if dep.safety_mode == "fleet":
        specs.append(NodeSpec("safety_node", "safety", "/", {**safety, "mode": "fleet", "robot": ""}, fleet_remaps))
    else:
        for r in dep.robots:
            specs.append(NodeSpec("safety_node", "safety", f"/{r.name}", {**safety, "mode": "onboard", "robot": r.name},
                                  fleet_remaps))
    if record:
        specs.append(NodeSpec("recorder_node", "recorder", "/", {
            "output": str(record), "topics": sorted(topics.robot_topics(robots))}, fleet_remaps))
    return specs


def arrange(specs: list[NodeSpec], arrangement: str) -> list[NodeSpec]:
    """The plan's nodes as SITL starts them: each its own process (`process_per_node`, `fleet_policy`), or the
    onboard nodes (CONTAINED) in one `fleet_container` process beside the others (ros_nodes/container.py)."""
    if arrangement not in ARRANGEMENTS:
        raise PlanError(f"arrangement must be one of {', '.join(ARRANGEMENTS)}, got {arrangement!r}")
    inside = tuple(s for s in specs if s.executable in CONTAINED)
    if arrangement != "fleet_container" or not inside:
        return list(specs)
    return [s for s in specs if s.executable not in CONTAINED] + [NodeSpec("container", "fleet_container", "/", {},
                                                                           hosted=inside)]


def _flat(boxes: tuple[tuple[float, ...], ...]) -> list[float]:
    """Boxes as one ROS double array, 4 numbers per box."""
    return [float(v) for b in boxes for v in b]


def _task_parameters(dep: Deployment) -> dict[str, Any]:
    """The sim node's task: goals or landmarks (flat [x, y] each), rware's requested shelves; the obstacle boxes.
    Empty lists are left out (ROS cannot type an empty array)."""
    out: dict[str, Any] = {}
    if dep.task_points:
        out["goals"] = [v for p in dep.task_points for v in p]
    if dep.requests:
        out["requests"] = list(dep.requests)
    if dep.obstacles:
        out["boxes"] = _flat(dep.obstacles)
    return out
