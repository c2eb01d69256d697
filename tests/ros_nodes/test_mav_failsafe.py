"""The simulated MAVs' flight-controller failsafes (ros_nodes/mav_sim.py), without DDS.

Set-points stop for the whole team: level hover at each MAV's load share, then a bounded-rate descent
and a landing with the motors never cut while a cable pulls. Set-points pause for one MAV shorter than
the hold: it holds its place and flies again when they return.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marlstack.ros_nodes.mav_sim import DESCEND, FLY, HOLD, LANDED, Failsafe, TeamSim


@pytest.fixture(scope="module")
def team():
    return TeamSim("mav_corl25", 3, (0.0, 0.0, 1.5), Failsafe(hold_s=1.0, descent_rate=0.4, max_age_s=0.03))


def test_stale_setpoints_hold_level_then_descend_at_a_bounded_rate_and_land(team):
    share = team.env.hover.thrust.sum(-1)  # each MAV's weight plus its share of the load, at rest (static equilibrium)
    z0 = team.bodies()["pos"][:, 2].copy()
    trace = []
    for _ in range(int(9.0 / team.dt)):
        team.step()
        b = team.bodies()
        trace.append((team.t, list(team.mode), b["pos"][:, 2].copy(), b["vel"].copy(), np.asarray(team.state.bodies.thrust).sum(-1)))
    held = [row for row in trace if row[0] < 0.95]
    assert all(m == [HOLD] * 3 for _, m, *_ in held)
    assert np.max(np.abs(held[-1][2] - z0)) < 0.05                         # altitude held
    assert np.max(np.abs(held[-1][3])) < 0.05                              # at rest
    np.testing.assert_allclose(held[-1][4], share, rtol=0.05)               # hover thrust at the load share
    descending = [row for row in trace if DESCEND in row[1]]
    assert descending and descending[0][0] == pytest.approx(1.0, abs=0.02)
    assert min(v[:, 2].min() for _, _, _, v, _ in descending) >= -0.4 - 0.05  # bounded descent rate
    s = team.summary()
    assert team.mode == [LANDED] * 3 and s["landed"] and s["landed_at_s"] < 9.0
    assert s["load_touchdown_speed_mps"] <= 0.45
    assert s["min_rotor_thrust_sum_with_load_n"] > 0.3 * share.min()     # never a motor cut with the load hanging
    assert not s["separation_violated"] and s["max_tilt_deg"] < 20


def test_a_short_setpoint_gap_holds_one_mav_and_it_flies_again():
    sim = TeamSim("mav_corl25", 3, (0.0, 0.0, 1.5), Failsafe(hold_s=1.0, descent_rate=0.4, max_age_s=0.03))
    env = sim.env
    carrot = jax.jit(lambda s: env.command(env.sense(s), jnp.zeros((3, 5))))  # the classical controller flies
    start = sim.bodies()["pos"].copy()
    modes = []
    for k in range(150):
        cmd = np.asarray(carrot(sim.state))
        for i in range(3):
            if not (i == 0 and 50 <= k < 100):  # MAV 0 gets no set-points for 0.5 s
                sim.setpoint(i, cmd[i], sim.t)
        sim.step()
        modes.append(sim.mode[0])
    assert modes[40] == FLY and modes[60] == HOLD and modes[99] == HOLD and modes[-1] == FLY
    assert np.max(np.linalg.norm(sim.bodies()["pos"] - start, axis=-1)) < 0.1
