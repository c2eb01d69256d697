"""`replay play`: put a bag back on ROS 2 with its original timing (scaled), optionally with /clock.

Command topics (ros_nodes.topics.is_actuation: cmd_vel, set-points, thrusts) are left out unless
the caller passes `actuation=True`, and then only under a namespace or ROS domain the user named:
on a lab network a replayed cmd_vel would drive the real robots.

Messages go out as the raw CDR bytes stored in the bag (`Publisher.publish(bytes)`), so a
replay is byte-identical to what was recorded and needs no decoding. Topics of ours keep the
stack's QoS (latched goals reach late joiners); others get a reliable depth-10 profile.
rclpy is imported only here: every other replay command runs without ROS installed.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable

from marlstack.ros_nodes import topics as stack_topics
from marlstack.replay.bag import Bag

CLOCK_TOPIC, CLOCK_TYPE = "/clock", "rosgraph_msgs/msg/Clock"
DEFAULT_DEPTH = 10
DISCOVERY_POLL_S = 0.05
END_LINGER_S = 0.2


def _qos(topic: str) -> Any:
    known = stack_topics.topic_for_path(topic)
    if known is not None:
        return stack_topics.qos_profile(known.qos)
    from rclpy.qos import QoSProfile
    return QoSProfile(depth=DEFAULT_DEPTH)


class ActuationRefused(Exception):
    """Command topics were asked for without `actuation=True` and a namespace or domain."""


def play(bag: Bag, rate: float = 1.0, topics: Iterable[str] | None = None, loop: bool = False,
         clock: bool = False, start_delay_s: float = 0.5, say: Callable[[str], None] = print,
         actuation: bool = False, namespace: str | None = None, domain_id: int | None = None) -> int:
    """Publish the bag's messages; returns how many were published. Ctrl-C stops cleanly.

    Playing starts once every topic has a subscriber, or after `start_delay_s` at the latest.
    `namespace` prefixes every re-published topic; `domain_id` picks the ROS domain.
    """
    import rclpy

    wanted = set(topics) if topics else None
    if not bag.types:
        for _ in bag.records():
            pass
    if wanted:
        missing = sorted(wanted - set(bag.types))
        if missing:
            raise KeyError(", ".join(missing))
    commands = sorted(t for t in bag.types if stack_topics.is_actuation(t) and (wanted is None or t in wanted))
    if actuation and not namespace and domain_id is None:
        raise ActuationRefused("command topics are re-published only under a namespace or ROS domain you name")
    if commands and not actuation:
        if wanted is not None:
            raise ActuationRefused(f"{', '.join(commands)} carry vehicle commands; they are re-published only "
                                   f"with --actuation and --namespace NS or --domain-id N")
        say(f"not re-publishing {len(commands)} command topic(s) ({', '.join(commands)}); "
            f"--actuation with --namespace or --domain-id includes them")
    if commands and actuation:
        where = " and ".join(w for w in (f"namespace /{namespace.strip('/')}" if namespace else "",
                                         f"ROS domain {domain_id}" if domain_id is not None else "") if w)
        say(f"warning: re-publishing {len(commands)} command topic(s) ({', '.join(commands)}) under {where}: "
            f"anything listening there will act on them")
    prefix = f"/{namespace.strip('/')}" if namespace else ""
    rclpy.init(args=[], domain_id=domain_id)
    node = rclpy.create_node("marlstack_replay")
    published = 0
    try:
        pubs: dict[str, Any] = {}
        for topic, msgtype in sorted(bag.types.items()):
            if (wanted is not None and topic not in wanted) or (topic in commands and not actuation):
                continue
            try:
                cls = stack_topics.message_class(msgtype)
            except (ImportError, AttributeError, ValueError):
                say(f"warning: {topic}: message type {msgtype!r} is not installed for rclpy; not published")
                continue
            pubs[topic] = node.create_publisher(cls, prefix + topic, _qos(topic))
        clock_pub = clock_msg = None
        if clock:
            clock_cls = stack_topics.message_class(CLOCK_TYPE)
            clock_pub, clock_msg = node.create_publisher(clock_cls, CLOCK_TOPIC, DEFAULT_DEPTH), clock_cls()
        deadline = time.monotonic() + start_delay_s  # let DDS discovery match subscribers first
        while time.monotonic() < deadline and not all(p.get_subscription_count() for p in pubs.values()):
            time.sleep(DISCOVERY_POLL_S)
        while True:
            start, t_first = time.monotonic(), None
            for rec in bag.records(pubs):
                t_first = rec.t_ns if t_first is None else t_first
                wait = start + (rec.t_ns - t_first) / 1e9 / rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if clock_pub is not None:
                    clock_msg.clock.sec, clock_msg.clock.nanosec = divmod(rec.t_ns, 1_000_000_000)
                    clock_pub.publish(clock_msg)
                pubs[rec.topic].publish(rec.raw)
                published += 1
            for line in bag.status.stops:
                say(f"warning: {line}")
            if not loop or t_first is None:
                break
        time.sleep(END_LINGER_S)  # reliable samples still in flight would die with the publisher
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return published
