"""The picture of a MAV team's SITL mission (`marlstack sitl --plot PNG`), from the sim node's summary.

Top: the load's position error to the goal being flown; bottom: its attitude error; the success
tolerances dashed, each goal's span shaded (waypoints lighter), a mark where a goal was held (✓) or
a crash check tripped (✗), and the take-off hand-over, a MAV's thrust loss (red) and the load's
touch-down as vertical lines.
SITL tooling (matplotlib).
"""
from __future__ import annotations

from pathlib import Path


def plot_mission(team: dict, out: Path, title: str = "") -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_p, ax_r) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    for k, g in enumerate(team["goals"]):
        trace = g["error_trace"]
        if not trace:
            continue
        t = [row[0] for row in trace]
        end = t[-1]
        for ax in (ax_p, ax_r):
            ax.axvspan(g["start_s"], end, color="C0" if g["scored"] else "0.8", alpha=0.12 if g["scored"] else 0.3, lw=0)
        label = f"goal {k}" if g["scored"] else f"waypoint {k}"
        ax_p.plot(t, [row[1] for row in trace], color=f"C{k % 10}", label=label)
        ax_r.plot(t, [row[2] for row in trace], color=f"C{k % 10}")
        if g["success_after_s"] is not None:
            ax_p.annotate("✓" if g["success"] else "✗", (g["start_s"] + g["success_after_s"], 0.1), ha="center",
                          color="green" if g["success"] else "red")
        if g.get("crashed_after_s") is not None:
            ax_p.annotate("✗ crash", (g["start_s"] + g["crashed_after_s"], 0.3), ha="center", color="red")
    ax_p.axhline(0.1, ls="--", color="k", lw=0.8)
    ax_r.axhline(10.0, ls="--", color="k", lw=0.8)
    for ax in (ax_p, ax_r):
        if team.get("airborne_at_s"):
            ax.axvline(team["airborne_at_s"], color="k", lw=0.8, ls=":")
        if team.get("load_down_at_s"):
            ax.axvline(team["load_down_at_s"], color="brown", lw=0.8, ls=":")
        if team.get("failed_mav"):
            ax.axvline(team["failed_mav"][0], color="red", lw=1.0, ls="--")
    ax_p.set_ylabel("load position error [m]")
    ax_r.set_ylabel("load attitude error [deg]")
    ax_r.set_xlabel("time since release [s] (dotted: airborne, load down; red dashed: a MAV lost its thrust)")
    ax_p.set_yscale("log")
    ax_p.legend(fontsize=7, ncol=4)
    ax_p.set_title(title or (f"min MAV separation {team['min_mav_separation_m']} m, max tilt {team['max_tilt_deg']}°, "
                             f"slack events {team['slack_events']}, landed {team['landed_at_s']} s"), fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
