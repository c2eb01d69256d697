"""ENU/FLU <-> NED/FRD conversions: involutions, quaternion round trips, and vectors mapped consistently."""
import numpy as np

from marlstack.hardware.frames import (attitude_enu_flu_to_ned_frd, enu_to_ned, euler_zyx, flu_to_frd, matrix_to_quat,
                             quat_to_matrix)


def random_quats(n, seed=0):
    q = np.random.default_rng(seed).normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_vector_maps_are_their_own_inverse():
    v = np.array([1.0, 2.0, 3.0])
    assert enu_to_ned(v).tolist() == [2.0, 1.0, -3.0] and enu_to_ned(enu_to_ned(v)).tolist() == v.tolist()
    assert flu_to_frd(v).tolist() == [1.0, -2.0, -3.0] and flu_to_frd(flu_to_frd(v)).tolist() == v.tolist()


def test_quaternion_round_trip_including_near_180_degrees():
    quats = np.vstack([random_quats(200), [[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [1e-9, 0.6, 0.8, 0.0]]])
    for q in quats:
        back = matrix_to_quat(quat_to_matrix(q))
        assert min(np.abs(back - q).max(), np.abs(back + q).max()) < 1e-9


def test_attitude_maps_body_vectors_like_the_vector_maps():
    for q in random_quats(50, seed=1):
        r_enu = quat_to_matrix(q)
        r_ned = quat_to_matrix(attitude_enu_flu_to_ned_frd(q))
        for body_flu in np.eye(3):
            # a body vector seen in the world: convert then rotate == rotate then convert
            np.testing.assert_allclose(r_ned @ flu_to_frd(body_flu), enu_to_ned(r_enu @ body_flu), atol=1e-12)


def test_yaw_enu_to_ned():
    yaw = 0.3
    roll, pitch, yaw_ned = euler_zyx(attitude_enu_flu_to_ned_frd([np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]))
    assert abs(roll) < 1e-12 and abs(pitch) < 1e-12 and abs(yaw_ned - (np.pi / 2 - yaw)) < 1e-12
