"""The ROS 2 launch file, tested without ROS 2 launch installed.

The `launch` / `launch_ros` Python packages are not installable from the registries we reach, so
this test injects minimal stand-ins for exactly the classes the launch file uses, loads the file
as Python, runs `generate_launch_description()` and evaluates its OpaqueFunction with a fake
context: it checks the file is valid Python that declares its arguments and builds one Node
action per node of the fleet plan, with the plan's names, namespaces, parameters and remaps.
It cannot check the real launch system's behaviour (docs/ros.md says so).
"""
import importlib.util
import sys
import types
from pathlib import Path

from marlstack.ros_nodes.plan import fleet_plan, load_deployment

LAUNCH = Path(__file__).resolve().parents[2] / "launch"


class Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(Recorded):
    def perform(self, context):
        return context.launch_configurations[self.args[0]]


def fake_modules():
    launch = types.ModuleType("launch")
    launch.LaunchDescription = type("LaunchDescription", (Recorded,), {})
    actions = types.ModuleType("launch.actions")
    actions.DeclareLaunchArgument = type("DeclareLaunchArgument", (Recorded,), {})
    actions.OpaqueFunction = type("OpaqueFunction", (Recorded,), {})
    subs = types.ModuleType("launch.substitutions")
    subs.LaunchConfiguration = LaunchConfiguration
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    ros_actions.Node = type("Node", (Recorded,), {})
    launch.actions, launch.substitutions, launch_ros.actions = actions, subs, ros_actions
    return {"launch": launch, "launch.actions": actions, "launch.substitutions": subs,
            "launch_ros": launch_ros, "launch_ros.actions": ros_actions}


def load_launch_file(monkeypatch):
    for name, module in fake_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("robotarium_launch", LAUNCH / "robotarium.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_file_builds_one_node_action_per_planned_node(monkeypatch, tmp_path):
    module = load_launch_file(monkeypatch)
    desc = module.generate_launch_description()
    actions = desc.args[0]
    declared = {a.args[0]: a.kwargs["default_value"] for a in actions if type(a).__name__ == "DeclareLaunchArgument"}
    assert set(declared) == {"config", "sim", "record", "foxglove"}
    assert Path(declared["config"]) == LAUNCH / "robotarium_nav4.yaml"
    opaque = [a for a in actions if type(a).__name__ == "OpaqueFunction"]
    assert len(opaque) == 1

    config = LAUNCH / "robotarium_onboard8.yaml"
    context = types.SimpleNamespace(launch_configurations={"config": str(config), "sim": "true", "record": str(tmp_path / "bag"),
                                                           "foxglove": "8765"})
    nodes = opaque[0].kwargs["function"](context)
    from marlstack.ros_nodes.foxglove_node import node_spec
    specs = fleet_plan(load_deployment(config), sitl=True, record=str(tmp_path / "bag")) + [node_spec(load_deployment(config), 8765)]
    assert len(nodes) == len(specs) == 1 + 8 + 8 + 1 + 1
    for node, spec in zip(nodes, specs):
        kw = node.kwargs
        assert (kw["package"], kw["executable"], kw["name"], kw["namespace"]) == ("marlstack", spec.executable, spec.name, spec.namespace)
        assert kw["parameters"] == [dict(spec.parameters)]
        assert kw["remappings"] == list(spec.remaps.items())
    assert {n.kwargs["executable"] for n in nodes} == {"sim_node", "policy_node", "safety_node", "recorder_node", "foxglove_node"}


def test_launch_file_without_sim_or_record_is_the_deployment_only(monkeypatch):
    module = load_launch_file(monkeypatch)
    opaque = [a for a in module.generate_launch_description().args[0] if type(a).__name__ == "OpaqueFunction"][0]
    context = types.SimpleNamespace(launch_configurations={"config": str(LAUNCH / "robotarium_nav4.yaml"), "sim": "false", "record": "",
                                                           "foxglove": ""})
    nodes = opaque.kwargs["function"](context)
    assert [n.kwargs["executable"] for n in nodes] == ["policy_node"] * 4 + ["safety_node"]
