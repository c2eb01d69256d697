"""`replay play` over real DDS (loopback only): our recorder captures what replay publishes.

One isolated run (own network namespace with only `lo`, own ROS_DOMAIN_ID): the recorder node
subscribes to the fleet's topics, `marlstack replay play` publishes a synthetic bag 2x faster,
the recorder stops on SIGINT. Every recorded message must be byte-identical to the original (up to DDS's alignment padding), and
the independent MCAP reader (mcap + mcap_ros2) must decode all of them.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from replay_fixtures import ROBOTS, known_fleet, write_bag
from marlstack.ros_nodes import topics
from marlstack.ros_nodes.isolation import isolated, ros_env
from marlstack.replay.bag import Bag

ROOT = Path(__file__).resolve().parents[2]

DRIVER = r"""
import json, os, signal, subprocess, sys, time
py, out, bag, topics, play_args, domain_shift = sys.argv[1:7]
env = dict(os.environ, ROS_DOMAIN_ID=str(int(os.environ["ROS_DOMAIN_ID"]) + int(domain_shift)))
rec = subprocess.Popen([py, "-m", "marlstack.ros_nodes.recorder_node", "--ros-args", "-p", f"output:={out}",
                        "-p", f"topics:={topics}"], stderr=subprocess.PIPE, text=True, env=env)
line = ""
while "recording" not in line:
    line = rec.stderr.readline()
    if not line:
        sys.exit("recorder died: " + rec.stderr.read())
play = subprocess.run([py, "-m", "marlstack.cli", "replay", "play", bag, "--start-delay", "20",
                       *json.loads(play_args.replace("__SHIFTED__", env["ROS_DOMAIN_ID"]))],
                      capture_output=True, text=True, timeout=60)
print(play.stdout, play.stderr)
time.sleep(0.5)
rec.send_signal(signal.SIGINT)
rec.wait(timeout=20)
sys.exit(play.returncode)
"""


def same_sample(got: bytes, sent: bytes) -> bool:
    """DDS pads a serialized sample with up to 3 zero bytes to a multiple of 4; rosbags does not."""
    pad = got[len(sent):]
    return got[:len(sent)] == sent and len(pad) <= 3 and not pad.strip(b"\0")


COMMANDS = sorted(topics.robot_topics(ROBOTS, (topics.CMD_VEL_NOMINAL, topics.CMD_VEL)))


def replay_into_recorder(tmp_path: Path, original: Path, names: list[str], play_args: list[str],
                         domain_shift: int = 0) -> tuple[subprocess.CompletedProcess, Path]:
    """Record `names` (on the run's ROS domain + `domain_shift`) while `replay play` runs with `play_args`."""
    out = tmp_path / "recorded"
    argv = [sys.executable, "-c", DRIVER, sys.executable, str(out), str(original), json.dumps(names),
            json.dumps(play_args), str(domain_shift)]
    env = ros_env()
    env["MARLSTACK_NETNS"] = "1"
    proc = subprocess.run(isolated(argv), env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc, out


def test_play_republishes_bytes_that_our_recorder_captures(tmp_path):
    """A default replay re-publishes everything except command topics, which it never publishes."""
    original = write_bag(tmp_path / "original", known_fleet())
    names = sorted(topics.robot_topics(ROBOTS, (topics.POSE, topics.GOAL, topics.CMD_VEL_NOMINAL,
                                                topics.CMD_VEL, topics.DIAGNOSTICS)))
    proc, out = replay_into_recorder(tmp_path, original, names, ["--rate", "2", "--clock"])
    n_commands = sum(1 for m in known_fleet() if m[0] in COMMANDS)
    assert n_commands > 0 and f"published {len(known_fleet()) - n_commands} messages" in proc.stdout
    assert f"not re-publishing {len(COMMANDS)} command topic(s) ({', '.join(COMMANDS)})" in proc.stdout

    sent: dict[str, list[bytes]] = defaultdict(list)
    for rec in Bag(original).records():
        sent[rec.topic].append(rec.raw)
    got: dict[str, list[bytes]] = defaultdict(list)
    recorded = Bag(out)
    for rec in recorded.records():
        got[rec.topic].append(rec.raw)
    assert recorded.status.complete
    assert not any(got[c] for c in COMMANDS)  # the recorder listened on every command topic: nothing came
    names = [n for n in names if n not in COMMANDS]
    for topic in (topics.DIAGNOSTICS.path(), *(topics.GOAL.path(r) for r in ROBOTS)):  # reliable QoS: all of it
        assert len(got[topic]) == len(sent[topic]), topic
        assert all(same_sample(g, s) for g, s in zip(got[topic], sent[topic])), topic
    for topic in names:  # best effort on loopback: whatever arrived is exactly what was sent, in order
        it = iter(sent[topic])
        assert all(any(same_sample(raw, s) for s in it) for raw in got[topic]), topic
        assert got[topic], topic  # depth-1 best effort may drop on a loaded machine, but not everything

    with next(out.glob("*.mcap")).open("rb") as f:
        decoded = list(make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages())
    assert len(decoded) == sum(map(len, got.values()))
    first_pose = next(d for _, c, _, d in decoded if c.topic == "/robot_1/pose")
    assert (first_pose.pose.position.x, first_pose.pose.position.y) == (0.5, 0.1)


def test_play_commands_only_when_asked_under_a_named_domain(tmp_path):
    """--actuation with --domain-id: the command topics reach a recorder on that domain, with a warning."""
    original = write_bag(tmp_path / "original", known_fleet())
    proc, out = replay_into_recorder(tmp_path, original, COMMANDS, ["--rate", "4", "--actuation", "--domain-id",
                                                                    "__SHIFTED__", "--topics", *COMMANDS],
                                     domain_shift=1)
    assert "warning: re-publishing 6 command topic(s)" in proc.stdout and "ROS domain" in proc.stdout
    got = {rec.topic for rec in Bag(out).records()}
    assert got == set(COMMANDS)


def test_play_refuses_commands_without_a_named_place(tmp_path, capsys):
    from marlstack.replay.cli import main

    original = write_bag(tmp_path / "original", known_fleet())
    assert main(["play", str(original), "--actuation"]) == 2
    assert "only under a namespace or ROS domain you name" in capsys.readouterr().err
    assert main(["play", str(original), "--topics", "/robot_0/pose", "/robot_0/cmd_vel"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/robot_0/cmd_vel carry vehicle commands" in err
