"""Every ROS 2 topic name, message type and QoS profile of the stack, in one place.

Plain data first: the replay tools read bags without a ROS install, so this module imports
no rclpy at module level. `qos_profile()` and `message_class()` import rclpy / the message
packages lazily, only in processes that actually talk DDS.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from marlstack.sim.scenarios import SCENARIOS

# QoS classes (DESIGN contract 5). "state": a newer sample makes the old one worthless, so never
# queue or retransmit. "latched": set-points and configuration a late joiner must still receive.
# "events": health reports; keep a few so a burst of diagnostics is not lost.
QOS = {
    "state": {"reliability": "best_effort", "durability": "volatile", "history": "keep_last", "depth": 1},
    "latched": {"reliability": "reliable", "durability": "transient_local", "history": "keep_last", "depth": 1},
    "events": {"reliability": "reliable", "durability": "volatile", "history": "keep_last", "depth": 10},
}


@dataclass(frozen=True)
class Topic:
    """A topic: `name` is relative to the robot's namespace when `per_robot`, else absolute."""
    name: str
    type: str
    qos: str
    per_robot: bool
    doc: str

    def path(self, robot: str | None = None) -> str:
        """Fully qualified name, e.g. `/robot_0/pose`."""
        if not self.per_robot:
            return self.name
        if not robot:
            raise ValueError(f"topic '{self.name}' lives in a robot namespace: pass the robot name")
        return f"/{robot.strip('/')}/{self.name}"


POSE = Topic("pose", "geometry_msgs/msg/PoseStamped", "state", True,
             "world-frame pose from motion capture or the sim node (z unused, yaw in the quaternion)")
GOAL = Topic("goal", "geometry_msgs/msg/PoseStamped", "latched", True,
             "navigation goal, world frame (x, y; orientation ignored)")
CMD_VEL_NOMINAL = Topic("cmd_vel_nominal", "geometry_msgs/msg/Twist", "state", True,
                        "policy output: linear.x = v [m/s], angular.z = omega [rad/s]")
CMD_VEL = Topic("cmd_vel", "geometry_msgs/msg/Twist", "state", True,
                "safe command after the barrier certificate, sent to the robot")
DIAGNOSTICS = Topic("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", "events", False,
                    "watchdog state, safety interventions, solver status, sim violation counts")
LANDMARKS = Topic("/landmarks", "geometry_msgs/msg/PoseArray", "latched", False,
                  "coverage landmarks, world frame, in landmark index order (x, y; orientation ignored)")
TASK = Topic("task", "std_msgs/msg/Float64MultiArray", "latched", True,
             "this robot's task sensors: every input of its scenario's model besides pose and others, each flattened, "
             "in <scenario>_spec.SENSORS order (ros_nodes/task_adapter.py); RWARE: [load (1 while it carries an item), "
             "then x, y, waiting (1 while its item is requested and not taken) for every shelf in shelf order]")
SIM_SUMMARY = Topic("/sim/summary", "std_msgs/msg/String", "latched", False,
                    "sim node's running per-robot summary as JSON (goal reached, collisions, exits)")

# MAV team (DESIGN contract 5). Odometry follows REP 105: pose in the world frame, twist in the body
# frame (child_frame_id); the rate controller reads body rates from the IMU's gyro.
ODOM = Topic("odom", "nav_msgs/msg/Odometry", "state", True,
             "MAV state: world pose, body-frame twist")
IMU = Topic("imu", "sensor_msgs/msg/Imu", "state", True, "MAV IMU: angular_velocity = body rates [rad/s]")
LOAD_ODOM = Topic("/load/odom", "nav_msgs/msg/Odometry", "state", False, "the cable-suspended load's state")
LOAD_GOAL = Topic("/load/goal", "geometry_msgs/msg/PoseStamped", "latched", False,
                  "goal pose of the load, world frame (position and attitude)")
LOAD_START = Topic("/load/start", "geometry_msgs/msg/PoseStamped", "latched", False,
                   "a new start: the team put at rest in hover with the load at this pose (SITL's from-rest goals); "
                   "each MAV policy node begins a new episode (action history zero, team landing and hold cleared)")
SETPOINT = Topic("setpoint", "trajectory_msgs/msg/MultiDOFJointTrajectory", "state", True,
                 "policy output, one point: accelerations[0].linear = world acceleration [m/s^2], "
                 "velocities[0].angular = body-rate feed-forward [rad/s], transforms[0].rotation = yaw set-point")
ROTOR_THRUST = Topic("rotor_thrust", "std_msgs/msg/Float64MultiArray", "state", True,
                     "rate controller output: per-rotor thrust command [N], rotors 0-3")
