"""Rigid-body dynamics of N quadrotors and a rigid load joined by N cables; integrators.

Everything is a pure function of a `Bodies` state, the rotor thrust command and a static
`MavTeamProfile` (hashable: pass it as a static argument to `jax.jit`), optionally scaled per episode by a
`sim.cable.variation.Variation` (the true masses, inertias, cable lengths and motor lags). Two cable models:

* `tension`: a spring-damper that only pulls, T = max(0, k (d - L) + c ḋ) when stretched, else 0
  (slack);
* `rigid`: taut rods of length L (the paper's assumption). Tensions come from one N×N linear solve
  per evaluation that makes the second derivative of each constraint ½(|e|² - L²) follow a
  Baumgarte-stabilised target; a negative tension means a real cable would go slack, which the
  environment treats as a termination.

Body rates are in the body frame, positions and velocities in the world frame (z up).
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from marlstack.controllers.quadrotor import allocation
from marlstack.sim.cable.rotation import quat_integrate, quat_mul, quat_to_rot


@struct.dataclass
class Bodies:
    pos: jnp.ndarray         # (N, 3) MAV centres
    vel: jnp.ndarray         # (N, 3)
    quat: jnp.ndarray        # (N, 4)
    omega: jnp.ndarray       # (N, 3) body rates
    thrust: jnp.ndarray      # (N, 4) actual rotor thrusts (after the motor lag)
    load_pos: jnp.ndarray    # (3,)
    load_vel: jnp.ndarray    # (3,)
    load_quat: jnp.ndarray   # (4,)
    load_omega: jnp.ndarray  # (3,) body rates


class Accel(NamedTuple):
    acc: jnp.ndarray         # (N, 3)
    alpha: jnp.ndarray       # (N, 3) body frame
    load_acc: jnp.ndarray    # (3,)
    load_alpha: jnp.ndarray  # (3,) body frame
    tension: jnp.ndarray     # (N,)


class Model(NamedTuple):
    """Numpy constants derived once from the profile and the team size."""
    attach: np.ndarray       # (N, 3) attachment points in the load frame
    hook: np.ndarray         # (3,) cable hook in the MAV body frame
    mixer: np.ndarray        # (3, 4) rotor thrusts → body torques


class Physical(NamedTuple):
    """The parameters a `Variation` may change: the profile's numbers, or arrays scaled per MAV."""
    mass: Any            # () or (N, 1)
    inertia: Any         # (3,) or (N, 3)
    load_mass: Any
    load_inertia: Any    # (3,)
    length: Any          # () or (N,)
    motor_time_constant: Any  # () or (N, 1)


def physical(profile: Any, true: Any = None) -> Physical:
    """The profile's parameters, scaled by the variation `true` where one is given."""
    q, ld = profile.quadrotor, profile.load
    if true is None:
        return Physical(q.mass, np.asarray(q.inertia), ld.mass, np.asarray(ld.inertia), profile.cable.length,
                        q.motor_time_constant)
    return Physical(q.mass * true.mav_mass[:, None], np.asarray(q.inertia, np.float32) * true.mav_inertia,
                    ld.mass * true.load_mass, np.asarray(ld.inertia, np.float32) * true.load_inertia,
                    profile.cable.length * true.cable_length, q.motor_time_constant * true.motor_time_constant[:, None])


@functools.lru_cache(maxsize=None)
def model(profile: Any, num_mavs: int) -> Model:
    q = profile.quadrotor
    return Model(attach=np.asarray(profile.team(num_mavs).attachment_points, np.float64),
                 hook=np.array([0.0, 0.0, -q.cable_offset]), mixer=allocation(q)[1:])


def _geometry(b: Bodies, mdl: Model) -> dict[str, jnp.ndarray]:
    """Cable end points, their velocities and the lever arms, all in the world frame."""
    rot, rot_l = quat_to_rot(b.quat), quat_to_rot(b.load_quat)
    hook_w = rot @ jnp.asarray(mdl.hook, b.pos.dtype)                     # (N, 3)
    arm_w = jnp.einsum("ij,nj->ni", rot_l, jnp.asarray(mdl.attach, b.pos.dtype))  # (N, 3)
    w_w = jnp.einsum("nij,nj->ni", rot, b.omega)
    wl_w = rot_l @ b.load_omega
    top = b.pos + hook_w
    bottom = b.load_pos + arm_w
    e = top - bottom
    e_dot = (b.vel + jnp.cross(w_w, hook_w)) - (b.load_vel + jnp.cross(wl_w, arm_w))
    d = jnp.linalg.norm(e, axis=-1)
    return dict(rot=rot, rot_l=rot_l, hook_w=hook_w, arm_w=arm_w, w_w=w_w, wl_w=wl_w, e=e, e_dot=e_dot,
                d=d, n=e / d[:, None], top=top, bottom=bottom)


