"""`marlstack export RUN -o policy.onnx`: a trained policy as one ONNX file a robot runs without JAX."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="marlstack export", description="Export a trained policy as one ONNX file a robot runs without JAX.",
        epilog="The graph holds the scenario's observe(), observation normalisation, the actor's deterministic "
               "action and its scaling to physical units; the file's metadata carries the spec that "
               "`marlstack inspect` prints and the onboard runtime checks.")
    parser.add_argument("source", type=Path, help="a training run directory or a checkpoint file")
    parser.add_argument("-o", "--out", type=Path, default=Path("policy.onnx"), help="output file (default: policy.onnx)")
    parser.add_argument("--agent", metavar="NAME", default=None,
                        help="export for one agent (e.g. agent_0): needed when agents have their own parameters "
                             "or a one-hot id; without it the artifact serves every agent of the run")
    parser.add_argument("--num-agents", type=int, metavar="N", default=None,
                        help="export for a fleet of N robots instead of the training fleet (shared-parameter "
                             "policies whose observation does not grow with the fleet, e.g. navigation)")
    parser.add_argument("--seed-index", type=int, metavar="K", default=None,
                        help="export this trained seed (0 = the run's first; default: the seed chosen on validation "
                             "episodes at the end of training, which `marlstack eval` marks with *)")
    args = parser.parse_args(argv)
    if args.num_agents is not None and args.num_agents < 1:
        parser.error("--num-agents must be at least 1")
    from marlstack.policies.checkpoint import load_policy, read
    from marlstack.policies.export import export  # JAX loads only now, so --help stays instant
    try:
        policy = load_policy(args.source, args.seed_index)
        rule = ("asked for" if args.seed_index is not None else
                read(args.source)[0].get("seed_selection", {}).get("rule", "best final training success"))
        spec = export(policy, args.out, args.agent, num_agents=args.num_agents)
    except (ValueError, OSError) as exc:
        print(f"marlstack export: {exc}", file=sys.stderr)
        return 1
    names = lambda group: ", ".join(f"{e['name']}{tuple(e['shape'])}" for e in spec[group])  # noqa: E731
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): {spec['scenario']} on {spec['profile']['name']} "
          f"at {spec['control_rate_hz']:.6g} Hz, agents {', '.join(spec['agent']['agents'])}\n"
          f"  seed    {int(policy.config['seed']) + policy.seed_index} ({rule})\n"
          f"  inputs  {names('inputs')}\n  outputs {names('outputs')}")
    return 0
