"""Translate an exported policy (`policy.onnx`) into numpy: generated source + weights (.npz).

Why: some targets (the Robotarium's servers) have numpy but neither onnxruntime nor JAX. The
translation is mechanical, one numpy statement per ONNX node in the graph's (topological) order,
so the forward pass is the artifact's own `observe()` + actor + scaling, not a re-implementation;
`targets.numpy_ops` holds the operator definitions the generated code calls. Every initializer
and constant goes into the .npz; the generated module loads it from beside itself.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

OPS_MODULE = "ms_numpy_ops"  # the name targets/numpy_ops.py gets beside the generated module


class TranslationError(ValueError):
    """The graph uses something the numpy translation does not cover (named in the message)."""


def _binary(fn: str) -> Callable[..., str]:
    return lambda i, a: f"{fn}({i[0]}, {i[1]})"


def _unary(fn: str) -> Callable[..., str]:
    return lambda i, a: f"{fn}({i[0]})"


def _optional(inputs: list[str | None]) -> str:
    return ", ".join("None" if x is None else x for x in inputs)


def _reduce(fn: str) -> Callable[..., str]:
    def emit(i, a):
        axes = i[1] if len(i) > 1 and i[1] is not None else repr(a.get("axes"))
        return (f"op.reduce({fn}, {i[0]}, {axes}, {a.get('keepdims', 1)}, "
                f"{a.get('noop_with_empty_axes', 0)})")
    return emit


# op type -> (inputs as Python expressions, attributes) -> expression
OPS: dict[str, Callable[[list[str | None], dict[str, Any]], str]] = {
    "Add": _binary("np.add"), "Sub": _binary("np.subtract"), "Mul": _binary("np.multiply"), "Div": _binary("op.div"),
    "Pow": _binary("np.power"), "Less": _binary("np.less"), "LessOrEqual": _binary("np.less_equal"),
    "Greater": _binary("np.greater"), "GreaterOrEqual": _binary("np.greater_equal"), "Equal": _binary("np.equal"),
    "And": _binary("np.logical_and"), "Or": _binary("np.logical_or"), "MatMul": _binary("np.matmul"),
    "Sqrt": _unary("np.sqrt"), "Tanh": _unary("np.tanh"), "Neg": _unary("np.negative"), "Cos": _unary("np.cos"),
    "Sin": _unary("np.sin"), "Abs": _unary("np.abs"), "Exp": _unary("np.exp"), "Log": _unary("np.log"),
    "Floor": _unary("np.floor"), "Ceil": _unary("np.ceil"), "Round": _unary("np.round"), "Atan": _unary("np.arctan"),
    "Not": _unary("np.logical_not"), "Sign": _unary("np.sign"), "Reciprocal": _unary("np.reciprocal"),
    "Relu": _unary("op.relu"), "Sigmoid": _unary("op.sigmoid"), "Identity": _unary("np.asarray"),
    "Where": lambda i, a: f"np.where({i[0]}, {i[1]}, {i[2]})",
    "Gemm": lambda i, a: (f"op.gemm({i[0]}, {i[1]}, {i[2] if len(i) > 2 else None}, {a.get('alpha', 1.0)!r}, "
                          f"{a.get('beta', 1.0)!r}, {a.get('transA', 0)}, {a.get('transB', 0)})"),
    "Gather": lambda i, a: f"op.gather({i[0]}, {i[1]}, {a.get('axis', 0)})",
    "GatherElements": lambda i, a: f"op.gather_elements({i[0]}, {i[1]}, {a.get('axis', 0)})",
    "GatherND": lambda i, a: f"op.gather_nd({i[0]}, {i[1]}, {a.get('batch_dims', 0)})",
    "Unsqueeze": lambda i, a: f"op.unsqueeze({i[0]}, {i[1] if len(i) > 1 else repr(a['axes'])})",
    "Squeeze": lambda i, a: f"op.squeeze({i[0]}, {i[1] if len(i) > 1 and i[1] else repr(a.get('axes'))})",
    "Concat": lambda i, a: f"np.concatenate([{', '.join(i)}], axis={a['axis']})",
    "Transpose": lambda i, a: f"np.transpose({i[0]}, {a.get('perm')!r})",
    "Reshape": lambda i, a: f"op.reshape({i[0]}, {i[1]}, {a.get('allowzero', 0)})",
    "Expand": lambda i, a: f"op.expand({i[0]}, {i[1]})",
    "Shape": lambda i, a: f"op.shape({i[0]}, {a.get('start', 0)}, {a.get('end')})",
    "Cast": lambda i, a: f"op.cast({i[0]}, {a['to']})",
    "TopK": lambda i, a: f"op.topk({i[0]}, {i[1]}, {a.get('axis', -1)}, {a.get('largest', 1)}, {a.get('sorted', 1)})",
    "Clip": lambda i, a: f"op.clip({_optional((i + [None, None])[:3])})",
    "Max": lambda i, a: f"op.maximum({', '.join(i)})", "Min": lambda i, a: f"op.minimum({', '.join(i)})",
    "ArgMin": lambda i, a: f"op.arg(np.argmin, {i[0]}, {a.get('axis', 0)}, {a.get('keepdims', 1)}, {a.get('select_last_index', 0)})",
    "ArgMax": lambda i, a: f"op.arg(np.argmax, {i[0]}, {a.get('axis', 0)}, {a.get('keepdims', 1)}, {a.get('select_last_index', 0)})",
    "ReduceSum": _reduce("np.sum"), "ReduceMin": _reduce("np.min"), "ReduceMax": _reduce("np.max"),
    "ReduceMean": _reduce("np.mean"), "ReduceProd": _reduce("np.prod"),
    "Slice": lambda i, a: f"op.slice_({_optional((i + [None, None])[:5])})",
    "ConstantOfShape": lambda i, a: f"op.constant_of_shape({i[0]}, {a.get('value')})",
    "Range": lambda i, a: f"op.range_({i[0]}, {i[1]}, {i[2]})",
}


def _ident(prefix: str, index: int) -> str:
    return f"{prefix}{index}"


def translate(model: onnx.ModelProto, source_name: str = "policy.onnx", weights_file: str = "policy_weights.npz"
              ) -> tuple[str, dict[str, np.ndarray]]:
    """(Python source of a module with `forward(**inputs) -> dict`, weights by name for np.savez)."""
    graph = model.graph
    unsupported = sorted({n.op_type for n in graph.node if n.op_type not in OPS and n.op_type != "Constant"}
                         | {n.domain for n in graph.node if n.domain not in ("", "ai.onnx")})
    if unsupported:
        raise TranslationError(f"{source_name}: the numpy translation does not cover ONNX operator(s) "
                               f"{', '.join(unsupported)} (recurrent policies are not supported)")
    names: dict[str, str] = {}
    weights: dict[str, np.ndarray] = {}

    def weight(array: np.ndarray) -> str:
        key = _ident("w", len(weights))
        weights[key] = np.asarray(array)
        return key

    for init in graph.initializer:
        names[init.name] = f'W["{weight(numpy_helper.to_array(init))}"]'
    inputs = [i.name for i in graph.input if i.name not in names]
    for k, name in enumerate(inputs):
        names[name] = _ident("x", k)
    lines = []
    for node in graph.node:
        attrs = {}
        for attr in node.attribute:
            value = helper.get_attribute_value(attr)
            if isinstance(value, onnx.TensorProto):
                value = f'W["{weight(numpy_helper.to_array(value))}"]'
            elif isinstance(value, bytes):
                value = value.decode()
            elif isinstance(value, list):
                value = [int(v) if isinstance(v, int) else v for v in value]
            attrs[attr.name] = value
        if node.op_type == "Constant":
            (key, value), = attrs.items()
            if key != "value":
                raise TranslationError(f"{source_name}: Constant with attribute {key!r} is not covered")
            names[node.output[0]] = value
            continue
        args = []
        for name in node.input:
            if name and name not in names:
                raise TranslationError(f"{source_name}: node {node.name or node.op_type} reads {name!r} before it is computed")
            args.append(names[name] if name else None)
        expr = OPS[node.op_type](args, _literal_attrs(attrs))
        outs = []
        for name in node.output:
            names[name] = _ident("v", len(names))
            outs.append(names[name])
        lines.append(f"    {', '.join(outs)} = {expr}" if len(outs) > 1 else f"    {outs[0]} = {expr}")
    outputs = [o.name for o in graph.output]
    spec = {p.key: p.value for p in model.metadata_props}
    header = f'''"""Generated by `marlstack robotarium export` from {Path(source_name).name}: its graph (observe() +
actor + scaling to physical units), one numpy statement per ONNX node. Do not edit; re-export instead.
Weights: {weights_file}. Inputs (batch axis first, float32): {", ".join(inputs)}. Outputs: {", ".join(outputs)}.
"""
import json
import os

import numpy as np

import {OPS_MODULE} as op

SPEC = json.loads({json.dumps(spec.get("marlstack_spec", "{}"))})
INPUTS = {inputs!r}
OUTPUTS = {outputs!r}
with np.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), {weights_file!r})) as _npz:
    W = {{k: _npz[k] for k in _npz.files}}


def forward({", ".join(f"{n}" for n in inputs)}):
    """{", ".join(inputs)} (B, ...) arrays -> {{{", ".join(repr(o) for o in outputs)}}}."""
'''
    casts = [f"    {names[n]} = np.asarray({n}, np.float32)" for n in inputs]
    body = "\n".join(casts + lines)
    ret = "    return {" + ", ".join(f"{o!r}: np.asarray({names[o]})" for o in outputs) + "}\n"
    source = header + body + "\n" + ret
    if any(not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in inputs):
        raise TranslationError(f"{source_name}: input names {inputs} are not Python identifiers")
    return source, weights


def _literal_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes as they are written into source: tensors are already W[...] expressions (kept as strings)."""
    return {k: (_Raw(v) if isinstance(v, str) and v.startswith('W["') else v) for k, v in attrs.items()}


class _Raw(str):
    """A string that `repr` writes without quotes (an expression already)."""

    def __repr__(self) -> str:
        return str(self)
