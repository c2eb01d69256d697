"""The flight link node over real DDS (loopback) driving a fake PX4 on UDP loopback."""
import numpy as np
import pytest

from hardware import load_profile
from ros_fixtures import run_scenario
from ros_nodes.flight_link_node import rates_and_thrust


def test_outer_loops_hover_and_tilt():
    p = load_profile("mav_corl25")
    rates, thrust = rates_and_thrust((0, 0, 0, 0, 0, 0, 0), (0, 0, 0, 1), p)
    assert rates.tolist() == [0.0, 0.0, 0.0] and thrust == pytest.approx(p.quadrotor.mass * p.gravity)
    rates, _ = rates_and_thrust((1.0, 0, 0, 0, 0, 0, 0), (0, 0, 0, 1), p)
    assert rates[1] > 0 and abs(rates[0]) < 1e-12  # accelerate east (+x): pitch nose down = positive FLU pitch rate


def test_flight_link_node_with_a_fake_px4(tmp_path):
    r = run_scenario("flight_link_scenario.py", tmp_path, timeout=150)
    assert r["arm"]["success"] and r["start"]["success"], r
    assert r["mode"] == 6 << 16 and r["armed"] is True
    p = load_profile("mav_corl25")
    sp = np.array(r["setpoints"])
    assert len(sp) == 20
    np.testing.assert_allclose(sp[:, :3], 0.0, atol=1e-9)        # level hover: no body rates
    np.testing.assert_allclose(sp[:, 3], p.quadrotor.mass * p.gravity / (4 * p.quadrotor.max_rotor_thrust), rtol=1e-6)
    assert r["mocap_count"] > 20
    np.testing.assert_allclose(r["mocap_last"][:3], [2.0, 1.0, -3.0], atol=1e-6)   # ENU (1, 2, 3) -> NED
    assert r["kill"]["success"] and r["armed_after_kill"] is False
    assert r["exit_codes"] == {"/mav_0/flight_link": 0}, r["log"][-2000:]


def test_team_flies_through_its_flight_links_closed_loop(tmp_path):
    """PX4 + ArduPilot (MAVLink/UDP) + Crazyflie (cflib udp://) fakes flying numpy quadrotors; the flight link
    nodes of the plan, each its own process; set-points in, mocap odometry back, mav_2's through its mocap
    odometry node from Motive y-up poses (flight_team_scenario.py)."""
    r = run_scenario("flight_team_scenario.py", tmp_path, timeout=150)
    log = r["log"][-2000:]
    assert r["plan"] == [["flight_link_node", "/mav_0"], ["flight_link_node", "/mav_1"], ["flight_link_node", "/mav_2"],
                         ["mocap_odom_node", "/mav_2"]]
    for step in ("arm", "takeoff", "start"):
        assert all(ok for ok, _ in r[step].values()), (step, r[step], log)
    assert r["armed"] == [True, True, True]
    # take-off by the firmware, then its hold: PX4 AUTO.LOITER, ArduCopter GUIDED
    assert r["climbed"] and np.allclose(r["heights"], 1.0, atol=0.06), r["heights"]
    assert r["modes_after_takeoff"] == [(4 << 16) | (3 << 24), 4]
    # rate control: PX4 OFFBOARD, ArduCopter GUIDED, the Crazyflie on low-level setpoints; flown there by the stack
    assert r["modes_in_flight"] == [6 << 16, 4, "rate"] and all(r["rate_mode_all_along"]), r["timeline"]
    assert max(r["errors"]) < 0.05 and max(r["speeds"]) < 0.1, (r["errors"], r["speeds"])
    assert max(r["max_tilt_deg"]) < 45 and min(r["mocap_received"]) > 100
    # mav_0's stack goes quiet: its link hovers (zero rates) for hold_s = 0.5 s, then lands it; the fault is on /diagnostics
    assert r["mav_0_land_after_s"] is not None and 0.5 <= r["mav_0_land_after_s"] < 3.0, r["mav_0_land_after_s"]
    assert r["mav_0_hover_setpoints"] > 0 and "stale" in r["mav_0_fault"]
    # mav_1 lands on command; mav_2 is killed in the air (motors cut) and falls
    assert r["land"]["mav_1"][0] and r["kill"]["mav_2"][0] and r["kill_height"] > 0.9
    assert r["all_down"] and r["armed_after"] == [False, False, False] and r["modes_after"] == ["idle", "idle", "off"]
    assert r["exit_codes"] == {**{f"/mav_{i}/flight_link": 0 for i in range(3)}, "/mav_2/mocap_odom": 0}, log
