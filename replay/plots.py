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
TRAIL_POINTS = 2000  # samples a GIF trail is drawn through: more than a 600-pixel frame can show
PLOT_POINTS = 20000  # samples a still picture's path is drawn through (long logs): far beyond 800 pixels
SERIES_POINTS = 4000  # samples of a time series' envelope: a bucket's min and max for every 0.4 px of 800


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


def _spread(n: int, k: int) -> np.ndarray:
    """At most k indexes spread evenly over 0 .. n-1, first and last included."""
    return np.unique(np.linspace(0, n - 1, min(k, n)).astype(int)) if n else np.zeros(0, int)


def _envelope(t: np.ndarray, y: np.ndarray, k: int = SERIES_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """A long time series thinned for a picture: per bucket of samples its smallest and largest value, in
    time order, so no dip or spike is lost (NaN samples, gaps in the line, are left out)."""
    n = len(t)
    if n <= k:
        return t, y
    size = -(-n // (k // 2))
    pad = size * -(-n // size) - n
    low = np.concatenate([np.where(np.isnan(y), np.inf, y), np.full(pad, np.inf)]).reshape(-1, size)
    high = np.concatenate([np.where(np.isnan(y), -np.inf, y), np.full(pad, -np.inf)]).reshape(-1, size)
    start = np.arange(len(low)) * size
    keep = np.unique(np.concatenate([start + low.argmin(1), start + high.argmax(1)]))
    keep = keep[keep < n]
    keep = keep[np.isfinite(y[keep])]
    return t[keep], y[keep]


def _arena(ax: Any, profile: Any, poses: np.ndarray) -> None:
    """The arena rectangle, with limits that also show robots that left it."""
    a = profile.arena
    ax.add_patch(_plt().Rectangle((a.x_min, a.y_min), a.x_max - a.x_min, a.y_max - a.y_min,
                                  fill=False, lw=1.5, color="k"))
    pad = 0.1 * max(a.x_max - a.x_min, a.y_max - a.y_min)
    x, y = poses[..., 0][np.isfinite(poses[..., 0])], poses[..., 1][np.isfinite(poses[..., 1])]
    ax.set_xlim(min(a.x_min, x.min(initial=a.x_min)) - pad, max(a.x_max, x.max(initial=a.x_max)) + pad)
    ax.set_ylim(min(a.y_min, y.min(initial=a.y_min)) - pad, max(a.y_max, y.max(initial=a.y_max)) + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")


def trajectories(series: dict, robots: list[str], profile: Any, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    _arena(ax, profile, series["poses"])
    for i, r in enumerate(robots):
        p, g = series["poses"][:, i], series["final_goals"][i]
        drawn = p[_spread(len(p), PLOT_POINTS)]
        line, = ax.plot(drawn[:, 0], drawn[:, 1], lw=1.5, label=r)
        ax.plot(p[0, 0], p[0, 1], "o", color=line.get_color())
        ax.plot(p[-1, 0], p[-1, 1], "s", color=line.get_color())
        if np.isfinite(g).all():
            ax.plot(g[0], g[1], "x", ms=10, mew=2, color=line.get_color())
    ax.set_title("trajectories (o start, s end, x goal)")
    ax.legend(loc="upper right", fontsize=8)
    _save(fig, path)


def distances(series: dict, summary: dict, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(*_envelope(series["t"], series["min_distance"]), lw=1.8, color="k", label="min inter-robot distance")
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
    cols = series["interventions"]
    for r in robots:
        mine = cols["robot"] == r
        ax.plot(*_envelope(cols["t_s"][mine], cols["size"][mine]), lw=1.2, label=r)
    ax.axhline(tol, ls=":", color="gray", label="intervention threshold")
    ax.set_xlabel("time [s]")
    ax.set_ylabel("max(|dv|, |domega|) vs saturated nominal")
    ax.set_title("safety-filter interventions")
    ax.legend(fontsize=8)
    _save(fig, path)


def animation(series: dict, robots: list[str], profile: Any, path: Path) -> None:
    """The run as a GIF: the arena drawn once, then per frame each robot's disc, heading and trail
    (the trail through at most TRAIL_POINTS samples of the whole run: a long log draws as fast as a short one)."""
    from PIL import Image
    plt = _plt()
    poses, t = series["poses"], series["t"]
    frames = _spread(len(t), GIF_FRAMES)
    thin = _spread(len(t), TRAIL_POINTS)
    fig, ax = plt.subplots(figsize=(6, 4))
    _arena(ax, profile, poses)
    artists = []
    for _ in robots:
        line, = ax.plot([], [], lw=1, animated=True)
        disc = ax.add_patch(plt.Circle((0.0, 0.0), profile.diameter / 2, color=line.get_color(), alpha=0.6,
                                       animated=True))
        heading, = ax.plot([], [], color="k", lw=1, animated=True)
        artists.append((line, disc, heading))
    title = ax.set_title(" ", animated=True)
    fig.canvas.draw()  # the arena, axes and ticks once; each frame draws only what moves on top of them
    background = fig.canvas.copy_from_bbox(fig.bbox)
    images = []
    for k in frames:
        fig.canvas.restore_region(background)
        trail = np.append(thin[thin < k], k)
        for i, (line, disc, heading) in enumerate(artists):
            line.set_data(poses[trail, i, 0], poses[trail, i, 1])
            x, y, th = poses[k, i]
            disc.center = (x, y)
            heading.set_data([x, x + profile.diameter * np.cos(th)], [y, y + profile.diameter * np.sin(th)])
            for a in (line, disc, heading):
                ax.draw_artist(a)
        title.set_text(f"t = {t[k]:.2f} s")
        ax.draw_artist(title)
        images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])
                      .quantize(method=Image.Quantize.FASTOCTREE))
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


def team_3d(s: dict, mavs: list[str], path: Path, snapshots: int) -> None:
    """A MAV team's bag: MAV and load paths in 3-D, the cables and the load at a few moments, the goals."""
    plt = _plt()
    fig = plt.figure(figsize=(7, 6))
    ax = fig.add_subplot(projection="3d")
    drawn = _spread(len(s["t"]), PLOT_POINTS)
    ax.plot(*s["load"][drawn, 0:3].T, color="k", lw=2, label="load")
    for i, m in enumerate(mavs):
        ax.plot(*s["mav"][drawn, i, 0:3].T, lw=1, label=m)
    for k in np.unique(np.linspace(0, len(s["t"]) - 1, snapshots).astype(int)):
        for i in range(len(mavs)):
            ax.plot(*np.stack([s["hooks"][k, i], s["attach"][k, i]]).T, color="0.5", lw=0.8)
        ring = np.vstack([s["attach"][k], s["attach"][k][:1]])
        ax.plot(*ring.T, color="k", lw=0.8)
    goals = np.unique(s["goals"][:, 0:3], axis=0)
    ax.scatter(*goals.T, marker="x", s=60, color="r", label="load goal")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_zlabel("z [m]")
    ax.set_title("MAVs, cables (grey, at a few moments) and load")
    ax.legend(loc="upper right", fontsize=7)
    _save(fig, path)


def load_error(s: dict, task: Any, path: Path) -> None:
    """Load position and orientation error against the goal in force, with the success tolerances."""
    plt = _plt()
    fig, axes = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    for ax, err, tol, label in ((axes[0], s["pos_err"], task.success_position, "position error [m]"),
                                (axes[1], s["rot_err"], task.success_orientation, "orientation error [deg]")):
        ax.plot(*_envelope(s["t"], err), lw=1)
        ax.axhline(tol, ls="--", color="g", lw=1, label="success tolerance")
        ax.vlines(s["t"][1:][np.diff(s["goal_idx"]) != 0], 0, 1, transform=ax.get_xaxis_transform(), color="0.6",
                  lw=0.8)  # one collection however many goals
        ax.set_ylabel(label)
    axes[0].legend(loc="upper right", fontsize=7)
    axes[1].set_xlabel("time [s] (load odometry stamps; grey: a new goal)")
    _save(fig, path)


def cables(s: dict, mavs: list[str], share: float, slack: np.ndarray, path: Path) -> None:
    """Estimated cable tensions (load force balance) with slack shaded, and each cable's stretch."""
    plt = _plt()
    fig, axes = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    t = s["t"]
    for i, m in enumerate(mavs):
        line, = axes[0].plot(*_envelope(t, s["tension"][:, i]), lw=1, label=m)
        axes[0].fill_between(t, 0, 1, where=slack[:, i], transform=axes[0].get_xaxis_transform(),
                             color=line.get_color(), alpha=0.15, lw=0)
        axes[1].plot(*_envelope(t, 1e3 * s["stretch"][:, i]), lw=1, label=m)
    axes[0].axhline(share, ls="--", color="k", lw=1, label="mean share m_L g / N")
    axes[0].set_ylim(-share, 4 * share)  # off-scale spikes: the force balance on the ground, or a jolt
    axes[0].set_ylabel("tension, estimated [N]")
    axes[0].legend(loc="upper right", fontsize=7)
    axes[1].axhline(0, color="k", lw=0.8)
    axes[1].set_ylabel("stretch: length - rest [mm]")
    axes[1].set_xlabel("time [s] (shaded: slack)")
    _save(fig, path)


def tracking(s: dict, mavs: list[str], path: Path) -> None:
    """Each MAV's set-point acceleration against the achieved one, per world axis."""
    plt = _plt()
    fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    for j, axis in enumerate("xyz"):
        for i, m in enumerate(mavs):
            line, = axes[j].plot(*_envelope(s["t"], s["acc_mav"][:, i, j]), lw=1, label=f"{m} achieved")
            axes[j].plot(*_envelope(s["t"], s["cmd"][:, i, j]), lw=1, ls="--", color=line.get_color(),
                         label=f"{m} set-point")
        axes[j].set_ylabel(f"a_{axis} [m/s²]")
    axes[0].legend(loc="upper right", fontsize=6, ncol=2)
    axes[-1].set_xlabel("time [s]")
    _save(fig, path)


def team_commands(result: dict, path: Path) -> None:
    """`replay eval` on a MAV team: each MAV's logged set-point acceleration, the node re-run (policy +
    safety stage) and the policy's raw output, per world axis."""
    plt = _plt()
    mavs = [m for m, s in result["series"].items() if s["logged"] is not None]
    fig, axes = plt.subplots(len(mavs), 3, figsize=(12, 2.2 * len(mavs)), squeeze=False, sharex=True)
    for i, m in enumerate(mavs):
        s = result["series"][m]
        for j, axis in enumerate("xyz"):
            ax = axes[i, j]
            ax.plot(s["t"], s["logged"][:, j], lw=1.5, label="logged set-point")
            ax.plot(s["t"], s["policy"][:, j], lw=1.0, ls="--", label="re-run: policy + safety stage")
            ax.plot(s["t"], s["raw"][:, j], lw=0.8, ls=":", label="policy alone")
            ax.set_ylabel(f"{m}\na_{axis} [m/s²]", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("time [s]")
    _save(fig, path)
