"""End-to-end software-in-the-loop over real DDS, counted by the sim node: every node its own process, (the
8-robot onboard fleet) the onboard nodes in one fleet container (ros_nodes/container.py), or (the runs that drop
poses or lose a node) one fleet policy node for every robot (ros_nodes/fleet_policy_node.py). A fleet policy node
solving a task over the task topic, recorded and read back with the standard rosbags reader: test_task_sitl.py.

Drives the committed trained navigation policy (ros_fixtures.TRAINED: IPPO, 4 robots, barrier in
the loop), exported for 4 robots and, with `--num-agents 8`, for the 8-robot onboard fleet.
"""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from rosbags.rosbag2 import Reader

from ros_fixtures import REPO, config_with_policy, coverage_policy, policies, sitl, stopped  # noqa: F401  (fixtures)
from marlstack.ros_nodes.isolation import ros_env
from marlstack.replay.cli import main as replay_main


def assert_safe_and_arrived(report, n):
    assert report["ok"], report["error"]
    assert len(report["robots"]) == n
    for name, r in report["robots"].items():
        assert r["goal_reached"], f"{name} did not reach its goal: {r}"
        assert r["collision_steps"] == 0, f"{name} collided: {r}"
        assert r["boundary_exit_steps"] == 0, f"{name} left the arena: {r}"
    assert all(map(stopped, report["exit_codes"].values())), report["exit_codes"]


def test_onboard_safety_8_robots_in_a_fleet_container_reach_goals(policies, tmp_path):
    config = config_with_policy("robotarium_onboard8.yaml", policies[8], tmp_path)
    config.write_text(config.read_text() + "arrangement: fleet_container\n")  # 16 nodes, one process
    report, _ = sitl(config, "--duration", "60", "--until-goals")
    assert_safe_and_arrived(report, 8)
    assert report["safety_mode"] == "onboard" and report["arrangement"] == "fleet_container"
    assert set(report["exit_codes"]) == {"/sim", "/fleet_container"}, report["exit_codes"]


