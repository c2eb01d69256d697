"""One controller, two array libraries: the flight controller the simulator runs (jax, jitted) and the
numpy form an onboard node runs agree on recorded inputs, and the node's motor model is the simulator's thrust.

The inputs are recorded from the MAV sim (ros_nodes/mav_sim.py) while the classical controller flies
the team to a goal 0.6 m and 45 deg away: every policy period's controller memory, measurements and command.
"""
import jax
import jax.numpy as jnp
import numpy as np

from marlstack.controllers import quadrotor
from marlstack.ros_nodes.mav_sim import Failsafe, TeamSim
from marlstack.sim.cable.rotation import quat_to_rot


def test_numpy_controller_matches_the_jitted_one_and_the_motor_model_matches_the_true_thrust():
    sim = TeamSim("mav_corl25", 3, (0.0, 0.0, 1.5), Failsafe())
    env, p = sim.env, sim.profile
    dt = 1.0 / p.control.physics_rate_hz
    carrot = jax.jit(lambda s: env.command(env.sense(s), jnp.zeros((3, 5))))
    sim.set_goal((0.5, 0.3, 1.7), (0.9238795, 0.0, 0.0, 0.3826834))
    rff = lambda a, m: m.concatenate([a[:, 3:], m.zeros((3, 1), a.dtype)], -1)  # noqa: E731
    jit_step = jax.jit(lambda c, b, a: quadrotor.step(c, b.vel, quat_to_rot(b.quat), b.omega, b.thrust, a[:, :3],
                                                      rff(a, jnp), jnp.float32(0.0), p, dt))
    err = model_err = spread = 0.0
    for _ in range(200):
        cmd = np.asarray(carrot(sim.state))
        for i in range(3):
            sim.setpoint(i, cmd[i], sim.t)
        b, ctrl = sim.state.bodies, sim.state.ctrl
        want, _ = jit_step(ctrl, b, jnp.asarray(cmd, jnp.float32))
        got, _ = quadrotor.step(quadrotor.CtrlState(*(np.asarray(x) for x in ctrl)), np.asarray(b.vel),
                                np.asarray(quat_to_rot(b.quat)), np.asarray(b.omega), np.asarray(b.thrust),
                                cmd[:, :3].astype(np.float32), rff(cmd.astype(np.float32), np), np.float32(0.0), p, dt)
        err = max(err, float(np.max(np.abs(np.asarray(got) - np.asarray(want)))))
        model_err = max(model_err, float(np.max(np.abs(np.asarray(ctrl.rotor_model) - np.asarray(b.thrust)))))
        spread = max(spread, float(np.ptp(np.asarray(want))))
        sim.step()
    assert err <= 1e-6             # the same controller (issue 13: two forms tied on recorded inputs <= 1e-6)
    assert model_err <= 1e-6       # INDI's "measured" thrust: the node's motor-lag model == the simulator's motors
    assert spread > 0.5            # the rotors were doing different things: the comparison means something
