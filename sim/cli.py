"""`marlstack sim`: roll out a scenario with a random or scripted policy; write trajectory PNG + GIF."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim.scenarios import SCENARIOS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="marlstack sim", description="Roll out one episode of a fleet scenario "
                                "and write trajectory.png and trajectory.gif.")
    p.add_argument("scenario", choices=sorted(SCENARIOS), help="which scenario to run")
    p.add_argument("--num-agents", "-n", type=int, default=4, help="robots in the fleet (1..profile max, default 4)")
    p.add_argument("--policy", choices=["random", "scripted"], default="scripted",
                   help="random actions, or the scripted controller (default): each robot drives to its goal "
                   "(coverage: to the landmark of its own index)")
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
    import jax

    from hardware.profile import ProfileError, load_profile
    from sim.fleet import FleetEnv
    from sim.render import animate, plot_trajectories
    from sim.rollout import POLICIES, rollout

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
    ep = rollout(env, POLICIES[args.policy](env), jax.random.PRNGKey(args.seed), args.steps)
    args.out.mkdir(parents=True, exist_ok=True)
    title = f"{args.scenario}: {args.num_agents} × {profile.name}, {args.policy} policy, {ep.steps} steps"
    png = plot_trajectories(ep.poses, profile, args.out / "trajectory.png", ep.goals, title)
    gif = animate(ep.poses, profile, args.out / "trajectory.gif", ep.goals, title)
    print(f"{args.scenario}: {args.num_agents} robots ({profile.name}), {args.policy} policy, {ep.steps} steps "
          f"({ep.steps * profile.dt:.1f} s), {'solved' if ep.solved else 'not solved'}")
    print(f"  {env.scenario.SUCCESS_LABEL} at the end: {int(ep.success[-1].sum())}/{args.num_agents}; "
          f"at least once: {int(ep.success.any(0).sum())}/{args.num_agents}")
    print(f"  violations: collisions {int(ep.collisions.sum()) // 2} pair-steps, boundary exits "
          f"{int(ep.boundary_exits.sum())} robot-steps, actuator limit {int(ep.actuator_excess.any(1).sum())} steps")
    print(f"  mean return per robot: {float(ep.rewards.sum(0).mean()):.3f}")
    print(f"  wrote {png} and {gif}")
    return 0
