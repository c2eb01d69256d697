"""`marlstack flight ACTION --config TEAM.yaml`: one vehicle command to every real MAV of a team at once.

Each flight link node (one per MAV with a `links:` entry, started by the team's plan) offers the
vehicle commands as std_srvs/Trigger services `/<mav>/<command>`. This calls one of them on every
MAV concurrently and prints one line per MAV; the exit status is 1 if any MAV refused or did not
answer. The usual order: status, arm, takeoff, (wait for the height), start, ... land, disarm; kill
cuts the motors at once, in the air or not. `status` reads what each link reports on /diagnostics
(connected, armed, mode, rate control, fault) and fails if a MAV is silent, not connected or faulty.
A team without real MAVs (no `links:`) takes only `kill`: in SITL the MAV sim node serves `/<mav>/kill` for
every simulated MAV (`ros2 launch ... sim:=true` on this machine's ROS domain). Onboard-safe: rclpy only, no JAX.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from marlstack.ros_nodes import topics

SERVICES = {c.name: c for c in topics.VEHICLE_COMMANDS}
ACTIONS = {"start" if name == "start_rate_control" else name: name for name in SERVICES}


def call_team(node: Any, mavs: list[str], name: str, timeout_s: float = 10.0) -> dict[str, tuple[bool, str]]:
    """Call the vehicle command `name` (`/<mav>/<name>`, topics.VEHICLE_COMMANDS) on every MAV at once;
    MAV -> (success, message), spinning `node` meanwhile."""
    import rclpy
    service = SERVICES[name]
    kind = topics.message_class(service.type)
    clients = {m: node.create_client(kind, service.path(m)) for m in mavs}
    deadline = time.monotonic() + timeout_s
    while not all(c.service_is_ready() for c in clients.values()) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.02)
    futures = {m: c.call_async(kind.Request()) for m, c in clients.items() if c.service_is_ready()}
    while not all(f.done() for f in futures.values()) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.01)
    out = {}
    for m, client in clients.items():
        f = futures.get(m)
        if f is None:
            out[m] = (False, f"{m}: no {service.path(m)} service (is its flight link node or the MAV sim node running?)")
        elif not f.done():
            out[m] = (False, f"{m}: {service.name} not answered within {timeout_s:g} s")
        else:
            out[m] = (bool(f.result().success), f.result().message)
        node.destroy_client(client)
    return out


def team_status(node: Any, mavs: list[str], seconds: float = 1.5) -> dict[str, dict[str, str]]:
    """MAV -> its flight link's latest /diagnostics status over `seconds` (level, message and the link's values)."""
    import rclpy
    latest: dict[str, dict[str, str]] = {}

    def on_diag(msg) -> None:
        for st in msg.status:
            if st.hardware_id in mavs and st.name.rstrip("/").endswith("flight_link"):
                latest[st.hardware_id] = {"level": str(st.level[0]), "message": st.message,
                                          **{kv.key: kv.value for kv in st.values}}
    sub = node.create_subscription(topics.message_class(topics.DIAGNOSTICS.type), topics.DIAGNOSTICS.path(), on_diag,
                                   topics.qos_profile(topics.DIAGNOSTICS.qos))
    start = time.monotonic()
    while (waited := time.monotonic() - start) < seconds and (len(latest) < len(mavs) or waited < 0.6):
        rclpy.spin_once(node, timeout_sec=0.02)
    node.destroy_subscription(sub)
    return latest


def status_lines(mavs: list[str], latest: dict[str, dict[str, str]]) -> dict[str, tuple[bool, str]]:
    """One verdict per MAV: (healthy, line)."""
    out = {}
    for m in mavs:
        st = latest.get(m)
        if st is None:
            out[m] = (False, f"{m}: no status from its flight link node on /diagnostics")
            continue
        shown = ", ".join(f"{k} {st[k]}" for k in ("connected", "armed", "custom_mode", "rate_control", "setpoints_in")
                          if k in st)
        out[m] = (st["level"] == "0" and st.get("connected") == "True", f"{m}: {st['message']} | {shown}")
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="marlstack flight", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["status", *ACTIONS], help="start = start_rate_control (PX4 OFFBOARD, "
                        "ArduPilot GUIDED, Crazyflie low-level setpoints); status = what each link reports")
    parser.add_argument("--config", required=True, help="the team's deployment YAML with a 'links' section "
                        "(e.g. launch/cable3_px4.yaml)")
    parser.add_argument("--mavs", help="comma-separated subset of the team (default: every real MAV)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answers (default 10)")
    args = parser.parse_args(argv)
    from marlstack.ros_nodes.plan import PlanError, load_deployment
    try:
        dep = load_deployment(args.config)
    except PlanError as exc:
        print(f"marlstack flight: {exc}", file=sys.stderr)
        return 2
    from marlstack.ros_nodes.link_plan import real_mavs
    real = real_mavs(getattr(dep, "links", {}) or {})
    simulated = list(getattr(dep, "mavs", ())) if not real and args.action == "kill" else []  # the MAV sim node's
    if not real and not simulated:
        print(f"marlstack flight: {args.config} has no real MAVs (a MAV team with a 'links' section; docs/hardware.md); "
              f"a simulated team takes only 'kill'", file=sys.stderr)
        return 2
    team = real or simulated
    mavs = args.mavs.split(",") if args.mavs else team
    unknown = [m for m in mavs if m not in team]
    if unknown:
        print(f"marlstack flight: {', '.join(unknown)} not among the team's {'real ' if real else ''}MAVs "
              f"({', '.join(team)})", file=sys.stderr)
        return 2
    import rclpy
    rclpy.init()
    node = rclpy.create_node("marlstack_flight")
    try:
        if args.action == "status":
            results = status_lines(mavs, team_status(node, mavs, min(args.timeout, 3.0)))
        else:
            results = call_team(node, mavs, ACTIONS[args.action], args.timeout)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    for ok, message in results.values():
        print(("ok    " if ok else "FAIL  ") + message)
    return 0 if all(ok for ok, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
