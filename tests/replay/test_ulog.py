"""PX4 ULog through `marlstack replay`, on a real PX4 log (tests/data/flight_logs/px4_sample.ulg,
BSD-3 from the pyulog repository): what it holds, frames, report, conversion, and damaged copies.

The log is a bench session (69 s, never armed, sitting about level): gravity and the heading give
frame checks that do not depend on knowing the flight.
"""
from __future__ import annotations

import csv
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from marlstack.replay import frames
from marlstack.replay.cli import main
from marlstack.replay.flightlog import hold, open_flight_log

LOG = Path(__file__).resolve().parents[1] / "data" / "flight_logs" / "px4_sample.ulg"


@pytest.fixture(scope="module")
def log():
    return open_flight_log(LOG)


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """The real log converted once (`replay convert`, namespace px4): what two tests read."""
    out = tmp_path_factory.mktemp("convert") / "flight.mcap"
    assert main(["convert", str(LOG), "-o", str(out), "--namespace", "px4"]) == 0
    return out


def test_reads_everything(log):
    assert log.format == "PX4 ULog" and not log.problems
    assert len(log.streams) == 15 and log.streams["sensor_combined"].t_s.size == 17070
    assert log.info["ver_hw"] == "AUAV_X21" and log.info["sys_name"] == "PX4"
    assert len(log.parameters) == 493 and log.parameters["PWM_MAX"] == 1950
    assert [c[1] for c in log.changed_parameters[:2]] == ["COM_AUTOS_PAR", "MPC_Z_VEL_MAX_DN"]
    assert len(log.messages) == 4 and log.messages[0][1] == "ERROR" and "barometer" in log.messages[0][2]
    assert len(log.dropouts) == 4 and math.isclose(sum(d for _, d in log.dropouts), 0.119)
    assert log.start_s == pytest.approx(112.500176) and log.end_s == pytest.approx(181.493506)
    assert log.streams["sensor_combined"].units["accelerometer_m_s2[2]"] == "m/s^2"
    assert log.state.modes == [(pytest.approx(112.494179), "MANUAL")] and log.state.armed[0][1] is False


