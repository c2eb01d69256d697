"""`replay report` / `info` / `csv` on a synthetic run whose answers were worked out by hand."""
from __future__ import annotations

import csv
import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from marlstack.hardware.profile import load_profile
from replay_fixtures import (DIAG, EXPECTED, FLOATS, POSE, ROBOTS, UNKNOWN_TYPE, diag_msg, known_fleet, pose_msg,
                             task_msg, write_bag)
from marlstack.replay.cli import main

ROOT = Path(__file__).resolve().parents[2]
GRITSBOT = load_profile("gritsbot_x")


def digest(bag: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(bag.iterdir()):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bags")
    return {s: write_bag(root / s, known_fleet(), storage=s) for s in ("mcap", "sqlite3")}


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_report_metrics_match_hand_computed_answers(bags, tmp_path, storage, capsys):
    bag = bags[storage]
    before = digest(bag)
    pictures = storage == "mcap"  # drawing is storage-independent: once is enough
    assert main(["report", str(bag), "-o", str(tmp_path), "--profile", "gritsbot_x",
                 *([] if pictures else ["--no-pictures"])]) == 0
    assert main(["info", str(bag)]) == 0 and main(["csv", str(bag), "/robot_0/pose", "-o", str(tmp_path / "p.csv")]) == 0
    assert digest(bag) == before  # replay never modifies its input
    m = json.loads((tmp_path / "metrics.json").read_text())
    e = EXPECTED
    assert m["robots"] == ROBOTS
    assert m["min_distance"] == pytest.approx(e["min_distance"], abs=1e-9)
    assert m["min_distance_pair"] == list(e["min_distance_pair"])
    assert m["min_distance_t_s"] == pytest.approx(e["min_distance_t"])
    assert m["collision_events"] == e["collision_events"]
    assert m["collisions"][0]["start_s"] == pytest.approx(e["collision_start_t"])
    assert m["safety_radius"] == GRITSBOT.barrier.unicycle_walls.safety_radius  # the default barrier form
    assert m["collision_distance"] == GRITSBOT.collision_distance
    for r in ROBOTS:
        pr = m["per_robot"][r]
        assert pr["boundary_exits"] == e["boundary_exits"][r]
        assert pr["interventions"] == e["interventions"][r]
        assert pr["safety_stops"] == e["safety_stops"][r]
        assert pr["saturated_nominal"] == e["saturated_nominal"][r]
        assert pr["saturated_cmd_vel"] == e["saturated_cmd_vel"][r]
        assert pr["final_goal_error"] == pytest.approx(e["final_goal_error"][r], abs=1e-9)
    assert m["per_robot"]["robot_2"]["time_outside_s"] == pytest.approx(e["time_outside"]["robot_2"])
    assert m["intervention_size"]["max"] == pytest.approx(e["intervention_max"])
    for r in ("robot_0", "robot_1"):  # robot_2's pose gap makes some of its latencies longer
        assert m["per_robot"][r]["latency_s"]["max"] == pytest.approx(e["latency"], abs=1e-9)
    assert m["latency_s"]["p50"] == pytest.approx(e["latency"], abs=1e-9)

    rows = list(csv.DictReader((tmp_path / "interventions.csv").open()))
    hits = [r for r in rows if r["kind"] == "intervention"]
    assert [(r["robot"], float(r["t_s"])) for r in rows if r["kind"] == "safety_stop"] == [
        ("robot_1", pytest.approx(0.8 + 0.005, abs=1e-5))]
    assert [(r["robot"], float(r["t_s"])) for r in hits] == [("robot_0", pytest.approx(0.5 + 0.005, abs=1e-5)),
                                                             ("robot_0", pytest.approx(0.6 + 0.005, abs=1e-5))]
    dist = list(csv.DictReader((tmp_path / "distances.csv").open()))
    assert float(dist[-1]["robot_0-robot_1"]) == pytest.approx(0.1)
    assert float(dist[0]["min_distance"]) == pytest.approx(math.hypot(1.0, 0.1))
    goal = list(csv.DictReader((tmp_path / "goal_errors.csv").open()))
    assert len(goal) == 11 and float(goal[0]["robot_0"]) == pytest.approx(1.0)
    assert "interventions 2" in capsys.readouterr().out
    if pictures:
        assert Image.open(tmp_path / "run.gif").n_frames == 11
        for png in ("trajectories.png", "distances.png", "interventions.png"):
            assert Image.open(tmp_path / png).size[0] > 300


def test_info_reports_rates_gaps_and_missing_messages(bags, capsys):
    assert main(["info", str(bags["mcap"]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["complete"] and info["messages"] == len(known_fleet())
    by = {t["topic"]: t for t in info["topics"]}
    pose2 = by["/robot_2/pose"]
    assert pose2["count"] == 9 and pose2["missing"] == 2
    assert pose2["gaps"] == [{"start_s": pytest.approx(0.2), "length_s": pytest.approx(0.3), "missing": 2}]
    assert by["/robot_0/pose"]["rate_hz"] == pytest.approx(10.0) and by["/robot_0/pose"]["gaps"] == []
    assert by["/robot_0/goal"]["rate_hz"] is None
    assert info["duration_s"] == pytest.approx(1.0 + 0.005 + 2e-6)
    assert main(["info", str(bags["sqlite3"])]) == 0
    assert ("gaps: /robot_2/pose: 1 gap(s), ~2 message(s) missing at 10.0 Hz; longest silent 0.300 s from +0.200 s"
            in capsys.readouterr().out)


def test_unknown_type_is_skipped_with_a_warning(tmp_path, capsys):
    bag = write_bag(tmp_path / "b", known_fleet() + [("/acme/secret", UNKNOWN_TYPE, 7, b"\x00\x01\x00\x00\x2a\x00\x00\x00")])
    assert main(["info", str(bag)]) == 0
    out = capsys.readouterr().out
    assert "/acme/secret: message type 'acme_msgs/msg/Secret' has no definition" in out
    assert main(["report", str(bag), "-o", str(tmp_path / "r"), "--profile", "gritsbot_x", "--json", "--no-pictures"]) == 0
    assert json.loads(capsys.readouterr().out)["collision_events"] == 1
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "distances.csv", "goal_errors.csv", "interventions.csv", "metrics.json"]
    assert main(["csv", str(bag), "/acme/secret", "-o", str(tmp_path / "s.csv")]) == 0
    assert "wrote 0 rows" in capsys.readouterr().out


def test_csv_flattens_any_topic(bags, tmp_path):
    out = tmp_path / "pose.csv"
    assert main(["csv", str(bags["sqlite3"]), "/robot_1/pose", "-o", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 11
    assert float(rows[3]["pose.position.x"]) == pytest.approx(0.35)
    assert float(rows[3]["pose.orientation.z"]) == pytest.approx(1.0)  # yaw = pi
    assert rows[3]["header.frame_id"] == "world"
    diag = tmp_path / "diag.csv"
    assert main(["csv", str(bags["mcap"]), "/diagnostics", "-o", str(diag)]) == 0
    assert list(csv.DictReader(diag.open()))[4]["status.0.values.0.value"] == "4"


def test_missing_topics_and_bad_paths_are_one_line_errors(tmp_path, capsys):
    only_poses = [m for m in known_fleet() if m[0].endswith("/pose")]
    bag = write_bag(tmp_path / "poses", only_poses)
    assert main(["report", str(bag), "-o", str(tmp_path / "r"), "--profile", "gritsbot_x"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "missing topic(s) /robot_0/cmd_vel" in err and "/robot_2/cmd_vel_nominal" in err
    assert main(["csv", str(bag), "/nope", "-o", str(tmp_path / "x.csv")]) == 2
    assert "/nope is not in" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "absent")]) == 2
    assert "no such bag" in capsys.readouterr().err
    assert main(["report", str(bag), "-o", str(tmp_path / "r")]) == 2
    assert "--profile NAME" in capsys.readouterr().err


def test_replay_never_imports_jax(bags):
    code = ("import sys; from replay.cli import main; "
            f"assert main(['info', {str(bags['mcap'])!r}]) == 0; "
            "import replay.evaluate, replay.report, replay.play, policies.runtime; "
            "bad = [m for m in sys.modules if m == 'jax' or m.startswith('jax.')]; assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_deployment_config_gives_robot_order_remaps_and_profile(tmp_path, capsys):
    remapped = [(m[0].replace("/robot_0/pose", "/mocap/robot_0/pose"), *m[1:]) for m in known_fleet()]
    bag = write_bag(tmp_path / "remapped", remapped)
    config = tmp_path / "fleet.yaml"
    config.write_text(
        "profile: gritsbot_x\npolicy: policy.onnx\nrate_hz: 20\nsafety: {mode: fleet, form: unicycle}\nrobots:\n"
        "  - {name: robot_2, start: [1.5, 0.8, 0], goal: [1.0, 0.8]}\n"
        "  - {name: robot_0, start: [-0.5, 0, 0], goal: [0.5, 0], remaps: {pose: /mocap/robot_0/pose}}\n"
        "  - {name: robot_1, start: [0.5, 0.1, 3.1], goal: [-0.5, 0.1]}\n")
    assert main(["report", str(bag), "-o", str(tmp_path / "r"), "--config", str(config), "--json", "--no-pictures"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["robots"] == ["robot_2", "robot_0", "robot_1"]
    assert m["safety_radius"] == GRITSBOT.barrier.unicycle.safety_radius  # the config's form
    assert m["min_distance"] == pytest.approx(EXPECTED["min_distance"]) and m["collision_events"] == 1
    assert main(["report", str(bag), "-o", str(tmp_path / "r2"), "--profile", "gritsbot_x"]) == 2
    err = capsys.readouterr().err
    assert "missing topic(s) /robot_0/pose" in err and "pass --config" in err


def test_poses_the_recorder_missed_are_found_by_their_frame_stamp(bags):
    from marlstack.replay.bag import Bag
    from marlstack.replay.fleet import read_fleet
    fleet = read_fleet(Bag(bags["mcap"]))
    # robot_2's poses of frames k = 3, 4 are absent while robot_0 and robot_1 carry those stamps
    assert [(r, round(t, 6)) for r, t in fleet.unlogged_poses()] == [("robot_2", 0.3), ("robot_2", 0.4)]


def test_event_driven_streams_have_a_rate_but_no_gaps():
    from marlstack.replay.info import stream_stats
    rng = np.random.default_rng(0)
    bursts = np.sort(np.concatenate([rng.uniform(0, 30, 60), rng.uniform(10, 10.01, 40)]))  # /diagnostics-like
    rate, period, gaps, missing = stream_stats((bursts * 1e9).astype(np.int64))
    assert rate == pytest.approx(99 / (bursts[-1] - bursts[0])) and period is None and gaps == [] and missing == 0
    regular = np.delete(np.arange(100) / 30.0, [50, 51])  # 30 Hz with two messages missing
    rate, period, gaps, missing = stream_stats((regular * 1e9).astype(np.int64))
    assert period == pytest.approx(1 / 30) and missing == 2 and len(gaps) == 1


def test_info_judges_gaps_on_periodic_streams_only(tmp_path, capsys):
    """A 30 Hz pose stream that lost 3 messages, beside event-driven streams whose silences are no gaps: an RWARE
    task (a pick, a drop; a long walk to the next shelf) and diagnostics sent on changes, ~1 s apart. The rule
    before (half the intervals within 50 % of the median) gave the task ~3 and the diagnostics ~2 missing messages."""
    ns = lambda t: round(t * 1e9)  # noqa: E731
    pose = [("/robot_0/pose", POSE, ns(k / 30), pose_msg(0.01 * k, 0.0, 0.0, k / 30))
            for k in range(60) if k not in (20, 21, 22)]
    task = [("/robot_0/task", FLOATS, ns(t), task_msg([float(i % 2), 0.0, 0.3, 1.0]))
            for i, t in enumerate((0.0, 1.0, 2.2, 3.1, 7.0))]
    diag_t = np.cumsum([0.0, 1.0, 1.4, 0.6, 1.3, 0.7, 1.45, 0.55, 3.0, 1.0])
    diag = [("/diagnostics", DIAG, ns(t), diag_msg(t, "policy", "ok", {})) for t in diag_t]
    bag = write_bag(tmp_path / "mixed", sorted(pose + task + diag, key=lambda m: m[2]))
    assert main(["info", str(bag), "--json"]) == 0
    by = {t["topic"]: t for t in json.loads(capsys.readouterr().out)["topics"]}
    assert by["/robot_0/pose"]["period_s"] == pytest.approx(1 / 30)
    assert by["/robot_0/pose"]["gaps"] == [{"start_s": pytest.approx(19 / 30), "length_s": pytest.approx(4 / 30),
                                            "missing": 3}]
    for topic, n in (("/robot_0/task", 5), ("/diagnostics", 10)):
        t = by[topic]
        assert t["period_s"] is None and t["gaps"] == [] and t["missing"] == 0, t
        assert t["rate_hz"] == pytest.approx((n - 1) / (t["last_s"] - t["first_s"]))
    assert main(["info", str(bag)]) == 0
    out = capsys.readouterr().out
    assert [line.split()[4:6] for line in out.splitlines() if line.startswith(("/robot_0/task", "/diagnostics"))] == [
        ["events", "-"], ["events", "-"]]
    assert [line for line in out.splitlines() if line.startswith("gaps:")] == [
        "gaps: /robot_0/pose: 1 gap(s), ~3 message(s) missing at 30.0 Hz; longest silent 0.133 s from +0.633 s"]
