"""`marlstack sim`: roll out a scenario with a random or scripted policy; write trajectory PNG + GIF."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from marlstack.sim.scenarios import SCENARIOS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="marlstack sim", description="Roll out one episode of a fleet scenario "
                                "and write trajectory.png and trajectory.gif.")
    p.add_argument("scenario", choices=sorted(SCENARIOS), help="which scenario to run")
    p.add_argument("--num-agents", "-n", type=int, default=4, help="robots in the fleet (1..profile max, default 4)")
    p.add_argument("--policy", default="scripted", metavar="random|scripted|FILE.onnx",
                   help="random actions, the scripted controller (default: each robot drives to its goal; "
                   "coverage: to the landmark of its own index), or an exported policy run by onnxruntime")
    p.add_argument("--start", type=Path, default=None, metavar="TASK.json",
                   help="starts and goals from a JSON file with 'initial_conditions' (N x 3) and 'goals' (N x 2), "
                   "e.g. a Robotarium submission's task.json, instead of a seeded reset (navigation)")
    p.add_argument("--float64", action="store_true", help="simulate in float64 (as rps does) instead of float32")
    p.add_argument("--no-render", action="store_true", help="write trajectory.npz only (no PNG, no GIF)")
    p.add_argument("--steps", type=int, default=300, help="most steps to run; the episode may end sooner (default 300)")
    p.add_argument("--profile", default="gritsbot_x", help="vehicle profile name or YAML path (default gritsbot_x)")
    p.add_argument("--action-type", choices=["continuous", "discrete"], default="continuous")
    p.add_argument("--actuation-noise", type=float, default=0.0, help="actuation noise std, fraction of the limits")
    p.add_argument("--barrier", default=None, help="barrier certificate form applied every step (e.g. unicycle_walls)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--out", type=Path, default=Path("out/sim"), help="output directory (default out/sim)")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.steps < 1:
        print("marlstack sim: --steps must be at least 1", file=sys.stderr)
        return 2
    onnx_policy = args.policy.endswith(".onnx")
    if not onnx_policy and args.policy not in ("random", "scripted"):
        print(f"marlstack sim: --policy must be random, scripted or a .onnx file, got {args.policy!r}", file=sys.stderr)
        return 2
    import jax
    import numpy as np

    if args.float64:
        jax.config.update("jax_enable_x64", True)

    from marlstack.hardware.profile import ProfileError, load_profile
    from marlstack.sim.fleet import FleetEnv
    from marlstack.sim.render import animate, plot_trajectories
    from marlstack.sim.rollout import POLICIES, policy_rollout, rollout, start_state

    try:
        profile = load_profile(args.profile)
        env = FleetEnv(profile, num_agents=args.num_agents, scenario=args.scenario, action_type=args.action_type,
                       max_steps=args.steps, barrier=args.barrier, actuation_noise=args.actuation_noise)
    except (ProfileError, ValueError) as exc:
        print(f"marlstack sim: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        print(f"marlstack sim: --barrier needs {exc.name}, which is not available in this install", file=sys.stderr)
        return 2
    try:
        if args.start is not None and args.scenario != "navigation":
            raise ValueError("--start gives starts and goals: navigation only")
        start = None if args.start is None else read_start(args.start, args.num_agents)
        run = load_onnx(args.policy, env) if onnx_policy else None
    except (OSError, ValueError) as exc:
        print(f"marlstack sim: {exc}", file=sys.stderr)
        return 2
    state = start_state(env, *start) if start else None
    if run is not None:
        ep = policy_rollout(env, run, state if start else env.reset(jax.random.PRNGKey(args.seed))[1], args.steps)
    else:
        ep = rollout(env, POLICIES[args.policy](env), jax.random.PRNGKey(args.seed), args.steps, state)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "trajectory.npz", poses=ep.poses, goals=ep.goals, success=ep.success)
    policy_name = Path(args.policy).name if onnx_policy else args.policy
    title = f"{args.scenario}: {args.num_agents} × {profile.name}, {policy_name} policy, {ep.steps} steps"
    if args.no_render:
        wrote = str(args.out / "trajectory.npz")
    else:
        png = plot_trajectories(ep.poses, profile, args.out / "trajectory.png", ep.goals, title, boxes=env.obstacles)
        gif = animate(ep.poses, profile, args.out / "trajectory.gif", ep.goals, title, boxes=env.obstacles)
        wrote = f"{png} and {gif}"
    print(f"{args.scenario}: {args.num_agents} robots ({profile.name}), {policy_name} policy, {ep.steps} steps "
          f"({ep.steps * profile.dt:.1f} s), {'solved' if ep.solved else 'not solved'}")
    print(f"  {env.scenario.SUCCESS_LABEL} at the end: {int(ep.success[-1].sum())}/{args.num_agents}; "
          f"at least once: {int(ep.success.any(0).sum())}/{args.num_agents}")
    print(f"  violations: collisions {int(ep.collisions.sum()) // 2} pair-steps, boundary exits "
          f"{int(ep.boundary_exits.sum())} robot-steps, actuator limit {int(ep.actuator_excess.any(1).sum())} steps")
    print(f"  mean return per robot: {float(ep.rewards.sum(0).mean()):.3f}")
    print(f"  wrote {wrote}")
    return 0


def read_start(path: Path, num_agents: int) -> tuple:
    """(starts (N, 3), goals (N, 2)) from a JSON file with 'initial_conditions' and 'goals'."""
    import json

    import numpy as np
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        starts, goals = np.asarray(data["initial_conditions"], float), np.asarray(data["goals"], float)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: needs JSON with 'initial_conditions' (N x 3) and 'goals' (N x 2) ({exc})") from None
    if starts.shape != (num_agents, 3) or goals.shape != (num_agents, 2):
        raise ValueError(f"{path}: {num_agents} robots need initial_conditions ({num_agents}, 3) and goals "
                         f"({num_agents}, 2), got {starts.shape} and {goals.shape}")
    return starts, goals


def load_onnx(path: str, env):
    """An exported policy as `sensors -> (N, 2) commands` (onnxruntime), refused (ValueError naming
    the problem) unless it is for this scenario and takes this fleet's sensors."""
    import jax
    import numpy as np

    from marlstack.policies.runtime import PolicyRuntime
    runtime = PolicyRuntime(path, expect_scenario=env.name)
    run = lambda sensors: runtime.run(sensors)["cmd"]  # noqa: E731
    run({k: np.asarray(v, np.float32) for k, v in env.sense(env.reset(jax.random.PRNGKey(0))[1]).items()})
    return run
