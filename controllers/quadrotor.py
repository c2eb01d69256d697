"""Quadrotor low-level control, array-API neutral: the same code runs in the jitted simulator
(jax.numpy) and in an onboard node (numpy).

Structure (as in the CoRL 2025 cable-load paper): a commanded world-frame acceleration becomes a
collective thrust and a desired body z axis, `a_cmd = a_des - g - a_ext`, `T = m |a_cmd|`; a
tilt-first attitude loop turns that into body-rate references (plus the policy's roll/pitch rate
feed-forward); an inner loop (INDI, or a plain rate PID where rotor thrusts are not measured)
turns rates into torques; the mixer turns thrust + torques into rotor thrusts, giving up
collective thrust before yaw and yaw before roll/pitch when the rotors saturate. The external
acceleration `a_ext` (the unknown cable pull) is estimated from the accelerometer.

Shapes: every function takes arrays with any leading batch dims `(...)`: vectors `(..., 3)`,
rotation matrices `(..., 3, 3)` (body to world), rotor thrusts `(..., 4)`.
"""
from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

from marlstack.controllers.arrays import xp


class CtrlState(NamedTuple):
    """Memory of the low-level controller (a NamedTuple, so JAX treats it as a pytree)."""
    prev_vel: Any       # (..., 3) world velocity at the previous tick, for the accelerometer model
    prev_omega: Any     # (..., 3) body rate at the previous tick, to differentiate the gyro
    omega_dot: Any      # (..., 3) low-passed angular acceleration
    thrust: Any         # (..., 4) low-passed rotor thrusts (measured for INDI, modelled for the PID)
    a_ext: Any          # (..., 3) low-passed external acceleration estimate, world frame
    rate_int: Any       # (..., 3) rate PID integral
    rotor_model: Any    # (..., 4) rotor thrusts predicted from the commands by the motor-lag model


@functools.lru_cache(maxsize=None)
def allocation(quad: Any) -> np.ndarray:
    """(4, 4) map from rotor thrusts to [collective thrust, roll, pitch, yaw torque] (body frame).

    Rotor i sits at angle arm_angle + 90°·i and spins in direction (+1, -1, +1, -1)·(-1)^i;
    its drag torque about body z is torque_coefficient·thrust with that sign.
    """
    ang = np.deg2rad(quad.arm_angle) + np.arange(4) * np.pi / 2
    x, y = quad.arm_length * np.cos(ang), quad.arm_length * np.sin(ang)
    spin = np.array([1.0, -1.0, 1.0, -1.0])
    return np.stack([np.ones(4), y, -x, quad.torque_coefficient * spin])


@functools.lru_cache(maxsize=None)
def allocation_inverse(quad: Any) -> np.ndarray:
    return np.linalg.inv(allocation(quad))


def _lowpass_alpha(profile: Any, dt: float) -> float:
    tau = 1.0 / (2 * math.pi * profile.control.filter_cutoff_hz)
    return dt / (dt + tau)


def init_state(vel: Any, omega: Any, rotor_thrust: Any, a_ext: Any = None) -> CtrlState:
    """Controller memory at rest with the given measurements; `a_ext` defaults to zero (unknown pull)."""
    m = xp(vel, omega, rotor_thrust)
    zeros3 = m.zeros_like(vel)
    return CtrlState(prev_vel=vel, prev_omega=omega, omega_dot=m.zeros_like(omega), thrust=rotor_thrust,
                     a_ext=zeros3 if a_ext is None else a_ext, rate_int=m.zeros_like(omega),
                     rotor_model=rotor_thrust)


def _cross(m, a, b):
    """Cross product over the last axis (written out: numpy and jax agree bit for bit on this form)."""
    return m.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
                    a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                    a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], axis=-1)


def _norm(m, v):
    return m.sqrt(m.sum(v * v, axis=-1, keepdims=True))


