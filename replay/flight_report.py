"""`replay report` for a flight log: tracking, saturation, battery and modes as summary.json + PNGs.

Set-points are held until the next one (zero-order hold, as the flight controller uses them) and
compared with each measurement taken while the set-point held. Tracking and saturation count only
armed time: a disarmed vehicle's outputs sit at the disarmed PWM (below the minimum) and its
controllers integrate against a vehicle that cannot move. A log that never arms says so and
reports tracking over the whole log instead.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from marlstack.replay import frames, plots
from marlstack.replay.flightlog import FlightLog, VehicleState, hold

FILES = ("summary.json", "trajectory_3d.png", "attitude.png", "rates.png", "actuators.png", "battery.png",
         "modes.png")
AXES = ("roll", "pitch", "yaw")


def armed_mask(st: VehicleState, t: np.ndarray) -> np.ndarray:
    if not st.armed:
        return np.zeros(len(t), dtype=bool)
    ts = np.array([a[0] for a in st.armed])
    on = np.array([a[1] for a in st.armed])
    idx = np.searchsorted(ts, t, side="right") - 1
    return (idx >= 0) & on[np.clip(idx, 0, None)]


def _window(st: VehicleState, t: np.ndarray) -> np.ndarray:
    """Armed samples, or all of them when the log never arms."""
    mask = armed_mask(st, t)
    return mask if any(a for _, a in st.armed) else np.ones(len(t), dtype=bool)


def _stats(x: np.ndarray) -> dict[str, float | None]:
    x = np.abs(x[np.isfinite(x)])
    if not len(x):
        return {"rms": None, "max": None}
    return {"rms": float(np.sqrt(np.mean(x ** 2))), "max": float(np.max(x))}


def _sample_time(t: np.ndarray) -> float:
    return float(np.median(np.diff(t))) if len(t) > 1 else 0.0


def summarise(log: FlightLog) -> dict[str, Any]:
    st = log.state
    ever_armed = any(a for _, a in st.armed)
    out: dict[str, Any] = {
        "log": str(log.path), "format": log.format, "vehicle": log.info,
        "duration_s": log.end_s - log.start_s, "complete": not log.problems, "problems": list(log.problems),
        "armed_s": None, "tracking_window": "armed" if ever_armed else "whole log (never armed)",
        "frames": "positions/velocities ENU (x east, y north, z up), body quantities FLU (REP-103)",
    }
    if st.armed:
        t_end = log.end_s
        marks = [*st.armed, (t_end, False)]
        out["armed_s"] = sum(b[0] - a[0] for a, b in zip(marks, marks[1:]) if a[1])
    if st.position is not None:
        p = st.position.values
        step = np.linalg.norm(np.diff(p, axis=0), axis=1)
        out["trajectory"] = {"distance_m": float(np.nansum(step)), "altitude_max_m": float(np.nanmax(p[:, 2] - p[0, 2])),
                             "altitude_min_m": float(np.nanmin(p[:, 2] - p[0, 2])),
                             "horizontal_max_m": float(np.nanmax(np.linalg.norm(p[:, :2] - p[0, :2], axis=1)))}
    if st.velocity is not None:
        out.setdefault("trajectory", {})["speed_max_m_s"] = float(np.nanmax(np.linalg.norm(st.velocity.values, axis=1)))
    if st.attitude is not None and st.attitude_setpoint is not None:
        q = st.attitude.values
        qd, ok = hold(st.attitude_setpoint, st.attitude.t_s)
        ok &= _window(st, st.attitude.t_s)
        angle = 2 * np.arccos(np.clip(np.abs(np.sum(q * qd, axis=1)), 0.0, 1.0))
        out["attitude_error_deg"] = _stats(np.degrees(angle[ok]))
    if st.body_rates is not None and st.rate_setpoint is not None:
        sp, ok = hold(st.rate_setpoint, st.body_rates.t_s)
        ok &= _window(st, st.body_rates.t_s)
        err = st.body_rates.values - sp
        out["rate_error_rad_s"] = {a: _stats(err[ok, i]) for i, a in enumerate(AXES)}
    if st.actuators is not None:
        out["actuators"] = _saturation(st)
    if st.battery_voltage is not None:
        v = st.battery_voltage.values
        out["battery"] = {"voltage_start_v": float(v[0]), "voltage_end_v": float(v[-1]), "voltage_min_v": float(np.min(v)),
                          "remaining_start": float(st.battery_remaining.values[0]) if st.battery_remaining else None,
                          "remaining_end": float(st.battery_remaining.values[-1]) if st.battery_remaining else None}
    marks = [*st.modes, (log.end_s, "")]
    out["modes"] = [{"mode": a[1], "start_s": a[0], "duration_s": b[0] - a[0]} for a, b in zip(marks, marks[1:])]
    out["missing"] = [k for k, v in vars(st).items() if v is None or (isinstance(v, list) and not v)]
    return out


def _saturation(st: VehicleState) -> dict[str, Any]:
    a = st.actuators
    used = ~np.all(a.values == 0, axis=0)  # outputs never driven are not motors
    res: dict[str, Any] = {"outputs": int(np.sum(used)), "range": list(st.actuator_range) if st.actuator_range else None,
                           "saturated_s": None, "saturated_fraction": None}
    if st.actuator_range is None:
        return res
    lo, hi = st.actuator_range
    vals = a.values[:, used]
    at_limit = np.any((vals <= lo) | (vals >= hi), axis=1) & armed_mask(st, a.t_s)
    dt = _sample_time(a.t_s)
    armed = armed_mask(st, a.t_s)
    res["saturated_s"] = float(np.sum(at_limit) * dt)
    res["saturated_fraction"] = float(np.sum(at_limit) / np.sum(armed)) if np.any(armed) else None
    return res


def write_report(log: FlightLog, out: Path, pictures: bool = True) -> dict[str, Any]:
    """summary.json and (with `pictures`) the PNGs of FILES in `out`; returns the summary."""
    summary = summarise(log)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    if pictures:
        st, t0 = log.state, log.start_s
        _trajectory(st, out / "trajectory_3d.png")
        _tracking(st, t0, out / "attitude.png", attitude=True)
        _tracking(st, t0, out / "rates.png", attitude=False)
        _actuators(st, t0, out / "actuators.png")
        _battery(st, t0, out / "battery.png")
        _modes(st, t0, log.end_s, out / "modes.png")
    return summary


def _absent(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"{what}: not in this log", ha="center", va="center", transform=ax.transAxes)


def _trajectory(st: VehicleState, path: Path) -> None:
    plt = plots._plt()
    fig = plt.figure(figsize=(7, 6))
    ax = fig.add_subplot(projection="3d")
    if st.position is None:
        _absent(ax, "position")
    else:
        p = st.position.values
        ax.plot(p[:, 0], p[:, 1], p[:, 2], lw=1.2)
        ax.scatter(*p[0], marker="o", color="tab:green", label="start")
        ax.scatter(*p[-1], marker="s", color="tab:red", label="end")
        ax.legend(fontsize=8)
    ax.set_xlabel("east x [m]")
    ax.set_ylabel("north y [m]")
    ax.set_zlabel("up z [m]")
    ax.set_title("trajectory (ENU, local origin)")
    plots._save(fig, path)


def _tracking(st: VehicleState, t0: float, path: Path, attitude: bool) -> None:
    plt = plots._plt()
    fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    meas, sp = (st.attitude, st.attitude_setpoint) if attitude else (st.body_rates, st.rate_setpoint)
    conv = (lambda v: np.degrees(frames.euler(v))) if attitude else (lambda v: v)
    unit = "deg" if attitude else "rad/s"
    for i, ax in enumerate(axes):
        if meas is None:
            _absent(ax, "attitude" if attitude else "body rates")
            continue
        ax.plot(meas.t_s - t0, conv(meas.values)[:, i], lw=1.0, label="measured")
        if sp is not None and len(sp.t_s):
            ax.step(sp.t_s - t0, conv(sp.values)[:, i], where="post", lw=1.0, ls="--", label="set-point")
        ax.set_ylabel(f"{AXES[i]} [{unit}]")
    if meas is not None:
        axes[0].legend(fontsize=8, loc="upper right")
    axes[0].set_title(("attitude (Euler Z-Y-X of the FLU->ENU quaternion)" if attitude else "body rates (FLU)")
                      + " vs set-point")
    axes[-1].set_xlabel("time since log start [s]")
    plots._save(fig, path)


def _actuators(st: VehicleState, t0: float, path: Path) -> None:
    plt = plots._plt()
    fig, ax = plt.subplots(figsize=(9, 4))
    a = st.actuators
    if a is None:
        _absent(ax, "actuator outputs")
    else:
        used = ~np.all(a.values == 0, axis=0)
        for i in np.flatnonzero(used):
            ax.plot(a.t_s - t0, a.values[:, i], lw=1.0, label=f"output {i}")
        if st.actuator_range:
            for v in st.actuator_range:
                ax.axhline(v, ls=":", color="tab:red")
        armed = armed_mask(st, a.t_s)
        ax.fill_between(a.t_s - t0, 0, 1, where=armed, transform=ax.get_xaxis_transform(), color="tab:green",
                        alpha=0.1, label="armed")
        ax.set_ylabel(f"output [{a.unit}]")
        ax.legend(fontsize=7, ncol=4)
    ax.set_title("actuator outputs (dotted: saturation limits)")
    ax.set_xlabel("time since log start [s]")
    plots._save(fig, path)


def _battery(st: VehicleState, t0: float, path: Path) -> None:
    plt = plots._plt()
    fig, ax = plt.subplots(figsize=(9, 3.5))
    if st.battery_voltage is None:
        _absent(ax, "battery")
    else:
        ax.plot(st.battery_voltage.t_s - t0, st.battery_voltage.values, label="voltage [V]")
        ax.set_ylabel("voltage [V]")
        if st.battery_remaining is not None:
            ax2 = ax.twinx()
            ax2.plot(st.battery_remaining.t_s - t0, 100 * st.battery_remaining.values, color="tab:orange")
            ax2.set_ylabel("remaining [%]")
    ax.set_xlabel("time since log start [s]")
    ax.set_title("battery")
    plots._save(fig, path)


def _modes(st: VehicleState, t0: float, t_end: float, path: Path) -> None:
    plt = plots._plt()
    fig, (ax, ax_alt) = plt.subplots(2, 1, figsize=(9, 4), sharex=True, height_ratios=(1, 2))
    names = sorted({m for _, m in st.modes})
    marks = [*st.modes, (t_end, "")]
    colors = plt.get_cmap("tab10")
    for a, b in zip(marks, marks[1:]):
        k = names.index(a[1])
        ax.broken_barh([(a[0] - t0, b[0] - a[0])], (0, 1), color=colors(k % 10))
        ax.text(a[0] - t0, 0.5, f" {a[1]}", va="center", fontsize=8)
    arm = [*st.armed, (t_end, False)]
    for a, b in zip(arm, arm[1:]):
        if a[1]:
            ax.broken_barh([(a[0] - t0, b[0] - a[0])], (1.1, 0.4), color="tab:red")
    ax.set_yticks([0.5, 1.3], ["mode", "armed"])
    ax.set_ylim(0, 1.6)
    ax.set_title("flight modes, armed time, altitude")
    if st.position is None:
        _absent(ax_alt, "position")
    else:
        ax_alt.plot(st.position.t_s - t0, st.position.values[:, 2])
        ax_alt.set_ylabel("altitude z up [m]")
    ax_alt.set_xlabel("time since log start [s]")
    plots._save(fig, path)