def _response(b: Bodies, g: dict, tension: jnp.ndarray, profile: Any, mdl: Model, ph: Physical) -> Accel:
    """Accelerations for given cable tensions (affine in the tensions)."""
    q = profile.quadrotor
    dt = b.pos.dtype
    grav = jnp.asarray([0.0, 0.0, -profile.gravity], dt)
    f_cable = tension[:, None] * g["n"]                                    # pull on the load, (N, 3)
    total = jnp.sum(b.thrust, axis=-1, keepdims=True)
    acc = (g["rot"][:, :, 2] * total - f_cable - q.drag_coefficient * b.vel) / ph.mass + grav
    tau_cable = jnp.einsum("nji,nj->ni", g["rot"], jnp.cross(g["hook_w"], -f_cable))
    tau = b.thrust @ jnp.asarray(mdl.mixer.T, dt) + tau_cable
    inertia = jnp.asarray(ph.inertia, dt)
    alpha = (tau - jnp.cross(b.omega, inertia * b.omega)) / inertia
    load_acc = jnp.sum(f_cable, axis=0) / ph.load_mass + grav
    tau_l = g["rot_l"].T @ jnp.sum(jnp.cross(g["arm_w"], f_cable), axis=0)
    inertia_l = jnp.asarray(ph.load_inertia, dt)
    load_alpha = (tau_l - jnp.cross(b.load_omega, inertia_l * b.load_omega)) / inertia_l
    return Accel(acc, alpha, load_acc, load_alpha, tension)


def _rigid_tension(b: Bodies, g: dict, profile: Any, mdl: Model, ph: Physical) -> jnp.ndarray:
    """Tensions that keep ½(|e|² - L²) on a critically damped path back to zero."""
    def c_ddot_part(tension):
        a = _response(b, g, tension, profile, mdl, ph)
        alpha_w = jnp.einsum("nij,nj->ni", g["rot"], a.alpha)
        alpha_lw = g["rot_l"] @ a.load_alpha
        top = a.acc + jnp.cross(alpha_w, g["hook_w"]) + jnp.cross(g["w_w"], jnp.cross(g["w_w"], g["hook_w"]))
        bottom = (a.load_acc + jnp.cross(alpha_lw, g["arm_w"])
                  + jnp.cross(g["wl_w"], jnp.cross(g["wl_w"], g["arm_w"])))
        return jnp.sum(g["e"] * (top - bottom), axis=-1)

    zero = jnp.zeros(b.pos.shape[0], b.pos.dtype)
    free = c_ddot_part(zero)
    jac = jax.jacfwd(c_ddot_part)(zero)                                      # exact: c is affine
    beta, length = profile.cable.baumgarte, ph.length
    c = 0.5 * (g["d"] ** 2 - length ** 2)
    c_dot = jnp.sum(g["e"] * g["e_dot"], axis=-1)
    target = -2 * beta * c_dot - beta ** 2 * c - jnp.sum(g["e_dot"] ** 2, axis=-1)
    return jnp.linalg.solve(jac, target - free)


def accelerations(b: Bodies, profile: Any, attached: jnp.ndarray, true: Any = None) -> Accel:
    """All accelerations and the cable tensions; `attached` (N,) bool masks released cables; `true` an
    optional `Variation` of the physical parameters."""
    mdl = model(profile, b.pos.shape[0])
    ph = physical(profile, true)
    g = _geometry(b, mdl)
    if profile.cable.model == "rigid":
        tension = _rigid_tension(b, g, profile, mdl, ph)
    else:
        cab = profile.cable
        stretched = g["d"] > ph.length
        pull = cab.stiffness * (g["d"] - ph.length) + cab.damping * jnp.sum(g["n"] * g["e_dot"], axis=-1)
        tension = jnp.where(stretched, jnp.maximum(pull, 0.0), 0.0)
    return _response(b, g, jnp.where(attached, tension, 0.0), profile, mdl, ph)


def _motor(thrust: jnp.ndarray, cmd: jnp.ndarray, tau: Any, dt: float) -> jnp.ndarray:
    """Exact discretisation of the first-order motor lag `tau` over dt."""
    k = 1.0 - (np.exp(-dt / tau) if isinstance(tau, (int, float)) else jnp.exp(-dt / tau))
    return thrust + k * (cmd - thrust)


