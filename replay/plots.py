"""Pictures of a logged run: trajectories in the arena, distances, interventions, an animation.

matplotlib with the Agg backend (no display on a lab laptop over ssh or in CI); the GIF is
assembled with pillow from frames drawn on one reused figure.
"""
from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import numpy as np

GIF_FRAMES = 60  # enough to follow a run; more only makes the file bigger


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig: Any, path: Path) -> None:
    """Every static figure is written the same way, and closed so long replays do not leak figures.

    A closed figure still sits in reference cycles with its artists (and their copies of the
    data) until the cycle collector runs; collecting here keeps a report's peak memory near one
    figure's worth instead of growing with every figure.
    """
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _plt().close(fig)
    gc.collect()


def _arena(ax: Any, profile: Any, poses: np.ndarray) -> None:
    """The arena rectangle, with limits that also show robots that left it."""
    a = profile.arena
    ax.add_patch(_plt().Rectangle((a.x_min, a.y_min), a.x_max - a.x_min, a.y_max - a.y_min,
                                  fill=False, lw=1.5, color="k"))
    pad = 0.1 * max(a.x_max - a.x_min, a.y_max - a.y_min)
    x, y = poses[..., 0][np.isfinite(poses[..., 0])], poses[..., 1][np.isfinite(poses[..., 1])]
    ax.set_xlim(min(a.x_min, *x) - pad, max(a.x_max, *x) + pad)
    ax.set_ylim(min(a.y_min, *y) - pad, max(a.y_max, *y) + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")


def trajectories(series: dict, robots: list[str], profile: Any, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    _arena(ax, profile, series["poses"])
    for i, r in enumerate(robots):
        p, g = series["poses"][:, i], series["goals"][:, i]
        line, = ax.plot(p[:, 0], p[:, 1], lw=1.5, label=r)
        ax.plot(p[0, 0], p[0, 1], "o", color=line.get_color())
        ax.plot(p[-1, 0], p[-1, 1], "s", color=line.get_color())
        if np.isfinite(g[-1]).all():
            ax.plot(g[-1, 0], g[-1, 1], "x", ms=10, mew=2, color=line.get_color())
    ax.set_title("trajectories (o start, s end, x goal)")
    ax.legend(loc="upper right", fontsize=8)
    _save(fig, path)


def distances(series: dict, summary: dict, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(series["t"], series["min_distance"], lw=1.8, color="k", label="min inter-robot distance")
    ax.axhline(summary["safety_radius"], ls="--", color="tab:orange", label="safety radius (barrier)")
    ax.axhline(summary["collision_distance"], ls=":", color="tab:red", label="collision distance (profile)")
    for c in summary["collisions"]:
        ax.axvspan(c["start_s"], max(c["end_s"], c["start_s"] + 1e-3), color="tab:red", alpha=0.2)
    ax.set_xlabel("time [s]")
    ax.set_ylabel("distance [m]")
    ax.legend(fontsize=8)
    _save(fig, path)


def interventions(series: dict, robots: list[str], tol: float, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    rows = series["interventions"]
    for r in robots:
        t = np.array([row[0] for row in rows if row[1] == r])
        size = np.array([row[6] for row in rows if row[1] == r])
        ax.plot(t, size, lw=1.2, label=r)
    ax.axhline(tol, ls=":", color="gray", label="intervention threshold")
    ax.set_xlabel("time [s]")
    ax.set_ylabel("max(|dv|, |domega|) vs saturated nominal")
    ax.set_title("safety-filter interventions")
    ax.legend(fontsize=8)
    _save(fig, path)


def animation(series: dict, robots: list[str], profile: Any, path: Path) -> None:
    from PIL import Image
    plt = _plt()
    poses, t = series["poses"], series["t"]
    frames = np.unique(np.linspace(0, len(t) - 1, min(GIF_FRAMES, len(t))).astype(int))
    fig, ax = plt.subplots(figsize=(6, 4))
    images = []
    for k in frames:
        ax.clear()
        _arena(ax, profile, poses)
        for i, r in enumerate(robots):
            line, = ax.plot(poses[:k + 1, i, 0], poses[:k + 1, i, 1], lw=1)
            x, y, th = poses[k, i]
            ax.add_patch(plt.Circle((x, y), profile.diameter / 2, color=line.get_color(), alpha=0.6))
            ax.plot([x, x + profile.diameter * np.cos(th)], [y, y + profile.diameter * np.sin(th)], color="k", lw=1)
        ax.set_title(f"t = {t[k]:.2f} s")
        fig.canvas.draw()
        images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3]))
    plt.close(fig)
    duration_ms = max(20, int(1000 * (t[-1] - t[0]) / max(len(frames) - 1, 1)))
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)


def commands(result: dict, path: Path) -> None:
    """`replay eval`: logged nominal command vs what the evaluated policy commands, per robot."""
    plt = _plt()
    robots = list(result["series"])
    fig, axes = plt.subplots(len(robots), 2, figsize=(10, 2.2 * len(robots)), squeeze=False)
    for i, r in enumerate(robots):
        s = result["series"][r]
        for j, (name, unit) in enumerate((("v", "m/s"), ("omega", "rad/s"))):
            ax = axes[i, j]
            ax.plot(s["t"], s["logged"][:, j], lw=1.5, label="logged cmd_vel_nominal")
            ax.plot(s["t"], s["policy"][:, j], lw=1.0, ls="--", label="policy on logged inputs")
            ax.set_ylabel(f"{r}\n{name} [{unit}]", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("time [s]")
    _save(fig, path)
