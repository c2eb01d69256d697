"""ONNX operators in plain numpy, for policies translated by `targets.onnx_numpy`.

Copied unchanged next to a generated forward pass (as `ms_numpy_ops.py`), so it may import
numpy only. Each function follows the ONNX operator's definition (opset 13-20) for the
inputs our exporter writes; `onnx_numpy` refuses a graph with any operator not listed in OPS.
"""
from __future__ import annotations

import numpy as np

DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64, 9: np.bool_,
          10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}


def _axes(axes, rank: int) -> tuple[int, ...]:
    return tuple(int(a) % rank for a in np.asarray(axes).reshape(-1))


def div(a, b):
    """Div: integer division truncates toward zero, as ONNX defines it; a float x / 0 is inf or nan as in
    onnxruntime (the graph masks those lanes itself), without numpy's warning on every call."""
    if np.issubdtype(np.asarray(a).dtype, np.integer):
        return (np.trunc(a / b)).astype(np.asarray(a).dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(a, b)


def gemm(a, b, c=None, alpha=1.0, beta=1.0, trans_a=0, trans_b=0):
    a = a.T if trans_a else a
    b = b.T if trans_b else b
    y = np.matmul(a, b)
    if alpha != 1.0:
        y = y * np.asarray(alpha, y.dtype)
    if c is not None:
        y = y + (c * np.asarray(beta, y.dtype) if beta != 1.0 else c)
    return y


def gather(data, indices, axis=0):
    return np.take(data, np.asarray(indices, np.int64), axis=axis)


def gather_elements(data, indices, axis=0):
    idx = np.asarray(indices, np.int64)
    return np.take_along_axis(data, np.where(idx < 0, idx + data.shape[axis], idx), axis=axis)


def gather_nd(data, indices, batch_dims=0):
    """GatherND: the last axis of `indices` indexes the axes of `data` after its `batch_dims` leading ones."""
    idx = np.asarray(indices, np.int64)
    batch = data.shape[:batch_dims]
    flat_data = data.reshape((-1, *data.shape[batch_dims:]))
    flat_idx = idx.reshape((-1, *idx.shape[batch_dims:]))
    out = []
    for d, i in zip(flat_data, flat_idx):
        lead = i.shape[:-1]
        rows = i.reshape(-1, i.shape[-1])
        picked = np.stack([d[tuple(r)] for r in rows]) if rows.shape[0] else np.zeros((0, *d.shape[i.shape[-1]:]), d.dtype)
        out.append(picked.reshape((*lead, *d.shape[i.shape[-1]:])))
    result = np.stack(out)
    return result.reshape((*batch, *result.shape[1:])) if batch_dims else result[0]


def unsqueeze(x, axes):
    x = np.asarray(x)
    rank = x.ndim + np.asarray(axes).size
    return np.expand_dims(x, _axes(axes, rank))


def squeeze(x, axes=None):
    x = np.asarray(x)
    return np.squeeze(x) if axes is None else np.squeeze(x, _axes(axes, x.ndim))


def reshape(x, shape, allowzero=0):
    shape = [int(s) for s in np.asarray(shape).reshape(-1)]
    if not allowzero:
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return np.reshape(x, shape)


def expand(x, shape):
    x = np.asarray(x)
    target = np.broadcast_shapes(x.shape, tuple(int(s) for s in np.asarray(shape).reshape(-1)))
    return np.broadcast_to(x, target)


def shape(x, start=0, end=None):
    return np.asarray(np.shape(x), np.int64)[start:end]


def cast(x, to):
    return np.asarray(x).astype(DTYPES[to])


def topk(x, k, axis=-1, largest=1, sorted=1):
    """TopK: (values, indices); ties go to the lower index, as onnxruntime does."""
    k = int(np.asarray(k).reshape(-1)[0])
    order = np.argsort(-x if largest else x, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    return np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)


def clip(x, lo=None, hi=None):
    if lo is not None:
        x = np.maximum(x, lo)
    if hi is not None:
        x = np.minimum(x, hi)
    return x


def maximum(*xs):
    out = xs[0]
    for x in xs[1:]:
        out = np.maximum(out, x)
    return out


def minimum(*xs):
    out = xs[0]
    for x in xs[1:]:
        out = np.minimum(out, x)
    return out


def arg(fn, x, axis=0, keepdims=1, select_last_index=0):
    """ArgMin / ArgMax (`fn` np.argmin or np.argmax); ties to the first index unless select_last_index."""
    if select_last_index:
        flipped = np.flip(x, axis)
        out = x.shape[axis] - 1 - fn(flipped, axis=axis)
    else:
        out = fn(x, axis=axis)
    out = np.asarray(out, np.int64)
    return np.expand_dims(out, axis) if keepdims else out


def reduce(fn, x, axes=None, keepdims=1, noop_with_empty_axes=0):
    """ReduceSum/Min/Max/Mean/Prod with axes from the input (opset 18) or the attribute."""
    if axes is None or np.asarray(axes).size == 0:
        if noop_with_empty_axes:
            return x
        axes = tuple(range(np.ndim(x)))
    return fn(x, axis=_axes(axes, np.ndim(x)), keepdims=bool(keepdims))


def slice_(x, starts, ends, axes=None, steps=None):
    starts, ends = np.asarray(starts).reshape(-1), np.asarray(ends).reshape(-1)
    axes = range(len(starts)) if axes is None else _axes(axes, x.ndim)
    steps = np.ones(len(starts), np.int64) if steps is None else np.asarray(steps).reshape(-1)
    index = [slice(None)] * x.ndim
    for a, s, e, st in zip(axes, starts, ends, steps):
        big = np.iinfo(np.int64).max // 2
        index[a] = slice(int(np.clip(s, -big, big)), int(np.clip(e, -big, big)), int(st))
    return x[tuple(index)]


def constant_of_shape(shape, value=None):
    value = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    return np.full(tuple(int(s) for s in np.asarray(shape).reshape(-1)), value[0], value.dtype)


def range_(start, limit, delta):
    return np.arange(start, limit, delta, dtype=np.asarray(start).dtype)


def relu(x):
    return np.maximum(x, np.asarray(0, x.dtype))


def sigmoid(x):
    return np.asarray(1, x.dtype) / (np.asarray(1, x.dtype) + np.exp(-x))
