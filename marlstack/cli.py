"""The `marlstack` command: a thin dispatcher.

Each subcommand lives in its own module with a `main(argv) -> int` and is imported only
when called, so `marlstack inspect` or `marlstack sitl` on a robot never loads JAX.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from marlstack import __version__

# name -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "sim": ("marlstack.sim_cli", "roll out a scenario with a random or scripted policy; write trajectory PNG + GIF"),
    "sim2sim": ("marlstack.sim2sim.cli", "the same policy + safety filter in marlstack's simulator and in pybullet, compared"),
    "train": ("marlstack.policies.train_cli", "train decentralised policies (IPPO / MAPPO)"),
    "eval": ("marlstack.policies.eval_cli", "evaluate a trained run or checkpoint"),
    "sweep": ("marlstack.policies.sweep_cli", "a grid of trainings x seeds as Ray tasks (local or a cluster); every seed + median"),
    "export": ("marlstack.policies.export_cli", "export a trained policy to ONNX"),
    "inspect": ("marlstack.policies.inspect_cli", "print an ONNX policy's spec, inputs, outputs and graph summary"),
    "sitl": ("marlstack.ros_nodes.sitl", "run a fleet in software-in-the-loop over ROS 2 (no ros2 launch needed)"),
    "flight": ("marlstack.ros_nodes.flight_cli", "arm / take off / start / land / kill / disarm every real MAV of a team"),
    "replay": ("marlstack.replay.cli", "inspect, re-publish, re-evaluate, report on and convert rosbag2 and flight-controller logs"),
    "bench": ("marlstack.bench.cli", "benchmarks: each prints a table (or --json) against a baseline run alongside"),
    "robotarium": ("marlstack.targets.robotarium_cli", "write a Robotarium submission (rps 2.x script, numpy policy, barrier)"),
    "profile": ("marlstack.hardware.cli", "list, show and validate vehicle profiles"),
    "demo": ("marlstack.demo", "the whole road: train, export, run over ROS 2 with safety, record, replay"),
}

OWN_PACKAGES = {"marlstack", "sim", "policies", "controllers", "ros_nodes", "hardware", "bench", "targets", "replay"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="marlstack",
        description="Sim-to-real multi-robot control: simulate, train, export, deploy on ROS 2, replay.",
        epilog="Run `marlstack <command> --help` for each command's options.")
    parser.add_argument("--version", action="version", version=f"marlstack {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in COMMANDS:
        if not argv:
            parser.print_help()
            return 2
        parser.parse_args(argv[:1])  # prints usage + "invalid choice" and exits 2, or handles --help
        return 2
    module_name, _ = COMMANDS[argv[0]]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in OWN_PACKAGES:
            raise  # our own module is missing: a packaging bug, not a missing extra
        print(f"marlstack {argv[0]}: this command needs a package that is not installed ({exc.name}). "
              f"Install the extras, e.g. `pip install marlstack[all]`, or run `make test` once.", file=sys.stderr)
        return 2
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
