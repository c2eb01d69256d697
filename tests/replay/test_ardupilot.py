"""ArduPilot logs through `marlstack replay`.

DataFlash: tests/data/flight_logs/ardupilot_sitl_plane.bin, the `tests/test.BIN` of pymavlink
(LGPL-3.0, licence beside it): ArduPlane 3.8.2 in ArduPilot's SITL, 1 s, cut by its authors at
64 KiB (so it ends inside a message). Telemetry (.tlog): no small public one was found; the test
writes one with pymavlink's own MAVLink encoder and the ground-station file layout (8-byte
big-endian microseconds, then the frame), with values known by hand.
"""
from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from marlstack.replay import frames
from marlstack.replay.ardupilot import quat_from_euler_deg
from marlstack.replay.cli import main
from marlstack.replay.flightlog import open_flight_log

LOG = Path(__file__).resolve().parents[1] / "data" / "flight_logs" / "ardupilot_sitl_plane.bin"


@pytest.fixture(scope="module")
def log():
    return open_flight_log(LOG)


def test_dataflash_view(log):
    assert log.format == "ArduPilot DataFlash" and log.info["firmware"] == "ArduPlane V3.8.2-dev (8178ab40)"
    assert log.streams["IMU"].t_s.size == 45 and log.streams["IMU"].units["AccZ"] == "m/s^2"
    assert len(log.parameters) == 809 and log.parameters["FORMAT_VERSION"] == 13
    assert log.problems == ["cut at byte 65536: the last message (from byte 65515) is incomplete; "
                            "everything before it was read"]
    assert log.state.modes[0][1] == "MANUAL" and log.state.armed[0][1] is True
    assert log.state.actuator_range == (1000.0, 2000.0) and log.state.actuators.values.shape[1] == 14
    # at rest on the ground: +g up in FLU
    assert log.state.accel.values[:, 2].mean() == pytest.approx(9.8, abs=0.2)


def test_euler_to_quaternion_matches_the_autopilots_own(log):
    """AHR2 logs both Euler angles (deg) and the quaternion (Q1..Q4) of the same NED attitude."""
    a = log.streams["AHR2"]
    q = quat_from_euler_deg(a.fields["Roll"], a.fields["Pitch"], a.fields["Yaw"])
    logged = np.stack([a.fields[f"Q{i}"] for i in range(1, 5)], axis=1)
    assert np.max(np.abs(np.abs(np.sum(q * logged, axis=1)) - 1)) < 1e-4
    # and ENU yaw is 90 deg - compass heading
    yaw_enu = np.degrees(frames.euler(frames.quat_ned_frd_to_enu_flu(q))[:, 2])
    diff = (yaw_enu - (90 - a.fields["Yaw"].astype(float)) + 180) % 360 - 180
    assert np.max(np.abs(diff)) < 0.01


