"""The MAV team policy node's team (ros_nodes/mav_team_policy_node.py: every MAV's pilot, one batched model call)
against one per-MAV pilot each (the per-MAV node's logic), on the same messages and clock, no DDS: the same
set-points (<= 1e-6), the same watchdog states, through a flight with faults of one MAV at a time. And the bench
that compares the arrangements (bench/ros.py) never waits forever on a case; the in-process step bench
(bench/mav_team_step.py) runs; the plan and the launch file start the team node for `arrangement: fleet_policy`."""
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from marlstack.hardware.profile import load_profile
from marlstack.policies.runtime import PolicyRuntime
from marlstack.ros_nodes import health, mav_io
from marlstack.ros_nodes.mav_policy_node import MavPilot, parsed
from marlstack.ros_nodes import mav_team_policy_node
from marlstack.ros_nodes.mav_team_policy_node import MavTeam
from ros_fixtures import REPO

POLICY = str(REPO / "tests" / "data" / "mav_team" / "cable3.onnx")
MAVS = ["mav_0", "mav_1", "mav_2"]
POS = np.array([[0.6, -0.35, 1.9], [0.0, 0.7, 1.9], [-0.6, -0.35, 1.9]])
LEVEL = (1.0, 0.0, 0.0, 0.0)
PERIOD = 0.01
STEP = 0.025    # between samples: within the 3-period watchdog, so a 1 s fault takes 40 steps, not 100


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.errors: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(text)

    warning = info

    def error(self, text: str) -> None:
        self.lines.append(text)
        self.errors.append(text)


def pilot_args() -> dict:
    return {"profile": load_profile("mav_corl25"), "mavs": MAVS, "period_s": PERIOD, "watchdog_s": 3 * PERIOD,
            "offset_s": 0.02, "safety": "onboard", "lost_after_s": 5.0, "fall_speed": 3.0, "descent_rate": 0.3}


def pilots(monkeypatch=None) -> tuple[MavTeam, dict[str, MavPilot], Log]:
    """The team (batched, or with `monkeypatch` one whose model refuses the team's batch) and one pilot per MAV,
    both given the goal."""
    runtime = PolicyRuntime(POLICY, batch_size=1)
    args = pilot_args()
    if monkeypatch is not None:   # as a graph exported with a fixed batch of 1 would
        def batch_of_one(path, batch_size):
            return PolicyRuntime(path, batch_size=1)
        monkeypatch.setattr(mav_team_policy_node, "PolicyRuntime", batch_of_one)
    team_log = Log()
    team = MavTeam(runtime, POLICY, team_log, **args)
    alone = {m: MavPilot(runtime, mav=m, log=Log(), **args) for m in MAVS}
    goal = mav_io.pose_msg([0.2, 0.1, 1.1], LEVEL, 1.0)
    for pilot in [team, *alone.values()]:
        pilot.goal(parsed(mav_io.goal_pose, goal), 1.0)
    return team, alone, team_log


def fly(team: MavTeam, alone: dict[str, MavPilot], phases: list[tuple[str, int]]) -> dict[str, set[str]]:
    """The same messages and clock to the team and to each MAV's pilot, phase by phase; every set-point and watchdog
    state compared; what each MAV did in each phase ("policy", "nothing" sent, or the watchdog's reason)."""
    rng = np.random.default_rng(0)
    seen: dict[str, set[str]] = {}
    now, k = 2.0, 0
    for phase, steps in phases:
        for _ in range(steps):
            now, k = now + STEP, k + 1
            pos = POS + 0.02 * np.sin(0.125 * k) + 1e-6 * rng.normal(size=POS.shape)
            vel = np.zeros((3, 3))
            if phase == "frozen_mav_1":
                pos[1], vel[1] = POS[1] + 0.05, 0.0
            if phase == "falling_mav_1":
                vel[1] = [0.0, 0.0, -4.0]
            msgs = {m: mav_io.odometry_msg(pos[i], LEVEL, vel[i], (0.0, 0.0, 0.0), now, m) for i, m in enumerate(MAVS)}
            if phase == "malformed_mav_2":
                msgs["mav_2"].pose.pose.orientation.w = 3.0
            load = mav_io.odometry_msg(pos.mean(0) - [0.0, 0.0, 0.9], LEVEL, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), now, "load")
            heard = [*msgs.items(), (mav_io.LOAD, load)] if phase != "start_up" else []
            if phase == "repeated_mav_1":   # a duplicate: the same stamp heard again at the same time (frozen source)
                heard.append(("mav_1", msgs["mav_1"]))
            for key, msg in heard:
                values = parsed(mav_io.odometry, msg, key)
                team.receive(key, values, now, now)
                for pilot in alone.values():
                    pilot.receive(key, values, now, now)
            if phase == "nan_history_mav_0":
                for pilot in (team.pilots["mav_0"], alone["mav_0"]):
                    pilot.inputs.latest.past[:] = np.nan
            got = dict(team.step(now))
            for m, pilot in alone.items():
                want, want_news = pilot.step(now)
                cmd, news = got[m]
                assert (cmd is None) == (want is None) and news == want_news, (phase, k, m, cmd, want)
                if cmd is not None:
                    np.testing.assert_allclose(cmd, want, rtol=0, atol=1e-6, err_msg=f"{phase} step {k} {m}")
                assert team.pilots[m].dog.reason == pilot.dog.reason, (phase, m)
                seen.setdefault(f"{phase} {m}", set()).add("nothing" if cmd is None else
                                                           "policy" if pilot.dog.ok else pilot.dog.reason.split(":")[0])
    return seen


