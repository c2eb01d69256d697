"""The flight link nodes over real DDS (loopback) driving fake vehicles on UDP loopback."""
import numpy as np
import pytest

from marlstack.hardware import load_profile
from ros_fixtures import run_scenario, stopped
from marlstack.ros_nodes.flight_link_node import rates_and_thrust


def test_outer_loops_hover_and_tilt():
    p = load_profile("mav_corl25")
    rates, thrust = rates_and_thrust((0, 0, 0, 0, 0, 0, 0), (0, 0, 0, 1), p)
    assert rates.tolist() == [0.0, 0.0, 0.0] and thrust == pytest.approx(p.quadrotor.mass * p.gravity)
    rates, _ = rates_and_thrust((1.0, 0, 0, 0, 0, 0, 0), (0, 0, 0, 1), p)
    assert rates[1] > 0 and abs(rates[0]) < 1e-12  # accelerate east (+x): pitch nose down = positive FLU pitch rate


def test_team_flies_through_its_flight_links_closed_loop(tmp_path):
    """PX4 + ArduPilot (MAVLink/UDP) + Crazyflie (cflib udp://) fakes flying numpy quadrotors; the flight link
    nodes of the plan, each its own process; set-points in, mocap odometry back; the load's odometry through
    its mocap odometry node from Motive y-up poses (flight_team_scenario.py)."""
    r = run_scenario("flight_team_scenario.py", tmp_path, timeout=150)
    log = r["log"][-2000:]
    assert r["plan"] == [["flight_link_node", "/mav_0"], ["flight_link_node", "/mav_1"], ["flight_link_node", "/mav_2"],
                         ["mocap_odom_node", "/load"]]
    # the load's Motive y-up poses -> /load/odom: pose exact, body rates exact (constant), velocity within the
    # finite difference's and the low-pass's lag (0.5 m/s turning at 1 rad/s: ~1 cm/s; a frame error would be ~0.5 m/s)
    err = r["load_odom"]["max_errors"]
    assert r["load_odom"]["count"] > 300 and err[0] < 1e-6 and err[2] < 1e-6 and err[1] < 0.05, r["load_odom"]
    for step in ("arm", "takeoff", "start"):
        assert all(ok for ok, _ in r[step].values()), (step, r[step], log)
    assert r["armed"] == [True, True, True]
    # `marlstack flight status`: each link's report on /diagnostics; the MAVLink links show the autopilots' armed flag
    assert all(ok for ok, _ in r["status"].values()), r["status"]
    assert "armed True" in r["status"]["mav_0"][1] and "armed True" in r["status"]["mav_1"][1], r["status"]
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
    p = load_profile("mav_corl25")   # the hover setpoint on the wire: zero rates, thrust m·g / (4 · max rotor thrust)
    assert r["mav_0_hover_thrust"] == [pytest.approx(p.quadrotor.mass * p.gravity / (4 * p.quadrotor.max_rotor_thrust), abs=1e-6)]
    x, y, z = r["mav_0_enu"]   # the mocap odometry reaches PX4 as ATT_POS_MOCAP in NED
    np.testing.assert_allclose(r["mav_0_mocap_ned"], [y, x, -z], atol=1e-6)
    # mav_1 is killed in the air (force disarm: motors cut, it falls); mav_2 lands on command (high-level
    # commander, after the low-level stream hands priority back), then is disarmed
    assert r["kill"]["mav_1"][0] and r["kill_height"] > 0.9 and r["land"]["mav_2"][0] and r["disarm"]["mav_2"][0]
    assert r["all_down"] and r["armed_after"] == [False, False, False] and r["modes_after"] == ["idle", "off", "off"]
    assert [m for _, m in r["timeline"]["mav_2"]][-3:] == ["land", "idle", "off"]   # landed, then motors off on disarm
    assert sorted(r["exit_codes"]) == sorted([*(f"/mav_{i}/flight_link" for i in range(3)), "/load/mocap_odom"]), log
    assert all(map(stopped, r["exit_codes"].values())), log
