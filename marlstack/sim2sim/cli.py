"""`marlstack sim2sim`: a deployment's policy + safety filter in marlstack's simulator and in pybullet, compared."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PROG = "marlstack sim2sim"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=(
        "Run a deployment's exported ONNX policy behind its barrier certificate, closed loop, in marlstack's "
        "fleet simulator and in pybullet, from the config's starts to its goals (coverage: its landmarks). Prints "
        "per robot: goal reached and when, final goal error (coverage: to the nearest landmark), closest approach, "
        "collisions, boundary exits and the position deviation "
        "between the engines; writes sim2sim.json and sim2sim.png (both trajectories over the arena). "
        "A MAV team config (with 'mavs', e.g. launch/cable3.yaml) flies its goal sequence in marlstack's cable "
        "simulator and in pybullet (marlstack/sim2sim/cable.py): success per goal in each engine and the load-pose "
        "gap; writes cable_sim2sim.json and cable_sim2sim.png."))
    p.add_argument("--config", type=Path, required=True, help="deployment YAML, e.g. launch/robotarium_nav4.yaml")
    p.add_argument("--policy", type=Path, default=None, help="policy.onnx to run instead of the config's")
    p.add_argument("--duration", type=float, default=20.0, help="ground fleets: simulated seconds in each engine (default 20)")
    p.add_argument("--goal-time", type=float, default=None,
                   help="MAV teams: seconds each goal is flown in each engine (default: the config's goal_timeout_s)")
    p.add_argument("-o", "--out", type=Path, default=Path("out/sim2sim"), help="output directory (default out/sim2sim)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    return p


def fail(msg: str) -> int:
    print(f"{PROG}: {msg}", file=sys.stderr)
    return 2


def table(report: dict) -> str:
    """The report as a per-robot, per-engine table."""
    head = (f"{'robot':<10} {'engine':<10} {'reached':>8} {'at [s]':>7} {'goal err [m]':>13} {'min dist [m]':>13} "
            f"{'collisions':>10} {'exits':>6} {'deviation rms / max [m]':>24}")
    lines = [f"sim2sim {Path(report['config']).name}: {report['policy']}, {report['duration_s']:.1f} s "
             f"({report['steps']} steps of {report['dt_s']} s), barrier {report['safety']['form']} "
             f"({report['safety']['mode']})", head]
    for r in report["robots"]:
        for k, engine in enumerate(("marlstack", "pybullet")):
            m = r[engine]
            at = "-" if m["reach_time_s"] is None else f"{m['reach_time_s']:.2f}"
            dev = f"{r['deviation']['rms_m']:.4f} / {r['deviation']['max_m']:.4f}" if k == 0 else ""
            lines.append(f"{r['name'] if k == 0 else '':<10} {engine:<10} {'yes' if m['reached'] else 'no':>8} "
                         f"{at:>7} {m['final_goal_error_m']:>13.4f} {m['min_distance_m']:>13.3f} "
                         f"{m['collision_steps']:>10} {m['boundary_exit_steps']:>6} {dev:>24}")
    lines.append(f"largest deviation {report['max_deviation_m']:.4f} m; barrier brakes "
                 + ", ".join(f"{e} {n}" for e, n in report["brakes"].items()))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if not args.duration > 0:
        return fail(f"--duration must be > 0 s, got {args.duration}")
    if args.goal_time is not None and not args.goal_time > 0:
        return fail(f"--goal-time must be > 0 s, got {args.goal_time}")
    from marlstack.ros_nodes.plan import PlanError, load_deployment
    try:
        dep = load_deployment(args.config)
    except PlanError as exc:
        return fail(str(exc))
    if not hasattr(dep, "mavs") and not dep.task_points:  # rware, material transport, ...: the sim node hosts the task
        return fail(f"{dep.path}: scenario {dep.scenario}'s task state lives in the sim node, which sim2sim does not "
                    f"run; fly it with `marlstack sitl --config {args.config}` (sim2sim: navigation, coverage)")
    try:
        from marlstack.sim2sim import fleet as sim2sim
    except ImportError as exc:
        if exc.name != "pybullet":
            raise
        return fail("pybullet is not installed: `pip install marlstack[sim2sim]`")
    from tqdm import tqdm

    from marlstack.hardware.profile import load_profile
    from marlstack.policies.runtime import PolicyError
    from marlstack.sim2sim.plot import plot_comparison

    policy = args.policy or dep.policy
    if not policy.is_file():
        return fail(f"no policy file {policy}: run `make demo` (writes out/demo/policy.onnx) "
                    f"or `marlstack export RUN_DIR -o {policy}`")
    if hasattr(dep, "mavs"):  # a MAV team carrying a load
        from marlstack.sim2sim.cable import run_cli
        try:
            return run_cli(dep, policy, args.goal_time or dep.goal_timeout_s, args.out, args.json)
        except PolicyError as exc:
            return fail(str(exc))
    profile = load_profile(dep.profile)
    steps = sim2sim.num_steps(profile, args.duration)
    with tqdm(total=len(sim2sim.ENGINES) * steps, desc=PROG, unit="step",
              disable=args.json or not sys.stderr.isatty()) as bar:
        try:
            report, trajs = sim2sim.compare(dep, policy, steps, bar.update)
        except PolicyError as exc:
            return fail(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sim2sim.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    png = plot_comparison(trajs, dep.task_points, profile, args.out / "sim2sim.png", f"{dep.name}: marlstack vs pybullet",
                          shared=not dep.per_robot_goals)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(table(report))
        print(f"wrote {args.out / 'sim2sim.json'} and {png}")
    return 0
