"""The MAV rate controller node: conversions, and its watchdog over real DDS."""
import math

import numpy as np
import pytest

from marlstack.hardware import load_profile
from ros_fixtures import run_scenario, stopped
from marlstack.ros_nodes.rate_controller_node import rotation


def test_rotation_is_body_to_world():
    yaw = math.radians(90)
    r = rotation(0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))
    np.testing.assert_allclose(r @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)  # body x points along world y
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)


def test_inputs_judged_by_their_stamps_hold_then_descend_hold_on_the_gyro_never_cut_and_recover(tmp_path):
    r = run_scenario("mav_scenario.py", tmp_path, timeout=120)
    p = load_profile("crazyflie_team")
    hover = p.quadrotor.mass * p.gravity / 4
    assert r["flying"]["count"] > 10  # publishing (its rate is a bench number, not a test bound: bench ros)
    assert r["flying"]["last_thrust"] == pytest.approx([hover] * 4, rel=0.02)
    # set-points gone for 1 s (stale after 0.1 s, hold 0.3 s): hover, then the bounded descent: below hover, never a cut
    lost = r["no_setpoint"]
    assert any(lvl == 1 and m.startswith("hovering: setpoint") for lvl, m in lost["diagnostics"])
    assert any(lvl == 2 and m.startswith("descending at 0.3 m/s: setpoint") for lvl, m in lost["diagnostics"])
    assert -0.35 < lost["vz"] < -0.05 and min(lost["last_thrust"]) > 0.8 * hover   # going down, rotors carrying it
    # odometry gone, gyro good: level on the gyro at the hover collective (was: every rotor at minimum)
    blind = r["blind"]["last_thrust"]   # the last load-share estimate still settling from the descent: near hover
    assert 0.85 * hover < min(blind) and max(blind) < 1.15 * hover and max(blind) - min(blind) < 0.01 * hover
    assert any(lvl == 2 and "holding level on the gyro: odom" in m for lvl, m in r["blind"]["diagnostics"])
    assert r["recovered"]["last_thrust"] == pytest.approx([hover] * 4, rel=0.02) and r["recovered"]["ok_diagnostic"]
    # odometry values repeated exactly with fresh stamps while flying: frozen after 1 s, held on the gyro
    assert any(lvl == 2 and "on the gyro: odom: frozen (unchanged for 1." in m for lvl, m in r["frozen_odom"]["diagnostics"])
    assert r["frozen_odom"]["last_thrust"] == pytest.approx([hover] * 4, rel=0.15)
    # set-points whose stamp stops advancing (values still coming): stale by their stamp, the MAV hovers
    assert any(lvl == 1 and m.startswith("hovering: setpoint: last one") for lvl, m in r["frozen_setpoint"]["diagnostics"])
    assert r["recovered_again"]["last_thrust"] == pytest.approx([hover] * 4, rel=0.02)
    assert r["recovered_again"]["ok_diagnostic"]
    assert all(map(stopped, r["exit_codes"].values())), r["exit_codes"]
