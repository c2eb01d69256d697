"""A real flight link node process between ROS 2 topics/services and a fake PX4 on UDP loopback; run as
a script inside the loopback-only namespace (see test_flight_link.py). JSON to argv[1].

This process publishes a level MAV's mocap odometry at ENU (1, 2, 3) and a hover set-point (zero
acceleration, no feed-forward) at 50 Hz, calls the node's arm and start_rate_control services, and
reports what the fake autopilot received; then the kill service.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import rclpy
from rclpy.node import Node
from std_srvs.srv import Trigger

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hardware"))
from fake_autopilot import FakeAutopilot  # noqa: E402

from ros_nodes import convert, topics  # noqa: E402
from ros_nodes.isolation import ros_env  # noqa: E402
from ros_nodes.plan import NodeSpec  # noqa: E402
from ros_nodes.supervisor import Supervisor  # noqa: E402

MAV = "mav_0"


class Stack(Node):
    def __init__(self) -> None:
        super().__init__("stack")
        cls = topics.message_class
        state = topics.qos_profile("state")
        self.odom = self.create_publisher(cls(topics.ODOM.type), topics.ODOM.path(MAV), state)
        self.setpoint = self.create_publisher(cls(topics.SETPOINT.type), topics.SETPOINT.path(MAV), state)
        self.create_timer(0.02, self._tick)

    def _tick(self) -> None:
        from geometry_msgs.msg import Transform, Twist
        from trajectory_msgs.msg import MultiDOFJointTrajectoryPoint
        odom = topics.message_class(topics.ODOM.type)()
        convert.set_stamp(odom.header.stamp, self.get_clock().now().nanoseconds * 1e-9)
        odom.pose.pose.position.x, odom.pose.pose.position.y, odom.pose.pose.position.z = 1.0, 2.0, 3.0
        odom.pose.pose.orientation.w = 1.0
        self.odom.publish(odom)
        sp = topics.message_class(topics.SETPOINT.type)()
        point = MultiDOFJointTrajectoryPoint()
        tf = Transform()
        tf.rotation.w = 1.0
        point.transforms, point.velocities, point.accelerations = [tf], [Twist()], [Twist()]
        sp.points = [point]
        self.setpoint.publish(sp)

    def call(self, name: str) -> dict:
        client = self.create_client(Trigger, f"/{MAV}/{name}")
        assert client.wait_for_service(timeout_sec=30.0), name
        future = client.call_async(Trigger.Request())
        end = time.monotonic() + 10
        while not future.done() and time.monotonic() < end:
            rclpy.spin_once(self, timeout_sec=0.01)
        return {"success": future.result().success, "message": future.result().message}

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self, timeout_sec=0.005)


def main(out: Path, workdir: Path) -> None:
    fake = FakeAutopilot()
    spec = NodeSpec("flight_link_node", "flight_link", f"/{MAV}", {
        "mav": MAV, "profile": "mav_corl25", "link": "mavlink", "url": fake.url, "autopilot": "px4"})
    sup = Supervisor(ros_env(), workdir / "logs")
    proc = sup.start(spec)
    rclpy.init()
    node = Stack()
    result: dict = {}
    try:
        result["arm"] = node.call("arm")
        node.spin_for(0.5)
        result["start"] = node.call("start_rate_control")
        node.spin_for(1.0)
        result["mode"] = fake.custom_mode
        result["armed"] = fake.armed
        sps = fake.received("SET_ATTITUDE_TARGET")[-20:]
        result["setpoints"] = [[m.msg.body_roll_rate, m.msg.body_pitch_rate, m.msg.body_yaw_rate, m.msg.thrust]
                               for m in sps]
        mocap = fake.received("ATT_POS_MOCAP")
        result["mocap_count"] = len(mocap)
        result["mocap_last"] = [mocap[-1].msg.x, mocap[-1].msg.y, mocap[-1].msg.z, *mocap[-1].msg.q] if mocap else None
        result["kill"] = node.call("kill")
        result["armed_after_kill"] = fake.armed
    finally:
        node.destroy_node()
        rclpy.shutdown()
        result["exit_codes"] = sup.stop(["flight_link_node"])
        sup.kill_all()
        fake.close()
        result["log"] = proc.log.read_text(errors="replace")
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
