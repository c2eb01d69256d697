"""`replay compare`: several flight logs (one per vehicle of a team) on one time axis, plotted together.

Each log counts time on its own flight controller's boot clock. Logs are aligned by UTC when every
one of them states it (a GPS fix: PX4 `vehicle_gps_position.time_utc_usec`, ArduPilot `GPS` week +
milliseconds; a `.tlog` is stamped in UTC by the ground station), else by offsets the user gives
(seconds added to each log's clock). Positions stay in each vehicle's own local frame (its EKF
origin): the plots say so, and so does alignment.json.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from replay import plots
from replay.flightlog import FlightLog

GPS_EPOCH_UNIX_S = 315_964_800  # 1980-01-06T00:00:00Z
GPS_MINUS_UTC_S = 18  # leap seconds since 2017-01-01 (GPS time runs ahead of UTC)
GPS_FIX_3D = 3
FILES = ("alignment.json", "team_trajectories_3d.png", "team_altitude.png")


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


def write_comparison(logs: list[FlightLog], out: Path, offsets: list[float] | None = None) -> dict[str, Any]:
    """alignment.json and the two team pictures in `out`; returns what alignment.json holds."""
    shifts = align(logs, offsets)
    t0 = min(log.start_s + a["shift_s"] for log, a in zip(logs, shifts))
    rows = []
    for log, a in zip(logs, shifts):
        start, end = log.start_s + a["shift_s"] - t0, log.end_s + a["shift_s"] - t0
        rows.append({"log": str(log.path), "format": log.format, **a, "start_s": start, "end_s": end,
                     "has_position": log.state.position is not None})
    overlap = (max(r["start_s"] for r in rows), min(r["end_s"] for r in rows))
    doc = {"time_zero": "UTC of the earliest start" if offsets is None else "the earliest start after the offsets",
           "time_zero_utc_s": t0 if offsets is None else None,
           "overlap_s": list(overlap) if overlap[0] < overlap[1] else None,
           "positions": "each vehicle's own local ENU frame (its estimator's origin), not a common one",
           "logs": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "alignment.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    plt = plots._plt()
    fig = plt.figure(figsize=(7, 6))
    ax = fig.add_subplot(projection="3d")
    fig2, ax2 = plt.subplots(figsize=(9, 3.5))
    for log, a in zip(logs, shifts):
        p = log.state.position
        if p is None:
            continue
        label = log.path.name
        ax.plot(p.values[:, 0], p.values[:, 1], p.values[:, 2], lw=1.2, label=label)
        ax2.plot(p.t_s + a["shift_s"] - t0, p.values[:, 2], lw=1.2, label=label)
    ax.set_xlabel("east x [m]")
    ax.set_ylabel("north y [m]")
    ax.set_zlabel("up z [m]")
    ax.set_title("trajectories (ENU, each in its own local frame)")
    ax.legend(fontsize=8)
    ax2.set_xlabel("aligned time [s]")
    ax2.set_ylabel("altitude z up [m]")
    if doc["overlap_s"]:
        ax2.axvspan(*doc["overlap_s"], color="tab:green", alpha=0.1, label="all logs")
    ax2.legend(fontsize=8)
    ax2.set_title(f"altitude on one time axis ({'UTC' if offsets is None else 'given offsets'})")
    plots._save(fig, out / "team_trajectories_3d.png")
    plots._save(fig2, out / "team_altitude.png")
    return doc
