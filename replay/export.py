"""`replay csv`: any topic to CSV, one row per message, one column per leaf field.

Nested messages flatten to dotted names (`pose.position.x`); arrays get an index
(`status.0.name`). A message whose arrays are longer than the first one's adds columns, so the
header is the union of every row's fields in first-seen order.

Long logs: a batch of messages with one fixed layout (`replay/cdr_columns.py`) is read as columns, not
decoded one message at a time; the cells are the same Python values rosbags' deserialiser gives, so the
file is the same byte for byte (tested).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from marlstack.replay.bag import Bag, Record


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
    parts = []  # (storage places, log times, field names, one list of cells per field)
    for g in bag.payloads([topic]).get(topic, []):
        if not bag.can_decode(g.msgtype):
            bag.warn_unknown(topic)
            continue
        cols = bag.columns(g, text=True)
        if cols is not None:
            parts.append((g.seq, g.t_ns, list(cols), [c.tolist() for c in cols.values()]))
            continue
        for i in range(len(g.t_ns)):  # no fixed layout: message by message
            msg = bag.decode(Record(topic, g.msgtype, int(g.t_ns[i]), g.rows[i].tobytes()))
            if msg is not None:
                fields = dict(flatten(msg))
                parts.append((g.seq[i:i + 1], g.t_ns[i:i + 1], list(fields), [[v] for v in fields.values()]))
    parts.sort(key=lambda p: int(p[0][0]))  # a part's fields first appear with its first message
    header = {"t_log_s": 0}
    for _, _, names, _ in parts:
        header.update(dict.fromkeys(names, 0))
    names = list(header)
    rows: list[tuple] = []
    for _, t_ns, fields, cells in parts:
        where = dict(zip(fields, cells))
        empty = [""] * len(t_ns)
        rows += zip([f"{t / 1e9:.9f}" for t in t_ns.tolist()], *(where.get(n, empty) for n in names[1:]))
    order = np.argsort(np.concatenate([p[0] for p in parts]), kind="stable") if parts else []
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        writer.writerows(rows[i] for i in order)
    return len(rows)
