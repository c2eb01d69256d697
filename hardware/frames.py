"""Frame conversions between ROS (REP-103: world ENU, body FLU) and flight controllers (world NED, body FRD).

marlstack computes in ENU / FLU everywhere; a link converts at the wire, in one place, with these.
Quaternions are (w, x, y, z) and rotate body vectors into the world frame.
"""
from __future__ import annotations

import numpy as np

# ENU <-> NED swaps x and y and flips z; FLU <-> FRD flips y and z. Both are their own inverse.
ENU_TO_NED = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
FLU_TO_FRD = np.diag([1.0, -1.0, -1.0])


def enu_to_ned(v) -> np.ndarray:
    """A world vector (position, velocity) from ENU to NED; the same map takes NED back to ENU."""
    return ENU_TO_NED @ np.asarray(v, float)


def flu_to_frd(v) -> np.ndarray:
    """A body vector (body rates, forces) from FLU to FRD; the same map takes FRD back to FLU."""
    return FLU_TO_FRD @ np.asarray(v, float)


def quat_to_matrix(q) -> np.ndarray:
    w, x, y, z = np.asarray(q, float) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """(w, x, y, z) with w >= 0, by the largest-diagonal branch (stable for every rotation)."""
    r = np.asarray(r, float)
    t = np.trace(r)
    if t > 0:
        s = 2.0 * np.sqrt(1.0 + t)
        q = [s / 4, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k])
        q = [0.0] * 4
        q[0] = (r[k, j] - r[j, k]) / s
        q[1 + i] = s / 4
        q[1 + j] = (r[j, i] + r[i, j]) / s
        q[1 + k] = (r[k, i] + r[i, k]) / s
    q = np.asarray(q)
    return q if q[0] >= 0 else -q


def attitude_enu_flu_to_ned_frd(q) -> np.ndarray:
    """Attitude of an FLU body in ENU -> attitude of the same body's FRD frame in NED (w, x, y, z)."""
    return matrix_to_quat(ENU_TO_NED @ quat_to_matrix(q) @ FLU_TO_FRD)


def euler_zyx(q) -> tuple[float, float, float]:
    """(roll, pitch, yaw) in rad of a (w, x, y, z) attitude, aerospace Z-Y-X order."""
    r = quat_to_matrix(q)
    return (float(np.arctan2(r[2, 1], r[2, 2])), float(np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))),
            float(np.arctan2(r[1, 0], r[0, 0])))