def thrust_and_axis(acc_des: Any, a_ext: Any, profile: Any) -> tuple[Any, Any]:
    """Outer loop: `a_cmd = a_des - g - a_ext`, tilt limited; returns (collective thrust (...), body z (..., 3))."""
    m = xp(acc_des, a_ext)
    g = profile.gravity
    a = acc_des - a_ext + m.asarray([0.0, 0.0, g], dtype=acc_des.dtype)
    # keep at least a tenth of gravity upward, and the tilt within max_tilt (horizontal part shrinks first)
    az = m.maximum(a[..., 2:3], 0.1 * g)
    horiz = a[..., :2]
    h = m.sqrt(m.sum(horiz * horiz, axis=-1, keepdims=True))
    hmax = az * math.tan(math.radians(profile.control.max_tilt))
    horiz = horiz * m.minimum(1.0, hmax / m.maximum(h, 1e-9))
    a = m.concatenate([horiz, az], axis=-1)
    n = _norm(m, a)
    return profile.quadrotor.mass * n[..., 0], a / n


def attitude_rates(rot: Any, z_des: Any, yaw_sp: Any, rate_ff: Any, profile: Any) -> Any:
    """Tilt-first attitude loop: roll/pitch rates from the reduced-attitude error, yaw rate from a slower
    heading loop, plus the feed-forward (..., 3); clipped to max_body_rate."""
    m = xp(rot, z_des, rate_ff)
    kx, ky, kz = profile.control.attitude_gain
    z_b = rot[..., :, 2]
    axis_w = _cross(m, z_b, z_des)                               # sin(tilt error) · rotation axis, world
    axis_b = m.einsum("...ji,...j->...i", rot, axis_w)           # in the body frame
    cos_e = m.sum(z_b * z_des, axis=-1)
    tilt = m.arctan2(_norm(m, axis_b)[..., 0], cos_e)            # the error angle itself, not its sine
    axis_b = axis_b * (tilt / m.maximum(_norm(m, axis_b)[..., 0], 1e-9))[..., None]
    yaw = m.arctan2(rot[..., 1, 0], rot[..., 0, 0])
    e_yaw = m.arctan2(m.sin(yaw_sp - yaw), m.cos(yaw_sp - yaw))
    rates = m.stack([kx * axis_b[..., 0], ky * axis_b[..., 1], kz * e_yaw], axis=-1) + rate_ff
    lim = m.asarray(profile.control.max_body_rate, dtype=rates.dtype)
    return m.clip(rates, -lim, lim)


def indi_torque(rate_ref: Any, omega: Any, omega_dot_f: Any, thrust_f: Any, profile: Any) -> Any:
    """INDI: torque = filtered measured torque + I·(K (ω_ref - ω) - filtered ω̇); the unknown cable
    torque is inside the measured angular acceleration, so it is rejected without a model."""
    m = xp(rate_ref, omega, omega_dot_f, thrust_f)
    inertia = m.asarray(profile.quadrotor.inertia, dtype=omega.dtype)
    k = m.asarray(profile.control.rate_gain, dtype=omega.dtype)
    tau_f = m.einsum("ij,...j->...i", m.asarray(allocation(profile.quadrotor)[1:], dtype=omega.dtype), thrust_f)
    return tau_f + inertia * (k * (rate_ref - omega) - omega_dot_f)


def pid_torque(rate_ref: Any, omega: Any, omega_dot_f: Any, rate_int: Any, profile: Any, dt: float) -> tuple[Any, Any]:
    """Rate PID (derivative on the measured rate) + gyroscopic feed-forward; returns (torque, new integral)."""
    m = xp(rate_ref, omega, omega_dot_f, rate_int)
    c = profile.control
    inertia = m.asarray(profile.quadrotor.inertia, dtype=omega.dtype)
    err = rate_ref - omega
    rate_int = m.clip(rate_int + err * dt, -c.pid_integral_limit, c.pid_integral_limit)
    acc = (m.asarray(c.pid_kp, dtype=omega.dtype) * err + m.asarray(c.pid_ki, dtype=omega.dtype) * rate_int
           - m.asarray(c.pid_kd, dtype=omega.dtype) * omega_dot_f)
    return inertia * acc + _cross(m, omega, inertia * omega), rate_int


def _spread(m, f):
    return m.max(f, axis=-1) - m.min(f, axis=-1)


