"""`replay compare`: several flight logs (one per vehicle of a team) on one time axis and in one frame.

Time: each log counts time on its own flight controller's boot clock. Logs are aligned by UTC when
every one of them states it (a GPS fix: PX4 `vehicle_gps_position.time_utc_usec`, ArduPilot `GPS` week +
milliseconds; a `.tlog` is stamped in UTC by the ground station), else by offsets the user gives
(seconds added to each log's clock).

Space: each estimator reports positions in its own local ENU frame, from its own origin. Where every
log states that origin on the globe (PX4 `vehicle_local_position.ref_lat/ref_lon/ref_alt` while
`xy_global` and `z_global` hold, ArduPilot's EKF origin `ORGN` type 0, MAVLink `GPS_GLOBAL_ORIGIN`), each
position goes local ENU -> ECEF (WGS-84) -> ENU at the first log's origin: one frame, exact for any
distance. Without GPS, the user says where each log's origin lies in a common frame (`origins`, m),
or that the logs share one local frame already (`shared`: one motion-capture / Lighthouse / UWB
system). Otherwise positions stay in each vehicle's own frame, and alignment.json says so.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from marlstack.replay import plots
from marlstack.replay.flightlog import FlightLog

GPS_EPOCH_UNIX_S = 315_964_800  # 1980-01-06T00:00:00Z
GPS_MINUS_UTC_S = 18  # leap seconds since 2017-01-01 (GPS time runs ahead of UTC)
GPS_FIX_3D = 3
FILES = ("alignment.json", "team_trajectories_3d.png", "team_topview.png", "team_altitude.png", "team_separation.png")
WGS84_A = 6_378_137.0  # m, semi-major axis
WGS84_E2 = (1 / 298.257223563) * (2 - 1 / 298.257223563)  # first eccentricity squared


class AlignError(Exception):
    """The logs cannot be put on one time axis as asked (one line saying what is missing)."""


def utc_offset(log: FlightLog) -> tuple[float, str] | None:
    """(UTC minus the log's clock in s, where that came from), or None when the log states no UTC."""
    if log.clock.startswith("s UTC"):
        return 0.0, "the ground station's UTC stamps"
    s = log.streams.get("vehicle_gps_position")
    if s is not None and "time_utc_usec" in s.fields:
        utc = s.fields["time_utc_usec"].astype(float) * 1e-6
        ok = utc > 0
        if ok.any():
            return float(np.median(utc[ok] - s.t_s[ok])), "vehicle_gps_position.time_utc_usec"
    s = log.streams.get("GPS") or log.streams.get("GPS.0")
    if s is not None and {"GWk", "GMS"} <= set(s.fields):
        fix = s.fields["Status"].astype(float) >= GPS_FIX_3D if "Status" in s.fields else np.ones(len(s.t_s), bool)
        gps = s.fields["GWk"].astype(float) * 604_800 + s.fields["GMS"].astype(float) / 1000
        if fix.any():
            utc = GPS_EPOCH_UNIX_S + gps[fix] - GPS_MINUS_UTC_S
            return float(np.median(utc - s.t_s[fix])), "GPS week and milliseconds (3-D fix)"
    return None


def align(logs: list[FlightLog], offsets: list[float] | None = None) -> list[dict[str, Any]]:
    """Per log: the shift (s) taking its clock to the common axis, and how it was found."""
    if offsets is not None:
        if len(offsets) != len(logs):
            raise AlignError(f"--offsets gives {len(offsets)} value(s) for {len(logs)} logs")
        return [{"shift_s": float(o), "method": "given offset"} for o in offsets]
    out = []
    for log in logs:
        found = utc_offset(log)
        if found is None:
            raise AlignError(f"{log.path} states no UTC time (no GPS fix logged): give every log's offset "
                             f"with --offsets S1 S2 ... (seconds added to each log's clock)")
        out.append({"shift_s": found[0], "method": f"UTC from {found[1]}"})
    return out


def local_origin(log: FlightLog) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(log times, (n, 3) latitude deg / longitude deg / altitude m of the estimator's local origin, source),
    or None when the log does not place its local frame on the globe."""
    s = log.streams.get("vehicle_local_position")
    if s is not None and {"ref_lat", "ref_lon", "ref_alt", "xy_global", "z_global"} <= set(s.fields):
        ok = (s.fields["xy_global"].astype(float) > 0) & (s.fields["z_global"].astype(float) > 0)
        if ok.any():
            lla = np.stack([s.fields[k].astype(float)[ok] for k in ("ref_lat", "ref_lon", "ref_alt")], axis=1)
            return s.t_s[ok], lla, "vehicle_local_position.ref_lat/ref_lon/ref_alt"
    s = log.streams.get("ORGN")
    if s is not None and {"Type", "Lat", "Lng", "Alt"} <= set(s.fields):
        ekf = s.fields["Type"].astype(float) == 0  # 0: the EKF origin positions are relative to; 1: home
        if ekf.any():
            return (s.t_s[ekf], np.stack([s.fields[k].astype(float)[ekf] for k in ("Lat", "Lng", "Alt")], axis=1),
                    "ORGN (EKF origin)")
    s = log.streams.get("GPS_GLOBAL_ORIGIN")
    if s is not None and {"latitude", "longitude", "altitude"} <= set(s.fields):
        lla = np.stack([s.fields["latitude"].astype(float) * 1e-7, s.fields["longitude"].astype(float) * 1e-7,
                        s.fields["altitude"].astype(float) * 1e-3], axis=1)
        return s.t_s, lla, "GPS_GLOBAL_ORIGIN"
    return None


def ecef(lla: np.ndarray) -> np.ndarray:
    """(n, 3) latitude deg, longitude deg, height above the WGS-84 ellipsoid m -> (n, 3) ECEF m."""
    lat, lon, h = np.radians(lla[:, 0]), np.radians(lla[:, 1]), lla[:, 2]
    n = WGS84_A / np.sqrt(1 - WGS84_E2 * np.sin(lat) ** 2)  # prime vertical radius
    return np.stack([(n + h) * np.cos(lat) * np.cos(lon), (n + h) * np.cos(lat) * np.sin(lon),
                     (n * (1 - WGS84_E2) + h) * np.sin(lat)], axis=1)


def enu_axes(lla: np.ndarray) -> np.ndarray:
    """(n, 3, 3): rows east, north, up of the local tangent frame at each point, in ECEF."""
    lat, lon = np.radians(lla[:, 0]), np.radians(lla[:, 1])
    zero = np.zeros_like(lat)
    return np.stack([np.stack([-np.sin(lon), np.cos(lon), zero], axis=1),
                     np.stack([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)], axis=1),
                     np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)], axis=1)


def to_reference(enu: np.ndarray, origin: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Positions (n, 3) in the local ENU frame at `origin` ((n, 3) or (3,) lat/lon/alt) -> the ENU frame at
    `reference` (3,): through ECEF, so the frames' different "up" over long distances is accounted for."""
    origin = np.broadcast_to(origin, enu.shape)
    world = ecef(origin) + np.einsum("nij,ni->nj", enu_axes(origin), enu)
    ref = reference[None, :]
    return np.einsum("ij,nj->ni", enu_axes(ref)[0], world - ecef(ref))


def common_frame(logs: list[FlightLog], origins: list[list[float]] | None = None,
                 shared: bool = False) -> tuple[list[np.ndarray | None], dict[str, Any]]:
    """Each log's positions (ENU, m) in one frame where possible, and how: (positions per log, frame doc)."""
    local = [log.state.position.values if log.state.position is not None else None for log in logs]
    if shared:
        return local, {"method": "given: the logs share one local frame", "one_frame": True}
    if origins is not None:
        if len(origins) != len(logs) or any(len(o) != 3 for o in origins):
            raise AlignError(f"--origins gives {len(origins)} value(s) for {len(logs)} logs "
                             f"(one E,N,U triple in metres per log)")
        moved = [p + np.asarray(o, float) if p is not None else None for p, o in zip(local, origins)]
        return moved, {"method": "given origins (E, N, U of each log's local origin, m)", "one_frame": True,
                       "origins_m": [list(map(float, o)) for o in origins]}
    found = [local_origin(log) for log in logs]
    missing = [str(log.path) for log, f in zip(logs, found) if f is None]
    if missing:
        return local, {"method": "none: each vehicle's own local ENU frame (its estimator's origin)", "one_frame": False,
                       "why": f"{', '.join(missing)} state(s) no global origin of the local frame (no GPS); give "
                              f"--origins E,N,U ... or --shared-frame"}
    reference = found[0][1][0]
    out, per_log = [], []
    for log, p, (t, lla, source) in zip(logs, local, found):
        per_log.append({"source": source, "origin_lat_lon_alt": lla[0].tolist(),
                        "origin_enu_m": to_reference(np.zeros((1, 3)), lla[0], reference)[0].tolist(),
                        "origin_changes": int(np.sum(np.any(np.diff(lla, axis=0) != 0, axis=1)))})
        if p is None:
            out.append(None)
            continue
        # the origin in force at each sample (the estimator may move it); the first one before it was set
        idx = np.clip(np.searchsorted(t, log.state.position.t_s, side="right") - 1, 0, len(t) - 1)
        out.append(to_reference(p, lla[idx], reference))
    return out, {"method": "GPS: each log's local origin on the globe (WGS-84), ENU at the first log's origin",
                 "one_frame": True, "reference_lat_lon_alt": reference.tolist(), "per_log": per_log}


def separation(logs: list[FlightLog], positions: list[np.ndarray | None], shifts: list[dict[str, Any]], t0: float,
               overlap: tuple[float, float]) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any] | None]:
    """Vehicle-to-vehicle distances over the time all logs cover: (times, {pair: distance}, smallest),
    positions interpolated linearly onto every position sample of any log."""
    have = [(log, p, a) for log, p, a in zip(logs, positions, shifts) if p is not None and len(p) > 1]
    if len(have) < 2 or not overlap[0] < overlap[1]:
        return np.zeros(0), {}, None
    times = [log.state.position.t_s + a["shift_s"] - t0 for log, _, a in have]
    grid = np.unique(np.concatenate(times))
    grid = grid[(grid >= overlap[0]) & (grid <= overlap[1])]
    at = [np.stack([np.interp(grid, t, p[:, k]) for k in range(3)], axis=1) for t, (_, p, _) in zip(times, have)]
    names = [log.path.name for log, _, _ in have]
    dist = {f"{names[i]} - {names[j]}": np.linalg.norm(at[i] - at[j], axis=1)
            for i in range(len(have)) for j in range(i + 1, len(have))}
    if not len(grid):
        return grid, dist, None
    pair = min(dist, key=lambda k: dist[k].min())
    k = int(np.argmin(dist[pair]))
    return grid, dist, {"min_m": float(dist[pair][k]), "pair": pair, "t_s": float(grid[k])}


