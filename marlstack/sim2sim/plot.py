"""The sim-to-sim picture: both engines' trajectories over the arena (matplotlib, Agg), one colour per robot."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
from matplotlib import patches

from marlstack.sim.render import arena_axes, draw_goals, plt, robot_colors
from marlstack.sim.scenarios.navigation_spec import SUCCESS_RADIUS

STYLES = {"marlstack": "-", "pybullet": "--"}


def plot_comparison(trajs: Mapping[str, Any], goals: Any, profile: Any, path: str | Path, title: str = "",
                    shared: bool = False) -> Path:
    """trajs: engine name -> Trajectory (poses (T + 1, N, 3)); solid marlstack, dashed pybullet,
    starts as dots, goals as crosses inside their success circles (`shared`: landmarks, in grey)."""
    goals = np.asarray(goals)
    colors = robot_colors(goals.shape[0])
    goal_colors = ["0.35"] * len(goals) if shared else colors
    fig, ax = arena_axes(profile, title)
    for engine, traj in trajs.items():
        ax.plot([], [], STYLES[engine], color="k", label=engine)
        for i, c in enumerate(colors):
            ax.plot(traj.poses[:, i, 0], traj.poses[:, i, 1], STYLES[engine], color=c, lw=1.5)
    for (x, y), c in zip(goals, goal_colors):
        ax.add_patch(patches.Circle((x, y), SUCCESS_RADIUS, fill=False, edgecolor=c, ls=":"))
    first = next(iter(trajs.values())).poses[0]
    ax.scatter(first[:, 0], first[:, 1], c=colors, s=20, zorder=3)
    draw_goals(ax, goals, goal_colors, "landmarks" if shared else "goals")
    ax.legend(loc="upper right")
    path = Path(path)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
