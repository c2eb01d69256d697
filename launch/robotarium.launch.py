"""ROS 2 launch file: a fleet or a MAV team from a deployment YAML (`ros2 launch marlstack robotarium.launch.py config:=FILE`).

Thin on purpose: `marlstack.ros_nodes.plan` decides every node, name, namespace, parameter and remap,
and how they run (the deployment's `arrangement`: one process per node, one fleet policy node for every
robot, or the onboard nodes hosted in one container process); this file only turns each NodeSpec into a
`launch_ros` Node. `sim:=true` adds the sim node
(software-in-the-loop, like `marlstack sitl`); `record:=DIR` adds the recorder; `foxglove:=PORT` the live
view (ros_nodes/foxglove_node.py, ws://127.0.0.1:PORT, like `marlstack sitl --foxglove`).
"""
from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from marlstack.ros_nodes.plan import ARRANGEMENTS, arrange, fleet_plan, load_deployment

DEFAULT_CONFIG = str(Path(__file__).resolve().with_name("robotarium_nav4.yaml"))


def node_actions(context, *args, **kwargs):
    """Evaluated at launch time, when the launch arguments are known."""
    config = LaunchConfiguration("config").perform(context)
    sitl = LaunchConfiguration("sim").perform(context).lower() in ("1", "true", "yes")
    record = LaunchConfiguration("record").perform(context) or None
    dep = load_deployment(config)
    specs = arrange(fleet_plan(dep, sitl=sitl, record=record), getattr(dep, "arrangement", ARRANGEMENTS[0]))
    port = LaunchConfiguration("foxglove").perform(context)
    if port:
        from marlstack.ros_nodes.foxglove_node import node_spec
        specs.append(node_spec(dep, int(port)))
    # a container takes its hosted nodes (each with its own --ros-args) as arguments
    return [Node(package="marlstack", executable=s.executable, name=s.name, namespace=s.namespace,
                 parameters=[dict(s.parameters)], remappings=list(s.remaps.items()), output="screen",
                 **({"arguments": s.command()[3:]} if s.hosted else {}))
            for s in specs]


def generate_launch_description(default_config: str = DEFAULT_CONFIG):
    """The launch description; cable.launch.py reuses it with a MAV-team default config."""
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=default_config, description="deployment YAML (docs/ros.md)"),
        DeclareLaunchArgument("sim", default_value="false", description="add the sim node (software-in-the-loop)"),
        DeclareLaunchArgument("record", default_value="", description="record a rosbag2 MCAP bag to this directory"),
        DeclareLaunchArgument("foxglove", default_value="", description="live view: stream to Foxglove on ws://127.0.0.1:PORT"),
        OpaqueFunction(function=node_actions),
    ])
