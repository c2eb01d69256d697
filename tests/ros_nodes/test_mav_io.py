"""MAV messages and the policy node's inputs (ros_nodes/mav_io.py), the hold command, the team plan: no DDS."""
import math
from pathlib import Path

import numpy as np
import pytest

from marlstack.ros_nodes import mav_io
from marlstack.ros_nodes.adapters import MissingInput, StaleInput
from marlstack.ros_nodes.mav_io import hold_command
from marlstack.ros_nodes.plan import PlanError, fleet_plan, load_deployment
from marlstack.sim.cable import spec as cable_spec

MAVS = ["mav_0", "mav_1", "mav_2"]
LIMIT = np.array([5.0, 5.0, 5.0, 3.0, 3.0])
CABLE3 = Path(__file__).resolve().parents[2] / "launch" / "cable3.yaml"


def spec_inputs(n=3, history=1):
    return [{"name": k, "shape": ["B", *cable_spec.concrete_shape(v["shape"], n, history)]}
            for k, v in cable_spec.SENSORS.items()]


def test_odometry_round_trip_gives_world_velocity_and_body_rates():
    yaw = math.radians(90)
    quat = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))  # w x y z: body x along world y
    msg = mav_io.odometry_msg([1.0, 2.0, 3.0], quat, [0.0, 1.0, 0.0], [0.1, 0.2, 0.3], 5.0, "mav_0")
    assert msg.twist.twist.linear.x == pytest.approx(1.0)  # world +y is body +x
    values = mav_io.odometry(msg)
    np.testing.assert_allclose(values[7:10], [0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(values[10:13], [0.1, 0.2, 0.3])
    sp = mav_io.setpoint_values(mav_io.setpoint_msg([1, 2, 3, 0.5, -0.5], 5.0))
    assert sp == pytest.approx((1, 2, 3, 0.5, -0.5, 0.0, 0.0))


def test_inputs_follow_the_sensor_contract_and_name_what_is_stale():
    inp = mav_io.TeamInputs(spec_inputs(), MAVS, "mav_1", LIMIT, max_age_s=0.1)
    with pytest.raises(MissingInput, match="/load/odom"):
        inp.inputs(0.0)
    rest = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0)
    for k, m in enumerate(MAVS):
        inp.put(m, (float(k), 0.0, 2.0, *rest[3:]), 1.0)
    inp.put(mav_io.LOAD, (0.0, 0.0, 1.0, *rest[3:]), 1.0)
    inp.put(mav_io.GOAL, (1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, *[0.0] * 6), 0.0)  # latched: never stale
    inp.latest.sent(np.array([10.0, 0.0, 0.0, 1.5, 0.0]))
    x = inp.inputs(1.05)
    assert list(x) == list(cable_spec.SENSORS)
    assert {k: list(v.shape[1:]) for k, v in x.items()} == {e["name"]: e["shape"][1:] for e in spec_inputs()}
    np.testing.assert_allclose(x["others_pos"][0], [[0.0, 0.0, 2.0], [2.0, 0.0, 2.0]])  # agent order, self removed
    np.testing.assert_allclose(x["agent_id"][0], [0, 1, 0])
    np.testing.assert_allclose(x["past_actions"][0, 0], [1.0, 0.0, 0.0, 0.5, 0.0])  # clipped, over the limits
    np.testing.assert_allclose(x["vel"][0], [0.1, 0.0, 0.0])
    with pytest.raises(StaleInput, match="/load/odom"):
        inp.inputs(1.2)
    assert inp.problem(1.2, ["mav_1"]) is not None and inp.problem(1.05, ["mav_1"]) is None


def test_a_model_with_an_unknown_sensor_or_another_team_size_is_refused():
    with pytest.raises(ValueError, match="no source for"):
        mav_io.TeamInputs(spec_inputs() + [{"name": "wind", "shape": ["B", 3]}], MAVS, "mav_0", LIMIT, 0.1)
    with pytest.raises(ValueError, match="team of 3 MAVs"):
        mav_io.TeamInputs(spec_inputs(n=4), MAVS, "mav_0", LIMIT, 0.1)


def test_hold_command_pulls_back_to_the_hold_point_within_the_limits():
    cmd = hold_command(np.array([0.0, 0.0, 1.0]), np.zeros(3), np.array([0.1, 0.0, 1.0]), LIMIT)
    assert cmd[0] > 0 and cmd[1] == 0 and cmd[2] == 0 and not cmd[3:].any()
    far = hold_command(np.zeros(3), np.zeros(3), np.array([100.0, 0, 0]), LIMIT)
    assert far[0] == LIMIT[0]


def test_team_plan_from_cable3_and_clear_errors(tmp_path):
    dep = load_deployment(CABLE3)
    specs = fleet_plan(dep, sitl=True, record=tmp_path / "bag", summary_path=tmp_path / "s.json")
    assert [s.executable for s in specs] == ["mav_sim_node"] + ["mav_policy_node"] * 3 + ["recorder_node"]
    assert specs[1].parameters["mav"] == "mav_0" and specs[1].namespace == "/mav_0"
    assert len(specs[0].parameters["goals"]) == 6 * len(dep.goals)
    assert specs[0].parameters["takeoff_climb_rate"] == 0.5 and specs[0].parameters["scored"] == [1] * len(dep.goals)
    assert "/load/odom" in specs[-1].parameters["topics"] and "/mav_2/setpoint" in specs[-1].parameters["topics"]
    # SITL on simulated time by default: the sim node publishes /clock, the policy nodes read it, the recorder logs wall clock
    assert specs[0].parameters["clock"] == "sim" and specs[0].parameters["clock_subscribers"] == 3
    assert all(s.parameters["use_sim_time"] for s in specs[1:4]) and "use_sim_time" not in specs[-1].parameters
    assert "use_sim_time" not in fleet_plan(dep)[0].parameters  # real vehicles: wall clock
    cf = load_deployment(CABLE3.with_name("cable3_crazyflie.yaml"))  # the Crazyflie-class team
    assert cf.profile == "crazyflie_team" and cf.mavs == ("cf_0", "cf_1", "cf_2") and cf.rate_hz == 100.0
    bad = tmp_path / "bad.yaml"
    text = CABLE3.read_text()
    for old, new, match in [("profile: mav_corl25", "profile: gritsbot_x", "needs a 'mav_team' profile"),
                            ("mavs: [mav_0, mav_1, mav_2]", "mavs: [mav_0, mav_1]", "no attachment layout for 2"),
                            ("start: [0.0, 0.0, 1.5]", "start: [0.0, 0.0, 9.5]", "outside the workspace"),
                            ("goal_timeout_s: 15", "goal_timeout_s: 15\nfailsafe: {hold_s: -1}", "failsafe.hold_s"),
                            ("climb_rate: 0.5", "climb_rate: 9", "takeoff.climb_rate"),
                            ("rpy_deg: [0, 0, 0]}", "rpy_deg: [0, 0, 0], scored: 1}", "scored \\(true/false\\)"),
                            ("sim: {seed: 0}", "sim: {seed: 0, clock: ros}", "sim.clock"),
                            ("sim: {seed: 0}", "sim: {seed: 0, lockstep_timeout_s: 0}", "sim.lockstep_timeout_s"),
                            ("sim: {seed: 0}", "sim: {seed: 0, kill_mavs: [mav_9]}", "sim.kill_mavs"),
                            ("rpy_deg: [0, 0, 0]}", "rpy_deg: [0, 0, 0], start: [0, 0, 9]}", "goals\\[0\\].start")]:
        bad.write_text(text.replace(old, new))
        with pytest.raises(PlanError, match=match) as err:
            load_deployment(bad)
        assert "\n" not in str(err.value) and str(bad) in str(err.value)
    bad.write_text(text.replace("takeoff: {climb_rate: 0.5}", "takeoff: true").replace(
        "rpy_deg: [0, 0, 0]}", "rpy_deg: [0, 0, 0], scored: false}"))
    waypoint = load_deployment(bad)  # take-off at the default climb rate; the first goal a waypoint
    assert waypoint.climb_rate == 0.5 and waypoint.scored == (False, True, True)
    assert fleet_plan(waypoint, sitl=True)[0].parameters["scored"] == [0, 1, 1]
    bad.write_text(text.replace("sim: {seed: 0}", "sim: {seed: 0, clock: wall}").replace(
        "rpy_deg: [0, 0, 0]}", "rpy_deg: [0, 0, 0], start: [0.1, 0, 1.4]}"))
    wall = fleet_plan(load_deployment(bad), sitl=True)  # wall clock; the first goal begun from rest at its start
    assert wall[0].parameters["clock"] == "wall" and not any("use_sim_time" in s.parameters for s in wall)
    assert wall[0].parameters["from_rest"] == [1, 0, 0] and wall[0].parameters["goal_starts"][:3] == [0.1, 0.0, 1.4]
    bad.write_text(text.replace("sim: {seed: 0}", "sim: {seed: 0, kill_mavs: all, kill_at_s: 12}"))
    killed = fleet_plan(load_deployment(bad), sitl=True)  # a scheduled kill of the team
    assert killed[0].parameters["kill_mavs"] == MAVS and killed[0].parameters["kill_at_s"] == 12.0
    # the failsafe: the profile's (cable3.yaml sets none), one setting for the firmware and every policy node's landing
    assert {(s.parameters["failsafe_hold_s"], s.parameters["landing_descent_rate"]) for s in killed[1:4]} == \
        {(killed[0].parameters["failsafe_hold_s"], killed[0].parameters["failsafe_descent_rate"])} == {(2.0, 0.3)}
    bad.write_text(text.replace("goal_timeout_s: 15", "goal_timeout_s: 15\nfailsafe: {descent_rate: 0.5}"))
    assert load_deployment(bad).failsafe == {"hold_s": 2.0, "descent_rate": 0.5}   # a deployment may override it


def test_a_falling_teammate_carries_nothing_a_silent_frozen_or_non_finite_one_is_in_its_failsafe():
    inp = mav_io.TeamInputs(spec_inputs(), MAVS, "mav_0", LIMIT, max_age_s=0.1)
    level = (0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # quaternion, velocity, rates
    hover = lambda x, z: (x, 0.0, z, *level)  # noqa: E731
    for k in range(3):  # hovering: every sample a little different, as measurements are
        inp.receive("mav_0", hover(0.0, 2.0 + 1e-4 * k), 10.0 + 0.01 * k, 10.0 + 0.01 * k)
        inp.receive("mav_1", hover(1.0, 2.0 + 1e-4 * k), 10.0 + 0.01 * k, 10.0 + 0.01 * k)
    lost = lambda now: inp.lost(now, after_s=1.0, fall_speed=3.0, floor=0.5)  # noqa: E731
    assert lost(10.5) == []                                        # mav_2 never heard from: not lost, just missing
    assert lost(11.1) == [mav_io.Lost("mav_1", False, 10.02)]      # silent for 1.08 s: in its failsafe, carrying
    for k in range(1, 130):                                        # the same values, fresh stamps: frozen in the air
        inp.receive("mav_1", hover(1.0, 2.0002), 10.02 + 0.01 * k, 10.02 + 0.01 * k)
    assert lost(10.9) == [] and lost(11.31) == [mav_io.Lost("mav_1", False, 10.02)]   # silent since they last changed
    inp.receive("mav_1", hover(1.0, math.nan), 11.32, 11.32)      # non-finite: refused, silent since the last good one
    assert inp.latest.row("mav_1")[2] == 2.0002 and lost(11.32) == [mav_io.Lost("mav_1", False, 10.02)]
    for k in range(130):                                           # on the ground a noiseless source repeats: not lost
        inp.receive("mav_1", hover(1.0, 0.05), 11.33 + 0.01 * k, 11.33 + 0.01 * k)
    assert lost(12.62) == []
    inp.receive("mav_1", (1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, -4.0, 0.0, 0.0, 0.0), 12.63, 12.63)
    assert lost(12.63) == [mav_io.Lost("mav_1", True, 12.63)]      # falling at 4 m/s: its motors are off
    assert str(lost(12.63)[0]) == "mav_1" and str(mav_io.Lost("mav_1", False, 10.02)) == "mav_1 (silent since 10.02 s)"
    down = mav_io.land_command(np.array([0.1, 0.0, 2.0]), np.zeros(3), np.array([0.0, 0.0, 2.0]), 0.3, LIMIT)
    assert down[0] < 0 and down[1] == 0 and down[2] == pytest.approx(-0.9) and not down[3:].any()
    steady = mav_io.land_command(np.zeros(3), np.array([0.0, 0.0, -0.3]), np.zeros(3), 0.3, LIMIT)
    np.testing.assert_allclose(steady, 0.0, atol=1e-12)  # descending at the rate: nothing more to do


def test_the_survivors_shares_of_a_level_load_and_who_keeps_a_cable_slack():
    from marlstack.hardware.profile import load_profile
    profile = load_profile("mav_corl25")
    corners = np.asarray(profile.team(4).attachment_points)
    for lost in range(4):  # the two neighbours of the lost corner carry half each, the opposite corner nothing
        shares = mav_io.landing_shares(corners, [lost])
        np.testing.assert_allclose(shares[[(lost + 1) % 4, (lost + 3) % 4]], 0.5, atol=1e-12)
        assert shares[lost] == 0 and shares[(lost + 2) % 4] < 1e-12
    np.testing.assert_allclose(mav_io.landing_shares(corners, []), 0.25)  # the evenest of many: equal
    assert mav_io.landing_shares(corners, [0, 1]) is None                  # the centre of mass off their line
    three = np.asarray(profile.team(3).attachment_points)
    assert all(mav_io.landing_shares(three, [k]) is None for k in range(3))  # two points: never level
    hexagon = np.array([[math.cos(a), math.sin(a), 0.1] for a in np.arange(6) * math.pi / 3])
    shares = mav_io.landing_shares(hexagon, [0])                           # five left: several solutions, the evenest
    assert shares[0] == 0 and shares.min() >= 0 and shares.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(shares[1:] @ hexagon[1:, :2], 0.0, atol=1e-12)
    four = ["mav_0", "mav_1", "mav_2", "mav_3"]
    falling = [mav_io.Lost("mav_1", True, 10.0)]
    roles = [mav_io.TeamLanding(profile, four, m, falling, np.zeros(3)).role() for m in four if m != "mav_1"]
    assert roles == ["carrying 0.50 of the load", "carrying 0.50 of the load", "keeping my cable slack"]
    # a silent one still carries (its flight controller's failsafe): every MAV keeps its share, level until the
    # silent one's failsafe descends (10.0 + 2.2 s), then down with it at the same rate
    silent = mav_io.TeamLanding(profile, four, "mav_3", [mav_io.Lost("mav_1", False, 10.0)], np.zeros(3),
                                mav_io.failsafe_descent_after(2.0, 0.1))
    assert silent.role() == "carrying 0.25 of the load, level until their failsafe descends at 12.20 s"
    hovering = np.array([0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert silent.command(hovering, hovering, 0.3, LIMIT, now_s=12.19)[2] == 0.0          # holding level
    assert silent.command(hovering, hovering, 0.3, LIMIT, now_s=12.2)[2] == pytest.approx(-0.9)  # 3 /s * 0.3 m/s
    # the slack MAV comes down faster while its hook is further than SLACK_LENGTH of the cable from its corner
    slack = mav_io.TeamLanding(profile, four, "mav_3", falling, np.array([-0.54, 0.44, 0.0]))
    level = (0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    load = np.array([0.0, 0.0, 1.0, *level])
    hook = 1.0 + corners[3, 2] + profile.quadrotor.cable_offset
    taut = slack.command(np.array([-0.27, 0.22, hook + 1.0, *level]), load, 0.3, LIMIT)
    loose = slack.command(np.array([-0.27, 0.22, hook + 0.5, *level]), load, 0.3, LIMIT)
    assert loose[2] == pytest.approx(-0.9) and taut[2] < loose[2] - 0.1          # 3 * (0.3 + extra)


def test_sitl_vs_jax_missions_begin_every_evaluation_goal_from_rest_at_its_start(tmp_path):
    import yaml

    from marlstack.ros_nodes.mav_compare import mission, quat_to_rpy_deg, row_of, totals
    from marlstack.ros_nodes.mav_sim_node import quat_from_rpy
    q = quat_from_rpy(math.radians(30), math.radians(-20), math.radians(120))
    assert quat_to_rpy_deg(np.asarray(q)) == pytest.approx([30, -20, 120])
    eps = {"start": np.array([[0.1, 0.2, 1.4], [-0.2, 0.0, 1.6]]), "goal_pos": np.array([[0.5, 0.5, 1.5], [0.0, -0.5, 1.2]]),
           "goal_quat": np.array([quat_from_rpy(0.0, math.radians(45.0000001), 1.0), [1.0, 0.0, 0.0, 0.0]])}
    base = yaml.safe_load(CABLE3.read_text())
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(mission(base, eps, [0, 1], 20.0, 45.0, seed=3)))
    dep = load_deployment(config)  # the tilt at the limit after float round-off is accepted
    assert dep.start == pytest.approx((0.1, 0.2, 1.4)) and dep.seed == 3 and dep.goal_timeout_s == 20.0
    assert dep.scored == (True, True) and dep.clock == "sim"
    np.testing.assert_allclose([g[:3] for g in dep.goals], eps["goal_pos"])
    np.testing.assert_allclose(dep.goal_starts, eps["start"])  # each goal begun from rest at its episode's start
    assert fleet_plan(dep, sitl=True)[0].parameters["from_rest"] == [1, 1]
    team = {"goals": [{"scored": True, "success": True, "crashed_after_s": None, "success_after_s": 3.0},
                      {"scored": True, "success": False, "crashed_after_s": 0.01, "success_after_s": None}],
            "min_mav_separation_m": 0.5, "separation_violated": False, "landed": True, "clock": "sim",
            "lockstep": {"timeouts": [0, 1, 0]}}
    row = row_of(0, [0, 1], {"success": np.array([True, False]), "crashed": np.array([False, False]),
                             "steps": np.array([310, 2000])},
                 {"ok": True, "team": team, "robots": {"mav_0": {"hold_steps": 4, "setpoints_refused": 0}}}, dt=0.01)
    assert row["sitl_success"] == [True, False] and row["sitl_crashed"] == [False, True]
    assert row["success_after_s"] == [3.0, None] and row["jax_success_after_s"] == [3.1, None]
    assert row["lockstep_timeouts"] == [0, 1, 0] and row["hold_steps"] == {"mav_0": 4}
    other = {**row, "sitl_success": [True, True], "separation_violated": True, "min_mav_separation_m": 0.3}
    t = totals([row, other])
    assert t["gap_points"] == 25.0 and t["same_outcome_goals"] == 3 and t["mav_mav_violations"] == 1
    assert t["sitl_median_per_run"] == 0.75 and t["min_mav_separation_m"] == 0.3