def test_enu_flu_on_the_real_log(log):
    st = log.state
    # at rest the accelerometer measures the ground pushing up: +g along FLU z, and +g up in ENU
    accel = st.accel.values[:2000].mean(axis=0)  # the first 8 s at 250 Hz
    assert accel[2] > 9.0
    q_mid = st.attitude.values[len(st.attitude.values) // 2]
    up = frames.rotate(q_mid, st.accel.values[len(st.accel.values) // 2 - 500:len(st.accel.values) // 2 + 500].mean(0))
    assert up[2] == pytest.approx(9.7, abs=0.2) and np.hypot(up[0], up[1]) < 0.3
    # heading: the estimator's NED yaw psi is ENU yaw pi/2 - psi of the converted attitude
    lp = log.streams["vehicle_local_position"]
    q, _ = hold(st.attitude, lp.t_s[10:])
    yaw_enu = frames.euler(q)[:, 2]
    diff = np.angle(np.exp(1j * (yaw_enu - (math.pi / 2 - lp.fields["yaw"][10:]))))
    assert np.max(np.abs(diff)) < 0.02
    # altitude is up: ENU z is minus the logged NED z
    np.testing.assert_allclose(st.position.values[:, 2], -lp.fields["z"], rtol=0, atol=1e-6)


def test_info_csv(tmp_path, capsys):
    assert main(["info", str(LOG), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    att = next(s for s in info["streams"] if s["stream"] == "vehicle_attitude")
    assert att["count"] == 6461 and att["rate_hz"] == pytest.approx(93.7, abs=0.1)
    assert info["complete"] and info["dropout_total_s"] == pytest.approx(0.119)
    assert main(["info", str(LOG)]) == 0
    assert "AUAV_X21" in capsys.readouterr().out
    out = tmp_path / "att.csv"
    assert main(["csv", str(LOG), "--topic", "vehicle_attitude", "-o", str(out)]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0][:2] == ["t_s", "rollspeed [rad/s]"] and len(rows) == 6462
    assert main(["csv", str(LOG), "--topic", "nope", "-o", str(out)]) == 2
    assert "vehicle_attitude" in capsys.readouterr().err


def test_report(tmp_path, capsys):
    assert main(["report", str(LOG), "-o", str(tmp_path)]) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["armed_s"] == 0 and s["tracking_window"] == "whole log (never armed)"
    assert s["actuators"]["outputs"] == 4 and s["actuators"]["range"] == [1075.0, 1950.0]
    assert s["actuators"]["saturated_s"] == 0.0  # disarmed outputs (900 us) are not saturation
    assert s["trajectory"]["altitude_max_m"] < 0.05 and s["attitude_error_deg"]["max"] > 20  # waved by hand at ~3-6 s
    assert {"battery_voltage", "battery_remaining"} <= set(s["missing"])
    for png in ("trajectory_3d", "attitude", "rates", "actuators", "battery", "modes"):
        with Image.open(tmp_path / f"{png}.png") as im:
            assert im.size[0] >= 600 and len(im.getcolors(1 << 20)) > 50


def test_convert_reads_back(converted, log):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    from marlstack.replay.bag import Bag

    out = converted
    bag = Bag(out)
    counts, imu_z, pose = {}, [], None
    for rec in bag.records():
        counts[rec.topic] = counts.get(rec.topic, 0) + 1
        if rec.topic == "/px4/imu" and len(imu_z) < 100:
            imu_z.append(bag.decode(rec).linear_acceleration.z)
        if rec.topic == "/px4/pose" and pose is None:
            pose = bag.decode(rec)
    assert bag.status.complete
    assert counts["/px4/imu"] == 17070 and counts["/px4/odom"] == counts["/px4/pose"] == 677
    assert counts["/rosout"] == 4 and counts["/px4/flight_mode"] == 1
    assert np.mean(imu_z) > 9.0
    t = pose.header.stamp.sec + pose.header.stamp.nanosec * 1e-9
    k = int(np.searchsorted(log.state.attitude.t_s, t, side="right") - 1)
    o = pose.pose.orientation
    np.testing.assert_allclose([o.w, o.x, o.y, o.z], log.state.attitude.values[k], atol=1e-12)
    # an independent MCAP reader (what Foxglove's libraries use) decodes every message too
    mcap_file = next(out.glob("*.mcap"))
    with mcap_file.open("rb") as f:
        n = sum(1 for _ in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages())
    assert n == sum(counts.values())
    assert main(["convert", str(LOG), "-o", str(out)]) == 2  # never overwrites


# ------------------------------------------------------------------ damaged and wrong files
def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    return code, cap.out, cap.err


def test_cut_mid_message(tmp_path, capsys):
    data = LOG.read_bytes()
    cut = tmp_path / "cut.ulg"
    cut.write_bytes(data[:len(data) // 2 + 3])
    code, out, _ = _run(capsys, "info", str(cut), "--json")
    info = json.loads(out)
    assert code == 0 and not info["complete"]
    assert info["problems"][0].startswith(f"cut at byte {len(data) // 2 + 3}: the last ")
    att = next(s for s in info["streams"] if s["stream"] == "vehicle_attitude")
    assert 1000 < att["count"] < 6461
    code, _, err = _run(capsys, "report", str(cut), "-o", str(tmp_path / "r"), "--no-pictures")  # pictures: test_report
    assert code == 0 and err.startswith("warning: cut.ulg: cut at byte")


def test_corrupt_data_in_the_middle(tmp_path, capsys):
    data = bytearray(LOG.read_bytes())
    data[2_000_000:2_000_100] = b"\xab" * 100
    bad = tmp_path / "bad.ulg"
    bad.write_bytes(bytes(data))
    code, out, _ = _run(capsys, "info", str(bad))
    assert code == 0 and "DAMAGED: stopped making sense at byte" in out and "pyulog skipped ahead" in out


def test_unknown_message_format(tmp_path, capsys):
    """A data message naming a subscription id that no format defines is skipped and counted."""
    data = bytearray(LOG.read_bytes())
    pos, changed = 16, 0
    while pos + 3 <= len(data) and changed < 5:
        size, kind = struct.unpack_from("<HB", data, pos)
        if kind == ord("D") and pos > 1_000_000:
            data[pos + 3:pos + 5] = struct.pack("<H", 999)
            changed += 1
        pos += 3 + size
    bad = tmp_path / "unknown.ulg"
    bad.write_bytes(bytes(data))
    code, out, _ = _run(capsys, "info", str(bad))
    assert code == 0 and "message id(s) without a format/subscription (999) skipped" in out


@pytest.mark.parametrize("case", ["empty", "header", "definitions", "text", "png"])
def test_nothing_readable(tmp_path, capsys, case):
    data = LOG.read_bytes()
    path = tmp_path / ("x.png" if case == "png" else "x.ulg")
    if case == "empty":
        path.write_bytes(b"")
    elif case == "header":
        path.write_bytes(b"XLog" + data[4:])
    elif case == "definitions":  # formats and subscriptions destroyed: no data can be decoded
        path.write_bytes(data[:20] + b"\xff" * 180 + data[200:3000])
    elif case == "text":
        path.write_text("this is a flight plan, not a log\n")
    else:
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + data[:200])
    code, out, err = _run(capsys, "info", str(path))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("marlstack replay info: ") and str(path) in err


def test_bag_only_commands_point_to_convert(tmp_path, capsys, converted):
    for argv in (["play", str(LOG)], ["eval", str(LOG), "--policy", "p.onnx"]):
        code, _, err = _run(capsys, *argv)
        assert code == 2 and "is a PX4 ULog log, not a rosbag2 bag" in err and "replay convert" in err
    code, _, err = _run(capsys, "convert", str(converted), "-o", str(tmp_path / "again.mcap"))
    assert code == 2 and "is a rosbag2 bag already" in err


def test_a_mav_policy_cannot_be_rerun_on_a_flight_controller_log_alone(tmp_path, capsys):
    """What the real log can and cannot give `replay eval` / the team report: converted, it holds the
    vehicle's odometry (its own input to the MAV policy) but not the load's odometry, the goal or the
    companion's set-points; both commands say so in one line instead of failing inside. (Its first
    400 kB, read up to the cut, to keep the conversion short.)"""
    head = tmp_path / "head.ulg"
    head.write_bytes(LOG.read_bytes()[:400_000])
    out = tmp_path / "mav_0.mcap"
    assert main(["convert", str(head), "-o", str(out), "--namespace", "mav_0"]) == 0
    capsys.readouterr()
    policy = LOG.parents[1] / "mav_team" / "cable3.onnx"
    code, _, err = _run(capsys, "eval", str(out), "--policy", str(policy))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "needs /load/odom, /load/goal" in err and "it has /mav_0/odom" in err
    code, _, err = _run(capsys, "report", str(out), "-o", str(tmp_path / "r"), "--profile", "mav_corl25")
    assert code == 2 and err.count("\n") == 1 and "has no /load/odom" in err and "Traceback" not in err
