"""A scenario on the task topic end to end over real DDS: launch/arctic_transport4.yaml in SITL, the sim node hosting
the task (terrain from sim.seed, the team's map, class / terrain speed), one fleet policy node commanding every robot
through the generic task adapter, fleet safety, recorded; the bag read back with the standard rosbags reader and
replayed through the same adapter.

Drives the committed trained arctic transport export (tests/data/arctic_transport_4, tests/data/README.md) from starts
0.35 m below the goal zone (solved at ~2 s of the run; the example's own starts take ~16 s).
"""
import numpy as np
import yaml
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from marlstack.replay.bag import Bag
from marlstack.replay.evaluate import evaluate
from marlstack.replay.fleet import load_config
from marlstack.ros_nodes.task_adapter import task_sensors
from ros_fixtures import REPO, config_with_policy, sitl, stopped

POLICY = REPO / "tests" / "data" / "arctic_transport_4" / "policy.onnx"


def test_an_arctic_team_solves_its_task_over_ros_and_the_log_replays_through_the_task_adapter(tmp_path):
    config = config_with_policy("arctic_transport4.yaml", POLICY, tmp_path)
    data = yaml.safe_load(config.read_text())
    for r in data["robots"]:
        r["start"][1] = 0.25   # the goal zone starts at y = 0.6
    config.write_text(yaml.safe_dump(data))
    bag = tmp_path / "run"
    report, _ = sitl(config, "--duration", "40", "--until-goals", "--record", str(bag), "--arrangement", "fleet_policy")
    assert report["ok"], report["error"]
    assert report["scenario"] == "arctic_transport" and report["done_at_s"] is not None, report   # the scenario's solved
    assert report["success_label"] == "robots whose team's ground robots all reached the goal zone", report
    for name, r in report["robots"].items():
        assert r["goal_reached"] and r["collision_steps"] == r["boundary_exit_steps"] == 0, (name, r)
    assert [r["class"] for r in report["robots"].values()] == ["drone", "ice", "water", "drone"]  # the YAML's classes
    assert set(report["exit_codes"]) == {"/sim", "/fleet_policy", "/safety", "/recorder"}, report["exit_codes"]
    assert all(map(stopped, report["exit_codes"].values())), report["exit_codes"]
    assert report["bag"] == str(bag) and (bag / "metadata.yaml").is_file()   # a rosbag2 directory at the path given

    with Reader(bag) as reader:  # the standard rosbags reader: footer, summary and metadata.yaml are there
        counts = {c.topic: c.msgcount for c in reader.connections}
        typestore = get_typestore(Stores.ROS2_KILTED)
        conn = [c for c in reader.connections if c.topic in ("/robot_1/pose", "/robot_1/task")]
        msgs = {c.topic: [] for c in conn}
        for c, _, raw in reader.messages(connections=conn):
            msgs[c.topic].append(typestore.deserialize_cdr(raw, c.msgtype))
    for i in range(4):
        for topic in ("pose", "cmd_vel_nominal", "cmd_vel"):
            assert counts[f"/robot_{i}/{topic}"] > 30, (topic, counts)
    first = msgs["/robot_1/pose"][0].pose.position
    assert abs(first.x + 0.4) < 0.05 and abs(first.y - 0.25) < 0.05
    # the task topic: the team's map (the message's last 5 x 8 numbers) grew as the robots went up the field
    size = sum(np.prod(s) for s in task_sensors("arctic_transport", 4).values())
    maps = [np.asarray(m.data)[-40:] for m in msgs["/robot_1/task"]]
    assert all(len(m.data) == size for m in msgs["/robot_1/task"])
    assert np.count_nonzero(maps[-1]) > np.count_nonzero(maps[0]) > 0, [np.count_nonzero(m) for m in maps]

    # replay re-runs the policy on the logged poses and task messages and gets the logged commands back
    res = evaluate(Bag(bag), POLICY, load_config(config))
    for name, r in res["per_robot"].items():
        assert r["compared"] >= 0.8 * r["commands"] and r["pose_triggered"] > 30, (name, r)
    exact = [np.max(np.abs(s["logged"][k] - s["policy"][k])) <= 1e-5 for s in res["series"].values()
             for k, st in enumerate(s["status"]) if st == "compared"]
    assert np.mean(exact) >= 0.95, (sum(exact), len(exact))
