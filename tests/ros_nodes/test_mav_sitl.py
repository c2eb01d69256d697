"""A MAV team's mission in software-in-the-loop over real DDS: 3 policy nodes + the MAV sim node + the recorder.

The policy is the shipped team (`models/cable3`, exported: tests/data/mav_team/cable3.onnx; exporting an
untrained run here cost ~60 s of the test at load average 11). Take-off from the ground with slack cables (the firmware lifts the load to the start), one
goal begun from rest at the start (a new start on `/load/start`: every policy node begins a new episode), then landing (the load set down first); mav_1's odometry drops out for 0.3 s during the goal (its
policy node trips, its flight controller holds, then it flies on). On simulated time (the SITL default):
the physics waits for every MAV's set-point, so a loaded machine slows the run, not the chain's timing.
`replay eval` then re-runs the policy on the logged inputs.
"""
import numpy as np
import yaml

from marlstack.hardware import load_profile
from marlstack.replay.bag import Bag
from marlstack.replay.evaluate import evaluate
from marlstack.replay.fleet import load_config
from marlstack.replay.team_arrays import read_team_arrays
from marlstack.ros_nodes import topics
from ros_fixtures import REPO, sitl, stopped
from rosbags.rosbag2 import Reader

POLICY = REPO / "tests" / "data" / "mav_team" / "cable3.onnx"  # the shipped team (models/cable3), exported


def test_three_mavs_take_off_reach_the_goal_ride_out_a_blind_spell_land_and_record(tmp_path):
    data = yaml.safe_load((REPO / "launch" / "cable3.yaml").read_text())
    data.update(policy=str(POLICY), goals=[{"position": [0.3, 0.0, 1.5], "rpy_deg": [0, 0, 20], "start": data["start"]}],
                goal_timeout_s=8, failsafe={"hold_s": 0.5, "descent_rate": 1.0}, takeoff={"climb_rate": 1.0},
                sim={"seed": 0, "blind_mav": "mav_1", "blind_at_s": 5.0, "blind_for_s": 0.3})
    config = tmp_path / "cable3.yaml"
    config.write_text(yaml.safe_dump(data))
    bag = tmp_path / "cable.mcap"
    # a generous wall-clock limit: --until-goals ends the run once landed (~12 s simulated; 12-16 s of wall clock
    # at load average 2-8)
    report, err = sitl(config, "--duration", "120", "--until-goals", "--record", str(bag), timeout=300)
    assert report["ok"], report["error"]
    team = report["team"]
    lock = team["lockstep"]
    assert team["clock"] == "sim" and lock["timeouts"][1] >= 1        # mav_1's blind node sent nothing: not waited forever
    assert lock["answered_samples"] >= 0.9 * team["elapsed_s"] / 0.01  # the physics waited for the answers
    # simulated time: the machine's load does not age what the nodes read (on wall clock at load average 6-7 every
    # policy node held 156-192 steps, 'cannot certify'); the others hold only while mav_1 is blind (0.3 s)
    others = [r for m, r in report["robots"].items() if m != "mav_1"]
    assert all(r["hold_steps"] <= 40 and r["setpoints_refused"] == 0 for r in others), report["robots"]
    (goal,) = team["goals"]
    assert goal["success"] and goal["success_after_s"] < 8, goal
    assert team["took_off"] and 1.5 < team["airborne_at_s"] < 5.0, team["airborne_at_s"]  # lifted from the ground
    assert [[0, "fly"], [1, "fly"], [2, "fly"]] == [e[1:] for e in team["mode_changes"][:3]]  # take-off -> set-points
    assert goal["slack_events"] == 0 and goal["min_mav_separation_m"] > 0.35                  # taut while flying
    assert team["landed"] and team["modes"] == ["landed"] * 3
    assert team["load_down_at_s"] < team["landed_at_s"]                                     # the load set down first
    # the whole mission, take-off, blind spell and landing included, within the controller's own tilt limit
    # (mav_corl25: 45 deg). It was 52 deg before the ground held a landed MAV level: idling on the ground,
    # its INDI loop wound up against the contact and tipped it over (ros_nodes/mav_sim.py, Ground)
    assert not team["separation_violated"] and team["max_tilt_deg"] < load_profile(data["profile"]).control.max_tilt
    assert [1, "hold"] in [e[1:] for e in team["mode_changes"]]           # mav_1's flight controller held
    assert report["robots"]["mav_1"]["watchdog_stops"] >= 1                # its policy node said why
    assert report["latency_ms"]["count"] > 100
    assert all(map(stopped, report["exit_codes"].values())), report["exit_codes"]
    with Reader(bag) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts["/load/goal"] == counts["/load/start"] == 1 and counts["/load/odom"] > 200
    assert all(counts[f"/mav_{i}/setpoint"] > 100 and counts[f"/mav_{i}/odom"] > 100 for i in range(3))
    # replay eval re-runs the policy on every logged set-point's inputs (replay/team.py)
    result = evaluate(Bag(bag), POLICY, load_config(config))
    compared = [(s["logged"][k], s["policy"][k]) for s in result["series"].values()
                for k, st in enumerate(s["status"]) if st == "compared"]
    exact = [np.max(np.abs(a - b)) <= 1e-5 for a, b in compared]
    # exact on >= 99 % on a quiet machine; 98.4 % seen in CI with both xdist workers busy (inputs a loaded node
    # took in another order than the log shows): the bound leaves room for that, not for a wrong policy (~0 %)
    assert len(compared) > 300 and np.mean(exact) >= 0.97, (len(compared), np.mean(exact), result["max_abs_diff"])
    assert result["per_mav"]["mav_0"]["holds"] + result["per_mav"]["mav_2"]["holds"] >= 1  # held while mav_1 was blind
    # the new start: every node began an episode, and the set-point answering the first sample after it is the
    # policy's with an empty action history (with the history carried over it differed by 0.013-0.25)
    arrays = read_team_arrays(Bag(bag), list(result["per_mav"]))
    (start,) = arrays.start_stamps
    for m, s in result["series"].items():
        first = int(np.argmax(arrays.setpoints[m][1] >= start))
        assert s["status"][first] == "compared" and np.max(np.abs(s["logged"][first] - s["policy"][first])) <= 1e-5, m
    log = Bag(bag)
    starts = {st.name: v.value for r in log.records([topics.DIAGNOSTICS.path()]) for st in log.decode(r).status
              for v in st.values if v.key == "starts"}  # each policy node's last report
    assert starts == {f"/{m}/mav_policy": "1" for m in result["series"]}, starts
