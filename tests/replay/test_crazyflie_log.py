"""Crazyflie uSD logs through `marlstack replay`, on a real recording: the firmware's own test fixture
`test_python/fixtures/kalman_core/log05` (GPL-3.0, licence beside it): a Crazyflie standing still at
(0, 0, 0) for about 10 s, logging IMU, barometer, UWB TDoA and Lighthouse positions (format version 2).
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from marlstack.replay.cli import main
from marlstack.replay.crazyflie import _header
from marlstack.replay.flightlog import open_flight_log

LOG = Path(__file__).resolve().parents[1] / "data" / "flight_logs" / "crazyflie_log05"


def test_reads_the_real_log():
    log = open_flight_log(LOG)
    assert log.format == "Crazyflie uSD" and not log.problems  # the CRC at the end matches
    assert sorted(log.streams) == ["estAcceleration", "estBarometer", "estGyroscope", "estTDOA", "lhPosition"]
    assert log.streams["estGyroscope"].t_s.size == 11457 and log.streams["estGyroscope"].units["gyro.x"] == "deg/s"
    assert log.end_s - log.start_s == pytest.approx(11.374, abs=1e-3)
    st = log.state
    # standing still at the origin: the accelerometer reads +1 g up (z up already), position ~ (0, 0, 0)
    assert st.accel.values[:, 2].mean() == pytest.approx(9.81, abs=0.3)
    assert np.abs(st.gyro.values.mean(axis=0)).max() < 0.05
    assert np.abs(np.median(st.position.values, axis=0)).max() < 0.05 and st.position.source.startswith("lhPosition")


def test_commands(tmp_path, capsys):
    assert main(["info", str(LOG), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["complete"] and {s["stream"]: s["count"] for s in info["streams"]}["lhPosition"] == 1562
    assert main(["convert", str(LOG), "-o", str(tmp_path / "cf.mcap"), "--namespace", "cf1"]) == 0
    assert "/cf1/imu 11457" in capsys.readouterr().out
    assert main(["report", str(LOG), "-o", str(tmp_path / "r")]) == 0


def test_damage(tmp_path, capsys):
    data = LOG.read_bytes()
    cut = tmp_path / "log_cut"
    cut.write_bytes(data[:300_001])
    assert main(["info", str(cut), "--json"]) == 0
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert problems[0] == "the CRC at the end does not match: the file was cut or damaged"
    assert problems[1].startswith("cut at byte 300001: the ")  # inside an event's header or its values
    # an event id no definition has: everything before it is kept, and the place is named
    bad = bytearray(data)
    types, stop = _header(data, struct.unpack_from("<H", data, 3)[0])
    for _ in range(1000):  # walk to the start of the 1001st event (version 2: u16 id, u64 us, values)
        stop += 10 + types[struct.unpack_from("<H", data, stop)[0]][2].size
    bad[stop:stop + 2] = struct.pack("<H", 999)
    damaged = tmp_path / "log_bad"
    damaged.write_bytes(bytes(bad))
    assert main(["info", str(damaged)]) == 0
    out = capsys.readouterr().out
    assert f"DAMAGED: stopped making sense at byte {stop} of {len(data)}: unknown event id 999" in out
    assert sum(s.t_s.size for s in open_flight_log(damaged).streams.values()) == 1000
    for content in (data[:1] + b"\x07\x00" + data[3:200], data[:40]):  # bad version; definitions cut
        damaged.write_bytes(content)
        assert main(["info", str(damaged)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
