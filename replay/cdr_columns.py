"""Many CDR messages of one type at once: numeric fields as numpy columns, without a Python object each.

Why: `replay report` on a long bag spends most of its time turning a million poses and commands into
objects one by one. Messages of a fixed layout (numbers, nested messages, fixed arrays, and strings and
sequences of one length across the batch: PoseStamped, Twist, Odometry, a MAV's one-point
MultiDOFJointTrajectory set-point...) have every field at the same byte offset in every payload, so each
field is one strided read. The offsets follow the CDR rules rosbags and the ROS 2 middlewares use
(little-endian encapsulation, each primitive aligned to its size from the end of the 4-byte encapsulation
header; a sequence is its uint32 length, then its elements). Anything else (big-endian data, strings or
sequences whose lengths differ within the batch, wide strings) returns None and the caller decodes message
by message.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from rosbags.interfaces import Nodetype

PRIMITIVES = {"bool": "?", "byte": "u1", "char": "u1", "int8": "i1", "uint8": "u1", "int16": "<i2",
              "uint16": "<u2", "int32": "<i4", "uint32": "<u4", "int64": "<i8", "uint64": "<u8",
              "float32": "<f4", "float64": "<f8"}
CDR_LE = (0, 1)  # encapsulation kind of little-endian plain CDR
HEADER = 4


class _Irregular(Exception):
    """The batch does not have one fixed layout."""


def columns(fielddefs: dict[str, Any], msgtype: str, rows: np.ndarray,
            text: bool = False) -> dict[str, np.ndarray] | None:
    """{dotted field name: column} of every numeric leaf of `msgtype` in `rows` ((n, length) uint8, one
    CDR payload per row, all of one length), in field order, or None when the batch has no fixed layout.
    Each column is a view into `rows` (a message's fields lie side by side: copy the ones you keep).
    Names are those of `replay csv` (`points.0.transforms.0.rotation.x`); with `text`, string leaves
    too, as columns of str."""
    n, length = rows.shape
    if n == 0 or length < HEADER or np.any(rows[:, :2] != CDR_LE):
        return None
    out: dict[str, np.ndarray] = {}
    pos = 0  # offset after the encapsulation header

    def read(dtype: str) -> np.ndarray:
        nonlocal pos
        width = np.dtype(dtype).itemsize
        pos += -pos % width
        if HEADER + pos + width > length:
            raise _Irregular
        col = rows[:, HEADER + pos:HEADER + pos + width].view(dtype)[:, 0]  # a strided view: no copy
        pos += width
        return col

    def count() -> int:
        """A string's or sequence's uint32 length, which must be one across the batch."""
        size = read("<u4")
        if np.any(size != size[0]):
            raise _Irregular
        return int(size[0])

    def leaf(node: tuple, key: str) -> None:
        nonlocal pos
        kind, payload = node
        if kind == Nodetype.NAME:
            for name, sub in fielddefs[payload][1]:
                leaf(sub, f"{key}.{name}" if key else name)
        elif kind == Nodetype.BASE and payload[0] == "string":
            size = count()  # with its terminating NUL
            if size < 1 or HEADER + pos + size > length:
                raise _Irregular
            if text:
                chars = rows[:, HEADER + pos:HEADER + pos + size - 1]
                out[key] = np.array([bytes(c).decode("utf-8", "replace") for c in chars], dtype=object)
            pos += size
        elif kind == Nodetype.BASE and payload[0] in PRIMITIVES:
            out[key] = read(PRIMITIVES[payload[0]])
        elif kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            sub, size = payload[0], (payload[1] if kind == Nodetype.ARRAY else count())
            for i in range(size):
                leaf(sub, f"{key}.{i}")
        else:  # wide strings
            raise _Irregular

    try:
        leaf((Nodetype.NAME, msgtype), "")
    except _Irregular:
        return None
    # CDR may pad the end to a multiple of 4; more left over means the definition does not fit the data
    return out if 0 <= length - HEADER - pos < 4 else None
