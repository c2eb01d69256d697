"""Asynchronous successive halving (ASHA; Li et al., "A System for Massively Parallel Hyperparameter
Tuning", MLSys 2020): stop the sweep's poor points early, without waiting for a whole rung.

Every point trains on the rung budgets `rungs` (env steps per seed, growing by `eta`, the last one the
config's full budget). Whenever a worker is free, the highest rung with a point in the top 1 / eta of
those that finished it, and not promoted yet, sends that point on to the next rung; otherwise a new
point starts at the first rung. A point is scored by the median of its seeds' metric at a rung
(None / NaN counts as the worst). The learning-rate schedule and everything else of a trial is the
full budget's: a stopped point is a full training cut short, and a promoted one continues from its
checkpoint, so the last rung's results equal a plain sweep's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


def rung_budgets(min_steps: int, max_steps: int, eta: int) -> list[int]:
    """min_steps, min_steps * eta, ..., then max_steps (at least eta times the rung before it)."""
    if eta < 2:
        raise ValueError(f"--eta must be at least 2, got {eta}")
    if not 0 < min_steps < max_steps:
        raise ValueError(f"--asha {min_steps}: the first rung must be more than 0 and fewer env steps than "
                         f"total_steps ({max_steps})")
    rungs = [min_steps]
    while rungs[-1] * eta * eta <= max_steps:
        rungs.append(rungs[-1] * eta)
    return rungs + [max_steps]


@dataclass
class Asha:
    """The promotion rule over `points` configurations; the caller runs the jobs it hands out."""
    points: int
    rungs: list[int]
    eta: int = 3
    scores: list[dict[int, float]] = field(default_factory=list)  # rung -> {point: median metric}
    started: set[tuple[int, int]] = field(default_factory=set)    # (point, rung) handed out

    def __post_init__(self) -> None:
        self.scores = self.scores or [{} for _ in self.rungs]

    def report(self, point: int, rung: int, score: float | None) -> None:
        self.started.add((point, rung))
        self.scores[rung][point] = -math.inf if score is None or math.isnan(score) else float(score)

    def next_job(self) -> tuple[int, int] | None:
        """(point, rung) to run next, or None when nothing can start until a running job reports."""
        for k in range(len(self.rungs) - 2, -1, -1):
            done = self.scores[k]
            top = sorted(done, key=lambda p: (-done[p], p))[:len(done) // self.eta]
            for p in top:
                if (p, k + 1) not in self.started:
                    self.started.add((p, k + 1))
                    return p, k + 1
        for p in range(self.points):
            if (p, 0) not in self.started:
                self.started.add((p, 0))
                return p, 0
        return None

    def reached(self, point: int) -> int:
        """The highest rung `point` finished (-1: none yet)."""
        return max((k for k, done in enumerate(self.scores) if point in done), default=-1)
