"""`replay compare`: flight logs of several vehicles on one time axis (UTC from GPS, or given offsets)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from test_ardupilot import write_tlog

from replay.align import utc_offset
from replay.cli import main
from replay.flightlog import open_flight_log

DATA = Path(__file__).resolve().parents[1] / "data" / "flight_logs"
AP, PX4 = DATA / "ardupilot_sitl_plane.bin", DATA / "px4_sample.ulg"


def test_utc_from_dataflash_gps():
    log = open_flight_log(AP)
    offset, source = utc_offset(log)
    # first GPS sample: week 1973, 6448.000 s into it, logged at 81.855471 s since boot; GPS - UTC = 18 s
    utc = datetime(1980, 1, 6, tzinfo=timezone.utc) + timedelta(weeks=1973, seconds=6448 - 18)
    # the offset is the median over all fixes: the single sample may differ by the GPS-to-log jitter (ms)
    assert offset + 81.855471 == pytest.approx(utc.timestamp(), abs=0.02) and "GPS" in source
    assert utc_offset(open_flight_log(PX4)) is None  # a bench log without GPS


def test_two_vehicles_on_one_axis(tmp_path, capsys):
    ap = open_flight_log(AP)
    ap_start_utc = ap.start_s + utc_offset(ap)[0]
    tlog = tmp_path / "second.tlog"
    write_tlog(tlog, t0_us=int(round((ap_start_utc + 0.5) * 1e6)))  # the second vehicle's log starts 0.5 s later
    assert main(["compare", str(AP), str(tlog), "-o", str(tmp_path / "c"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    a, b = doc["logs"]
    assert a["start_s"] == 0.0 and b["start_s"] == pytest.approx(0.5, abs=1e-3)
    assert doc["overlap_s"] == pytest.approx([0.5, a["end_s"]], abs=1e-3)
    assert doc["time_zero_utc_s"] == pytest.approx(ap_start_utc)
    for f in ("team_trajectories_3d.png", "team_altitude.png"):
        assert (tmp_path / "c" / f).stat().st_size > 10_000


def test_without_utc_offsets_are_needed(tmp_path, capsys):
    assert main(["compare", str(AP), str(PX4), "-o", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{PX4} states no UTC time" in err and "--offsets" in err
    assert main(["compare", str(AP), str(PX4), "-o", str(tmp_path / "c"), "--offsets", "0", "-40", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in doc["logs"]] == ["given offset"] * 2
    assert doc["logs"][1]["start_s"] == 0.0 and doc["logs"][0]["start_s"] == pytest.approx(81.719 - 72.500, abs=1e-3)
    assert main(["compare", str(AP), str(PX4), "-o", str(tmp_path / "c"), "--offsets", "0"]) == 2
    assert "--offsets gives 1 value(s) for 2 logs" in capsys.readouterr().err