def test_commands(tmp_path, capsys):
    assert main(["info", str(LOG), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert not info["complete"] and info["logged_messages"][0][2].startswith("ArduPlane")
    assert main(["csv", str(LOG), "--topic", "ATT", "-o", str(tmp_path / "att.csv")]) == 0
    assert (tmp_path / "att.csv").read_text().startswith("t_s,TimeUS,DesRoll [deg],Roll [deg]")
    assert main(["report", str(LOG), "-o", str(tmp_path / "r")]) == 0
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["armed_s"] == pytest.approx(0.58, abs=0.01) and s["battery"]["voltage_start_v"] == pytest.approx(12.396, abs=1e-3)
    assert main(["convert", str(LOG), "-o", str(tmp_path / "ap.mcap")]) == 0
    assert "/vehicle/imu 45" in capsys.readouterr().out


def test_dataflash_damage(tmp_path, capsys):
    data = LOG.read_bytes()
    bad = tmp_path / "bad.bin"
    bad.write_bytes(data[:30000] + b"\0" * 500 + data[30500:])
    assert main(["info", str(bad)]) == 0
    out = capsys.readouterr().out
    assert "DAMAGED: corrupt data at byte 30005: 496 bytes skipped to the next valid message" in out
    for content in (b"", b"\xa3\x95" + b"\0" * 10):
        bad.write_bytes(content)
        assert main(["info", str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and str(bad) in err


def write_tlog(path: Path, t0_us: int = 1_700_000_000_000_000, origin: tuple[float, float, float] | None = None) -> None:
    """A 2-second telemetry log; `origin` (lat deg, lon deg, alt m): also the EKF's GPS_GLOBAL_ORIGIN."""
    from pymavlink.dialects.v20 import ardupilotmega as mav

    class Sink:
        def write(self, _data: bytes) -> None:
            pass

    link = mav.MAVLink(Sink(), srcSystem=1, srcComponent=1)
    frames_out = []
    for k in range(20):
        t_us = t0_us + k * 100_000  # 10 Hz, unix time in microseconds
        msgs = [link.heartbeat_encode(mav.MAV_TYPE_QUADROTOR, mav.MAV_AUTOPILOT_ARDUPILOTMEGA,
                                      mav.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | (128 if k >= 10 else 0),
                                      5 if k < 10 else 4, mav.MAV_STATE_ACTIVE),  # LOITER, then GUIDED armed
                link.attitude_encode(k * 100, 0.1, 0.0, math.pi / 2, 0.0, 0.0, 0.2),  # heading east
                link.local_position_ned_encode(k * 100, 1.0, 2.0, -3.0 - k, 0.0, 0.0, -1.0),
                link.sys_status_encode(0, 0, 0, 500, 12600 - k, 100, 90 - k, 0, 0, 0, 0, 0, 0)]
        if k == 0:
            msgs.append(link.statustext_encode(mav.MAV_SEVERITY_WARNING, b"PreArm: test warning"))
        if k == 0 and origin is not None:
            msgs.append(link.gps_global_origin_encode(round(origin[0] * 1e7), round(origin[1] * 1e7),
                                                      round(origin[2] * 1e3), t_us))
        for m in msgs:
            frames_out.append(struct.pack(">Q", t_us) + m.pack(link))
    path.write_bytes(b"".join(frames_out))


def test_tlog(tmp_path, capsys):
    path = tmp_path / "flight.tlog"
    write_tlog(path)
    log = open_flight_log(path)
    assert log.format == "MAVLink telemetry" and not log.problems
    assert log.start_s == pytest.approx(1.7e9) and log.end_s - log.start_s == pytest.approx(1.9)
    st = log.state
    # NED (1 N, 2 E, 3 m down .. ) -> ENU (2, 1, +3 up, rising 1 m per sample)
    np.testing.assert_allclose(st.position.values[0], [2.0, 1.0, 3.0])
    np.testing.assert_allclose(st.position.values[5], [2.0, 1.0, 8.0])
    np.testing.assert_allclose(st.velocity.values[0], [0.0, 0.0, 1.0])
    # heading east (NED yaw 90 deg) is ENU yaw 0; roll right 0.1 rad stays +0.1; yaw rate 0.2 (clockwise) -> -0.2
    np.testing.assert_allclose(frames.euler(st.attitude.values[0]), [0.1, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(st.body_rates.values[0], [0.0, 0.0, -0.2], atol=1e-6)
    assert [m for _, m in st.modes] == ["LOITER", "GUIDED"] and [a for _, a in st.armed] == [False, True]
    assert st.battery_voltage.values[0] == pytest.approx(12.6) and st.battery_remaining.values[0] == pytest.approx(0.9)
    assert log.messages[0][1:] == ("WARNING", "PreArm: test warning")
    cut = tmp_path / "cut.tlog"
    cut.write_bytes(path.read_bytes()[:-7])
    assert main(["info", str(cut), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["messages"] == 80 + 1 - 1  # the last frame (SYS_STATUS of sample 19) is cut
    assert info["problems"][0].startswith(f"cut at byte {len(cut.read_bytes())}: the last ")


@pytest.mark.parametrize("suffix,seed", [(".bin", 1), (".tlog", 0), (".tlog", 6)])  # seed 6: the AttributeError
def test_noise_is_one_line_and_pymavlinks_printout_is_kept_off_the_terminal(tmp_path, capfd, suffix, seed):
    """Random bytes under a log's name: pymavlink prints a 'bad header' per byte from compiled code (past
    sys.stderr), and its telemetry reader raised AttributeError on some noise (a traceback) or finds frames
    whose checksums happen to match in others: one line and exit 2, or a normal answer; never pymavlink's
    printout or a traceback."""
    path = tmp_path / f"noise{suffix}"
    path.write_bytes(np.random.default_rng(seed).bytes(5000))
    code = main(["info", str(path)])
    out, err = capfd.readouterr()
    assert "bad header" not in err + out and "Traceback" not in err
    if suffix == ".bin" or code == 2:
        assert code == 2 and out == "" and err.count("\n") == 1 and "messages could be read" in err, err[:300]
    else:
        assert code == 0 and "MAVLink telemetry" in out
