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
