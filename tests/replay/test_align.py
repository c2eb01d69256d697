"""`replay compare`: flight logs of several vehicles on one time axis (UTC from GPS, or given offsets) and
in one frame (GPS origins of the local frames, or given origins)."""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from test_ardupilot import write_tlog

from marlstack.replay import align
from marlstack.replay.align import utc_offset
from marlstack.replay.cli import main
from marlstack.replay.flightlog import open_flight_log

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


def test_wgs84_conversion_against_the_earths_radii():
    """Small steps north / east / up from a point are the meridional and prime-vertical radii times the
    angle (textbook formulas, independent of the ECEF path `to_reference` takes)."""
    lat0, e2, a = -35.36, align.WGS84_E2, align.WGS84_A
    sin2 = math.sin(math.radians(lat0)) ** 2
    meridional, prime = a * (1 - e2) / (1 - e2 * sin2) ** 1.5, a / math.sqrt(1 - e2 * sin2)
    ref = np.array([lat0, 149.16, 580.0])
    steps = np.array([[lat0 + 1e-4, 149.16, 580.0], [lat0, 149.16 + 1e-4, 580.0], [lat0, 149.16, 590.0]])
    got = align.to_reference(np.zeros((3, 3)), steps, ref)
    h = 580.0  # the arcs are at this height above the ellipsoid
    np.testing.assert_allclose(got[0], [0, (meridional + h) * math.radians(1e-4), 0], atol=2e-5)
    np.testing.assert_allclose(got[1], [(prime + h) * math.cos(math.radians(lat0)) * math.radians(1e-4), 0, 0],
                               atol=2e-5)
    np.testing.assert_allclose(got[2], [0, 0, 10.0], atol=1e-6)
    # a point given in a frame 2 km away comes back to where it is
    far = np.array([lat0 + 0.018, 149.16, 580.0])
    there = align.to_reference(np.zeros((1, 3)), far, ref)[0]
    back = align.to_reference(align.to_reference(np.array([[5.0, -3.0, 2.0]]), far, ref), ref, far)
    np.testing.assert_allclose(back[0], [5.0, -3.0, 2.0], atol=1e-6)
    assert 1990 < there[1] < 2000 and abs(there[2]) < 0.5  # 0.018 deg north; the far frame's floor is 0.3 m lower


def test_real_ekf_positions_land_where_the_autopilot_puts_them_on_the_globe():
    """ArduPilot logs its EKF's local position (NKF1, from the EKF origin ORGN) and its global position (POS,
    lat / lng / alt) side by side: the local one taken to the globe through ORGN must be the global one."""
    log = open_flight_log(AP)
    t_origin, lla, source = align.local_origin(log)
    assert source == "ORGN (EKF origin)" and lla.shape == (1, 3)
    pos = log.streams["POS"]
    k = np.searchsorted(pos.t_s, log.state.position.t_s)  # POS is logged 0.3-0.6 ms after each NKF1
    ok = k < len(pos.t_s)
    glob = np.stack([pos.fields[f].astype(float)[k[ok]] for f in ("Lat", "Lng", "Alt")], axis=1)
    from_global = align.to_reference(np.zeros_like(glob), glob, lla[0])  # POS in ENU at the EKF origin
    np.testing.assert_allclose(log.state.position.values[ok], from_global, atol=0.03)  # 1e-7 deg = 1.1 cm


def test_two_vehicles_in_one_frame_from_their_gps_origins(tmp_path, capsys):
    ap = open_flight_log(AP)
    _, ap_origin, _ = align.local_origin(ap)
    tlog = tmp_path / "second.tlog"
    # the second vehicle's EKF origin 0.001 deg (110.9 m) north of the first one's, same height
    second_origin = (ap_origin[0, 0] + 1e-3, ap_origin[0, 1], ap_origin[0, 2])
    write_tlog(tlog, t0_us=int(round((ap.start_s + utc_offset(ap)[0] + 0.2) * 1e6)), origin=second_origin)
    out = tmp_path / "c"
    assert main(["compare", str(AP), str(tlog), "-o", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    frame = doc["frame"]
    assert frame["one_frame"] and [p["source"] for p in frame["per_log"]] == ["ORGN (EKF origin)", "GPS_GLOBAL_ORIGIN"]
    north = align.to_reference(np.zeros((1, 3)), np.array(second_origin), ap_origin[0])[0]
    np.testing.assert_allclose(frame["per_log"][1]["origin_enu_m"], north, atol=1e-9)
    assert 110.5 < north[1] < 111.5 and abs(north[0]) < 1e-6
    # the tlog vehicle sits at local ENU (2, 1, 3 + k): in the common frame 110.9 m further north
    sep = doc["separation"]
    assert sep["pair"] == "ardupilot_sitl_plane.bin - second.tlog"
    assert doc["overlap_s"][0] <= sep["t_s"] <= doc["overlap_s"][1]
    plane = ap.state.position
    t_plane = plane.t_s + doc["logs"][0]["shift_s"] - (ap.start_s + doc["logs"][0]["shift_s"])
    at = np.array([np.interp(sep["t_s"], t_plane, plane.values[:, i]) for i in range(3)])
    second = np.array([2.0, 1.0, 3.0 + (sep["t_s"] - 0.2) * 10]) + north  # 10 Hz, 1 m up per sample
    assert sep["min_m"] == pytest.approx(float(np.linalg.norm(at - second)), abs=0.15)
    for f in align.FILES[1:]:
        assert (out / f).stat().st_size > 10_000, f


def test_without_gps_the_user_places_the_frames(tmp_path, capsys):
    head = tmp_path / "px4_head.ulg"  # the real PX4 log's first 400 kB (read up to the cut): no GPS, no global origin
    head.write_bytes(PX4.read_bytes()[:400_000])
    args = ["compare", str(AP), str(head), "-o", str(tmp_path / "c"), "--offsets", "0", "-35"]  # overlapping
    assert main(args + ["--json"]) == 0
    frame = json.loads(capsys.readouterr().out)["frame"]
    assert not frame["one_frame"] and f"{head} state(s) no global origin" in frame["why"]
    assert main(args + ["--origins", "0,0,0", "10,-5,0"]) == 0
    out = capsys.readouterr().out
    assert "positions: given origins" in out and "closest approach: " in out
    doc = json.loads((tmp_path / "c" / "alignment.json").read_text())
    assert doc["frame"]["one_frame"] and doc["frame"]["origins_m"] == [[0, 0, 0], [10, -5, 0]]
    logs = [open_flight_log(AP), open_flight_log(head)]
    moved, frame = align.common_frame(logs, [[0, 0, 0], [10, -5, 0]])
    np.testing.assert_allclose(moved[1], logs[1].state.position.values + [10, -5, 0])
    shared, frame = align.common_frame(logs, shared=True)
    assert frame["one_frame"] and shared[1] is logs[1].state.position.values
    with pytest.raises(align.AlignError, match="--origins gives 1 value"):
        align.common_frame(logs, [[0, 0, 0]])
    for bad, why in ((["--origins", "0,0", "1,2,3"], "--origins takes E,N,U"),
                     (["--origins", "a,b,c", "1,2,3"], "--origins takes E,N,U"),
                     (["--origins", "0,0,0", "1,2,3", "--shared-frame"], "give one")):
        assert main(args + bad) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and why in err and "Traceback" not in err
