"""The MAV rate controller node: conversions, and its watchdog over real DDS."""
import math

import numpy as np
import pytest

from hardware import load_profile
from ros_fixtures import run_scenario
from ros_nodes.rate_controller_node import rotation


def test_rotation_is_body_to_world():
    yaw = math.radians(90)
    r = rotation(0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))
    np.testing.assert_allclose(r @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)  # body x points along world y
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)


def test_hover_then_hold_then_minimum_thrust_then_recovery(tmp_path):
    r = run_scenario("mav_scenario.py", tmp_path, timeout=120)
    p = load_profile("crazyflie_team")
    hover = p.quadrotor.mass * p.gravity / 4
    assert r["flying"]["count"] > 100  # ~500 Hz inner loop
    assert r["flying"]["last_thrust"] == pytest.approx([hover] * 4, rel=0.02)
    assert r["no_setpoint"]["last_thrust"] == pytest.approx([hover] * 4, rel=0.02)  # hovers in place
    assert any(lvl == 1 and "hovering: setpoint" in m for lvl, m in r["no_setpoint"]["diagnostics"])
    assert r["blind"]["last_thrust"] == [p.quadrotor.min_rotor_thrust] * 4
    assert any(lvl == 2 and "minimum thrust: odom" in m for lvl, m in r["blind"]["diagnostics"])
    assert r["recovered"]["last_thrust"] == pytest.approx([hover] * 4, rel=0.02) and r["recovered"]["ok_diagnostic"]
    assert all(code == 0 for code in r["exit_codes"].values()), r["exit_codes"]
