"""`marlstack inspect policy.onnx`: what a policy file is for, what it eats and what it computes.

Runs on a robot: onnxruntime reads the spec and the tensors; the graph summary (op counts,
opset, IR version, parameters) also uses the `onnx` package when it is installed.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path
from typing import Any

from marlstack.policies.spec import PolicyError


def graph_summary(path: Path) -> dict[str, Any]:
    """Op counts, opset, IR version, parameter count and size; only the size without `onnx`."""
    summary: dict[str, Any] = {"size_bytes": path.stat().st_size}
    try:
        import onnx
    except ImportError:
        summary["note"] = "install the `onnx` package for op counts, opset and IR version"
        return summary
    model = onnx.load(str(path), load_external_data=False)
    ops = collections.Counter(n.op_type for n in model.graph.node)
    summary.update(ir_version=model.ir_version,
                   opsets={imp.domain or "ai.onnx": imp.version for imp in model.opset_import},
                   producer=f"{model.producer_name} {model.producer_version}".strip(),
                   nodes=sum(ops.values()), ops=dict(sorted(ops.items())),
                   parameters=sum(_numel(t.dims) for t in model.graph.initializer))
    return summary


def _numel(dims: Any) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def _tensor_line(entry: dict[str, Any]) -> str:
    shape = "(" + ", ".join(map(str, entry["shape"])) + ")"
    units = ", ".join(u or "-" for u in entry["units"])
    doc = f"  {entry['doc']}" if entry.get("doc") else ""
    return f"  {entry['name']:<12} {shape:<14} {entry['dtype']:<8} [{units}] {entry['frame']}{doc}"


def format_report(spec: dict[str, Any], summary: dict[str, Any]) -> str:
    agent = spec["agent"]
    rec = spec["recurrent"]
    state = "no" if rec is None else f"yes: state {rec['input']} -> {rec['output']}, size {rec['size']}"
    lines = [f"scenario        {spec['scenario']} ({spec['vehicle_kind']})",
             f"agent           role {agent['role']!r}, valid for {', '.join(agent['agents'])}",
             f"profile         {spec['profile']['name']} (hash {spec['profile']['hash']})",
             f"control rate    {spec['control_rate_hz']:.6g} Hz",
             f"recurrent       {state}",
             f"training run    {spec['training_run_id']}",
             f"git revision    {spec['git_revision']}",
             f"created         {spec['created']} by marlstack {spec['marlstack_version']}",
             "inputs (axis 0 = batch of agents)", *map(_tensor_line, spec["inputs"]),
             "outputs", *map(_tensor_line, spec["outputs"]),
             "graph"]
    if "ops" in summary:
        lines += [f"  ir_version {summary['ir_version']}, opsets {summary['opsets']}, {summary['nodes']} nodes, "
                  f"{summary['parameters']} parameters, {summary['size_bytes']} bytes, producer {summary['producer']}",
                  "  ops: " + ", ".join(f"{op} {n}" for op, n in summary["ops"].items())]
    else:
        lines.append(f"  {summary['size_bytes']} bytes ({summary['note']})")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="marlstack inspect", description="Print a policy file's spec, inputs, outputs and graph summary.")
    parser.add_argument("policy", type=Path, help="an ONNX policy written by `marlstack export`")
    parser.add_argument("--json", action="store_true", help="print {spec, graph} as one JSON object")
    args = parser.parse_args(argv)
    from marlstack.policies.runtime import load_spec
    try:
        spec = load_spec(args.policy)
    except PolicyError as exc:
        print(f"marlstack inspect: {exc}", file=sys.stderr)
        return 1
    summary = graph_summary(args.policy)
    print(json.dumps({"spec": spec, "graph": summary}, indent=2) if args.json else format_report(spec, summary))
    return 0
