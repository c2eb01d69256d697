"""`marlstack flight ACTION --config TEAM.yaml`: one vehicle command to every real MAV of a team at once.

Each flight link node (one per MAV with a `links:` entry, started by the team's plan) offers the
vehicle commands as std_srvs/Trigger services `/<mav>/<command>`. This calls one of them on every
MAV concurrently and prints one line per MAV; the exit status is 1 if any MAV refused or did not
answer. The usual order: arm, takeoff, (wait for the height), start, ... land, disarm; kill cuts the
motors at once, in the air or not. Onboard-safe: rclpy only, no JAX.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

ACTIONS = {"arm": "arm", "takeoff": "takeoff", "start": "start_rate_control", "land": "land", "kill": "kill",
           "disarm": "disarm"}


def call_team(node: Any, mavs: list[str], service: str, timeout_s: float = 10.0) -> dict[str, tuple[bool, str]]:
    """Call `/<mav>/<service>` on every MAV at once; MAV -> (success, message), spinning `node` meanwhile."""
    import rclpy
    from std_srvs.srv import Trigger
    clients = {m: node.create_client(Trigger, f"/{m}/{service}") for m in mavs}
    deadline = time.monotonic() + timeout_s
    while not all(c.service_is_ready() for c in clients.values()) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.02)
    futures = {m: c.call_async(Trigger.Request()) for m, c in clients.items() if c.service_is_ready()}
    while not all(f.done() for f in futures.values()) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.01)
    out = {}
    for m, client in clients.items():
        f = futures.get(m)
        if f is None:
            out[m] = (False, f"{m}: no /{m}/{service} service (is its flight link node running?)")
        elif not f.done():
            out[m] = (False, f"{m}: {service} not answered within {timeout_s:g} s")
        else:
            out[m] = (bool(f.result().success), f.result().message)
        node.destroy_client(client)
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="marlstack flight", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=list(ACTIONS), help="start = start_rate_control (PX4 OFFBOARD, ArduPilot GUIDED, "
                        "Crazyflie low-level setpoints)")
    parser.add_argument("--config", required=True, help="the team's deployment YAML with a 'links' section "
                        "(e.g. launch/cable3_px4.yaml)")
    parser.add_argument("--mavs", help="comma-separated subset of the team (default: every real MAV)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answers (default 10)")
    args = parser.parse_args(argv)
    from ros_nodes.plan import PlanError, load_deployment
    try:
        dep = load_deployment(args.config)
    except PlanError as exc:
        print(f"marlstack flight: {exc}", file=sys.stderr)
        return 2
    from ros_nodes.link_plan import real_mavs
    real = real_mavs(getattr(dep, "links", {}) or {})
    if not real:
        print(f"marlstack flight: {args.config} has no real MAVs (a MAV team with a 'links' section; docs/hardware.md)",
              file=sys.stderr)
        return 2
    mavs = args.mavs.split(",") if args.mavs else real
    unknown = [m for m in mavs if m not in real]
    if unknown:
        print(f"marlstack flight: {', '.join(unknown)} not among the team's real MAVs ({', '.join(real)})", file=sys.stderr)
        return 2
    import rclpy
    rclpy.init()
    node = rclpy.create_node("marlstack_flight")
    try:
        results = call_team(node, mavs, ACTIONS[args.action], args.timeout)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    for ok, message in results.values():
        print(("ok    " if ok else "FAIL  ") + message)
    return 0 if all(ok for ok, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
