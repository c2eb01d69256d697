"""The fleet plan: deployment YAML -> node specs, and its one-line errors."""
import json
import re
from pathlib import Path

import pytest
import yaml

from marlstack.ros_nodes import plan, topics
from marlstack.ros_nodes.plan import PlanError, fleet_plan, load_deployment

LAUNCH = Path(__file__).resolve().parents[2] / "launch"


def write(tmp_path, **overrides):
    data = yaml.safe_load((LAUNCH / "robotarium_nav4.yaml").read_text())
    data.update(overrides)
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_nav4_example_plans_policy_per_robot_and_one_fleet_safety_node():
    dep = load_deployment(LAUNCH / "robotarium_nav4.yaml")
    specs = fleet_plan(dep)
    assert [s.fqn for s in specs] == [f"/robot_{i}/policy" for i in range(4)] + ["/safety"]
    policy = specs[0]
    assert policy.parameters["robot"] == "robot_0"
    assert policy.parameters["robots"] == [f"robot_{i}" for i in range(4)]
    assert policy.parameters["policy_path"] == str((LAUNCH.parent / "out/demo/policy.onnx").resolve())
    assert policy.parameters["rate_hz"] == pytest.approx(1 / 0.033)
    assert specs[-1].parameters["mode"] == "fleet"


def test_onboard8_example_has_a_safety_node_in_every_namespace():
    specs = fleet_plan(load_deployment(LAUNCH / "robotarium_onboard8.yaml"))
    safety = [s for s in specs if s.executable == "safety_node"]
    assert [s.namespace for s in safety] == [f"/robot_{i}" for i in range(8)]
    assert all(s.parameters["mode"] == "onboard" and s.parameters["robot"] == s.namespace[1:] for s in safety)


def test_sitl_and_record_add_sim_and_recorder(tmp_path):
    dep = load_deployment(LAUNCH / "robotarium_nav4.yaml")
    specs = {s.executable: s for s in fleet_plan(dep, sitl=True, record=tmp_path / "bag", summary_path=tmp_path / "s.json")}
    sim = specs["sim_node"].parameters
    assert sim["starts"][:3] == [-0.9, 0.6, 0.0] and len(sim["goals"]) == 8
    assert sim["summary_path"] == str(tmp_path / "s.json")
    # held until 4 policy nodes + the fleet safety node + the recorder read every pose
    assert (sim["pose_subscribers"], sim["task_subscribers"], sim["cmd_vel_publishers"]) == (6, 2, 1)
    onboard = load_deployment(LAUNCH / "robotarium_onboard8.yaml")
    assert next(s for s in fleet_plan(onboard, sitl=True) if s.executable == "sim_node").parameters["pose_subscribers"] == 16
    rec = specs["recorder_node"].parameters["topics"]
    assert set(rec) == set(topics.robot_topics(dep.robot_names))
    assert "/robot_3/cmd_vel_nominal" in rec and "/diagnostics" in rec


def test_coverage_example_publishes_its_landmarks_through_the_sim(tmp_path):
    dep = load_deployment(LAUNCH / "robotarium_coverage4.yaml")
    assert dep.scenario == "coverage" and len(dep.landmarks) == 4 and all(r.goal is None for r in dep.robots)
    sim = next(s for s in fleet_plan(dep, sitl=True) if s.executable == "sim_node").parameters
    assert sim["goals"] == [v for p in dep.landmarks for v in p] and sim["task_subscribers"] == 4  # every policy node
    robots = [{"name": "a", "start": [0, 0, 0]}, {"name": "b", "start": [1, 0, 0]}]
    for extra, needle in (({}, "key 'landmarks' must list one [x, y] per robot (2)"),
                          ({"landmarks": [[0.5, 0.5]]}, "key 'landmarks' must list one [x, y] per robot (2)"),
                          ({"landmarks": [[0.5, 0.5], [9.0, 0.0]]}, "key 'landmarks[1]' = (9.0, 0.0) is outside the arena")):
        with pytest.raises(PlanError, match=re.escape(needle)):
            load_deployment(write(tmp_path, scenario="coverage", robots=robots, **extra))
    with pytest.raises(PlanError, match=re.escape("robots[0]' must be a mapping with name, start [x, y, yaw] (no goal")):
        load_deployment(write(tmp_path, scenario="coverage", landmarks=[[0.5, 0.5], [-0.5, 0.5]],
                              robots=[{**robots[0], "goal": [0.5, 0.5]}, robots[1]]))
    with pytest.raises(PlanError, match="key 'landmarks' is for scenario coverage, this is navigation"):
        load_deployment(write(tmp_path, landmarks=[[0.5, 0.5]] * 4))
    with pytest.raises(PlanError, match="key 'scenario' must be one of navigation, coverage, formation, .*, rware, "
                                        "got 'herding'"):
        load_deployment(write(tmp_path, scenario="herding"))


