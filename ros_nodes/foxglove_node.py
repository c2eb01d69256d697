"""Live view: the fleet's or the MAV team's topics streamed to Foxglove through foxglove-sdk's WebSocket server.

What an engineer opens after a flight (`replay report`) they also want during one: poses, commands,
the load, the safety layer's interventions and every node's diagnostics. This node subscribes to the
stack's topics (the same list the recorder takes) and logs each message on a Foxglove channel of the
same name: poses (`PoseStamped`, and the pose of an `Odometry`: MAVs, the load) as `foxglove.PoseInFrame`
so the 3D panel draws them, everything else (commands, set-points, goals' twins, diagnostics with the
safety interventions, the sim summary) as JSON of the ROS message's fields. The server binds to
127.0.0.1 unless told otherwise: a live view is for this machine (use an ssh tunnel from another one).

Started by `marlstack sitl --foxglove [PORT]`; open Foxglove, "Open connection", ws://localhost:PORT.
A ground-station tool: not part of the onboard install (foxglove-sdk is in the `ros` extra), never JAX.
"""
from __future__ import annotations

import sys
from typing import Any

from marlstack.ros_nodes import topics
from marlstack.ros_nodes.runner import StartError, declare, run_node

POSE_TYPES = ("geometry_msgs/msg/PoseStamped", "nav_msgs/msg/Odometry")
DEFAULT_PORT = 8765


def to_json(msg: Any) -> Any:
    """A ROS message (or field value) as JSON-ready Python data: messages -> dicts, arrays -> lists."""
    if hasattr(msg, "get_fields_and_field_types"):
        return {name: to_json(getattr(msg, name)) for name in msg.get_fields_and_field_types()}
    if isinstance(msg, (bytes, bytearray)):
        return msg.hex()
    if isinstance(msg, (list, tuple)) or hasattr(msg, "tolist"):
        return [to_json(v) for v in (msg.tolist() if hasattr(msg, "tolist") else msg)]
    return msg


def node_spec(dep: Any, port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> Any:
    """The live view's NodeSpec for a deployment (a ground fleet or a MAV team): every topic of its robots."""
    from marlstack.ros_nodes.plan import NodeSpec
    kinds = topics.MAV if hasattr(dep, "mavs") else topics.GROUND
    return NodeSpec("foxglove_node", "foxglove", "/", {
        "topics": list(topics.robot_topics(dep.robot_names, kinds)), "host": host, "port": int(port)})


def make_node():
    import foxglove
    from foxglove.channels import PoseInFrameChannel
    from foxglove.messages import Pose, PoseInFrame, Quaternion, Timestamp, Vector3
    from rclpy.node import Node

    class FoxgloveNode(Node):
        def __init__(self) -> None:
            super().__init__("foxglove")
            names = list(declare(self, "topics", [""], "fully qualified topics to stream (types from ros_nodes.topics)"))
            host = declare(self, "host", "127.0.0.1", "address the WebSocket server binds to (127.0.0.1: this machine only)")
            port = declare(self, "port", DEFAULT_PORT, "WebSocket port (0: any free one, logged)", 0, 65535)
            unknown = [n for n in names if topics.topic_for_path(n) is None]
            if unknown or not names:
                raise StartError(f"parameter 'topics': unknown topic(s) {unknown or names}; "
                                 f"stream topics listed in ros_nodes/topics.py")
            try:
                self.server = foxglove.start_server(name="marlstack", host=host, port=port)
            except Exception as exc:  # port taken, address not ours: the SDK's own message says which
                raise StartError(f"cannot start the Foxglove server on {host}:{port}: {exc}") from None
            self.counts: dict[str, int] = {}
            for name in names:
                t = topics.topic_for_path(name)
                resolved = self.resolve_topic_name(name)
                channel = PoseInFrameChannel(resolved) if t.type in POSE_TYPES else \
                    foxglove.Channel(resolved, message_encoding="json")
                self.counts[resolved] = 0
                self.create_subscription(topics.message_class(t.type), name, self._forward(channel, t.type, resolved),
                                         topics.qos_profile(t.qos))
            self.get_logger().info(f"Foxglove live view of {len(names)} topics on ws://{host}:{self.server.port}")

        def _forward(self, channel: Any, msgtype: str, name: str):
            def pose(msg: Any) -> Any:
                p = msg.pose.pose if msgtype == "nav_msgs/msg/Odometry" else msg.pose
                stamp = msg.header.stamp
                return PoseInFrame(timestamp=Timestamp(stamp.sec, stamp.nanosec), frame_id=msg.header.frame_id or "world",
                                   pose=Pose(position=Vector3(x=p.position.x, y=p.position.y, z=p.position.z),
                                             orientation=Quaternion(x=p.orientation.x, y=p.orientation.y,
                                                                    z=p.orientation.z, w=p.orientation.w)))

            def cb(msg: Any) -> None:
                channel.log(pose(msg) if msgtype in POSE_TYPES else to_json(msg),
                            log_time=self.get_clock().now().nanoseconds)
                self.counts[name] += 1
            return cb

        def close(self) -> None:
            self.server.stop()

    return FoxgloveNode()


def main(argv: list[str] | None = None) -> int:
    return run_node(make_node, "foxglove_node", argv)


if __name__ == "__main__":
    sys.exit(main())
