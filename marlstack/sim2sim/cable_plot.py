"""The cable sim-to-sim picture: the load's goal errors in both engines and the gap between them, over time."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from marlstack.sim2sim.cable import goal_errors, load_gap
from marlstack.sim.render import plt

STYLES = {"marlstack": "-", "pybullet": "--"}


def plot_cable_comparison(flights: Mapping[str, Any], goals: list, report: Mapping[str, Any], path: str | Path,
                          title: str = "") -> Path:
    """Three panels over time: load position error and attitude error to the goal in force (solid marlstack,
    dashed pybullet, the success tolerance dotted), and the load-pose gap between the engines; goal
    changes as vertical lines."""
    first = next(iter(flights.values()))
    t = np.arange(len(first.goal)) / report["policy_rate_hz"]
    fig, (ax_p, ax_r, ax_g) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    for engine, f in flights.items():
        e_pos, e_deg = goal_errors(f, goals)
        ax_p.plot(t, e_pos, STYLES[engine], label=engine)
        ax_r.plot(t, e_deg, STYLES[engine], label=engine)
    rule = report["success_rule"]
    ax_p.axhline(rule["position_m"], color="0.5", ls=":", lw=1, label="success tolerance")
    ax_r.axhline(rule["attitude_deg"], color="0.5", ls=":", lw=1)
    d, deg = load_gap(flights["marlstack"], flights["pybullet"])
    ax_g.plot(t, 1e3 * d, color="C2", label="position [mm]")
    twin = ax_g.twinx()
    twin.plot(t, deg, color="C3", label="attitude [deg]")
    for ax in (ax_p, ax_r, ax_g):
        for k in np.flatnonzero(np.diff(first.goal)) + 1:
            ax.axvline(t[k], color="0.8", lw=1)
    ax_p.set_ylabel("load position error [m]")
    ax_r.set_ylabel("load attitude error [deg]")
    ax_g.set_ylabel("gap, position [mm]", color="C2")
    twin.set_ylabel("gap, attitude [deg]", color="C3")
    ax_g.set_xlabel("time [s]")
    ax_p.legend(loc="upper right")
    ax_p.set_title(title)
    path = Path(path)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
