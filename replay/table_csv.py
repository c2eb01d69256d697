"""Write a table of numpy columns as CSV at array speed.

Why: a report on a long bag writes millions of numbers; Python's `csv` module (and `numpy.savetxt`)
format them one at a time, about 0.5-1 µs each, which alone took longer than the rest of the report.
Here every cell becomes a fixed-width row of bytes (zero-padded), the table one byte matrix, and the
padding is dropped in one pass. Numbers are written with 6 decimals like "%.6f", except that the
last digit comes from rounding x * 1e6 in floating point, so it may differ by one from "%.6f" (at most
1e-6; mostly for numbers beyond 1e6, whose 6th decimal is near float precision). NaN as `nan`,
infinities as `inf` / `-inf`. A column holding a number of 1e9 or more is formatted by Python.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

DECIMALS = 6
LARGEST = 1e9  # columns holding a number this large are formatted by Python (|x| * 10**6 stays exact below 2**53)
POWERS = 10 ** np.arange(1, 10, dtype=np.int64)  # a whole part below 10**9 has searchsorted(POWERS) + 1 digits
_SIX = None  # the six ASCII digits of every number below 10**6 as 6-byte records, built on first use


def _six_digits(x: np.ndarray) -> np.ndarray:
    """(n, 6) ASCII digits of integers 0 <= x < 10**6, zero-filled: one look-up of a 6-byte record each
    instead of six divisions."""
    global _SIX
    if _SIX is None:
        k = np.arange(1000)
        three = np.stack([k // 100, k // 10 % 10, k % 10], axis=1).astype(np.uint8) + ord("0")
        _SIX = np.concatenate([np.repeat(three, 1000, axis=0), np.tile(three, (1000, 1))], axis=1).view("V6").ravel()
    return _SIX[x].view(np.uint8).reshape(len(x), 6)


def _numbers(x: np.ndarray) -> np.ndarray:
    """(n, width) uint8: each value as text, zero-padded on the left."""
    x = np.asarray(x, dtype=float)
    finite = np.isfinite(x)
    if np.any(np.abs(x[finite]) >= LARGEST):  # x * 10**6 would not be exact: Python formats this column
        return _strings([f"{v:.6f}" for v in x.tolist()])
    scaled = np.round(np.where(finite, np.abs(x), 0.0) * 10 ** DECIMALS).astype(np.int64)
    whole, frac = np.divmod(scaled, 10 ** DECIMALS)
    lengths = np.searchsorted(POWERS, whole, side="right") + 1  # digits of each whole part
    width = int(lengths.max()) if len(x) else 1
    out = np.zeros((len(x), 2 + width + DECIMALS), np.uint8)  # sign, whole part, ".", decimals
    whole_digits = (_six_digits(whole) if width <= 6 else
                    np.concatenate([_six_digits(whole // 10 ** 6), _six_digits(whole % 10 ** 6)], axis=1))
    out[:, 1:1 + width] = whole_digits[:, whole_digits.shape[1] - width:]
    out[:, 1:1 + width] *= np.arange(width, 0, -1) <= lengths[:, None]  # leading zeros become padding
    neg = np.flatnonzero(finite & np.signbit(x))
    out[neg, width - lengths[neg]] = ord("-")  # just before the first digit
    out[:, 1 + width] = ord(".")
    out[:, 2 + width:] = _six_digits(frac)
    for word, where in ((b"nan", np.isnan(x)), (b"inf", x == np.inf), (b"-inf", x == -np.inf)):
        if where.any():
            out[where] = 0
            out[np.ix_(np.flatnonzero(where), np.arange(out.shape[1] - len(word), out.shape[1]))] = \
                np.frombuffer(word, np.uint8)
    return out


def _strings(x: Sequence[str]) -> np.ndarray:
    cells = np.asarray(x, dtype=bytes)
    return cells.view(np.uint8).reshape(len(cells), -1) if cells.itemsize else np.zeros((len(cells), 0), np.uint8)


def write(path: Path, header: list[str], columns: list[np.ndarray | Sequence[str]], rows_per_block: int = 1 << 15) -> None:
    """One row per index: float columns as numbers, string (or object) columns as their text. Written in
    blocks of rows, so the byte matrix stays small whatever the length."""
    n = len(columns[0]) if columns else 0
    text = [np.asarray(col).dtype.kind in "USO" for col in columns]
    with path.open("wb") as f:
        f.write((",".join(header) + "\n").encode("utf-8"))
        for lo in range(0, n, rows_per_block):
            cells = [_strings(col[lo:lo + rows_per_block]) if is_text else _numbers(col[lo:lo + rows_per_block])
                     for col, is_text in zip(columns, text)]
            table = np.zeros((len(cells[0]), sum(c.shape[1] + 1 for c in cells)), np.uint8)
            at = 0
            for k, c in enumerate(cells):
                table[:, at:at + c.shape[1]] = c
                table[:, at + c.shape[1]] = ord("," if k < len(cells) - 1 else "\n")
                at += c.shape[1] + 1
            body = table.ravel()
            f.write(body[body != 0].tobytes())
