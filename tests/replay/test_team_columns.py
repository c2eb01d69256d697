"""A MAV team's `replay report` and `replay csv` read as columns, against the message-by-message code they replace.

`team_arrays.read_team_arrays` must give exactly what `team.read_team` (rosbags' deserialiser + the nodes'
`mav_io` conversions, message by message) gives, and the same report; `replay csv` the same file as the CSV
writer that decoded every message (`bench.replay.csv_per_message`). On the SITL cut of tests/data/mav_team and
on a copy with what long logs bring: chunks, a load stamp logged twice, odometry out of stamp order, a message
of another payload length, messages the nodes reject, a cut file.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from marlstack.bench.replay import csv_per_message
from marlstack.hardware.profile import load_profile
from marlstack.replay.bag import Bag
from marlstack.replay.cli import main
from marlstack.replay.team import read_team, team_mavs
from marlstack.replay.team_arrays import TeamArrays, read_team_arrays
from marlstack.replay.team_report import summarise, team_series
from replay_fixtures import write_bag

BAG = Path(__file__).resolve().parents[1] / "data" / "mav_team" / "cable3_wall"
STORE = get_typestore(Stores.ROS2_KILTED)


def _messages():
    """The cut's messages as (topic, type, log time, decoded message), in storage order."""
    return [(r.topic, r.msgtype, r.t_ns, STORE.deserialize_cdr(r.raw, r.msgtype)) for r in Bag(BAG).records()]


def _same(a: TeamArrays, b: TeamArrays) -> None:
    for name in ("load_stamps", "load", "goal_stamps", "goals", "goal_t", "t0"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    for m in a.mavs:
        for x, y in zip(a.odom[m] + a.setpoints[m], b.odom[m] + b.setpoints[m]):
            assert np.array_equal(x, y), m


def _long_log_copy(tmp_path: Path) -> Path:
    msgs = _messages()
    load = [k for k, m in enumerate(msgs) if m[0] == "/load/odom"]
    odom = [k for k, m in enumerate(msgs) if m[0] == "/mav_1/odom"]
    topic, typ, t_ns, again = msgs[load[10]]
    again = STORE.deserialize_cdr(STORE.serialize_cdr(again, typ), typ)
    again.pose.pose.position.x += 0.5  # the same stamp logged again later, other values: the later one counts
    msgs.insert(load[20], (topic, typ, t_ns + 5_000_000, again))
    msgs[odom[5]], msgs[odom[6]] = msgs[odom[6]], msgs[odom[5]]  # odometry logged out of stamp order
    msgs[odom[8]][3].child_frame_id = "mav_1/base_link_long_name"  # another payload length: a batch of its own
    return write_bag(tmp_path / "long", msgs, chunk_every=37)


@pytest.mark.parametrize("copy", [False, True])
def test_team_arrays_equal_the_message_by_message_read(tmp_path, copy):
    path = _long_log_copy(tmp_path) if copy else BAG
    mavs = team_mavs(Bag(path), None)
    ours, reference = read_team_arrays(Bag(path), mavs), TeamArrays.of(read_team(Bag(path), mavs))
    _same(ours, reference)  # exactly: the same arithmetic in the same order
    assert not ours.rejected and not ours.problems
    profile = load_profile("mav_corl25")
    assert json.dumps(summarise(ours, profile, team_series(ours, profile))) == \
        json.dumps(summarise(reference, profile, team_series(reference, profile)))
    if copy:
        assert len(ours.load_stamps) == len(np.unique(ours.load_stamps)) == sum(
            1 for r in Bag(path).records(["/load/odom"])) - 1


def test_report_leaves_out_what_the_nodes_reject(tmp_path, capsys):
    msgs = _messages()
    first = {topic: next(k for k, m in enumerate(msgs) if m[0] == topic)
             for topic in ("/mav_0/odom", "/mav_2/setpoint", "/load/goal")}
    msgs[first["/mav_0/odom"]][3].twist.twist.linear.y = math.nan
    msgs[first["/mav_2/setpoint"]][3].points = []  # no point: not a set-point the flight controller can fly
    topic, typ, t_ns, goal = msgs[first["/load/goal"]]
    bad = STORE.deserialize_cdr(STORE.serialize_cdr(goal, typ), typ)
    bad.pose.orientation.x = bad.pose.orientation.y = bad.pose.orientation.z = bad.pose.orientation.w = 0.0
    msgs.insert(first["/load/goal"] + 1, (topic, typ, t_ns + 1, bad))
    path = write_bag(tmp_path / "bad", msgs)
    assert main(["report", str(path), "-o", str(tmp_path / "out"), "--profile", "mav_corl25", "--no-pictures"]) == 0
    out = capsys.readouterr().out
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["rejected_messages"] == {"/load/goal": 1, "/mav_0/odom": 1, "/mav_2/setpoint": 1}
    assert "non-finite linear.y" in out and "norm 0" in out and "needs one point" in out
    clean = read_team_arrays(Bag(BAG), ["mav_0", "mav_1", "mav_2"])
    assert s["tracking"]["mav_2"]["setpoints"] == len(clean.setpoints["mav_2"][0]) - 1
    # `replay eval` reads the same way: it re-runs the policy on the rest and names what it left out
    assert main(["eval", str(path), "--policy", str(BAG.parent / "cable3.onnx"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert any("/mav_0/odom: 1 message(s) rejected" in p and "non-finite linear.y" in p for p in result["bag_problems"])
    assert sum(v["commands"] for v in result["per_mav"].values()) == sum(len(c[0]) for c in clean.setpoints.values()) - 1


def test_csv_equals_the_message_by_message_writer(tmp_path):
    for topic in ("/mav_0/setpoint", "/load/odom", "/diagnostics"):  # diagnostics: strings of many lengths
        assert main(["csv", str(BAG), topic, "-o", str(tmp_path / "ours.csv")]) == 0
        csv_per_message(BAG, topic, tmp_path / "reference.csv")
        assert (tmp_path / "ours.csv").read_bytes() == (tmp_path / "reference.csv").read_bytes(), topic


def test_a_cut_team_log_says_where_it_stopped(tmp_path, capsys):
    cut = tmp_path / "cut.mcap"
    data = next(BAG.glob("*.mcap")).read_bytes()
    cut.write_bytes(data[:60])  # inside the first record: nothing readable
    for args in (["report", str(cut), "-o", str(tmp_path / "r"), "--profile", "mav_corl25"],
                 ["csv", str(cut), "/load/odom", "-o", str(tmp_path / "x.csv")]):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert "nothing readable" in err and "stopped at byte" in err and "\n" not in err, err
