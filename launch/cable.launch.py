"""ROS 2 launch file: a MAV team carrying a load (`ros2 launch marlstack cable.launch.py config:=FILE`).

The same launch description as robotarium.launch.py (the plan dispatches on the config: a `mavs:`
list is a MAV team, see ros_nodes/team_plan.py), with launch/cable3.yaml as the default config.
`sim:=true` adds the MAV sim node (software-in-the-loop, like `marlstack sitl`); `record:=DIR` the recorder.
"""
import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("marlstack_robotarium_launch", HERE / "robotarium.launch.py")
_fleet = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fleet)


def generate_launch_description():
    return _fleet.generate_launch_description(str(HERE / "cable3.yaml"))
