"""A MAV team's bag through `replay eval / report / info / csv` (tests/data/mav_team: a SITL recording
of the shipped cable3 policy flying at the certified wall, so the onboard safety stage changes mav_0's and
mav_1's set-points; recorded on a loaded machine, so ~40 % of the set-points are the nodes' position holds.
The cable rows do not bind in this cut: tests/ros_nodes/test_mav_policy_node.py replays a set-point they changed)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from marlstack.replay.bag import Bag
from marlstack.replay.cli import main
from marlstack.replay.team import evaluate_team
from marlstack.policies.runtime import PolicyRuntime

DATA = Path(__file__).resolve().parents[1] / "data" / "mav_team"
BAG, POLICY = DATA / "cable3_wall", DATA / "cable3.onnx"


@pytest.fixture(scope="module")
def result():
    return evaluate_team(Bag(BAG), PolicyRuntime(POLICY), None, str(POLICY))


def test_eval_reruns_policy_and_safety_stage(result):
    per = result["per_mav"]
    assert result["safety"] == "onboard" and list(per) == ["mav_0", "mav_1", "mav_2"]
    # every set-point is compared, or recognised as a hold, or said to be not pinned down by the log
    assert all(v["compared"] + v["holds"] + v["inputs_missing_from_log"] == v["commands"] for v in per.values()), per
    assert all(v["compared"] >= max(0.5 * v["commands"], 40) for v in per.values()), per
    assert result["max_abs_diff"] <= 1e-5  # every compared set-point, those the stage changed included
    # the stage braked mav_0 at the wall: by metres per second squared, reproduced to 1e-5
    assert per["mav_0"]["interventions"] >= 20 and per["mav_0"]["max_intervention"] > 1.0
    assert per["mav_0"]["max_abs_diff_interventions"] <= 1e-5
    assert per["mav_0"]["policy_max_abs_diff"] <= 1e-5  # the raw policy where the stage let it pass
    s = result["series"]["mav_0"]
    stepped = np.array([st == "compared" for st in s["status"]]) & (np.abs(s["raw"][:, 0] - s["logged"][:, 0]) > 0.1)
    assert stepped.sum() >= 20  # comparing the raw policy alone with the log would have failed these
    assert np.max(np.abs(s["raw"][stepped, 3:] - s["logged"][stepped, 3:])) <= 1e-5  # rates pass unchanged
    assert sum(v["holds"] for v in per.values()) >= 1  # the node's own position hold is recognised, not compared


def test_eval_table_and_csv(result, tmp_path):
    from marlstack.replay.evaluate import format_result, write_outputs
    out = format_result(result)
    assert "safety stage onboard" in out and "stage steps" in out
    write_outputs(result, tmp_path)
    rows = list(csv.DictReader((tmp_path / "eval_commands.csv").open()))
    assert {r["mav"] for r in rows} == {"mav_0", "mav_1", "mav_2"}
    assert len(rows) == sum(v["commands"] for v in result["per_mav"].values())
    assert {"acc_x_logged", "acc_x_rerun", "acc_x_policy", "status"} <= set(rows[0])
    assert (tmp_path / "eval_commands.png").stat().st_size > 10_000


def test_info_and_csv_on_a_mav_bag(tmp_path, capsys):
    assert main(["info", str(BAG), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    topics = {t["topic"]: t for t in info["topics"]}
    assert topics["/mav_0/setpoint"]["type"] == "trajectory_msgs/msg/MultiDOFJointTrajectory"
    assert topics["/load/odom"]["count"] > 50 and info["complete"]
    assert main(["csv", str(BAG), "/mav_0/setpoint", "-o", str(tmp_path / "sp.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "sp.csv").open()))
    assert len(rows) == topics["/mav_0/setpoint"]["count"]
    assert min(float(r["points.0.accelerations.0.linear.x"]) for r in rows) == pytest.approx(-2.5)  # the stage's brake


def test_report_on_a_mav_bag(tmp_path, capsys):
    assert main(["report", str(BAG), "-o", str(tmp_path), "--profile", "mav_corl25", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["mavs"] == ["mav_0", "mav_1", "mav_2"] and s["samples"] > 50
    (goal,) = s["goals"]
    assert goal["position"] == [3.4, 0.0, 1.5] and goal["min_position_error_m"] < 0.2 < goal["until_s"]
    assert s["min_separation"]["distance_m"] > 0.35 and not s["min_separation"]["violated"]
    share = s["cables"]["mav_0"]["mean_share_n"]
    assert share == pytest.approx(1.4 * 9.81 / 3)
    # the estimated tensions carry the load: they sum to about its weight (the cables lean ~20 degrees)
    total = sum(c["tension_estimate_n"]["mean"] for c in s["cables"].values())
    assert 3 * share < total < 3 * share / np.cos(np.radians(35))
    assert all(c["slack_events"] == 0 for c in s["cables"].values())  # taut in flight
    assert all(v["setpoints"] > 40 for v in s["tracking"].values())
    for f in ("team_3d.png", "load_error.png", "cables.png", "tracking.png"):
        assert (tmp_path / f).stat().st_size > 10_000, f
    assert main(["report", str(BAG), "-o", str(tmp_path), "--profile", "gritsbot_x"]) == 2
    assert "MAV team's bag" in capsys.readouterr().err


def test_message_times_fast_path_agrees_and_distrusts_bad_indexes(tmp_path):
    from marlstack.replay import mcap_records as mr

    def times_slow(bag):
        out = {}
        for rec in bag.records():
            out.setdefault(rec.topic, []).append(rec.t_ns)
        return out

    src = next(BAG.glob("*.mcap"))
    with src.open("rb") as f:
        kinds = {type(r).__name__ for r in mr.walk(f, src.stat().st_size, times=True)}
    assert "MessageBlock" in kinds and "Message" not in kinds  # every chunk came through its indexes
    expected = times_slow(Bag(BAG))
    assert {k: v.tolist() for k, v in Bag(BAG).message_times().items()} == expected
    # a message index pointing one byte off: that chunk is walked record by record, nothing changes
    data = bytearray(src.read_bytes())
    pos = len(mr.MAGIC)
    while data[pos] != mr.MESSAGE_INDEX:
        pos += 9 + int.from_bytes(data[pos + 1:pos + 9], "little")
    first_offset = pos + 9 + 2 + 4 + 8  # channel id, byte length, then (log time, offset) pairs
    data[first_offset:first_offset + 8] = (int.from_bytes(data[first_offset:first_offset + 8], "little") + 1).to_bytes(8, "little")
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(bytes(data))
    assert {k: v.tolist() for k, v in Bag(bad).message_times().items()} == times_slow(Bag(bad)) == expected


def _split_per_vehicle(tmp_path: Path, shifts_s: list[float]) -> list[Path]:
    """One log per MAV, as its own recorder would write it on its own clock: the load and the goal, its
    own odometry and set-points (the others' odometry only in their logs)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    store = get_typestore(Stores.ROS2_KILTED)
    records = list(Bag(BAG).records())
    out = []
    for k, shift in enumerate(shifts_s):
        keep = {"/load/odom", "/load/goal", f"/mav_{k}/odom", f"/mav_{k}/setpoint"}
        path = tmp_path / f"mav_{k}"
        with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
            conns = {}
            for r in records:
                if r.topic in keep:
                    if r.topic not in conns:
                        conns[r.topic] = w.add_connection(r.topic, r.msgtype, typestore=store)
                    w.write(conns[r.topic], r.t_ns + int(shift * 1e9), r.raw)
        out.append(path)
    return out


def test_eval_on_one_log_per_vehicle_aligned_by_shared_stamps(result, tmp_path, capsys):
    logs = _split_per_vehicle(tmp_path, [0.0, 3.25, -7.5])
    assert main(["eval", *map(str, logs), "--policy", str(POLICY), "--json", "--fail-above", "1e-5"]) == 0
    res = json.loads(capsys.readouterr().out)
    offsets = [r["offset_s"] for r in res["alignment"]["logs"]]
    assert res["alignment"]["method"] == "shared header stamps"
    assert np.allclose(offsets, [0.0, -3.25, 7.5], atol=1e-6)  # the clocks put back together
    assert [r["vehicle"] for r in res["alignment"]["logs"]] == ["mav_0", "mav_1", "mav_2"]
    for m, v in res["per_mav"].items():  # the same verdicts as from the team's one bag
        ref = result["per_mav"][m]
        assert (v["commands"], v["compared"], v["holds"], v["interventions"]) == \
            (ref["commands"], ref["compared"], ref["holds"], ref["interventions"]), m
    assert res["max_abs_diff"] <= 1e-5
    # given offsets instead (relative to the first log); a log that shares nothing with the first one
    # cannot be aligned without them
    from marlstack.replay.merge import MergedBag
    given = MergedBag([Bag(p) for p in logs], [10.0, 6.75, 17.5])
    assert given.alignment()["method"] == "given offsets" and given.offsets_s == [0.0, -3.25, 7.5]
    assert main(["eval", str(logs[0]), str(BAG / "metadata.yaml"), "--policy", str(POLICY)]) == 2
    assert main(["eval", str(logs[0]), "--policy", str(POLICY), "--offsets", "1"]) == 2
    assert "needs several logs" in capsys.readouterr().err