def test_the_team_node_sends_each_mav_the_set_point_its_own_node_would():
    team, alone, team_log = pilots()
    assert team.batched is not None, team.unbatched_reason
    # phases (steps): all good; mav_1's odometry frozen in flight (unchanged for > 1 s: it alone goes blind; the
    # others fly on, lost_after_s 5 s before they would call it lost); mav_2's odometry malformed (a bad quaternion:
    # every MAV reads it, so every MAV holds); mav_0's action history not finite (its model input: it alone holds,
    # the batch runs for the others); mav_1 falling fast (lost: the team landing)
    phases = [("start_up", 2), ("good", 16), ("frozen_mav_1", 48), ("malformed_mav_2", 3), ("good_again", 4),
              ("repeated_mav_1", 1), ("good_again", 2), ("nan_history_mav_0", 1), ("falling_mav_1", 5)]
    seen = fly(team, alone, phases)
    assert seen["start_up mav_0"] == {"nothing"} and seen["repeated_mav_1 mav_1"] == {"nothing"}, seen
    assert seen["repeated_mav_1 mav_0"] == {"holding position"}, seen
    # what each fault did, MAV by MAV (the same for the team as for the MAV's own node, checked in `fly`)
    assert seen["good mav_0"] == seen["good mav_2"] == seen["good_again mav_0"] == {"policy"}, seen
    assert "nothing" in seen["frozen_mav_1 mav_1"], seen              # mav_1 alone: no set-point, its firmware flies
    assert seen["frozen_mav_1 mav_0"] == seen["frozen_mav_1 mav_2"] == {"policy"}, seen
    assert all(seen[f"malformed_mav_2 {m}"] == {"holding position"} for m in ("mav_0", "mav_1")), seen
    assert seen["malformed_mav_2 mav_2"] == {"nothing"}, seen      # its own odometry unusable
    assert seen["nan_history_mav_0 mav_0"] == {"holding position"}, seen
    assert seen["nan_history_mav_0 mav_1"] == seen["nan_history_mav_0 mav_2"] == {"policy"}, seen
    assert seen["falling_mav_1 mav_0"] == seen["falling_mav_1 mav_2"] == {"team landing"}, seen
    # every step that needed the model took one batched call for the team
    assert 0 < team.calls <= sum(n for _, n in phases), team.calls
    assert any(line.startswith("mav_1: no set-point") for line in team_log.errors), team_log.lines
    # waiting for the first odometry is said (INFO) and is not an error, nor an ERROR diagnostic
    assert "mav_0: no set-point (flight-controller failsafe): mav_0: none received yet" in team_log.lines, team_log.lines
    assert not any("none received yet" in line for line in team_log.errors), team_log.errors
    waiting = MavPilot(team.runtime, mav="mav_0", log=Log(), **pilot_args())
    assert waiting.step(2.0) == (None, True) and waiting.status("n").level == bytes([health.WARN])
    waiting.receive("mav_0", (np.nan,) * mav_io.WIDTH, 2.0, 2.0)   # a sample refused: not waiting any more
    assert waiting.step(2.01)[0] is None and waiting.status("n").level == bytes([health.ERROR])


def test_a_model_that_refuses_the_teams_batch_runs_once_per_mav_with_the_same_set_points(monkeypatch):
    team, alone, _ = pilots(monkeypatch)
    assert team.batched is None and "batch size 3" in team.unbatched_reason, team.unbatched_reason
    seen = fly(team, alone, [("good", 6), ("nan_history_mav_0", 1)])
    assert seen["good mav_1"] == {"policy"} and seen["nan_history_mav_0 mav_0"] == {"holding position"}, seen
    assert team.calls == 0