def test_every_scenario_is_planned_and_a_hosted_task_takes_no_goals(tmp_path):
    """Scenarios on the task topic (all but navigation and coverage): no goals, the sim node hosts their task from
    sim.seed and waits for each robot's policy node on its `task` (and the recorder)."""
    from marlstack.sim.scenarios import SCENARIOS
    assert set(plan.SCENARIOS) == set(SCENARIOS)
    hosted = [s for s in SCENARIOS if topics.TASK_TOPIC[s] is topics.TASK and s != "rware"]  # rware4.yaml: its requests
    assert len(hosted) == 7
    for name in hosted:  # launch/<scenario>4.yaml of each
        dep = load_deployment(LAUNCH / f"{name}4.yaml")
        sim = next(s for s in fleet_plan(dep, sitl=True, record="bag") if s.executable == "sim_node").parameters
        assert sim["scenario"] == dep.scenario == name and sim["seed"] == 0, sim
        assert "goals" not in sim and "requests" not in sim and sim["task_subscribers"] == 2, sim
    robots = [{"name": "a", "start": [0, 0, 0], "goal": [0.5, 0.5]}, {"name": "b", "start": [1, 0, 0]}]
    with pytest.raises(PlanError, match=re.escape("(no goal: material_transport's task comes on each robot's task topic)")):
        load_deployment(write(tmp_path, scenario="material_transport", robots=robots))


def test_a_team_deployment_names_each_robots_class_and_bad_teams_fail_in_one_line(tmp_path):
    """Each robot's `class` (a team scenario's CLASSES) reaches the sim node as its `team`; none given: no parameter
    (the spec's TEAM pattern, as trained); an unknown class, a team given for some robots only, or a class in a
    scenario without classes is one line naming the key."""
    def team_of(robots, scenario="arctic_transport"):
        data = yaml.safe_load((LAUNCH / "arctic_transport4.yaml").read_text())
        data.update(scenario=scenario, robots=[{"name": r["name"], "start": r["start"], **x}
                                               for r, x in zip(data["robots"], robots)])
        path = tmp_path / "team.yaml"
        path.write_text(yaml.safe_dump(data))
        return next(s for s in fleet_plan(load_deployment(path), sitl=True) if s.executable == "sim_node").parameters

    classes = ["water", "water", "drone", "ice"]
    assert team_of([{"class": c} for c in classes])["team"] == classes
    assert "team" not in team_of([{}] * 4)
    for robots, scenario, needle in [
            ([{"class": "hovercraft"}] * 4, "arctic_transport",
             "key 'robots[0].class' = 'hovercraft' is not a class of scenario arctic_transport (classes: drone, ice, water)"),
            ([{"class": "ice"}] * 3 + [{}], "arctic_transport", "key 'robots[3]': give every robot a 'class' or none"),
            ([{}] + [{"class": "ice"}] * 3, "arctic_transport", "key 'robots[1]': give every robot a 'class' or none"),
            ([{"class": "ice"}] * 4, "foraging", "key 'robots[0]' must be a mapping with name, start")]:
        with pytest.raises(PlanError, match=re.escape(needle)) as err:
            team_of(robots, scenario)
        assert "\n" not in str(err.value)


def test_ros_args_carry_typed_parameters_and_remaps(tmp_path):
    path = write(tmp_path, robots=[{"name": "a", "start": [0, 0, 0], "goal": [0.5, 0.5], "remaps": {"pose": "/mocap/a"}},
                                   {"name": "b", "start": [1, 0, 0], "goal": [-0.5, 0.5]}])
    spec = fleet_plan(load_deployment(path))[0]
    args = spec.ros_args()
    assert args[:5] == ["--ros-args", "-r", "__node:=policy", "-r", "__ns:=/a"]
    params = dict(a.split(":=", 1) for a in args[args.index("-p") + 1::2] if ":=" in a and not a.startswith("__"))
    assert json.loads(params["robots"]) == ["a", "b"] and json.loads(params["watchdog_periods"]) == 3.0
    assert "/a/pose:=/mocap/a" in args  # remaps are absolute, so every node resolves them alike


