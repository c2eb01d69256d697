"""A MAV team flown by one team policy node (`arrangement: fleet_policy`, ros_nodes/mav_team_policy_node.py) in
software-in-the-loop over real DDS, on simulated time: the shipped team (models/cable3, exported:
tests/data/mav_team/cable3.onnx) from hover to a goal, then the landing. The per-MAV arrangement's mission, faults
and replay are tested in test_mav_sitl.py; the team node's set-points equal the per-MAV nodes' in test_mav_team.py."""
import yaml

from ros_fixtures import REPO, sitl, stopped

POLICY = REPO / "tests" / "data" / "mav_team" / "cable3.onnx"


def test_one_team_policy_node_flies_three_mavs_to_the_goal_and_lands(tmp_path):
    data = yaml.safe_load((REPO / "launch" / "cable3.yaml").read_text())
    data.pop("takeoff")   # from hover: the take-off is the firmware's, flown the same in either arrangement
    data.update(policy=str(POLICY), arrangement="fleet_policy", goals=[{"position": [0.3, 0.0, 1.5]}], goal_timeout_s=6,
                failsafe={"hold_s": 0.5, "descent_rate": 1.0}, sim={"seed": 1})
    config = tmp_path / "cable3_team.yaml"
    config.write_text(yaml.safe_dump(data))
    report, err = sitl(config, "--duration", "120", "--until-goals", timeout=300)
    assert report["ok"], report["error"]
    assert report["arrangement"] == "fleet_policy"
    nodes = list(report["exit_codes"])
    assert sum("mav_team_policy" in n for n in nodes) == 1 and not any(n.endswith("/mav_policy") for n in nodes), nodes
    team = report["team"]
    assert team["clock"] == "sim" and team["lockstep"]["answered_samples"] >= 0.9 * team["elapsed_s"] / 0.01
    (goal,) = team["goals"]
    assert goal["success"] and goal["success_after_s"] < 6, goal
    assert goal["slack_events"] == 0 and goal["min_mav_separation_m"] > 0.35
    assert team["landed"] and team["modes"] == ["landed"] * 3
    # every MAV got its own set-points from the one node, none refused, no watchdog stop (a hold step or two at the
    # start, before the latched goal is in, is the start-up wait, as in the per-MAV nodes)
    assert all(r["watchdog_stops"] == 0 and r["hold_steps"] <= 5 and r["setpoints_refused"] == 0
               for r in report["robots"].values()), report["robots"]
    assert report["latency_ms"]["count"] > 100
    assert all(map(stopped, report["exit_codes"].values())), report["exit_codes"]
