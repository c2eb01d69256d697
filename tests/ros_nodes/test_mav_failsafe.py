"""The simulated MAVs' flight-controller failsafes (ros_nodes/mav_sim.py), without DDS.

Set-points stop for the whole team: level hover at each MAV's load share, then a bounded-rate descent
and a landing with the motors never cut while a cable pulls. Set-points pause for one MAV shorter than
the hold: it holds its place and flies again when they return; then the team is put at rest at an
evaluation episode's start. One MAV of four is killed (its motors cut, as by `/<mav>/kill`; an injected thrust
failure is the same cut): the survivors' team landing (`mav_io.TeamLanding`, as each policy node flies it) keeps the
load level; then the rest of the team is killed: every motor off, everything falls. The lockstep of SITL on simulated time: who is waited for,
and for how long.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marlstack.ros_nodes import mav_io
from marlstack.ros_nodes.mav_io import hold_command
from marlstack.ros_nodes.mav_sim import DESCEND, FLY, HOLD, LANDED, OFF, Failsafe, Lockstep, TeamSim


@pytest.fixture(scope="module")
def team():
    """Four MAVs (the cable4_failure team), one compile for the module: the tests below run in file order, each
    later one putting the team back at rest in hover (`place`); the failure, for good, comes last."""
    return TeamSim("mav_corl25", 4, (0.0, 0.0, 1.5), Failsafe(hold_s=1.0, descent_rate=0.4, max_age_s=0.03))


def test_stale_setpoints_hold_level_then_descend_at_a_bounded_rate_and_land(team):
    share = team.env.hover.thrust.sum(-1)  # each MAV's weight plus its share of the load, at rest (static equilibrium)
    team.place((0.0, 0.0, 0.6))            # a shorter way down
    z0 = team.bodies()["pos"][:, 2].copy()
    trace = []
    while team.t < 9.0 and team.mode != [LANDED] * 4:
        team.step()
        b = team.bodies()
        trace.append((team.t, list(team.mode), b["pos"][:, 2].copy(), b["vel"].copy(), np.asarray(team.state.bodies.thrust).sum(-1)))
    held = [row for row in trace if row[0] < 0.95]
    assert all(m == [HOLD] * 4 for _, m, *_ in held)
    assert np.max(np.abs(held[-1][2] - z0)) < 0.05                         # altitude held
    assert np.max(np.abs(held[-1][3])) < 0.05                              # at rest
    np.testing.assert_allclose(held[-1][4], share, rtol=0.05)               # hover thrust at the load share
    descending = [row for row in trace if DESCEND in row[1]]
    assert descending and descending[0][0] == pytest.approx(1.0, abs=0.02)
    assert min(v[:, 2].min() for _, _, _, v, _ in descending) >= -0.4 - 0.05  # bounded descent rate
    s = team.summary()
    assert team.mode == [LANDED] * 4 and s["landed"] and s["landed_at_s"] < 9.0
    assert s["load_touchdown_speed_mps"] <= 0.45
    assert s["min_rotor_thrust_sum_with_load_n"] > 0.3 * share.min()     # never a motor cut with the load hanging
    assert not s["separation_violated"] and s["max_tilt_deg"] < 20


def test_a_short_setpoint_gap_holds_one_mav_and_it_flies_again(team):
    sim = team
    sim.place((0.0, 0.0, 1.5))  # landed by the test before: in the air again, at rest
    env = sim.env
    carrot = jax.jit(lambda s: env.command(env.sense(s), jnp.zeros((4, 5))))  # the classical controller flies
    start = sim.bodies()["pos"].copy()
    modes = []
    for k in range(150):
        cmd = np.asarray(carrot(sim.state))
        for i in range(4):
            if not (i == 0 and 50 <= k < 100):  # MAV 0 gets no set-points for 0.5 s
                sim.setpoint(i, cmd[i], sim.t)
        sim.step()
        modes.append(sim.mode[0])
    assert modes[40] == FLY and modes[60] == HOLD and modes[99] == HOLD and modes[-1] == FLY
    assert np.max(np.linalg.norm(sim.bodies()["pos"] - start, axis=-1)) < 0.1
    # an evaluation episode's start (`CableEnv.reset`: the resting hover, filters converged) at another load position
    _, rest = sim.evaluation_start(jax.random.PRNGKey(7))
    sim.place((0.3, -0.2, 1.2))
    b = sim.bodies()
    shift = np.array([0.3, -0.2, 1.2]) - np.asarray(rest.bodies.load_pos)
    np.testing.assert_allclose(b["pos"], np.asarray(rest.bodies.pos) + shift, atol=1e-6)
    np.testing.assert_allclose(b["load_pos"], [0.3, -0.2, 1.2], atol=1e-6)
    assert not b["vel"].any() and not b["load_vel"].any() and not b["omega"].any()
    np.testing.assert_allclose(np.asarray(sim.state.tension), np.asarray(rest.tension))
    for a, r in zip(jax.tree.leaves(sim.state.ctrl), jax.tree.leaves(rest.ctrl)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(r))


def _row(b: dict, key: str, i: int | None = None) -> np.ndarray:
    """An odometry row as the policy node keeps it (position, quaternion x y z w, world velocity, body rates)."""
    at = (lambda v: v) if i is None else (lambda v: v[i])  # noqa: E731
    q = at(b[f"{key}quat"])
    return np.concatenate([at(b[f"{key}pos"]), q[1:], q[:1], at(b[f"{key}vel"]), at(b[f"{key}omega"])])


def test_a_silent_mav_still_carries_the_others_hold_level_then_land_with_its_failsafe(team):
    # mav_1's odometry stops at t0: its policy node sends nothing once its own odometry is a watchdog old, its flight
    # controller holds level at its share, then descends (hold_s 1 s, 0.4 m/s). The others hold position (a teammate
    # stale), judge it lost by silence after 1 s (lost_after_s) and fly `TeamLanding` with it silent: every MAV
    # keeps its share, level until its failsafe descends, then down with it at the same rate. Treated as falling (the
    # rule before: it carries nothing, mav_3 slackens its cable, the others descend at once while mav_1 still holds)
    # the load tilted 7.5 / 14.9 / 18.3 deg in the 2nd / 3rd / 4th second; with this rule 3.6 deg at most.
    sim, mavs, lim = team, ["mav_0", "mav_1", "mav_2", "mav_3"], np.asarray(team.env.action_limit, np.float64)
    sim.place((0.0, 0.0, 1.0))
    fs, floor = sim.failsafe, sim.profile.task.ground_clearance + 1e-3
    t0, hold, landing, tilt = sim.t, sim.bodies()["pos"].copy(), None, []
    while sim.t - t0 < 8.0 and (not tilt or tilt[-1][1] > floor):
        b = sim.bodies()
        if landing is None and sim.t - t0 > 1.0:
            lost = [mav_io.Lost("mav_1", False, t0)]
            after = mav_io.failsafe_descent_after(fs.hold_s, fs.max_age_s)
            landing = {i: mav_io.TeamLanding(sim.profile, mavs, mavs[i], lost, b["pos"][i], after) for i in (0, 2, 3)}
        for i in (0, 1, 2, 3):
            if i == 1 and sim.t - t0 >= fs.max_age_s:
                continue                                             # its node has no odometry: no set-point
            cmd = (hold_command(b["pos"][i], b["vel"][i], hold[i], lim) if landing is None or i == 1
                   else landing[i].command(_row(b, "", i), _row(b, "load_"), fs.descent_rate, lim, sim.t))
            sim.setpoint(i, cmd, sim.t)
        sim.step()
        q = sim.bodies()["load_quat"]
        tilt.append((math.degrees(math.acos(min(1.0, 1 - 2 * (q[1] ** 2 + q[2] ** 2)))), sim.bodies()["load_pos"][2]))
    assert landing[3].role().startswith("carrying 0.25 of the load, level until")
    assert (1, DESCEND) in [e[1:] for e in sim.events[-8:]]                # its failsafe came down ...
    assert tilt[-1][1] <= floor and sim.t - t0 < 5.0                        # ... with the load, set down
    assert max(deg for deg, z in tilt if z > floor) < 5.0                     # level all the way (before: 18.3 deg)


def test_a_killed_mav_of_four_the_others_land_the_load_level(team):
    # mav_1 is killed in hover (motors cut: it falls, its cable released); each survivor sees it fall faster than 3 m/s (the policy node's
    # lost_fall_speed) and flies its part: mav_0 and mav_2 (its neighbours: the centre of mass is on their diagonal)
    # carry half each, mav_3 (opposite) keeps its cable slack. The landing before 2026-12-05 (every MAV down over its
    # place, mav_3 still pulling) held the load 24.4 deg from level here after 3 s (13.5 deg in the SITL run).
    sim, mavs, lim = team, ["mav_0", "mav_1", "mav_2", "mav_3"], np.asarray(team.env.action_limit, np.float64)
    sim.place((0.0, 0.0, 1.5))
    start = sim.bodies()["pos"][[0, 2, 3], 2]
    assert sim.cut(1, "kill") and not sim.cut(1, "kill")   # a second kill changes nothing
    t0, floor = sim.t, sim.profile.task.ground_clearance + 1e-3
    landing, trace = None, []
    while sim.t - t0 < 7.0 and (sim.load_down_at is None or sim.t < sim.load_down_at + 0.2):
        b = sim.bodies()
        if landing is None and b["vel"][1, 2] < -3.0:
            lost = [mav_io.Lost("mav_1", True, sim.t)]
            landing = {i: mav_io.TeamLanding(sim.profile, mavs, mavs[i], lost, b["pos"][i]) for i in (0, 2, 3)}
            detected = sim.t - t0
        for i in (0, 2, 3):
            cmd = (np.zeros(5) if landing is None  # the hover set-point until the loss is seen
                   else landing[i].command(_row(b, "", i), _row(b, "load_"), 0.3, lim))
            sim.setpoint(i, cmd, sim.t)
        sim.step()
        b = sim.bodies()
        q = b["load_quat"]
        trace.append((sim.t - t0, math.degrees(math.acos(min(1.0, 1 - 2 * (q[1] ** 2 + q[2] ** 2)))), b["load_pos"][2]))
    assert [landing[i].role() for i in (0, 2, 3)] == ["carrying 0.50 of the load", "carrying 0.50 of the load",
                                                       "keeping my cable slack"]
    assert detected < 0.4
    airborne = [(t, tilt) for t, tilt, z in trace if z > floor]
    s = sim.summary()
    assert s["after_failure"]["load_down_after_s"] < 6.0                           # set down ...
    assert max(tilt for t, tilt in airborne if t > 3.0) <= 5.0                      # ... level (before: 24.4 deg)
    assert airborne[-1][1] <= 3.0
    assert s["after_failure"]["load_max_sink_mps"] <= 0.35
    drop = start - sim.bodies()["pos"][[0, 2, 3], 2]                              # the three come down with it
    assert np.all((drop > 1.2) & (drop < 1.8)), drop
    assert not s["separation_violated"]
    assert s["motors_cut"] == [{"at_s": round(t0, 3), "mav": 1, "cause": "kill"}] and s["modes"][1] == OFF


def test_killing_the_whole_team_cuts_every_motor_and_everything_falls(team):
    sim = team
    sim.place((0.0, 0.0, 1.5))   # in the air again at rest (mav_1 stays off)
    for i in (0, 2, 3):
        sim.cut(i, "kill")
    t0, vz = sim.t, []
    for _ in range(30):
        sim.step()
        b = sim.bodies()
        vz.append(np.append(b["vel"][:, 2], b["load_vel"][2]))
    # the rotors spin down with the motor lag (33 ms), then nothing holds anything: free fall from 0.2 s on
    np.testing.assert_allclose(vz[19] - vz[29], sim.profile.gravity * 0.1, rtol=0.02)
    for _ in range(50):
        sim.step()
    s, b = sim.summary(), sim.bodies()
    assert s["modes"] == [OFF] * 4 and [c["mav"] for c in s["motors_cut"]] == [1, 0, 2, 3] and not s["landed"]
    assert np.all(np.append(b["pos"][:, 2], b["load_pos"][2]) <= sim.profile.task.ground_clearance + 1e-6)  # down
    assert s["load_touchdown_speed_mps"] > 4.0                                # the load hit it falling (1.5 m: 5.4 m/s)


def test_lockstep_waits_for_every_answer_but_never_forever():
    lock = Lockstep(3, timeout_s=0.5)
    assert lock.ready(0.0)                                    # nothing sent: step
    lock.sample(10.00, wall=1.0)
    lock.answer(0, 10.00)
    lock.answer(1, 9.99)                                      # an answer to an older sample does not count
    assert not lock.ready(1.1)
    lock.answer(1, 10.00 + 1e-7)                              # a stamp's float round trip does
    lock.answer(2, 10.00)
    assert lock.ready(1.1) and lock.waits_s == [pytest.approx(0.1)]
    lock.sample(10.01, wall=2.0)
    lock.answer(0, 10.01)
    lock.answer(2, 10.01)
    assert not lock.ready(2.49) and lock.ready(2.5)           # MAV 1 silent: the wait expires, counted
    assert lock.timeouts == [0, 1, 0] and lock.silent == {1}
    lock.sample(10.02, wall=3.0)
    lock.answer(0, 10.02)
    lock.answer(2, 10.02)
    assert lock.ready(3.0)                                    # not waited for again while it stays silent
    lock.answer(1, 10.01)                                     # it answers again (late): waited for from the next sample
    lock.sample(10.03, wall=4.0)
    lock.answer(0, 10.03)
    lock.answer(2, 10.03)
    assert not lock.ready(4.1) and lock.timeouts == [0, 1, 0]
    s = lock.summary()
    assert s["answered_samples"] == 2 and s["timeouts"] == [0, 1, 0] and s["wait_ms_max"] == pytest.approx(100.0)
