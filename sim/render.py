"""Pictures of a rollout: a trajectory PNG and an animated GIF (matplotlib, headless Agg backend)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import animation, patches  # noqa: E402

MAX_FRAMES = 120  # a GIF longer than this is subsampled: keeps files small and rendering quick


def arena_axes(profile: Any, title: str, boxes: Any = ()):
    """A figure with the profile's arena drawn to scale (shared by every trajectory picture), with the
    scenario's static obstacles (`FleetEnv.obstacles`: (x_min, x_max, y_min, y_max) boxes, RWARE's shelves)."""
    a = profile.arena
    fig, ax = plt.subplots(figsize=(8, 8 * (a.y_max - a.y_min + 0.2) / (a.x_max - a.x_min + 0.2)), dpi=100)
    ax.add_patch(patches.Rectangle((a.x_min, a.y_min), a.x_max - a.x_min, a.y_max - a.y_min, fill=False, lw=2))
    for x0, x1, y0, y1 in boxes:
        ax.add_patch(patches.Rectangle((x0, y0), x1 - x0, y1 - y0, facecolor="0.6", edgecolor="k", zorder=1))
    ax.set_xlim(a.x_min - 0.1, a.x_max + 0.1)
    ax.set_ylim(a.y_min - 0.1, a.y_max + 0.1)
    ax.set_aspect("equal")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_title(title)
    return fig, ax


def robot_colors(n: int) -> np.ndarray:
    """One colour per robot, the same in every picture of a run."""
    return plt.get_cmap("tab10" if n <= 10 else "turbo")(np.linspace(0, 1, n) if n > 10 else np.arange(n))


def _robots(ax, poses: np.ndarray, profile: Any, colors) -> list:
    """Robot bodies (footprint circles) with a heading tick; returns the artists to update."""
    r = profile.diameter / 2
    artists = []
    for (x, y, th), c in zip(poses, colors):
        body = patches.Circle((x, y), r, facecolor=c, edgecolor="k", alpha=0.8)
        ax.add_patch(body)
        (tick,) = ax.plot([x, x + r * np.cos(th)], [y, y + r * np.sin(th)], "k-", lw=1.5)
        artists.append((body, tick))
    return artists


def draw_goals(ax, goals: np.ndarray | None, colors, label: str = "goals") -> None:
    """Crosses in the robots' colours (goal i is robot i's), black when they do not pair up (foraging's resources)."""
    if goals is not None:
        c = colors if len(goals) == len(colors) else "k"
        ax.scatter(goals[:, 0], goals[:, 1], marker="x", s=80, c=c, linewidths=2.5, zorder=3, label=label)


def plot_trajectories(poses: np.ndarray, profile: Any, path: str | Path, goals: np.ndarray | None = None,
                      title: str = "", boxes: Any = ()) -> Path:
    """poses (T, N, 3) -> PNG: paths, starts (dots), final robots and goals (crosses)."""
    poses = np.asarray(poses)
    colors = robot_colors(poses.shape[1])
    fig, ax = arena_axes(profile, title, boxes)
    for i, c in enumerate(colors):
        ax.plot(poses[:, i, 0], poses[:, i, 1], "-", color=c, lw=1.5)
        ax.plot(*poses[0, i, :2], "o", color=c, ms=4)
    draw_goals(ax, goals, colors)
    _robots(ax, poses[-1], profile, colors)
    path = Path(path)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def animate(poses: np.ndarray, profile: Any, path: str | Path, goals: np.ndarray | None = None,
            title: str = "", fps: int | None = None, boxes: Any = ()) -> Path:
    """poses (T, N, 3) -> animated GIF, at most MAX_FRAMES frames, real time by default."""
    poses = np.asarray(poses)
    stride = max(1, -(-len(poses) // MAX_FRAMES))
    frames = poses[::stride]
    if len(poses) > 1 and (len(poses) - 1) % stride:
        frames = np.concatenate([frames, poses[-1:]])
    fps = fps or max(1, round(1 / (profile.dt * stride)))
    colors = robot_colors(poses.shape[1])
    fig, ax = arena_axes(profile, title, boxes)
    draw_goals(ax, goals, colors)
    trails = [ax.plot([], [], "-", color=c, lw=1)[0] for c in colors]
    robots = _robots(ax, frames[0], profile, colors)
    r = profile.diameter / 2

    def draw(k: int):
        upto = min(len(poses), k * stride + 1)
        for i, ((body, tick), trail) in enumerate(zip(robots, trails)):
            x, y, th = frames[k, i]
            body.center = (x, y)
            tick.set_data([x, x + r * np.cos(th)], [y, y + r * np.sin(th)])
            trail.set_data(poses[:upto, i, 0], poses[:upto, i, 1])
        return [a for pair in robots for a in pair] + trails

    anim = animation.FuncAnimation(fig, draw, frames=len(frames), blit=False)
    path = Path(path)
    anim.save(path, writer=animation.PillowWriter(fps=fps))
    plt.close(fig)
    return path
