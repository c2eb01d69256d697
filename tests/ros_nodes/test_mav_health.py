"""The MAV policy node's input health (ros_nodes/mav_io.py `TeamInputs.receive` / `own_problem` / `problem`), no DDS.

Odometry is judged by the time it describes: unset, future, repeated and jumping stamps make the source
unusable until a good sample; an out-of-order packet is dropped; this MAV's own odometry repeated exactly
while it flies is frozen (no set-point: the flight controller's failsafe flies); and the safety stage
certifies only against odometry at most `mav_safety.MAX_AGE_PERIODS` periods old.
"""
import numpy as np

from marlstack.ros_nodes import mav_io, mav_safety
from marlstack.ros_nodes.adapters import InvalidInput, StaleInput
from marlstack.sim.cable import spec as cable_spec

MAVS = ["mav_0", "mav_1", "mav_2"]
LIMIT = np.array([5.0, 5.0, 5.0, 3.0, 3.0])
PERIOD, OFFSET = 0.01, 0.02   # 100 Hz, the node's default clock allowance
HOVER = (0.0, 0.0, 0.0, 1.0, *[0.0] * 6)  # level quaternion (x y z w), world velocity, body rates


def team(max_age_s=0.1):
    spec = [{"name": k, "shape": ["B", *cable_spec.concrete_shape(v["shape"], 3, 1)]} for k, v in cable_spec.SENSORS.items()]
    return mav_io.TeamInputs(spec, MAVS, "mav_0", LIMIT, max_age_s, OFFSET, PERIOD)


def at(x, z=1.5):
    return (x, 0.0, z, *HOVER)


def test_unset_future_and_repeated_stamps_make_the_source_unusable_until_a_good_one():
    inp = team()
    inp.receive("mav_1", at(1.0), 0.0, 10.0)            # stamp not set: once taken as its arrival time
    assert isinstance(inp.problem(10.0, ["mav_1"]), InvalidInput)
    inp.receive("mav_1", at(1.0), 10.5, 10.0)           # 0.5 s in the future (allowance 20 ms)
    bad = inp.problem(10.0, ["mav_1"])
    assert isinstance(bad, InvalidInput) and "in the future" in str(bad)
    inp.receive("mav_1", at(1.0), 10.01, 10.0)          # 10 ms ahead: within the clock allowance
    assert inp.problem(10.0, ["mav_1"]) is None
    inp.receive("mav_1", at(1.0), 10.01, 10.02)         # the same stamp again: a frozen source
    assert "repeated" in str(inp.problem(10.02, ["mav_1"]))
    inp.receive("mav_1", at(1.1), 10.02, 10.025)
    assert inp.problem(10.025, ["mav_1"]) is None and inp.latest.row("mav_1")[0] == 1.1
    inp.receive("mav_1", at(0.9), 10.015, 10.03)        # out of order: dropped, the newer sample stands
    assert inp.problem(10.03, ["mav_1"]) is None and inp.latest.row("mav_1")[0] == 1.1 and inp.stamps.dropped == 1


def test_a_stamp_jumping_ahead_of_its_source_is_refused_once_then_the_source_is_used():
    inp = team()
    t = 20.0
    for _ in range(50):   # 0.5 s of samples each arriving 90 ms after its stamp (a steady delay is used)
        t += PERIOD
        inp.receive("mav_2", at(2.0), t - 0.09, t)
    assert inp.problem(t, ["mav_2"]) is None
    t += PERIOD
    inp.receive("mav_2", at(2.0), t, t)                 # suddenly on time: 90 ms fresher (tolerance 30 ms)
    bad = inp.problem(t, ["mav_2"])
    assert isinstance(bad, InvalidInput) and "jumped ahead" in str(bad) and inp.stamps.jumps == 1
    t += PERIOD
    inp.receive("mav_2", at(2.0), t, t)                 # the next one on time is not a jump: used again
    assert inp.problem(t, ["mav_2"]) is None and inp.stamps.jumps == 1


def test_own_odometry_unchanged_while_flying_is_frozen_and_says_so():
    inp, ground = team(), team()
    t = 30.0
    for k in range(130):   # 1.3 s of identical values with fresh stamps
        t += PERIOD
        for i in (inp, ground):
            i.receive("mav_0", at(0.0), t, t)
        frozen = inp.own_problem(t, flying=True)
        assert ground.own_problem(t, flying=False) is None   # standing still on the ground: values may repeat
        if k < 95:
            assert frozen is None
    assert frozen is not None and str(frozen).startswith("mav_0: frozen (unchanged for 1.")
    t += PERIOD
    inp.receive("mav_0", at(0.001), t, t)               # the values move again: flown on
    assert inp.own_problem(t, flying=True) is None


def test_the_certificate_is_claimed_only_on_odometry_within_its_certified_age():
    inp = team(max_age_s=10 * PERIOD)   # launch/cable3.yaml: watchdog_periods 10 for what the policy reads
    bound = mav_safety.MAX_AGE_PERIODS * PERIOD
    assert bound <= 5 * PERIOD          # docs/barrier.md: within the 0.1 m buffer up to 5 periods, collisions at 10
    for m, stamp in zip(MAVS, (1.0, 1.0, 0.96)):
        inp.receive(m, at(float(MAVS.index(m))), stamp, 1.0)
    assert inp.problem(1.0, MAVS) is None             # the policy may read mav_2's 40 ms old odometry ...
    stale = inp.problem(1.0, MAVS, bound)             # ... the safety stage may not certify against it
    assert isinstance(stale, StaleInput) and str(stale) == "mav_2: last one 40 ms old (limit 30 ms)"
    inp.receive("mav_2", at(2.0), 0.98, 1.0)         # 20 ms old: certified again
    assert inp.problem(1.0, MAVS, bound) is None


def test_own_odometry_frozen_below_the_floor_is_caught_when_it_reports_a_speed():
    """Take-off and landing fly below the certified floor (not 'flying' for the node): values repeated there
    are frozen only when they themselves report motion (a MAV at rest on the ground may repeat exactly)."""
    landing, resting = team(), team()
    t = 40.0
    descending = (0.0, 0.0, 0.1, *HOVER[:4], 0.0, 0.0, -0.3, 0.0, 0.0, 0.0)   # 0.1 m up, sinking at 0.3 m/s
    for _ in range(130):
        t += PERIOD
        landing.receive("mav_0", descending, t, t)
        resting.receive("mav_0", at(0.0, z=0.05), t, t)
        frozen, rest = landing.own_problem(t, flying=False), resting.own_problem(t, flying=False)
    assert rest is None
    assert frozen is not None and "frozen (unchanged for 1." in str(frozen)


def test_the_flight_controller_refuses_set_points_by_their_stamps():
    """The SITL firmware's rule (mav_sim_node): a set-point's stamp is the load sample it answers."""
    from marlstack.ros_nodes import health
    stamps, limit = health.Stamps(OFFSET, OFFSET + PERIOD), 10 * PERIOD
    fault = lambda stamp, now: mav_io.setpoint_fault(stamps, "mav_0", stamp, now, limit)  # noqa: E731
    assert "not set" in fault(0.0, 5.0)
    assert "in the future" in fault(6.0, 5.0)
    assert fault(5.00, 5.004) is None
    assert fault(5.00, 5.02) is None                  # the same sample answered again (a timer step): young enough
    assert "stale on arrival" in fault(5.00, 5.2)     # ... until it is older than the firmware's limit
    assert "out of order" in fault(4.99, 5.21)
    assert fault(5.21, 5.215) is None
