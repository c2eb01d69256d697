"""CrazyflieLink through cflib's real API with the radio driver replaced (tests/hardware/fake_crazyflie.py)."""
import math
import struct
import time

import cflib.crtp
import numpy as np
import pytest
from cflib.crtp.crtpstack import CRTPPort

from fake_crazyflie import FakeRadioDriver
from marlstack.hardware.crazyflie import CrazyflieLink
from marlstack.hardware.flight import LinkLimits

LIMITS = LinkLimits(max_thrust_n=0.6, hover_thrust_n=0.3237, max_body_rate=6.0, setpoint_rate_hz=100.0,
                    setpoint_timeout_s=0.1, hold_s=1.0)


@pytest.fixture
def link(monkeypatch):
    monkeypatch.setattr(cflib.crtp, "CLASSES", [FakeRadioDriver])
    FakeRadioDriver.instances.clear()
    link = CrazyflieLink("fake://0", LIMITS)
    link.connect(timeout_s=5.0)
    yield link, FakeRadioDriver.instances[-1]
    link.close()


def thrust16(percent):
    """The firmware drives the motors with this field as a fraction of 65535 (cflib's percentage would start at 10001)."""
    return round(655.35 * percent)


def test_rate_setpoints_units_signs_and_rate(link):
    link, radio = link
    link.arm()
    assert radio.of(CRTPPort.SUPERVISOR, 1)[-1].data == bytes([1, 1])  # supervisor: arm system, True
    assert radio.armed   # confirmed from the supervisor's state bitfield before arm() returned
    link.start_rate_control()
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        link.set_rates((0.1, 0.2, -0.3), 0.3)
        time.sleep(0.01)
    sent = radio.manual_setpoints()
    times = np.array([t for t, _ in sent])
    assert np.median(np.diff(times)) <= 1 / 50 and np.diff(times).max() < 0.5
    roll, pitch_wire, yawrate, thrust, rate = sent[-1][1]
    # deg/s; on the wire the pitch is -q (cflib negates it; the firmware's rate loop uses -gyro.y)
    assert roll == pytest.approx(math.degrees(0.1), rel=1e-6)
    assert pitch_wire == pytest.approx(-math.degrees(0.2), rel=1e-6)
    assert yawrate == pytest.approx(math.degrees(-0.3), rel=1e-6)
    assert rate == 1 and thrust == thrust16(50.0)


def test_external_pose_is_enu_unconverted(link):
    link, radio = link
    q = np.array([math.cos(0.25), 0.0, 0.0, math.sin(0.25)])  # w x y z: yaw 0.5 rad
    link.send_pose([1.0, 2.0, 3.0], q, stamp_s=1.0)
    pose = radio.of(CRTPPort.LOCALIZATION, 1)[-1]
    kind, x, y, z, qx, qy, qz, qw = struct.unpack("<Bfffffff", pose.data)
    assert kind == 8 and [x, y, z] == pytest.approx([1, 2, 3]) and [qx, qy, qz, qw] == pytest.approx([0, 0, q[3], q[0]])


def test_stale_stack_holds_then_lands(link):
    link, radio = link
    link.set_rates((0.5, 0.0, 0.0), 0.5)
    link.start_rate_control()
    deadline = time.monotonic() + 3
    while not radio.of(CRTPPort.SETPOINT_HL) and time.monotonic() < deadline:
        time.sleep(0.01)
    land = radio.of(CRTPPort.SETPOINT_HL)[-1]
    assert land.data[0] == 8  # COMMAND_LAND_2
    hover = [v for t, v in radio.manual_setpoints() if v[0] == 0.0]
    assert hover and all(v[3] == thrust16(100 * LIMITS.hover_thrust_n / LIMITS.max_thrust_n) for v in hover)
    notify = radio.of(CRTPPort.COMMANDER_GENERIC, 1)
    assert notify and notify[-1].time <= land.time  # priority handed back before the high-level land
    assert "stale" in link.status()["fault"] and not link.status()["rate_control"]


def test_kill_stops_and_emergency_stops(link):
    link, radio = link
    link.start_rate_control()
    link.kill()
    assert radio.of(CRTPPort.COMMANDER_GENERIC, 0)[-1].data == bytes([0])    # stop setpoint
    assert radio.of(CRTPPort.SUPERVISOR, 1)[-1].data == bytes([3])  # supervisor: emergency stop
    n = len(radio.manual_setpoints())
    time.sleep(0.1)
    assert len(radio.manual_setpoints()) == n  # nothing streams after a kill


def test_no_crazyflie_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(cflib.crtp, "CLASSES", [])
    link = CrazyflieLink("radio://0/80/2M", LIMITS)
    monkeypatch.setattr(cflib.crtp, "init_drivers", lambda *a, **k: None)
    with pytest.raises(ConnectionError, match="radio://0/80/2M"):
        link.connect(timeout_s=0.5)


def test_arming_is_confirmed_by_the_supervisor_or_refused_with_its_state(link):
    """The radio's arming request has no acknowledgement: a Crazyflie that does not arm (battery, tumbled,
    locked) must not be reported armed. arm() reads the supervisor bitfield and names what it saw."""
    link, radio = link
    radio.can_arm = False
    with pytest.raises(RuntimeError, match=r"did not confirm arming within 0.3 s \(supervisor bitfield 0x0000"):
        link.arm(timeout_s=0.3)
    assert not radio.armed and len(radio.of(CRTPPort.SUPERVISOR, 1)) >= 2   # re-sent while waiting
    radio.can_arm = True
    link.arm()
    link.disarm()
    assert not radio.armed
