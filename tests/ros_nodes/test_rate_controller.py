"""The MAV rate controller node: conversions, and its watchdog over real DDS."""
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from hardware import load_profile
from ros_fixtures import REPO
from ros_nodes.isolation import run_isolated
from ros_nodes.rate_controller_node import rotation

SCENARIO = Path(__file__).with_name("mav_scenario.py")


def test_rotation_is_body_to_world():
    yaw = math.radians(90)
    r = rotation(0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))
    np.testing.assert_allclose(r @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)  # body x points along world y
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)


def test_hover_then_hold_then_minimum_thrust_then_recovery(tmp_path):
    out = tmp_path / "result.json"
    proc = run_isolated([sys.executable, str(SCENARIO), str(out), str(tmp_path)], capture_output=True, text=True,
                        timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
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
