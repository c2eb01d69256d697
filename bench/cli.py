"""`marlstack bench <name>`: dispatch to bench/<name>.py, each exposing `run(args) -> list[Row]`."""
from __future__ import annotations

import argparse
import importlib

from marlstack.bench.report import emit

# name -> (module, help); each module defines add_arguments(parser) and run(args) -> list[Row]
BENCHES = {
    "sim": ("marlstack.bench.sim", "fleet simulator steps/s vs the robotarium-python-simulator"),
    "rps21": ("marlstack.bench.rps21", "batched JAX fleet env steps/s vs rps 2.1.0 (the Robotarium's simulator, own venv)"),
    "barrier": ("marlstack.bench.barrier", "barrier certificate latency and safe sim steps/s vs rps"),
    "train": ("marlstack.bench.train", "training env-steps/s vs pure simulator throughput"),
    "jaxmarl_ippo": ("marlstack.bench.jaxmarl_ippo", "our IPPO vs JaxMARL's own IPPO on its MPE (a JaxMARL checkout, own venv)"),
    "policy": ("marlstack.bench.policy", "exported ONNX policy latency vs a bare numpy forward pass"),
    "policy_steps": ("marlstack.bench.policy_steps", "one onboard policy step (batch 1), onnxruntime setting by setting, vs numpy"),
    "ros": ("marlstack.bench.ros", "sensor-to-command latency over ROS 2 vs a bare rclpy ping-pong"),
    "cable": ("marlstack.bench.cable", "cable-suspended load env-steps/s vs a free-flying quadrotor"),
    "replay": ("marlstack.bench.replay", "replay info/report/csv time and memory: PX4 log, fleet and MAV team bags vs pyulog / mcap / per-message"),
    "mav_barrier": ("marlstack.bench.mav_barrier", "MAV barrier certificate latency vs cvxopt, safe env-steps/s, fuzz"),
    "mav_team_step": ("marlstack.bench.mav_team_step", "the MAV team node's step in one process, part by part, vs each MAV's own pilot"),
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="marlstack bench", description="Run a benchmark; every row "
                                     "compares ours against a baseline measured in the same run (ratio > 1: we are better).")
    sub = parser.add_subparsers(dest="name", required=True, metavar="<bench>")
    for name, (module, help_text) in BENCHES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
        p.set_defaults(_module=module)
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError:
            pass  # that benchmark is not built yet or its extra is missing; it fails loudly when run
    args = parser.parse_args(argv)
    rows = importlib.import_module(args._module).run(args)
    emit(args.name, rows, args.json)
    return 0
