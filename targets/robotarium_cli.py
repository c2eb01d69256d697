"""`marlstack robotarium export RUN|policy.onnx -o submission/`: a folder to upload to the Robotarium."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="marlstack robotarium", description="Robotarium (rps 2.x) submissions.")
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("export", help="write a folder ready to upload: main.py, the policy in numpy, task, barrier",
                       description="Write a folder the Robotarium runs as it is: main.py on the rps 2.x API, the "
                       "policy translated to numpy (policy.py + policy_weights.npz, checked against onnxruntime "
                       "on 10,000 inputs), starts and goals, and the barrier certificate. Only numpy, PyYAML and "
                       "rps are imported. Upload every file and name main.py the main script (docs/hardware.md).")
    p.add_argument("source", type=Path, help="a training run directory, a checkpoint, or an exported policy.onnx")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder (new or empty)")
    p.add_argument("--num-robots", type=int, metavar="N", default=None,
                   help="fleet size (1..20); a run is exported for N robots, a .onnx must already be for N")
    p.add_argument("--barrier", choices=["ours", "rps"], default="ours",
                   help="ours: marlstack's barrier certificate (numpy, exact QP); rps: rps 2.x's "
                   "create_uni_barrier_certificate_with_boundary with the profile's gains (default ours)")
    p.add_argument("--seed", type=int, default=0, help="seed of the navigation reset drawing starts and goals (default 0)")
    p.add_argument("--max-steps", type=int, default=1000, help="stop after this many control periods (default 1000, 33 s)")
    args = parser.parse_args(argv)
    from marlstack.policies.spec import PolicyError
    from marlstack.targets.robotarium import export_submission
    try:
        task = export_submission(args.source, args.out, args.num_robots, args.barrier, args.seed, args.max_steps)
    except (PolicyError, ValueError, OSError) as exc:
        print(f"marlstack robotarium export: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {task['num_robots']} robots, barrier {task['barrier']}, numpy policy within "
          f"{task['parity_error']:.2g} of onnxruntime; upload every file, main script main.py")
    return 0
