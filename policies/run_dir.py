"""What a training run leaves on disk besides the checkpoint: config.yaml, metrics.csv, curves.

metrics.csv has one row per PPO update and seed; empty cells mean "no episode finished
during that update". The learning curve is drawn from the CSV alone. With `tensorboard: true`
the same rows also go to TensorBoard event files (one run per seed, x axis = env steps).
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import yaml

from marlstack.policies.config import ConfigError, TrainConfig

CONFIG_FILE, METRICS_FILE, CURVE_FILE, EVAL_FILE = "config.yaml", "metrics.csv", "learning_curve.png", "eval.json"
TENSORBOARD_DIR = "tensorboard"
METRIC_COLUMNS = ("return", "success_rate", "collisions", "boundary_exits", "episode_length", "episodes",
                  "loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac",
                  "barrier_rate", "barrier_change")  # barrier_*: policies.ppo.barrier_metrics (empty: no barrier)
COLUMNS = ("update", "env_steps", "seed", *METRIC_COLUMNS, "env_steps_per_s", "wall_s")


def write_config(out: Path, cfg: TrainConfig) -> None:
    (out / CONFIG_FILE).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def start_metrics(out: Path, keep_until_update: int | None = None) -> None:
    """A fresh metrics.csv, or (resume) the existing one cut back to the checkpoint's update."""
    path = out / METRICS_FILE
    rows = [r for r in read_metrics(out) if int(r["update"]) <= keep_until_update] if keep_until_update else []
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        writer.writerows([[_cell(r[c]) for c in COLUMNS] for r in rows])


def append_metrics(out: Path, rows: Iterable[dict[str, Any]]) -> None:
    with (out / METRICS_FILE).open("a", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([[_cell(r[c]) for c in COLUMNS] for r in rows])


class TensorBoard:
    """metrics.csv's rows as TensorBoard scalars (`tensorboard --logdir OUT/tensorboard`; W&B reads the same
    files with `wandb sync --sync-tensorboard`): one run per seed so the seeds overlay, step = env steps."""

    def __init__(self, out: Path, cfg: TrainConfig):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ConfigError("tensorboard: true needs tensorboardX: pip install marlstack[train]") from None
        self.writers = {s: SummaryWriter(str(out / TENSORBOARD_DIR / f"seed-{s}"))
                        for s in range(cfg.seed, cfg.seed + cfg.num_seeds)}

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        for r in rows:
            writer = self.writers[r["seed"]]
            for key in (*METRIC_COLUMNS, "env_steps_per_s"):
                if math.isfinite(r[key]):
                    writer.add_scalar(f"train/{key}", r[key], global_step=r["env_steps"])

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def read_metrics(out: Path) -> list[dict[str, Any]]:
    path = out / METRICS_FILE
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        # columns a metrics file of an older version lacks read as empty
        return [{**dict.fromkeys(COLUMNS, math.nan),
                 **{k: (float(v) if v != "" else math.nan) if k not in ("update", "seed", "env_steps") else int(v)
                    for k, v in row.items()}} for row in csv.DictReader(fh)]


def nanmean(values: Iterable[float], empty: float = math.nan) -> float:
    """Mean of the finite values (`empty` when there are none), without numpy's empty-slice warning."""
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else empty


def last_tenth(rows: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Seed `seed`'s metrics rows over the last tenth of its updates (at least one): what a run's
    training numbers are summarised over, once the early updates no longer count."""
    mine = [r for r in rows if r["seed"] == seed]
    return mine[-max(1, len(mine) // 10):]


def best_seed(rows: list[dict[str, Any]], first_seed: int, num_seeds: int) -> int:
    """Index of the seed with the best success rate (then return) over the last tenth of its updates."""
    if num_seeds == 1 or not rows:
        return 0
    scores = []
    for s in range(num_seeds):
        tail = last_tenth(rows, first_seed + s)
        scores.append((nanmean([r["success_rate"] for r in tail], -1.0), nanmean([r["return"] for r in tail], -np.inf)))
    return int(max(range(num_seeds), key=lambda s: scores[s]))


def plot_curves(out: Path, title: str) -> Path | None:
    """Return, success rate and collisions against env steps, one line per seed."""
    rows = read_metrics(out)
    if not rows:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("return", "mean episode return"), ("success_rate", "success rate"), ("collisions", "collisions / episode")]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), dpi=100)
    for s in sorted({r["seed"] for r in rows}):
        mine = [r for r in rows if r["seed"] == s]
        x = np.array([r["env_steps"] for r in mine], float)
        for ax, (key, label) in zip(axes, panels):
            y = np.array([r[key] for r in mine], float)
            ok = ~np.isnan(y)
            ax.plot(x[ok], y[ok], lw=1.2, label=f"seed {s}")
            ax.set_xlabel("env steps (per seed)")
            ax.set_title(label)
            ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = out / CURVE_FILE
    fig.savefig(path)
    plt.close(fig)
    return path
