"""MavlinkLink against a fake autopilot over UDP on 127.0.0.1: handshake, rates, fields, units, frames, faults."""
import math
import threading
import time

import numpy as np
import pytest

from fake_autopilot import MODES, FakeAutopilot
from marlstack.hardware.flight import LinkLimits
from marlstack.hardware.frames import quat_to_matrix
from marlstack.hardware.mavlink import MavlinkLink
from pymavlink.dialects.v20 import common as mav

LIMITS = LinkLimits(max_thrust_n=25.0, hover_thrust_n=5.886, max_body_rate=3.0, setpoint_rate_hz=100.0,
                    setpoint_timeout_s=0.1, hold_s=1.0)


@pytest.fixture(params=["px4", "ardupilot"])
def pair(request):
    fake = FakeAutopilot(autopilot=request.param)
    link = MavlinkLink(fake.url, LIMITS, autopilot=request.param, link_timeout_s=0.5)
    link.connect(timeout_s=5.0)
    yield fake, link
    link.close()
    fake.close()


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def fly(link, seconds, rates=(0.1, 0.2, 0.3), thrust=12.5, rate_hz=100.0):
    """The stack: fresh setpoints at `rate_hz` for `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        link.set_rates(rates, thrust)
        time.sleep(1.0 / rate_hz)


def test_offboard_handshake_rates_fields_and_frames(pair):
    fake, link = pair
    assert fake.received("HEARTBEAT")[0].msg.type == mav.MAV_TYPE_ONBOARD_CONTROLLER
    link.arm()
    assert fake.armed and link.status()["armed"] is not None
    link.set_rates((0.1, 0.2, 0.3), 12.5)
    flown = []
    stack = threading.Thread(target=lambda: flown.append(fly(link, 2.0) or time.monotonic()))
    stack.start()
    link.start_rate_control()
    stack.join()
    assert fake.custom_mode == MODES[fake.autopilot]["rate"] and link.status()["rate_control"]
    # the mode switch came after the stream had started, as PX4 requires
    first_setpoint = fake.received("SET_ATTITUDE_TARGET")[0].time
    set_mode = next(r for r in fake.received("COMMAND_LONG") if r.msg.command == mav.MAV_CMD_DO_SET_MODE)
    assert set_mode.time - first_setpoint >= 0.3
    msgs = fake.received("SET_ATTITUDE_TARGET")
    times = np.array([r.time for r in msgs])
    gaps = np.diff(times)
    assert np.median(gaps) <= 1 / 50 and gaps.max() < 0.5  # >= 50 Hz, never below PX4's ~2 Hz cut-off
    # the stack's setpoints while it flew (after it stops, or where a loaded machine stalls it for more than
    # setpoint_timeout_s, the link's hold sends hover: zero rates)
    ours = [r.msg for r in msgs if r.time <= flown[0] and r.msg.body_roll_rate != 0.0]
    assert len(ours) >= 50
    m = ours[-1]
    assert m.type_mask == mav.ATTITUDE_TARGET_TYPEMASK_ATTITUDE_IGNORE
    assert (m.target_system, m.target_component) == (1, 1)
    # FLU (0.1, 0.2, 0.3) rad/s -> FRD (0.1, -0.2, -0.3); 12.5 N of 25 N -> 0.5
    np.testing.assert_allclose([m.body_roll_rate, m.body_pitch_rate, m.body_yaw_rate], [0.1, -0.2, -0.3], atol=1e-6)
    assert m.thrust == pytest.approx(0.5)
    boots = [r.msg.time_boot_ms for r in msgs]
    assert all(b2 >= b1 for b1, b2 in zip(boots, boots[1:]))


def test_rates_and_thrust_are_clipped(pair):
    fake, link = pair
    link.set_rates((10.0, -10.0, 0.0), 100.0)
    link.start_rate_control(warmup_s=0.2)
    m = fake.received("SET_ATTITUDE_TARGET")[0].msg  # the first, before the unrefreshed setpoint goes stale
    np.testing.assert_allclose([m.body_roll_rate, m.body_pitch_rate], [3.0, 3.0], atol=1e-6)
    assert m.thrust == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["att_pos_mocap", "vision_position_estimate"])
def test_mocap_pose_in_ned_frd(kind):
    fake = FakeAutopilot()
    link = MavlinkLink(fake.url, LIMITS, mocap=kind)
    try:
        link.connect()
        yaw_enu = math.radians(30)  # nose 30 deg left of east (ENU yaw) = 60 deg from north (NED yaw)
        q_enu = [math.cos(yaw_enu / 2), 0.0, 0.0, math.sin(yaw_enu / 2)]
        link.send_pose([1.0, 2.0, 3.0], q_enu, stamp_s=12.5)
        wait_for(lambda: fake.received(kind.upper()))
        m = fake.received(kind.upper())[0].msg
        assert [m.x, m.y, m.z] == pytest.approx([2.0, 1.0, -3.0])   # NED: north = ENU y, down = -up
        if kind == "att_pos_mocap":
            assert m.time_usec == 12_500_000
            r = quat_to_matrix(m.q)
            assert r @ [1, 0, 0] == pytest.approx([math.cos(math.radians(60)), math.sin(math.radians(60)), 0], abs=1e-6)
            assert r @ [0, 0, 1] == pytest.approx([0, 0, 1], abs=1e-6)  # body down is world down
        else:
            assert m.usec == 12_500_000
            assert [m.roll, m.pitch, m.yaw] == pytest.approx([0.0, 0.0, math.radians(60)], abs=1e-6)
    finally:
        link.close()
        fake.close()


def test_stack_silence_holds_then_lands(pair):
    fake, link = pair
    link.arm()
    link.set_rates((0.5, 0.0, 0.0), 20.0)
    stack = threading.Thread(target=fly, args=(link, 1.0, (0.5, 0.0, 0.0), 20.0))
    stack.start()
    link.start_rate_control()
    stack.join()  # the stack dies here
    wait_for(lambda: any(c.command == mav.MAV_CMD_NAV_LAND for c in fake.commands()))
    land_time = next(r.time for r in fake.received("COMMAND_LONG") if r.msg.command == mav.MAV_CMD_NAV_LAND)
    setpoints = fake.received("SET_ATTITUDE_TARGET")
    hold = [r.msg for r in setpoints if r.msg.body_roll_rate == 0.0 and r.time < land_time]
    assert hold, "no hover setpoints before landing"
    assert all(m.thrust == pytest.approx(LIMITS.hover_thrust_n / LIMITS.max_thrust_n) for m in hold)
    assert fake.custom_mode == MODES[fake.autopilot]["land"]
    assert "stale" in link.status()["fault"] and not link.status()["rate_control"]
    time.sleep(0.2)
    assert fake.received("SET_ATTITUDE_TARGET")[-1].time <= land_time + 0.05  # streaming stopped


def test_link_loss_is_reported_and_clears(pair):
    fake, link = pair
    assert link.status()["connected"]
    fake.heartbeats = False
    wait_for(lambda: not link.status()["connected"])
    assert link.status()["fault"] == "autopilot heartbeat lost"
    fake.heartbeats = True
    wait_for(lambda: link.status()["connected"])


def test_kill_force_disarms_and_refusals_are_named(pair):
    fake, link = pair
    link.arm()
    link.kill()
    kill = fake.commands()[-1]
    assert kill.command == mav.MAV_CMD_COMPONENT_ARM_DISARM and kill.param1 == 0 and kill.param2 == 21196
    assert not fake.armed
    with pytest.raises(RuntimeError, match="refused MAV_CMD_NAV_TAKEOFF: MAV_RESULT_DENIED"):
        link.takeoff(1.0)  # disarmed


def test_no_autopilot_is_a_clear_error():
    from fake_autopilot import free_udp_port
    link = MavlinkLink(f"udpout:127.0.0.1:{free_udp_port()}", LIMITS)
    with pytest.raises(ConnectionError, match="no autopilot heartbeat"):
        link.connect(timeout_s=0.5)


def test_takeoff_altitude_px4_amsl_ardupilot_guided_and_relative(pair):
    from fake_autopilot import HOME_AMSL
    fake, link = pair
    wait_for(lambda: fake.received("HEARTBEAT") and link._home_amsl is not None)
    link.arm()
    link.takeoff(1.5)
    cmds = fake.commands()
    takeoff = next(c for c in cmds if c.command == mav.MAV_CMD_NAV_TAKEOFF)
    if fake.autopilot == "px4":   # param 7 above mean sea level: home's altitude from GLOBAL_POSITION_INT + 1.5 m
        assert takeoff.param7 == pytest.approx(HOME_AMSL + 1.5) and fake.custom_mode == MODES["px4"]["takeoff"]
    else:                         # ArduCopter: GUIDED first, then param 7 relative to home
        modes = [c for c in cmds if c.command == mav.MAV_CMD_DO_SET_MODE]
        assert modes and modes[0].param2 == 4 and cmds.index(modes[0]) < cmds.index(takeoff)
        assert takeoff.param7 == pytest.approx(1.5)


def test_px4_without_a_global_position_refuses_takeoff_saying_why():
    fake = FakeAutopilot(global_position=False)
    link = MavlinkLink(fake.url, LIMITS)
    try:
        link.connect(timeout_s=5.0)
        link.arm()
        with pytest.raises(RuntimeError, match="above mean sea level.*EKF origin"):
            link.takeoff(1.0)
        assert not any(c.command == mav.MAV_CMD_NAV_TAKEOFF for c in fake.commands())
    finally:
        link.close()
        fake.close()
