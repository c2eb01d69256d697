"""Mocap pose -> odometry (ros_nodes/mocap_odom_node.py): velocity and body rates from pose samples."""
import math

import numpy as np
import pytest

from marlstack.hardware.frames import matrix_to_quat, quat_to_matrix
from marlstack.ros_nodes.hardware_adapter_node import mocap_to_world
from marlstack.ros_nodes.mocap_odom_node import PoseRates


def rot_z(a):
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])


def test_constant_motion_gives_its_velocity_and_body_rates_exactly():
    vel, omega_body = np.array([0.3, -0.2, 0.5]), np.array([0.4, -0.7, 1.1])
    r0 = rot_z(0.3) @ np.array([[1, 0, 0], [0, math.cos(0.2), -math.sin(0.2)], [0, math.sin(0.2), math.cos(0.2)]])
    est, rates = None, PoseRates(cutoff_hz=5.0)
    for k in range(50):
        t = 0.01 * k + 0.001 * (k % 3)   # uneven sampling, as a mocap bridge over a network delivers
        angle = np.linalg.norm(omega_body) * t
        axis = omega_body / np.linalg.norm(omega_body)
        kx = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        r = r0 @ (np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx)   # constant body rate
        out = rates.update(100.0 + t, [1.0, 2.0, 3.0] + vel * t, matrix_to_quat(r))
        assert (out is None) == (k == 0)
        est = out
    np.testing.assert_allclose(est[0], vel, atol=1e-9)
    np.testing.assert_allclose(est[1], omega_body, atol=1e-9)


def test_repeats_are_dropped_and_a_gap_restarts():
    rates = PoseRates(cutoff_hz=1.0, max_gap_s=0.5)
    q = [1.0, 0.0, 0.0, 0.0]
    assert rates.update(1.0, [0, 0, 0], q) is None
    assert rates.update(1.1, [0.1, 0, 0], q)[0] == pytest.approx([1.0, 0, 0])
    assert rates.update(1.1, [5.0, 0, 0], q) is None            # same stamp: dropped
    assert rates.update(1.05, [5.0, 0, 0], q) is None           # older: dropped
    assert rates.update(1.2, [0.2, 0, 0], q)[0] == pytest.approx([1.0, 0, 0])   # unchanged by the dropped ones
    assert rates.update(3.0, [9.0, 0, 0], q) is None            # 1.8 s gap: restart, no estimate
    assert rates.update(3.1, [9.05, 0, 0], q)[0] == pytest.approx([0.5, 0, 0])  # fresh, not blended with the old
    assert rates.update(3.2, [float("nan"), 0, 0], q) is None


def test_motive_y_up_becomes_z_up():
    # Motive: up is +y, z toward the viewer; a body 1 m up and yawed 30 degrees about the up axis
    a = math.radians(30)
    r_yup = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    pos, quat = mocap_to_world([0.5, 1.0, -2.0], matrix_to_quat(r_yup), "y")
    np.testing.assert_allclose(pos, [0.5, 2.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(quat_to_matrix(quat), rot_z(a), atol=1e-12)
