"""Frame conventions: flight controllers' NED world / FRD body to ROS's ENU world / FLU body (REP-103).

PX4 and ArduPilot log positions and velocities in a local North-East-Down frame and body
quantities (rates, accelerations) in Forward-Right-Down; their attitude quaternion (w, x, y, z,
Hamilton) rotates FRD body vectors into NED. ROS wants East-North-Up and Forward-Left-Up, so

    v_enu = P v_ned,  P = [[0,1,0],[1,0,0],[0,0,-1]]  (a half turn about (1,1,0)/sqrt2)
    v_flu = B v_frd,  B = diag(1,-1,-1)                (a half turn about x)
    q_enu_flu = q_P * q_ned_frd * q_B

The frames themselves are defined once, in `hardware.frames` (the flight links convert the other
way, one sample at a time, with them); this module applies them to whole streams: every function
takes arrays with the vector / quaternion on the last axis. Quaternions are (w, x, y, z); ROS
messages store (x, y, z, w).
"""
from __future__ import annotations

import numpy as np

from marlstack.hardware.frames import ENU_TO_NED, FLU_TO_FRD, matrix_to_quat

Q_ENU_NED = matrix_to_quat(ENU_TO_NED)  # (0, 1/sqrt2, 1/sqrt2, 0): rotates NED vectors into ENU (self-inverse map)
Q_FRD_FLU = matrix_to_quat(FLU_TO_FRD)  # (0, 1, 0, 0): rotates FLU vectors into FRD


def ned_to_enu(v: np.ndarray) -> np.ndarray:
    """(north, east, down) -> (east, north, up)."""
    return np.asarray(v, dtype=float) @ ENU_TO_NED.T


def frd_to_flu(v: np.ndarray) -> np.ndarray:
    """(forward, right, down) -> (forward, left, up)."""
    return np.asarray(v, dtype=float) @ FLU_TO_FRD.T


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of (w, x, y, z) quaternions, broadcast over leading axes."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a, dtype=float), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, dtype=float), -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def quat_ned_frd_to_enu_flu(q: np.ndarray) -> np.ndarray:
    """Attitude FRD->NED to FLU->ENU, normalised, with w >= 0 (q and -q are the same rotation)."""
    out = quat_mul(quat_mul(Q_ENU_NED, q), Q_FRD_FLU)
    out = out / np.linalg.norm(out, axis=-1, keepdims=True)
    return np.where(out[..., :1] < 0, -out, out)


def rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The vector v (body) expressed in the world frame by attitude q: q * (0, v) * conj(q)."""
    v = np.asarray(v, dtype=float)
    qv = np.concatenate([np.zeros(v.shape[:-1] + (1,)), v], axis=-1)
    conj = np.asarray(q, dtype=float) * np.array([1.0, -1.0, -1.0, -1.0])
    return quat_mul(quat_mul(q, qv), conj)[..., 1:]


def euler(q: np.ndarray) -> np.ndarray:
    """(roll, pitch, yaw) in rad, Z-Y-X order, of (w, x, y, z) quaternions."""
    w, x, y, z = np.moveaxis(np.asarray(q, dtype=float), -1, 0)
    roll = np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = np.arcsin(np.clip(2 * (w * y - z * x), -1.0, 1.0))
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return np.stack([roll, pitch, yaw], axis=-1)
