"""The MAV policy node passes the load to its safety stage, and filters its position hold and team landing there too
(ros_nodes/mav_policy_node.py): a node-level scenario over real rclpy and onnxruntime
(tests/ros_nodes/mav_cable_scenario.py), messages handed to its callbacks; a new start on `/load/start` begins a new
episode (action history empty, team landing ended), a new goal alone does not."""
import re

import numpy as np
import yaml

from marlstack.controllers.mav_barrier import cable_ends, cable_geometry, cable_kinematics
from marlstack.hardware.profile import load_profile
from mav_cable_scenario import LOAD, POS, VEL, WATCHDOG_PERIODS
from ros_fixtures import REPO, run_scenario

POLICY = REPO / "tests" / "data" / "mav_team" / "cable3.onnx"
LANDING = "team landing: mav_1 lost; no level equilibrium without them: every MAV carries"  # two of three


def test_the_node_keeps_its_cable_off_a_neighbours_and_says_when_it_cannot(tmp_path):
    r = run_scenario("mav_cable_scenario.py", tmp_path, str(POLICY), timeout=120)
    fresh, late = r["fresh"], r["load_45ms_old"]
    assert fresh["hold"] is None and late["hold"] is None, (fresh["hold"], late["hold"])
    # the direction the cable row asks mav_0 to accelerate: away from mav_1's cable, between the closest points
    level = np.repeat(np.eye(3)[None], 3, 0)
    cables = cable_ends(cable_geometry(load_profile("mav_corl25"), 3), np.array(POS), np.array(VEL), level,
                        np.zeros((3, 3)), np.array(LOAD), np.zeros(3), np.eye(3), np.zeros(3))
    unit = cable_kinematics(cables)[0][0]        # pair (mav_0, mav_1): from mav_1's cable towards mav_0's
    change = np.subtract(fresh["setpoint"], fresh["policy"])
    # today's policy pushes on at 0.27 m/s² more than the row allows; without the load the stage let it pass
    assert np.dot(change[:3], unit) > 0.1 and np.dot(change[:3], unit) > 0.99 * np.linalg.norm(change[:3]), change
    np.testing.assert_allclose(change[3:], 0.0, atol=1e-6)                  # the rate feed-forward passes
    d = fresh["diagnostics"]
    assert d["safety_cables_unchecked"] == "0" and int(d["safety_interventions"]) == 1, d
    # the load's odometry too old for the certificate: no cable rows claimed, and the diagnostics say why
    np.testing.assert_allclose(late["setpoint"], late["policy"], atol=1e-5)
    d = late["diagnostics"]
    assert d["safety_cables_unchecked"] == "1", d
    why = re.fullmatch(r"/load/odom: last one (\d+) ms old \(limit 30 ms\)", d["safety_cables_unchecked_why"])
    assert why and int(why.group(1)) >= 45, d
    # replay eval re-runs the policy and the stage, cable rows included, on what the node was handed: both
    # set-points reproduced, the first only with the cable rows (it differs from the policy by 0.27 m/s²)
    from marlstack.policies.runtime import PolicyRuntime
    from marlstack.replay.bag import Bag
    from marlstack.replay.fleet import load_config
    from marlstack.replay.team import evaluate_team
    config = yaml.safe_load((REPO / "launch" / "cable3.yaml").read_text())
    (tmp_path / "team.yaml").write_text(yaml.safe_dump({**config, "policy": str(POLICY), "watchdog_periods": WATCHDOG_PERIODS}))
    res = evaluate_team(Bag(tmp_path / "node.mcap"), PolicyRuntime(POLICY), load_config(tmp_path / "team.yaml"),
                        str(POLICY))
    v = res["per_mav"]["mav_0"]
    assert (v["commands"], v["compared"], v["interventions"]) == (2, 2, 1), v
    assert v["max_abs_diff"] <= 1e-5 and v["max_intervention"] > 0.1, v
    # the position hold goes through the stage: pulled at mav_1, the set-point is not the bare hold (0.58 m/s² apart)
    hold, landing = r["hold"], r["landing"]
    assert hold["reason"] == "holding position: /load/goal: goal withdrawn (test)", hold["reason"]
    change = np.subtract(hold["setpoint"], hold["bare"])
    assert np.linalg.norm(change[:3]) > 0.3 and not np.any(hold["setpoint"][3:]), hold
    d = hold["diagnostics"]
    assert d["safety_interventions"] == "2" and d["safety_fallback_uncertified"] == "0", d
    # the team landing (mav_1 falling: lost) goes through the MAV rows of mav_0 and mav_2: mav_2 0.5 m below, the
    # descent is braked (the bare landing command descends on at -0.16 m/s²)
    assert landing["reason"] == LANDING and landing["bare"][2] < 0, landing
    assert landing["setpoint"][2] > landing["bare"][2] + 0.2, landing
    np.testing.assert_allclose(landing["setpoint"][:2], landing["bare"][:2], atol=0.01)  # braked vertically
    assert landing["diagnostics"]["safety_landing_interventions"] == "1", landing["diagnostics"]
    # a new goal does not end the team landing (a team that lost a member does not take off again)
    on = r["goal_while_landing"]
    assert on["reason"] == LANDING and on["rates"] == [0.0, 0.0], on
    # a new start does: a new episode, the policy's command with an empty action history, as an evaluation
    # episode begins (before: the landing latched for good, and the history was the last landing command)
    new, again = r["new_start"], r["start_again"]
    assert new["reason"] is None and new["diagnostics"]["starts"] == "1", new
    np.testing.assert_allclose(new["rates"], new["policy_rates"]["empty"], atol=1e-5)
    # (the two histories' rates differ by 1.0e-3 here, a hundred times the bound)
    assert np.max(np.abs(np.subtract(new["policy_rates"]["carried"], new["policy_rates"]["empty"]))) > 1e-4, new
    # the same start heard again (latched) with another goal: the history is the command being flown
    assert again["diagnostics"]["starts"] == "1", again
    np.testing.assert_allclose(again["rates"], again["policy_rates"]["carried"], atol=1e-5)
    assert np.max(np.abs(np.subtract(again["policy_rates"]["carried"], again["policy_rates"]["empty"]))) > 1e-4, again
