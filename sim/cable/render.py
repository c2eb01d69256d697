"""Pictures of a cable-load rollout: a 3-D trajectory PNG and a GIF of MAVs, cables and load.

`python -m marlstack.sim.cable.render -o out/cable` flies the scripted formation controller on the `move`
task and writes `trajectory.png` and `trajectory.gif`.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import animation  # noqa: E402

MAX_FRAMES = 60  # longer rollouts are subsampled so GIFs stay small and quick to draw


def record(env: Any, state: Any, policy: Callable[[Any, Any], Any], steps: int) -> dict[str, np.ndarray]:
    """Roll `policy(env, state) -> (N, 5)` for `steps` policy steps (no auto-reset) and return numpy arrays:
    pos (T, N, 3), load_pos (T, 3), top/bottom cable ends (T, N, 3), load_corners (T, N, 3), goal_pos (3,)."""
    import jax

    from marlstack.sim.cable.dynamics import cable_vectors

    def body(s, _):
        s = env.step_physics(s, policy(env, s))
        top, bottom = cable_vectors(s.bodies, env.profile)
        return s, (s.bodies.pos, s.bodies.load_pos, top, bottom)

    _, (pos, load_pos, top, bottom) = jax.jit(lambda s: jax.lax.scan(body, s, None, length=steps))(state)
    return {"pos": np.asarray(pos), "load_pos": np.asarray(load_pos), "top": np.asarray(top),
            "bottom": np.asarray(bottom), "goal_pos": np.asarray(state.goal_pos)}


def _axes(traj: dict[str, np.ndarray], title: str):
    fig = plt.figure(figsize=(7, 6), dpi=90)
    ax = fig.add_subplot(projection="3d")
    pts = np.concatenate([traj["pos"].reshape(-1, 3), traj["bottom"].reshape(-1, 3), traj["goal_pos"][None]])
    lo, hi = pts.min(0), pts.max(0)
    mid, half = (lo + hi) / 2, max((hi - lo).max() / 2, 0.5) + 0.1
    ax.set_xlim(mid[0] - half, mid[0] + half)
    ax.set_ylim(mid[1] - half, mid[1] + half)
    ax.set_zlim(max(0.0, mid[2] - half), mid[2] + half)
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_zlabel("z [m]")
    ax.set_title(title)
    return fig, ax


def _draw_team(ax, traj: dict[str, np.ndarray], t: int, colors) -> list:
    """MAVs (dots), cables (lines) and the load (the polygon of its attachment points)."""
    artists = []
    for i, c in enumerate(colors):
        artists += ax.plot(*traj["pos"][t, i][:, None], "o", color=c, ms=8)
        artists += ax.plot(*np.stack([traj["top"][t, i], traj["bottom"][t, i]], 1), "-", color="k", lw=1)
    ring = np.concatenate([traj["bottom"][t], traj["bottom"][t, :1]])
    artists += ax.plot(*ring.T, "-", color="saddlebrown", lw=3)
    return artists


def plot_trajectory(traj: dict[str, np.ndarray], path: str | Path, title: str = "cable-suspended load") -> Path:
    """PNG: MAV and load paths, the final team, and the goal (cross)."""
    colors = plt.get_cmap("tab10")(np.arange(traj["pos"].shape[1]))
    fig, ax = _axes(traj, title)
    for i, c in enumerate(colors):
        ax.plot(*traj["pos"][:, i].T, "-", color=c, lw=1)
    ax.plot(*traj["load_pos"].T, "-", color="saddlebrown", lw=2, label="load")
    ax.plot(*traj["goal_pos"][:, None], "x", color="r", ms=10, mew=2, label="goal")
    _draw_team(ax, traj, -1, colors)
    ax.legend(loc="upper left")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def animate(traj: dict[str, np.ndarray], path: str | Path, fps: int = 10, title: str = "cable-suspended load") -> Path:
    """GIF of the team moving (at most MAX_FRAMES frames)."""
    colors = plt.get_cmap("tab10")(np.arange(traj["pos"].shape[1]))
    frames = np.unique(np.linspace(0, len(traj["pos"]) - 1, min(MAX_FRAMES, len(traj["pos"]))).astype(int))
    fig, ax = _axes(traj, title)
    ax.plot(*traj["goal_pos"][:, None], "x", color="r", ms=10, mew=2)
    drawn: list = []

    def update(t):
        for a in drawn:
            a.remove()
        drawn[:] = _draw_team(ax, traj, t, colors)
        return drawn

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    animation.FuncAnimation(fig, update, frames=frames, blit=False).save(path, writer=animation.PillowWriter(fps=fps))
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m marlstack.sim.cable.render", description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", default="out/cable", help="output folder")
    parser.add_argument("--profile", default="mav_corl25")
    parser.add_argument("--num-agents", type=int, default=3)
    parser.add_argument("--task", default="move", choices=["hover", "move", "random"])
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args(argv)
    import jax

    from marlstack.hardware import ProfileError
    from marlstack.sim.cable.env import CableEnv
    from marlstack.sim.cable.scripted import formation_actions
    try:
        env = CableEnv(args.profile, args.num_agents, task=args.task)
    except (ProfileError, ValueError) as exc:
        print(f"error: {exc}")
        return 1
    _, state = env.reset(jax.random.PRNGKey(0))
    traj = record(env, state, formation_actions, int(args.seconds / env.dt))
    title = f"{env.profile.name}: {args.num_agents} MAVs, {args.task} (scripted formation controller)"
    print(plot_trajectory(traj, Path(args.out) / "trajectory.png", title))
    print(animate(traj, Path(args.out) / "trajectory.gif", title=title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