@pytest.mark.parametrize("override, needle", [
    ({"safety": {"mode": "central"}}, "safety.mode"),
    ({"robots": [{"name": "r", "start": [5.0, 0, 0], "goal": [0, 0]}]}, "outside the arena"),
    ({"robots": [{"name": "r", "start": [0, 0, 0], "goal": [0, 0]}] * 2}, "duplicate name"),
    ({"robots": [{"name": "r", "start": [0, 0], "goal": [0, 0]}]}, "robots[0].start"),
    ({"robots": [{"name": "r", "start": [0, 0, 0], "goal": [0, 0], "remaps": {"odom": "/x"}}]}, "remaps"),
    ({"profile": "no_such_robot"}, "key 'profile'"),
    ({"rate_hz": 0}, "rate_hz"),
    ({"colour": "red"}, "unknown key(s) colour"),
])
def test_bad_configs_fail_with_the_key_named(tmp_path, override, needle):
    with pytest.raises(PlanError) as err:
        load_deployment(write(tmp_path, **override))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_sitl_refuses_bad_configs_in_one_line(tmp_path, capsys):
    from marlstack.ros_nodes import sitl
    assert sitl.main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert sitl.main(["--config", str(write(tmp_path, policy=str(tmp_path / "none.onnx")))]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert "no such deployment config" in lines[0]
    assert "none.onnx does not exist" in lines[1] and "marlstack export" in lines[1]


def test_benchmark_fleets_are_valid_deployments(tmp_path):
    from marlstack.bench.ros import fleet_config
    for n in (4, 10):
        dep = load_deployment(fleet_config(n, tmp_path / "p.onnx", "onboard", tmp_path / f"f{n}.yaml"))
        assert len(dep.robots) == n and dep.safety_mode == "onboard"
        assert dep.rate_hz == pytest.approx(1 / 0.033)  # the profile's rate, which the policy was exported for


def test_obstacles_reach_the_safety_and_sim_nodes_and_rware_takes_its_shelves(tmp_path):
    from marlstack.sim.scenarios.rware_spec import SHELVES
    box = [-0.2, 0.2, -0.1, 0.1]
    specs = {s.executable: s for s in fleet_plan(load_deployment(write(tmp_path, obstacles=[box])), sitl=True)}
    assert specs["safety_node"].parameters["boxes"] == box and specs["sim_node"].parameters["boxes"] == box
    dep = load_deployment(LAUNCH / "rware4.yaml")
    assert dep.obstacles == SHELVES and dep.requests == (3, 7) and all(r.goal is None for r in dep.robots)
    specs = {s.executable: s for s in fleet_plan(dep, sitl=True)}
    assert specs["sim_node"].parameters["requests"] == [3, 7] and "goals" not in specs["sim_node"].parameters
    assert len(specs["safety_node"].parameters["boxes"]) == 4 * len(SHELVES)
    assert specs["sim_node"].parameters["task_subscribers"] == 1   # each robot's task: its own policy node
    for overrides, needle in [
            ({"obstacles": [[0.2, -0.2, 0.0, 0.1]]}, "key 'obstacles[0]' = [0.2, -0.2, 0.0, 0.1]: a box is [x_min, x_max"),
            ({"obstacles": [[0.0, 0.1, 0.0]]}, "key 'obstacles[0]' must be a list of 4 finite numbers"),
            ({"obstacles": [[1.5, 1.7, 0.0, 0.1]]}, "key 'obstacles[0]' = [1.5, 1.7, 0.0, 0.1] is not inside the arena"),
            ({"obstacles": [[-0.8, -0.7, 0.55, 0.65]]}, "key 'robots[0].start': robot_0 starts within 0.105 m of obstacles[0]"),
            ({"requests": [1]}, "key 'requests' is for scenario rware, this is navigation")]:
        with pytest.raises(PlanError, match=re.escape(needle)):
            load_deployment(write(tmp_path, **overrides))
    rware = yaml.safe_load((LAUNCH / "rware4.yaml").read_text())
    for overrides, needle in [({"requests": [3, 3]}, "key 'requests' must list the requested shelves as distinct indices in 0..7"),
                              ({"requests": [8]}, "distinct indices in 0..7"),
                              ({"obstacles": [box]}, "scenario rware's obstacles are the 8 shelves its policy was trained among")]:
        path = tmp_path / "rware.yaml"
        path.write_text(yaml.safe_dump({**rware, **overrides}))
        with pytest.raises(PlanError, match=re.escape(needle)):
            load_deployment(path)
