"""`replay csv`: any topic to CSV, one row per message, one column per leaf field.

Nested messages flatten to dotted names (`pose.position.x`); arrays get an index
(`status.0.name`). A message whose arrays are longer than the first one's adds columns, so the
header is the union of every row's fields in first-seen order.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from marlstack.replay.bag import Bag


def flatten(msg: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted field name, scalar) pairs of a decoded message, depth first in field order."""
    fields = getattr(msg, "__dataclass_fields__", None)
    if fields is not None:
        for name in fields:
            if name != "__msgtype__" and not name.isupper():  # skip type tag and constants
                yield from flatten(getattr(msg, name), f"{prefix}{name}.")
    elif isinstance(msg, np.ndarray):
        for i, v in enumerate(msg.tolist()):
            yield from flatten(v, f"{prefix}{i}.")
    elif isinstance(msg, (list, tuple)):
        for i, v in enumerate(msg):
            yield from flatten(v, f"{prefix}{i}.")
    elif isinstance(msg, bytes):
        yield prefix.rstrip("."), msg.hex()
    else:
        yield prefix.rstrip("."), msg


def topic_to_csv(bag: Bag, topic: str, out: Path) -> int:
    """Write the topic's messages; returns the row count. KeyError when the topic is absent."""
    if not bag.types:
        for _ in bag.records():
            pass
    if topic not in bag.types:
        raise KeyError(topic)
    rows, header = [], {"t_log_s": None}
    for rec in bag.records([topic]):
        msg = bag.decode(rec)
        if msg is None:
            continue
        row = {"t_log_s": f"{rec.t_ns / 1e9:.9f}", **dict(flatten(msg))}
        header.update(dict.fromkeys(row))
        rows.append(row)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(header))
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)
