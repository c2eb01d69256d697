"""`replay eval`: the same policy on its own logged run reproduces the logged commands.

The run is synthetic (replay_fixtures.policy_run plays the policy node's timing by hand: event
steps on the robot's own pose, one timer step after a lost pose); a SITL-recorded run is the
lead's end-to-end test once `marlstack sitl --record` exists.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from replay_fixtures import ROBOTS, policy_onnx, policy_run, write_bag
from marlstack.replay.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    policy = policy_onnx(root / "policy.onnx", num_agents=3, seed=0)
    other = policy_onnx(root / "other.onnx", num_agents=3, seed=1)
    bag = write_bag(root / "run", policy_run(policy), chunk_every=25)
    return {"policy": policy, "other": other, "bag": bag, "root": root}


def test_same_policy_reproduces_logged_commands(run, capsys):
    assert main(["eval", str(run["bag"]), "--policy", str(run["policy"]), "--json", "--fail-above", "1e-5"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["robots"] == ROBOTS
    assert res["max_abs_diff"] <= 1e-5
    assert res["per_robot"]["robot_0"]["commands"] == 20
    assert res["per_robot"]["robot_1"]["timer_steps"] == 1  # its pose was lost at step 5
    assert res["per_robot"]["robot_1"]["pose_triggered"] == 19
    # at the first step robot_0 and robot_1 have not heard the later robots yet: the node sent a stop
    assert [res["per_robot"][r]["input_errors"] for r in ROBOTS] == [1, 1, 0]
    # robot_2's command logged before its pose, robot_0's computed before a pose logged earlier
    assert res["per_robot"]["robot_2"]["reordered"] >= 1 and res["per_robot"]["robot_0"]["reordered"] >= 1
    assert all(v["compared"] == v["commands"] for v in res["per_robot"].values())


def test_different_policy_shows_what_it_would_have_commanded(run, tmp_path, capsys):
    assert main(["eval", str(run["bag"]), "--policy", str(run["other"]), "-o", str(tmp_path), "--fail-above", "1e-5"]) == 1
    out = capsys.readouterr()
    assert "exceeds 1e-05" in out.err and "robot_2" in out.out
    rows = list(csv.DictReader((tmp_path / "eval_commands.csv").open()))
    assert len(rows) == 60
    assert max(abs(float(r["v_policy"]) - float(r["v_logged"])) for r in rows) > 0.01
    assert (tmp_path / "eval_commands.png").stat().st_size > 10_000


def test_policy_for_another_fleet_size_is_refused(run, tmp_path, capsys):
    four = policy_onnx(tmp_path / "four.onnx", num_agents=4, seed=0)
    assert main(["eval", str(run["bag"]), "--policy", str(four)]) == 2
    err = capsys.readouterr().err
    assert "exported for 4 robots, the bag has 3" in err and "\n" not in err.strip()
    assert main(["eval", str(run["bag"]), "--policy", str(tmp_path / "none.onnx")]) == 2
    assert "no such policy file" in capsys.readouterr().err


STARTS = {"robot_0": "[-1.0, -0.5, 0.3]", "robot_1": "[1.0, 0.5, 2.5]", "robot_2": "[0.0, 0.7, -1.2]"}  # policy_run's


def deployment(path, policy, watchdog_periods: float, rate_hz: float):
    path.write_text(
        f"profile: gritsbot_x\npolicy: {policy}\nrate_hz: {rate_hz:g}\nwatchdog_periods: {watchdog_periods}\nrobots:\n"
        + "".join(f"  - {{name: {r}, start: {STARTS[r]}, goal: [0.1, 0.1]}}\n" for r in ROBOTS))
    return path


def test_config_sets_the_watchdog_the_node_ran_with(tmp_path, capsys):
    # deployment configs must run gritsbot_x within a factor 2 of its 30 Hz (ros_nodes.plan): a 20 Hz run
    policy = policy_onnx(tmp_path / "policy.onnx", num_agents=3, seed=0, rate_hz=20.0)
    bag = write_bag(tmp_path / "run", policy_run(policy, dt=0.05), chunk_every=25)
    ok = deployment(tmp_path / "ok.yaml", policy, 3, rate_hz=20)
    assert main(["eval", str(bag), "--policy", str(policy), "--config", str(ok), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["max_abs_diff"] <= 1e-5
    # a one-period (0.05 s) watchdog would have stopped robot_1 around its lost pose (1.5-2 periods old):
    # replay predicts that stop, which the log (made without a watchdog) does not show; robot_0 reads that pose
    # as a neighbour's, which may age up to the nodes' neighbour_max_age_s, so it goes on as logged
    strict = deployment(tmp_path / "strict.yaml", policy, 1, rate_hz=20)
    assert main(["eval", str(bag), "--policy", str(policy), "--config", str(strict), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["per_robot"]["robot_1"]["max_abs_diff"] > 1e-2 and res["per_robot"]["robot_0"]["max_abs_diff"] <= 1e-5
    wrong_rate = tmp_path / "rate.yaml"
    wrong_rate.write_text(ok.read_text().replace("rate_hz: 20", "rate_hz: 30"))
    assert main(["eval", str(bag), "--policy", str(policy), "--config", str(wrong_rate)]) == 2
    assert "control rate: expected 30 Hz, found 20 Hz" in capsys.readouterr().err


RWARE = Path(__file__).resolve().parents[1] / "data" / "rware_4" / "policy.onnx"  # 4 robots, 30.3 Hz


def rware_task(load: float, waiting: set[int], cut: int = 0) -> list[float]:
    """A robot's `task` numbers: its load, then every shelf's x, y, waiting (`cut` numbers short: refused)."""
    from marlstack.sim.scenarios.rware_spec import SHELF_CENTRES
    numbers = [load] + [v for i, (x, y) in enumerate(SHELF_CENTRES) for v in (x, y, float(i in waiting))]
    return numbers[:len(numbers) - cut]


def test_an_rware_policy_is_rerun_on_its_logged_task_messages(tmp_path, capsys):
    """The task topic is event-driven: each message holds from its log time on. robot_0 picks shelf 3's item
    at step 8 (every robot hears shelf 3 is no longer waiting); robot_2 gets a task one number short at step 14,
    which its node refuses (a stop) until the good one at step 16."""
    robots = ["robot_0", "robot_1", "robot_2", "robot_3"]
    tasks = {0: {r: rware_task(0.0, {3, 7}) for r in robots},
             8: {r: rware_task(float(r == "robot_0"), {7}) for r in robots},
             14: {"robot_2": rware_task(0.0, {7}, cut=1)}, 16: {"robot_2": rware_task(0.0, {7})}}
    msgs = policy_run(RWARE, dt=0.033, tasks=tasks)
    bag = write_bag(tmp_path / "run", msgs, chunk_every=25)
    assert main(["eval", str(bag), "--policy", str(RWARE), "--json", "--fail-above", "1e-5"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["robots"] == robots and res["max_abs_diff"] <= 1e-5
    assert all(v["compared"] == v["commands"] == 20 for v in res["per_robot"].values()), res["per_robot"]
    # the first step's stops (later robots' poses not heard yet), and robot_2's two steps on a refused task
    assert [res["per_robot"][r]["input_errors"] for r in robots] == [1, 1, 3, 0]
    # without the pick's messages replay would hold the old task: the check sees it
    missed = write_bag(tmp_path / "missed", [m for m in msgs if not (m[0].endswith("/task") and
                                                                      m[2] == round((8 * 0.033 - 5e-4) * 1e9))])
    assert main(["eval", str(missed), "--policy", str(RWARE), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["max_abs_diff"] > 1e-2
    # a bag without the task topic: named in one line
    bare = write_bag(tmp_path / "bare", [m for m in msgs if not m[0].endswith("/task")])
    assert main(["eval", str(bare), "--policy", str(RWARE)]) == 2
    err = capsys.readouterr().err.strip()
    assert "/robot_0/task" in err and "\n" not in err, err