CLOCK = Topic("/clock", "rosgraph_msgs/msg/Clock", "state", False,
              "SITL on simulated time: the MAV sim node's clock (nodes with use_sim_time read it)")


@dataclass(frozen=True)
class Service:
    """A vehicle command, std_srvs/Trigger `/<mav>/<name>`: served by each real MAV's flight link node and, for the
    simulated team, by the MAV sim node (only `kill`); called by `marlstack flight`."""
    name: str
    doc: str
    type: str = "std_srvs/srv/Trigger"

    def path(self, robot: str) -> str:
        return f"/{robot.strip('/')}/{self.name}"


KILL = Service("kill", "cut the motors now, in the air or not (the only motor cut with a load attached)")
VEHICLE_COMMANDS: tuple[Service, ...] = (
    Service("arm", "arm the motors"), Service("takeoff", "take off to the link's take-off height"),
    Service("start_rate_control", "stream the stack's rates and switch the autopilot to take them"),
    Service("land", "land through the autopilot"), KILL, Service("disarm", "disarm on the ground"))


# The topic that carries each ground scenario's task input (the adapters, the plan and the sim node read it): a
# navigation robot's goal, coverage's landmarks, every other scenario's task sensors.
TASK_TOPIC: dict[str, Topic] = {name: {"navigation": GOAL, "coverage": LANDMARKS}.get(name, TASK) for name in SCENARIOS}

ALL: tuple[Topic, ...] = (POSE, GOAL, CMD_VEL_NOMINAL, CMD_VEL, DIAGNOSTICS, LANDMARKS, TASK, SIM_SUMMARY,
                          ODOM, IMU, LOAD_ODOM, LOAD_GOAL, LOAD_START, SETPOINT, ROTOR_THRUST, CLOCK)
GROUND: tuple[Topic, ...] = (POSE, GOAL, CMD_VEL_NOMINAL, CMD_VEL, DIAGNOSTICS, LANDMARKS, TASK, SIM_SUMMARY)
MAV: tuple[Topic, ...] = (ODOM, IMU, LOAD_ODOM, LOAD_GOAL, LOAD_START, SETPOINT, DIAGNOSTICS, SIM_SUMMARY)  # a cable team's
BY_NAME = {t.name: t for t in ALL}
# Topics that move vehicles. Replaying a log must not re-publish them unless the user asks (replay play
# --actuation, under a namespace or domain they name): on a lab network a replayed cmd_vel drives the robots.
ACTUATION: tuple[Topic, ...] = (CMD_VEL_NOMINAL, CMD_VEL, SETPOINT, ROTOR_THRUST)
# the same for other drivers' command topics a lab bag may hold (name parts: mavros setpoints and RC
# override, PX4's uXRCE-DDS inputs /fmu/in/..., thrust and motor commands)
ACTUATION_NAME_PARTS = ("cmd_vel", "setpoint", "thrust", "actuator", "motor", "rc/override", "/fmu/in/")


def is_actuation(path: str) -> bool:
    """Whether a fully qualified topic name carries commands that make a vehicle move."""
    known = topic_for_path(path)
    return (known in ACTUATION or path.rsplit("/", 1)[-1] in {t.name for t in ACTUATION}
            or any(part in path.lower() for part in ACTUATION_NAME_PARTS))


def robot_topics(robots: list[str], topics: tuple[Topic, ...] = GROUND) -> dict[str, Topic]:
    """Fully qualified name -> Topic for a fleet (what the recorder subscribes to by default)."""
    out: dict[str, Topic] = {}
    for t in topics:
        for r in (robots if t.per_robot else [None]):
            out[t.path(r)] = t
    return out


def topic_for_path(path: str) -> Topic | None:
    """The Topic a fully qualified name (e.g. `/robot_0/cmd_vel`) refers to, if it is one of ours."""
    if path in BY_NAME:
        return BY_NAME[path]
    t = BY_NAME.get(path.rsplit("/", 1)[-1])
    return t if t is not None and t.per_robot and path.count("/") == 2 else None


def qos_profile(kind: str) -> Any:
    """rclpy QoSProfile for a QoS class name ("state", "latched", "events")."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    q = QOS[kind]
    return QoSProfile(
        reliability={"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}[q["reliability"]],
        durability={"volatile": DurabilityPolicy.VOLATILE, "transient_local": DurabilityPolicy.TRANSIENT_LOCAL}[q["durability"]],
        history=HistoryPolicy.KEEP_LAST, depth=q["depth"])


def message_class(type_name: str) -> type:
    """`geometry_msgs/msg/Twist` -> the rclpy message class (`std_srvs/srv/Trigger` -> the service class)."""
    package, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)
