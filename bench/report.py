"""The one output format of every `marlstack bench <name>`.

`--json` prints `{"bench", "machine", "rows": [{<parameters>, metric, unit, ours, baseline,
baseline_name, ratio}]}`; `ratio > 1` always means we are better, whatever the metric's direction.
"""
from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Row:
    params: dict[str, Any]
    metric: str
    unit: str
    ours: float
    baseline: float | None
    baseline_name: str
    higher_is_better: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.ours or not self.baseline:
            return None
        return self.ours / self.baseline if self.higher_is_better else self.baseline / self.ours

    def as_dict(self) -> dict[str, Any]:
        return {**self.params, "metric": self.metric, "unit": self.unit, "ours": self.ours,
                "baseline": self.baseline, "baseline_name": self.baseline_name,
                "ratio": self.ratio, **self.extra}


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()}
    if "jax" in sys.modules:
        import jax
        info["jax"] = jax.__version__
        info["jax_backend"] = jax.default_backend()
    return info


def emit(bench: str, rows: list[Row], as_json: bool, out: Any = None) -> dict[str, Any]:
    """Print the rows (to `out`, default the current `sys.stdout`, looked up at call time) and return them."""
    out = sys.stdout if out is None else out
    doc = {"bench": bench, "machine": machine(), "rows": [r.as_dict() for r in rows]}
    if as_json:
        print(json.dumps(doc, indent=2), file=out)
    else:
        print(format_table(bench, rows), file=out)
    return doc


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}" if abs(x) < 1e5 else f"{x:,.0f}"
    return "-" if x is None else str(x)


def format_table(bench: str, rows: list[Row]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r.params))
    extra = list(dict.fromkeys(k for r in rows for k in r.extra))
    head = [*keys, "metric", "unit", "ours", "baseline", "baseline_name", "ratio", *extra]
    body = [[_fmt(r.params.get(k)) for k in keys]
            + [r.metric, r.unit, _fmt(r.ours), _fmt(r.baseline), r.baseline_name, _fmt(r.ratio)]
            + [_fmt(r.extra.get(k)) for k in extra] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([f"== marlstack bench {bench} ==", line(head), line(["-" * w for w in widths]),
                      *map(line, body)])
