"""Message <-> number conversions, with the checks the watchdog relies on.

Readers are duck-typed: they work on rclpy messages and on the objects `rosbags` deserialises
from a bag alike, so replay decodes logs with exactly the code the robots run. Writers import
the message classes lazily (only processes that publish need them).
"""
from __future__ import annotations

import math
from typing import Any

# A unit quaternion off by more than this is not a pose estimate but a corrupted message.
QUATERNION_NORM_TOLERANCE = 0.1


class MessageError(ValueError):
    """A message that must not reach a controller; the text says why."""


class NonFinite(MessageError):
    """A NaN or infinite field."""


class Malformed(MessageError):
    """Missing fields or values that cannot describe the quantity (e.g. a zero quaternion)."""


def floats(values: dict[str, Any], what: str) -> dict[str, float]:
    """Named fields as floats; raises Malformed (not a number) or NonFinite naming `what` and the field."""
    out = {}
    for key, v in values.items():
        try:
            out[key] = float(v)
        except (TypeError, ValueError):
            raise Malformed(f"{what}: field {key} is not a number ({v!r})") from None
    bad = [k for k, v in out.items() if not math.isfinite(v)]
    if bad:
        raise NonFinite(f"{what}: non-finite {', '.join(bad)}")
    return out


def stamp_seconds(stamp: Any) -> float:
    """builtin_interfaces/Time -> seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def check_quaternion(x: float, y: float, z: float, w: float, what: str) -> tuple[float, float, float, float]:
    """The quaternion, or Malformed when it is too far from unit length to be an orientation."""
    norm = math.sqrt(x * x + y * y + z * z + w * w)
    if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
        raise Malformed(f"{what}: orientation quaternion has norm {norm:.3g}, expected 1")
    return x, y, z, w


def yaw_from_quaternion(x: float, y: float, z: float, w: float) -> float:
    """Heading (rotation about world z) of a unit quaternion."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def pose_from_msg(msg: Any) -> tuple[float, float, float, float]:
    """PoseStamped -> (x, y, yaw, stamp_s); raises NonFinite / Malformed."""
    try:
        p, q, stamp = msg.pose.position, msg.pose.orientation, msg.header.stamp
        f = floats({"position.x": p.x, "position.y": p.y, "orientation.x": q.x, "orientation.y": q.y,
                    "orientation.z": q.z, "orientation.w": q.w}, "pose")
        t = stamp_seconds(stamp)
    except AttributeError as exc:
        raise Malformed(f"pose: not a PoseStamped ({exc})") from None
    quat = check_quaternion(f["orientation.x"], f["orientation.y"], f["orientation.z"], f["orientation.w"], "pose")
    yaw = yaw_from_quaternion(*quat)
    return f["position.x"], f["position.y"], yaw, t


def goal_from_msg(msg: Any) -> tuple[float, float]:
    """PoseStamped goal -> (x, y); orientation is not part of a navigation goal."""
    try:
        p = msg.pose.position
        f = floats({"position.x": p.x, "position.y": p.y}, "goal")
    except AttributeError as exc:
        raise Malformed(f"goal: not a PoseStamped ({exc})") from None
    return f["position.x"], f["position.y"]


def points_from_msg(msg: Any) -> list[tuple[float, float]]:
    """PoseArray of landmarks -> [(x, y), ...] in message order; raises NonFinite / Malformed."""
    try:
        points = [(q.position.x, q.position.y) for q in msg.poses]
    except AttributeError as exc:
        raise Malformed(f"landmarks: not a PoseArray ({exc})") from None
    if not points:
        raise Malformed("landmarks: empty PoseArray")
    return [tuple(floats({"x": x, "y": y}, f"landmarks[{i}]").values()) for i, (x, y) in enumerate(points)]


def points_to_msg(points: Any, stamp_s: float, frame_id: str = "world") -> Any:
    """[(x, y), ...] -> PoseArray in the world frame (identity orientations)."""
    from geometry_msgs.msg import Pose, PoseArray
    msg = PoseArray()
    msg.header.frame_id = frame_id
    set_stamp(msg.header.stamp, stamp_s)
    for x, y in points:
        q = Pose()
        q.position.x, q.position.y, q.orientation.w = float(x), float(y), 1.0
        msg.poses.append(q)
    return msg


def numbers_from_msg(msg: Any, what: str) -> list[float]:
    """Float64MultiArray -> its data as floats (the layout is ignored); raises NonFinite / Malformed naming `what`."""
    try:
        data = list(msg.data)
    except (AttributeError, TypeError) as exc:
        raise Malformed(f"{what}: not a Float64MultiArray ({exc})") from None
    return list(floats({f"data[{i}]": v for i, v in enumerate(data)}, what).values())


def numbers_to_msg(values: Any) -> Any:
    """A flat sequence of numbers -> Float64MultiArray (no layout: the topic's doc says what each element is)."""
    from std_msgs.msg import Float64MultiArray
    return Float64MultiArray(data=[float(v) for v in values])


def twist_to_cmd(msg: Any) -> tuple[float, float]:
    """Twist -> (v, omega); raises NonFinite / Malformed."""
    try:
        f = floats({"linear.x": msg.linear.x, "angular.z": msg.angular.z}, "cmd_vel")
    except AttributeError as exc:
        raise Malformed(f"cmd_vel: not a Twist ({exc})") from None
    return f["linear.x"], f["angular.z"]


def cmd_to_twist(v: float, omega: float) -> Any:
    """(v, omega) -> Twist; non-finite values become a stop, never a message carrying NaN."""
    from geometry_msgs.msg import Twist
    msg = Twist()
    if math.isfinite(v) and math.isfinite(omega):
        msg.linear.x, msg.angular.z = float(v), float(omega)
    return msg


def pose_to_msg(x: float, y: float, yaw: float, stamp_s: float, frame_id: str = "world") -> Any:
    """(x, y, yaw) -> PoseStamped in the world frame."""
    from geometry_msgs.msg import PoseStamped
    msg = PoseStamped()
    msg.header.frame_id = frame_id
    set_stamp(msg.header.stamp, stamp_s)
    msg.pose.position.x, msg.pose.position.y = float(x), float(y)
    msg.pose.orientation.z, msg.pose.orientation.w = math.sin(yaw / 2.0), math.cos(yaw / 2.0)
    return msg


def set_stamp(stamp: Any, seconds: float) -> None:
    sec = math.floor(seconds)
    stamp.sec, stamp.nanosec = int(sec), min(int(round((seconds - sec) * 1e9)), 999_999_999)
