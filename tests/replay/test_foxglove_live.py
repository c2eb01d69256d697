"""The live view over real DDS and a real WebSocket (loopback only): `ros_nodes/foxglove_node.py` streams
what the stack publishes through foxglove-sdk's server; a `websockets` client speaking the Foxglove
WebSocket protocol subscribes to every advertised channel and decodes what arrives."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from marlstack.ros_nodes import topics
from marlstack.ros_nodes.isolation import run_isolated

ROOT = Path(__file__).resolve().parents[2]

DRIVER = r"""
import base64, json, re, struct, subprocess, sys, time
import rclpy
from geometry_msgs.msg import PoseStamped, Twist
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from websockets.sync.client import connect
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

py, out, names = sys.argv[1:4]
node = subprocess.Popen([py, "-m", "marlstack.ros_nodes.foxglove_node", "--ros-args", "-p", f"topics:={names}", "-p", "port:=0"],
                        stderr=subprocess.PIPE, text=True)
url = None
while url is None:
    line = node.stderr.readline()
    if not line:
        sys.exit("foxglove node died: " + node.stderr.read())
    m = re.search(r"ws://([0-9.]+):(\d+)", line)
    url = m and m.group(0)
rclpy.init()
pub = rclpy.create_node("publisher")
pose_pub = pub.create_publisher(PoseStamped, "/robot_0/pose", 1)
cmd_pub = pub.create_publisher(Twist, "/robot_0/cmd_vel", 1)
diag_pub = pub.create_publisher(DiagnosticArray, "/diagnostics", 10)
received, channels = {}, {}
with connect(url, subprotocols=["foxglove.sdk.v1", "foxglove.websocket.v1"],
             open_timeout=10) as ws:
    subscribed = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(received) < 3:
        pose = PoseStamped()
        pose.header.frame_id = "world"
        pose.pose.position.x, pose.pose.position.y, pose.pose.orientation.w = 1.5, -0.5, 1.0
        pose_pub.publish(pose)
        cmd = Twist()
        cmd.linear.x, cmd.angular.z = 0.3, -0.2
        cmd_pub.publish(cmd)
        diag = DiagnosticArray()
        diag.status = [DiagnosticStatus(name="/safety", hardware_id="robot_0", message="ok",
                                        values=[KeyValue(key="interventions", value="7")])]
        diag_pub.publish(diag)
        try:
            msg = ws.recv(timeout=0.05)
        except TimeoutError:
            continue
        if isinstance(msg, str):
            doc = json.loads(msg)
            if doc.get("op") == "advertise":
                for ch in doc["channels"]:
                    channels[ch["id"]] = ch
                    subscribed[len(subscribed) + 1] = ch
                ws.send(json.dumps({"op": "subscribe", "subscriptions": [
                    {"id": k, "channelId": ch["id"]} for k, ch in subscribed.items() if ch in doc["channels"]]}))
            continue
        if msg[0] != 1:  # message data: opcode, subscription id, log time, payload
            continue
        sub, _ = struct.unpack_from("<IQ", msg, 1)
        ch, payload = subscribed[sub], msg[13:]
        if ch["topic"] in received:
            continue
        if ch["encoding"] == "json":
            received[ch["topic"]] = json.loads(payload)
        else:  # protobuf: the schema is a FileDescriptorSet, base64
            fds = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(ch["schema"]))
            pool = descriptor_pool.DescriptorPool()
            for f in fds.file:
                pool.Add(f)
            cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(ch["schemaName"]))
            m = cls.FromString(payload)
            received[ch["topic"]] = {"schema": ch["schemaName"], "x": m.pose.position.x, "y": m.pose.position.y,
                                     "w": m.pose.orientation.w, "frame_id": m.frame_id}
node.terminate()
node.wait(timeout=20)
json.dump({"url": url, "received": received,
           "channels": {c["topic"]: [c["encoding"], c.get("schemaName", "")] for c in channels.values()}}, open(out, "w"))
"""


def test_live_view_streams_poses_commands_and_diagnostics(tmp_path):
    out = tmp_path / "live.json"
    names = sorted(topics.robot_topics(["robot_0"]))
    proc = run_isolated([sys.executable, "-c", DRIVER, sys.executable, str(out), json.dumps(names).replace('"', "'")],
                        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    live = json.loads(out.read_text())
    assert live["url"].startswith("ws://127.0.0.1:")  # bound to this machine only by default
    assert set(live["channels"]) == set(names)  # every topic of the robot advertised
    assert live["channels"]["/robot_0/pose"] == ["protobuf", "foxglove.PoseInFrame"]
    got = live["received"]
    assert got["/robot_0/pose"] == {"schema": "foxglove.PoseInFrame", "x": 1.5, "y": -0.5, "w": 1.0, "frame_id": "world"}
    assert got["/robot_0/cmd_vel"]["linear"]["x"] == 0.3 and got["/robot_0/cmd_vel"]["angular"]["z"] == -0.2
    (status,) = got["/diagnostics"]["status"]
    assert status["values"] == [{"key": "interventions", "value": "7"}] and status["hardware_id"] == "robot_0"