def write_comparison(logs: list[FlightLog], out: Path, offsets: list[float] | None = None,
                     origins: list[list[float]] | None = None, shared_frame: bool = False) -> dict[str, Any]:
    """alignment.json and the team pictures in `out`; returns what alignment.json holds."""
    shifts = align(logs, offsets)
    positions, frame = common_frame(logs, origins, shared_frame)
    t0 = min(log.start_s + a["shift_s"] for log, a in zip(logs, shifts))
    rows = []
    for log, a in zip(logs, shifts):
        start, end = log.start_s + a["shift_s"] - t0, log.end_s + a["shift_s"] - t0
        rows.append({"log": str(log.path), "format": log.format, **a, "start_s": start, "end_s": end,
                     "has_position": log.state.position is not None})
    overlap = (max(r["start_s"] for r in rows), min(r["end_s"] for r in rows))
    grid, dist, closest = separation(logs, positions, shifts, t0, overlap) if frame["one_frame"] else (None, {}, None)
    doc = {"time_zero": "UTC of the earliest start" if offsets is None else "the earliest start after the offsets",
           "time_zero_utc_s": t0 if offsets is None else None,
           "overlap_s": list(overlap) if overlap[0] < overlap[1] else None,
           "frame": frame,
           "separation": closest,
           "logs": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "alignment.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    where = "one ENU frame" if frame["one_frame"] else "each in its own local frame"
    plt = plots._plt()
    fig = plt.figure(figsize=(7, 6))
    ax = fig.add_subplot(projection="3d")
    fig_top, top = plt.subplots(figsize=(7, 6))
    fig_alt, alt = plt.subplots(figsize=(9, 3.5))
    for log, a, p in zip(logs, shifts, positions):
        if p is None:
            continue
        label = log.path.name
        ax.plot(p[:, 0], p[:, 1], p[:, 2], lw=1.2, label=label)
        line, = top.plot(p[:, 0], p[:, 1], lw=1.2, label=label)
        top.plot(p[0, 0], p[0, 1], "o", color=line.get_color())
        top.plot(p[-1, 0], p[-1, 1], "s", color=line.get_color())
        alt.plot(log.state.position.t_s + a["shift_s"] - t0, p[:, 2], lw=1.2, label=label)
    ax.set_xlabel("east x [m]")
    ax.set_ylabel("north y [m]")
    ax.set_zlabel("up z [m]")
    ax.set_title(f"trajectories (ENU, {where})")
    ax.legend(fontsize=8)
    top.set_aspect("equal", adjustable="datalim")
    top.set_xlabel("east x [m]")
    top.set_ylabel("north y [m]")
    top.set_title(f"seen from above ({where}; o start, s end)")
    top.legend(fontsize=8)
    alt.set_xlabel("aligned time [s]")
    alt.set_ylabel("z up [m]")
    if doc["overlap_s"]:
        alt.axvspan(*doc["overlap_s"], color="tab:green", alpha=0.1, label="all logs")
    alt.legend(fontsize=8)
    alt.set_title(f"height on one time axis ({'UTC' if offsets is None else 'given offsets'}; {where})")
    plots._save(fig, out / "team_trajectories_3d.png")
    plots._save(fig_top, out / "team_topview.png")
    plots._save(fig_alt, out / "team_altitude.png")
    fig_sep, sep = plt.subplots(figsize=(9, 3.5))
    for pair, d in dist.items():
        sep.plot(*plots._envelope(grid, d), lw=1.2, label=pair)
    if closest is not None:
        sep.plot(closest["t_s"], closest["min_m"], "kx", ms=8, label=f"closest: {closest['min_m']:.2f} m")
        sep.legend(fontsize=8)
    else:
        sep.text(0.5, 0.5, "needs one frame and a time all logs cover" if not frame["one_frame"] or not doc["overlap_s"]
                 else "needs two logs with positions", ha="center", va="center", transform=sep.transAxes)
    sep.set_xlabel("aligned time [s]")
    sep.set_ylabel("distance between vehicles [m]")
    plots._save(fig_sep, out / "team_separation.png")
    return doc
