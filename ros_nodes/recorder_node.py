"""Recorder: raw CDR subscriptions -> a rosbag2 MCAP bag (`rosbags` writer), stored exactly as received.

Messages are never deserialised (raw subscriptions), so the bag holds the bytes the publisher
sent, stamped with the receive time. Why the periodic flush: a recorder that is killed (power
loss, SIGKILL) never writes the MCAP footer or metadata.yaml. Closing the open chunk and flushing
the file every `flush_period_s` bounds what such a kill loses to that period; everything before
it is whole chunks on disk, which `marlstack replay` (and MCAP's own recovery) read back.
A clean stop (Ctrl-C / SIGTERM) writes the footer, the summary and metadata.yaml.
"""
from __future__ import annotations

import sys
from pathlib import Path

from marlstack.ros_nodes import topics
from marlstack.ros_nodes.runner import StartError, declare, run_node


def bag_qos(kind: str):
    """Our QoS class as rosbags' Qos, so `ros2 bag play` re-offers what the publisher offered."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
    q = topics.QOS[kind]
    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, q["depth"], QosReliability[q["reliability"].upper()],
               QosDurability[q["durability"].upper()], zero, zero, QosLiveliness.AUTOMATIC, zero, False)


def make_node():
    from rclpy.node import Node
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    class RecorderNode(Node):
        def __init__(self) -> None:
            super().__init__("recorder")
            output = declare(self, "output", "", "rosbag2 bag directory to create (must not exist)")
            names = list(declare(self, "topics", [""], "fully qualified topics to record (types from ros_nodes.topics)"))
            flush = declare(self, "flush_period_s", 0.25, "close the open chunk and flush at this period: the most "
                            "a killed recorder can lose", 0.01, 60.0)
            if not output:
                raise StartError("parameter 'output' (bag directory) is empty")
            unknown = [n for n in names if topics.topic_for_path(n) is None]
            if unknown or not names:
                raise StartError(f"parameter 'topics': unknown topic(s) {unknown or names}; "
                                 f"record topics listed in ros_nodes/topics.py")
            self.path = Path(output)  # a rosbag2 directory at exactly this path (holding <name>.mcap)
            if self.path.exists():
                raise StartError(f"{self.path} exists already; choose a new bag path (bags are never overwritten)")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            typestore = get_typestore(Stores.ROS2_KILTED)
            self.writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
            self.writer.open()
            self.counts: dict[str, int] = {}
            for name in names:
                t = topics.topic_for_path(name)
                resolved = self.resolve_topic_name(name)  # after remapping: what is actually on the wire
                conn = self.writer.add_connection(resolved, t.type, typestore=typestore,
                                                  offered_qos_profiles=[bag_qos(t.qos)])
                self.counts[resolved] = 0
                self.create_subscription(topics.message_class(t.type), name, self._writer_for(conn, resolved),
                                         topics.qos_profile(t.qos), raw=True)
            self.create_timer(flush, self.flush)
            self.get_logger().info(f"recording {len(names)} topics to {self.path}")

        def _writer_for(self, conn, name: str):
            def cb(raw: bytes) -> None:
                self.writer.write(conn, self.get_clock().now().nanoseconds, raw)
                self.counts[name] += 1
            return cb

        def flush(self) -> None:
            # rosbags' MCAP writer only closes a chunk at 1 MiB; close it now so the bytes become a
            # complete, indexed chunk on disk (the storage object is rosbags' McapWriter).
            storage = self.writer.storage
            if storage is not None:
                if storage.chunk.bio.tell():
                    storage.close_chunk()
                storage.bio.flush()

        def close(self) -> None:
            if self.writer.storage is not None:
                self.writer.close()
                total = sum(self.counts.values())
                print(f"recorder: wrote {total} messages to {self.path}", file=sys.stderr, flush=True)

    return RecorderNode()


def main(argv: list[str] | None = None) -> int:
    return run_node(make_node, "recorder_node", argv)


if __name__ == "__main__":
    sys.exit(main())