def mix(thrust: Any, torque: Any, profile: Any) -> Any:
    """Rotor thrusts (..., 4) for a collective thrust (...) and body torques (..., 3), within the rotor
    limits: roll/pitch are kept, then as much yaw as fits, then the collective thrust is shifted."""
    m = xp(thrust, torque)
    q = profile.quadrotor
    ginv = m.asarray(allocation_inverse(q), dtype=torque.dtype)
    room = q.max_rotor_thrust - q.min_rotor_thrust
    f_rp = m.einsum("ij,...j->...i", ginv[:, 1:3], torque[..., :2])
    f_rp = f_rp * m.minimum(1.0, room / m.maximum(_spread(m, f_rp), 1e-12))[..., None]
    f_y = ginv[:, 3] * torque[..., 2:3]
    s0 = _spread(m, f_rp)
    # the spread is convex in the yaw share s, so this s keeps spread(f_rp + s·f_y) within room
    s = m.clip((room - s0) / m.maximum(_spread(m, f_rp + f_y) - s0, 1e-12), 0.0, 1.0)
    f_att = f_rp + s[..., None] * f_y
    lo = q.min_rotor_thrust - m.min(f_att, axis=-1)
    hi = q.max_rotor_thrust - m.max(f_att, axis=-1)
    c = m.minimum(m.maximum(thrust * ginv[0, 0], lo), hi)       # ginv[:, 0] = 1/4 on a symmetric X frame
    return m.clip(c[..., None] + f_att, q.min_rotor_thrust, q.max_rotor_thrust)


def _thrust_measured(state: CtrlState, rotor_thrust: Any, profile: Any) -> Any:
    """INDI reads the rotor thrusts (rotor-speed feedback); the PID has none and uses the motor-lag model."""
    return rotor_thrust if profile.control.inner_loop == "indi" else state.rotor_model


def step(state: CtrlState, vel: Any, rot: Any, omega: Any, rotor_thrust: Any, acc_des: Any, rate_ff: Any,
         yaw_sp: Any, profile: Any, dt: float) -> tuple[Any, CtrlState]:
    """One low-level tick: measurements (world velocity, attitude, body rate, measured rotor thrusts —
    ignored by the PID) and references → (rotor thrust command (..., 4), new memory).

    `rate_ff` (..., 3) is added to the attitude loop's rates (the policy's roll/pitch references)."""
    m = xp(vel, rot, omega, rotor_thrust, acc_des, rate_ff)
    alpha = _lowpass_alpha(profile, dt)
    total = m.sum(_thrust_measured(state, rotor_thrust, profile), axis=-1, keepdims=True)
    # accelerometer model: specific force (velocity difference + g) minus what the rotors explain
    a_ext_raw = (vel - state.prev_vel) / dt + m.asarray([0.0, 0.0, profile.gravity], dtype=vel.dtype) \
        - rot[..., :, 2] * total / profile.quadrotor.mass
    a_ext = state.a_ext + alpha * (a_ext_raw - state.a_ext)
    collective, z_des = thrust_and_axis(acc_des, a_ext, profile)
    rate_ref = attitude_rates(rot, z_des, yaw_sp, rate_ff, profile)
    return rate_step(state._replace(prev_vel=vel, a_ext=a_ext), omega, rotor_thrust, rate_ref, collective,
                     profile, dt)


def rate_step(state: CtrlState, omega: Any, rotor_thrust: Any, rate_ref: Any, collective: Any,
              profile: Any, dt: float) -> tuple[Any, CtrlState]:
    """Inner loop alone: body-rate reference + collective thrust → rotor thrusts (..., 4), new memory."""
    m = xp(omega, rotor_thrust, rate_ref)
    alpha = _lowpass_alpha(profile, dt)
    omega_dot = state.omega_dot + alpha * ((omega - state.prev_omega) / dt - state.omega_dot)
    thrust_f = state.thrust + alpha * (_thrust_measured(state, rotor_thrust, profile) - state.thrust)
    if profile.control.inner_loop == "indi":
        torque, rate_int = indi_torque(rate_ref, omega, omega_dot, thrust_f, profile), state.rate_int
    else:
        torque, rate_int = pid_torque(rate_ref, omega, omega_dot, state.rate_int, profile, dt)
    cmd = mix(m.asarray(collective), torque, profile)
    lag = 1.0 - math.exp(-dt / profile.quadrotor.motor_time_constant)
    return cmd, state._replace(prev_omega=omega, omega_dot=omega_dot, thrust=thrust_f, rate_int=rate_int,
                               rotor_model=state.rotor_model + lag * (cmd - state.rotor_model))
