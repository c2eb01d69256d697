"""Physics sanity of the bodies + cables + integrators (float64 pieces run inside `jax.enable_x64`)."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marlstack.hardware import load_profile
from marlstack.sim.cable.dynamics import Bodies, accelerations, cable_vectors, energy, physics_step
from marlstack.sim.cable.equilibrium import hover

PROFILE = load_profile("mav_corl25")


def _hover_bodies(profile, n, dtype):
    h = hover(profile, n)
    z = jnp.zeros((n, 3), dtype)
    cast = lambda x: jnp.asarray(x, dtype)  # noqa: E731
    return Bodies(pos=cast(h.pos), vel=z, quat=cast(h.quat), omega=z, thrust=cast(h.thrust), load_pos=cast(h.load_pos),
                  load_vel=z[0], load_quat=cast(h.load_quat), load_omega=z[0])


def _simulate(profile, bodies, seconds, observe):
    """Scan physics substeps with the rotor thrusts held; `observe(bodies)` is recorded every substep."""
    steps = int(round(seconds * profile.control.physics_rate_hz))

    @jax.jit
    def run(b):
        def body(b, _):
            b = physics_step(b, b.thrust, profile)[0]
            return b, observe(b)
        return jax.lax.scan(body, b, None, length=steps)
    return run(bodies)


def test_static_equilibrium_does_not_drift():
    """Load hanging still, every MAV at its equilibrium rotor thrusts, open loop: ≤ 1 mm in 10 s."""
    with jax.enable_x64(True):
        b0 = _hover_bodies(PROFILE, 3, jnp.float64)
        b, _ = _simulate(PROFILE, b0, 10.0, lambda b: b.load_pos)
        drift = max(float(jnp.abs(b.pos - b0.pos).max()), float(jnp.abs(b.load_pos - b0.load_pos).max()))
    assert drift <= 1e-3


def test_energy_is_conserved_without_drag_and_damping():
    """Zero gravity, rotors off, no drag, undamped tension cables, bodies thrown and spinning: total
    (kinetic + elastic) energy drifts ≤ 1e-3 relative over 10 s with RK4 at 400 Hz, float64."""
    p = PROFILE
    p = dataclasses.replace(p, gravity=0.0, cable=dataclasses.replace(p.cable, damping=0.0),
                            quadrotor=dataclasses.replace(p.quadrotor, drag_coefficient=0.0),
                            control=dataclasses.replace(p.control, integrator="rk4"))
    with jax.enable_x64(True):
        k = jax.random.split(jax.random.PRNGKey(0), 4)
        b0 = _hover_bodies(PROFILE, 3, jnp.float64).replace(
            vel=0.5 * jax.random.normal(k[0], (3, 3), jnp.float64), omega=jax.random.normal(k[1], (3, 3), jnp.float64),
            thrust=jnp.zeros((3, 4), jnp.float64), load_vel=0.3 * jax.random.normal(k[2], (3,), jnp.float64),
            load_omega=0.5 * jax.random.normal(k[3], (3,), jnp.float64))
        e0 = float(energy(b0, p))
        _, (e, d) = _simulate(p, b0, 10.0, lambda b: (energy(b, p), jnp.linalg.norm(jnp.subtract(*cable_vectors(b, p)), axis=-1)))
        drift = float(jnp.max(jnp.abs(e - e0))) / e0
        stretched = float(jnp.mean(d > p.cable.length))
    assert drift <= 1e-3
    assert 0.01 < stretched < 0.99  # the cables really went slack and taut: energy moved between forms


def test_slack_cable_transmits_no_force():
    b = _hover_bodies(PROFILE, 3, jnp.float32)
    top, bottom = cable_vectors(b, PROFILE)
    b = b.replace(pos=b.pos.at[0].add(-0.05 * (top[0] - bottom[0])))  # MAV 0 drops 5 % toward the load
    acc = jax.jit(accelerations, static_argnums=1)
    attached = acc(b, PROFILE, jnp.ones(3, bool))
    released = acc(b, PROFILE, jnp.array([False, True, True]))
    assert float(attached.tension[0]) == 0.0 and float(attached.tension[1]) > 1.0
    for x, y in zip(attached, released):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # ...while releasing a taut cable does change the load's motion
    other = acc(b, PROFILE, jnp.array([True, False, True]))
    assert float(jnp.abs(other.load_acc - attached.load_acc).max()) > 1.0
