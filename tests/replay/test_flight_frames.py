"""NED/FRD -> ENU/FLU (REP-103) on known vectors and attitudes."""
from __future__ import annotations

import math

import numpy as np

from marlstack.replay import frames


def quat_from_euler(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """(w, x, y, z) of the Z-Y-X rotation yaw, then pitch, then roll (built independently of frames.euler)."""
    cr, sr, cp, sp, cy, sy = (math.cos(roll / 2), math.sin(roll / 2), math.cos(pitch / 2), math.sin(pitch / 2),
                              math.cos(yaw / 2), math.sin(yaw / 2))
    return np.array([cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy,
                     cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy])


def test_vectors():
    # 1 m north, 2 m east, 3 m down  ->  2 m east, 1 m north, 3 m below the origin
    np.testing.assert_array_equal(frames.ned_to_enu([1.0, 2.0, 3.0]), [2.0, 1.0, -3.0])
    # 1 forward, 2 right, 3 down  ->  1 forward, 2 to the right (= -2 left), 3 down (= -3 up)
    np.testing.assert_array_equal(frames.frd_to_flu([[1.0, 2.0, 3.0]]), [[1.0, -2.0, -3.0]])


def test_level_attitudes():
    # nose north in NED (identity) is a 90 deg yaw in ENU; nose east (NED yaw 90 deg) is ENU yaw 0
    np.testing.assert_allclose(frames.quat_ned_frd_to_enu_flu([1.0, 0, 0, 0]),
                               [math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)], atol=1e-12)
    np.testing.assert_allclose(frames.quat_ned_frd_to_enu_flu(quat_from_euler(0, 0, math.pi / 2)),
                               [1.0, 0, 0, 0], atol=1e-12)


def test_euler_signs():
    # roll right-wing-down is positive in both; nose-up pitch flips sign (y axis right vs left);
    # clockwise yaw from above (FRD) is ENU yaw pi/2 - psi
    q = frames.quat_ned_frd_to_enu_flu(quat_from_euler(0.3, 0.2, 0.5))
    np.testing.assert_allclose(frames.euler(q), [0.3, -0.2, math.pi / 2 - 0.5], atol=1e-12)


def test_rotations_agree():
    """A body vector taken to the world in PX4's frames, then converted, equals the same vector
    converted first and rotated with the converted attitude."""
    rng = np.random.default_rng(3)
    q_ned = rng.normal(size=(200, 4))
    q_ned /= np.linalg.norm(q_ned, axis=1, keepdims=True)
    v_frd = rng.normal(size=(200, 3))
    via_ned = frames.ned_to_enu(frames.rotate(q_ned, v_frd))
    via_enu = frames.rotate(frames.quat_ned_frd_to_enu_flu(q_ned), frames.frd_to_flu(v_frd))
    np.testing.assert_allclose(via_enu, via_ned, atol=1e-12)


def test_streams_agree_with_the_flight_links_conversions():
    """replay converts whole streams NED/FRD -> ENU/FLU; hardware.frames converts one sample the other
    way for the flight links: the round trip is the identity."""
    from marlstack.hardware import frames as link

    rng = np.random.default_rng(5)
    q_ned = rng.normal(size=(50, 4))
    q_ned /= np.linalg.norm(q_ned, axis=1, keepdims=True)
    q_ned *= np.sign(q_ned[:, :1])
    v = rng.normal(size=(50, 3))
    for k in range(50):
        np.testing.assert_allclose(link.attitude_enu_flu_to_ned_frd(frames.quat_ned_frd_to_enu_flu(q_ned[k])),
                                   q_ned[k], atol=1e-12)
        np.testing.assert_allclose(link.enu_to_ned(frames.ned_to_enu(v[k])), v[k], atol=1e-15)
        np.testing.assert_allclose(link.flu_to_frd(frames.frd_to_flu(v[k])), v[k], atol=1e-15)
        q_enu = frames.quat_ned_frd_to_enu_flu(q_ned[k])
        np.testing.assert_allclose(frames.euler(q_enu), link.euler_zyx(q_enu), atol=1e-9)