def test_the_team_step_bench_flies_the_policy_and_reports_its_parts():
    """`marlstack bench mav_team_step` (bench/mav_team_step.py) steps the team and each MAV's own pilot on the same
    messages, every step the policy's (it raises otherwise), and reports every part against that baseline."""
    from argparse import Namespace

    from marlstack.bench import mav_team_step
    rows = mav_team_step.run(Namespace(policy=POLICY, steps=3, warmup=1))
    assert [r.metric.split(" p")[0] for r in rows[:3]] == ["team step", "barrier stages", "outside the stages"]
    assert all(r.ours > 0 and r.baseline > 0 for r in rows[:6]), rows
    assert len(rows[-1].extra["slowest"]) == 1 and rows[-1].extra["slowest"][0]["cpu_ms"] > 0, rows[-1]
    assert mav_io.certify is not None and mav_io.certify.__name__ == "certify"   # the timer taken off again


def test_a_bench_case_that_does_not_end_is_stopped_and_said_so(tmp_path, monkeypatch, capsys):
    """`marlstack bench ros` never waits forever on a case (a run once sat > 9 min printing nothing): past its
    timeout the case's whole process group is stopped (SIGINT, then SIGKILL: this one ignores SIGINT) and its
    progress line says it timed out."""
    from marlstack.bench import ros
    monkeypatch.setattr(ros, "STOP_GRACE_S", 0.2)   # it ignores SIGINT: the grace always runs out
    pids = tmp_path / "pids"
    stuck = f'trap "" INT; sleep 60 & echo $! $$ > {pids}; wait'   # ignores SIGINT, and so does its child
    with ros.case("run 1/1: stuck") as said:
        ros.bounded(["sh", "-c", stuck], dict(os.environ), timeout=1.0)
        said.append("ended")   # not reached
    err = capsys.readouterr().err
    assert re.fullmatch(r"bench ros: run 1/1: stuck: TIMED OUT \(no result 1 s after it began; stopped\) \[\d+ s\]\n",
                        err), err

    def alive(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"   # a zombie is dead, not yet reaped
        except FileNotFoundError:
            return False
    deadline = time.monotonic() + 30
    while any(map(alive, map(int, pids.read_text().split()))) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(alive, map(int, pids.read_text().split()))), pids.read_text()   # the process and its child


def test_a_team_config_with_arrangement_fleet_policy_plans_and_launches_one_team_policy_node(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from marlstack.ros_nodes.plan import PlanError, fleet_plan, load_deployment
    from test_launch import load_launch_file
    data = yaml.safe_load((REPO / "launch" / "cable3.yaml").read_text())
    config = tmp_path / "team.yaml"
    config.write_text(yaml.safe_dump({**data, "policy": POLICY, "arrangement": "fleet_policy"}))
    dep = load_deployment(config)
    specs = fleet_plan(dep, sitl=True, record=tmp_path / "bag")
    assert [s.executable for s in specs] == ["mav_sim_node", "mav_team_policy_node", "recorder_node"]
    sim, team = specs[0].parameters, specs[1].parameters
    # the sim waits for one policy reader of each odometry, the load and the clock (+ the recorder), not three
    assert (sim["odom_subscribers"], sim["load_subscribers"], sim["clock_subscribers"]) == (2, 2, 1), sim
    # the flag wins over the key; one process per MAV gets the team node's parameters and its own `mav`
    per_mav = fleet_plan(dep, sitl=True, arrangement="process_per_node")
    nodes = [s for s in per_mav if s.executable == "mav_policy_node"]
    assert [s.parameters["mav"] for s in nodes] == MAVS and specs[1].namespace == "/"
    assert all({k: v for k, v in s.parameters.items() if k != "mav"} == team for s in nodes), (team, nodes[0].parameters)
    # ros2 launch starts what the config says
    opaque = [a for a in load_launch_file(monkeypatch).generate_launch_description().args[0]
              if type(a).__name__ == "OpaqueFunction"]
    launched = opaque[0].kwargs["function"](SimpleNamespace(launch_configurations={
        "config": str(config), "sim": "false", "record": "", "foxglove": ""}))
    assert [n.kwargs["executable"] for n in launched] == ["mav_team_policy_node"]
    config.write_text(yaml.safe_dump({**data, "policy": POLICY, "arrangement": "one_big_process"}))
    with pytest.raises(PlanError, match="key 'arrangement' must be one of process_per_node, fleet_container, fleet_policy"):
        load_deployment(config)