def test_coverage_4_robots_cover_every_landmark(coverage_policy, tmp_path, capsys):
    """The committed trained coverage policy covers landmarks over ROS 2: launch/robotarium_coverage4.yaml with its
    landmarks moved 0.4-0.9 m from the starts (covered at ~2.6 s; the example's own take ~9.6 s of test time)."""
    config = config_with_policy("robotarium_coverage4.yaml", coverage_policy, tmp_path)
    near = [[-0.5, 0.6], [-0.5, -0.6], [0.5, 0.0], [0.0, 0.4]]
    config.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), "landmarks": near}))
    report, _ = sitl(config, "--duration", "60", "--until-goals", "--record", str(tmp_path / "run"))
    assert_safe_and_arrived(report, 4)  # coverage: each robot got onto a landmark
    assert report["scenario"] == "coverage" and report["done_at_s"] is not None, report  # all covered at once
    with Reader(tmp_path / "run") as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts["/landmarks"] == 1 and counts["/robot_0/cmd_vel_nominal"] > 30, counts
    assert "/robot_0/goal" not in counts or counts["/robot_0/goal"] == 0
    # replay re-runs the policy on the logged poses and landmarks and gets the logged commands back
    assert replay_main(["eval", str(tmp_path / "run"), "--policy", str(coverage_policy), "--config", str(config),
                        "--json", "-o", str(tmp_path / "eval")]) == 0
    res = json.loads(capsys.readouterr().out)
    for name, v in res["per_robot"].items():
        assert v["compared"] >= 0.8 * v["commands"], (name, v)
    # (as in test_replay_sitl: a loaded machine can delay a node's inputs beyond what the log shows for the odd command)
    rows = [r for r in csv.DictReader((tmp_path / "eval" / "eval_commands.csv").open()) if r["status"] == "compared"]
    same = [abs(float(r["v_policy"]) - float(r["v_logged"])) <= 1e-5 and
            abs(float(r["omega_policy"]) - float(r["omega_logged"])) <= 1e-5 for r in rows]
    assert sum(same) >= 0.95 * len(same), (sum(same), len(same))
    # the report measures each robot against its nearest landmark
    assert replay_main(["report", str(tmp_path / "run"), "-o", str(tmp_path / "report"), "--config", str(config),
                        "--json", "--no-pictures"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["collision_events"] == 0 and all(v["min_goal_error"] <= 0.1 for v in m["per_robot"].values()), m["per_robot"]


def test_dropping_a_fifth_of_the_poses_causes_no_collision_and_ctrl_c_stops_cleanly(policies, tmp_path):
    """In the fleet_policy arrangement: most ticks lose some robot's pose, so the fleet policy node's batch goes
    out after its gather time with the poses that came, and a robot whose pose was lost is not commanded."""
    config = config_with_policy("robotarium_nav4.yaml", policies[4], tmp_path)
    logdir = tmp_path / "logs"
    proc = subprocess.Popen([sys.executable, "-m", "marlstack", "sitl", "--config", str(config), "--json", "--duration",
                             "120", "--drop-poses", "0.2", "--logdir", str(logdir), "--arrangement", "fleet_policy"],
                            env=ros_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        deadline = time.monotonic() + 90
        while not (logdir / "sim_summary.json").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        deadline = time.monotonic() + 60   # run with a fifth of the poses lost until the crossing is behind them
        while not _past_the_crossing(logdir / "sim_summary.json") and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C does
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-1500:] + err[-3000:]
    report = json.loads(out)
    assert report["ok"] and report["interrupted"], report["error"]
    assert all(map(stopped, report["exit_codes"].values())), report["exit_codes"]
    assert report["arrangement"] == "fleet_policy" and "/fleet_policy" in report["exit_codes"], report["exit_codes"]
    robots = report["robots"].values()
    assert all(r["collision_steps"] == 0 and r["boundary_exit_steps"] == 0 for r in robots), report["robots"]
    # the robots did drive (the run is not trivially safe by standing still), the two crossing ones past each other
    assert all(r["final_goal_distance_m"] < 1.0 for r in robots), report["robots"]
    assert all(report["robots"][r]["final_goal_distance_m"] < CROSSED_M for r in CROSSING), report["robots"]


CROSSING, CROSSED_M = ("robot_2", "robot_3"), 0.6   # robotarium_nav4: their paths cross 0.6 / 0.8 m before their goals


def _past_the_crossing(summary: Path) -> bool:
    """The sim's running summary says both crossing robots are within CROSSED_M of their goals: past the crossing,
    where the fleet's robots come closest (the sim rewrites the file every second)."""
    try:
        robots = json.loads(summary.read_text())["robots"]
        return all(robots[r]["final_goal_distance_m"] < CROSSED_M for r in CROSSING)
    except (OSError, ValueError, KeyError):
        return False


def test_an_unloadable_model_is_refused_before_any_node_starts(tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    config = config_with_policy("robotarium_nav4.yaml", garbage, tmp_path)
    out = subprocess.run([sys.executable, "-m", "marlstack", "sitl", "--config", str(config), "--no-isolate"],
                         capture_output=True, text=True, timeout=60, cwd=REPO, env=ros_env())
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "onnxruntime cannot load this model" in lines[0] and str(garbage) in lines[0]


def _pids(*words: str) -> list[int]:
    """Processes whose command line holds every word (this test's own nodes: the words include its tmp dir)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        text = " ".join(a.decode(errors="replace") for a in args)
        if all(w in text for w in words):
            found.append(int(cmdline.parent.name))
    return found


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_a_node_dying_during_the_run_fails_it_loudly(policies, tmp_path):
    """The fleet policy node (arrangement fleet_policy: 4 processes to start instead of 7) is the one killed."""
    config = config_with_policy("robotarium_nav4.yaml", policies[4], tmp_path)
    logdir = tmp_path / "logs"
    proc = subprocess.Popen([sys.executable, "-m", "marlstack", "sitl", "--config", str(config), "--json", "--duration",
                             "60", "--logdir", str(logdir), "--no-isolate", "--arrangement", "fleet_policy"],
                            env=ros_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        deadline = time.monotonic() + 90
        while not (logdir / "sim_summary.json").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        victims = [pid for pid in _pids("marlstack.ros_nodes.fleet_policy_node", str(policies[4]))
                   if _parent(pid) == proc.pid]   # this run's (another test may run a fleet policy node too)
        assert len(victims) == 1, victims
        os.kill(victims[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err[-2000:]
    report = json.loads(out)
    assert not report["ok"] and "FAILED" in err
    assert "exited with code -9 during the run" in report["error"] and "/fleet_policy" in report["error"]