def _euler(b: Bodies, cmd: jnp.ndarray, profile: Any, attached: jnp.ndarray, dt: float,
           true: Any) -> tuple[Bodies, Accel]:
    """Semi-implicit Euler: velocities first, then positions and attitudes with the new velocities."""
    a = accelerations(b, profile, attached, true)
    vel, omega = b.vel + dt * a.acc, b.omega + dt * a.alpha
    load_vel, load_omega = b.load_vel + dt * a.load_acc, b.load_omega + dt * a.load_alpha
    return Bodies(pos=b.pos + dt * vel, vel=vel, quat=quat_integrate(b.quat, omega, dt), omega=omega,
                  thrust=_motor(b.thrust, cmd, physical(profile, true).motor_time_constant, dt),
                  load_pos=b.load_pos + dt * load_vel,
                  load_vel=load_vel, load_quat=quat_integrate(b.load_quat, load_omega, dt),
                  load_omega=load_omega), a


def _derivative(b: Bodies, cmd: jnp.ndarray, profile: Any, attached: jnp.ndarray, true: Any) -> tuple[Bodies, Accel]:
    a = accelerations(b, profile, attached, true)
    zero = jnp.zeros_like(b.omega[:, :1])
    zero_l = jnp.zeros_like(b.load_omega[:1])
    return Bodies(pos=b.vel, vel=a.acc, quat=0.5 * quat_mul(b.quat, jnp.concatenate([zero, b.omega], -1)),
                  omega=a.alpha, thrust=(cmd - b.thrust) / physical(profile, true).motor_time_constant,
                  load_pos=b.load_vel, load_vel=a.load_acc,
                  load_quat=0.5 * quat_mul(b.load_quat, jnp.concatenate([zero_l, b.load_omega], -1)),
                  load_omega=a.load_alpha), a


def _rk4(b: Bodies, cmd: jnp.ndarray, profile: Any, attached: jnp.ndarray, dt: float,
         true: Any) -> tuple[Bodies, Accel]:
    def shifted(k, h):
        return jax.tree.map(lambda x, dx: x + h * dx, b, k)

    k1, a = _derivative(b, cmd, profile, attached, true)
    k2, _ = _derivative(shifted(k1, dt / 2), cmd, profile, attached, true)
    k3, _ = _derivative(shifted(k2, dt / 2), cmd, profile, attached, true)
    k4, _ = _derivative(shifted(k3, dt), cmd, profile, attached, true)
    out = jax.tree.map(lambda x, d1, d2, d3, d4: x + dt / 6 * (d1 + 2 * d2 + 2 * d3 + d4), b, k1, k2, k3, k4)
    return out.replace(quat=out.quat / jnp.linalg.norm(out.quat, axis=-1, keepdims=True),
                       load_quat=out.load_quat / jnp.linalg.norm(out.load_quat)), a


def physics_step(b: Bodies, cmd: jnp.ndarray, profile: Any, attached: jnp.ndarray | None = None,
                 dt: float | None = None, true: Any = None) -> tuple[Bodies, Accel]:
    """Advance by one physics substep (default 1 / physics_rate_hz) with rotor commands `cmd` (N, 4), on the
    profile's team or its variation `true`.

    Returns the new state and the accelerations/tensions evaluated at the start of the step."""
    dt = 1.0 / profile.control.physics_rate_hz if dt is None else dt
    attached = jnp.ones(b.pos.shape[0], bool) if attached is None else attached
    integrate = _rk4 if profile.control.integrator == "rk4" else _euler
    return integrate(b, cmd, profile, attached, dt, true)


def cable_vectors(b: Bodies, profile: Any) -> tuple[jnp.ndarray, jnp.ndarray]:
    """World positions of each cable's two ends: (top at the MAV hook, bottom at the load), each (N, 3)."""
    g = _geometry(b, model(profile, b.pos.shape[0]))
    return g["top"], g["bottom"]


def energy(b: Bodies, profile: Any) -> jnp.ndarray:
    """Kinetic + gravitational + elastic (tension model) energy; rotor work is not counted."""
    q, ld, cab = profile.quadrotor, profile.load, profile.cable
    kin = 0.5 * q.mass * jnp.sum(b.vel ** 2) + 0.5 * jnp.sum(jnp.asarray(q.inertia) * b.omega ** 2)
    kin += 0.5 * ld.mass * jnp.sum(b.load_vel ** 2) + 0.5 * jnp.sum(jnp.asarray(ld.inertia) * b.load_omega ** 2)
    pot = profile.gravity * (q.mass * jnp.sum(b.pos[:, 2]) + ld.mass * b.load_pos[2])
    top, bottom = cable_vectors(b, profile)
    d = jnp.linalg.norm(top - bottom, axis=-1)
    elastic = 0.5 * cab.stiffness * jnp.sum(jnp.maximum(d - cab.length, 0.0) ** 2) if cab.model == "tension" else 0.0
    return kin + pot + elastic
