"""`marlstack sitl`: run a deployment's fleet plan in software-in-the-loop over real DDS, without ros2 launch.

The plan's nodes plus the sim node (fake robots and motion capture) run as separate processes
with `--ros-args` (arrangement `process_per_node`, the default), with the onboard nodes in one
fleet container process (`fleet_container`, ros_nodes/container.py), or with one fleet policy node
commanding every robot (`fleet_policy`, ros_nodes/fleet_policy_node.py), supervised: a node that dies,
or fails inside the container, is reported with the tail of its log and the run fails (exit 1). Ctrl-C stops the nodes cleanly. At the end it prints, per robot, whether and
when the goal was reached, collision and boundary-exit steps (the simulator's counts), safety
interventions, watchdog stops and their reasons, barrier brakes, clipped commands and refused
policy outputs, and the bag's path; `--json` prints the same as JSON. A run with collisions, arena
exits, barrier brakes, refused policy outputs or (with --until-goals) a robot that never arrived
fails (exit 1, `faults` in the JSON); what the policy nodes would refuse at start is refused
before any node starts (exit 2).
DDS stays on loopback (see ros_nodes/isolation.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from marlstack.ros_nodes.isolation import ISOLATED_FLAG, can_isolate, isolated, ros_env
from marlstack.ros_nodes.plan import ARRANGEMENTS, Deployment, PlanError, arrange, fleet_plan, load_deployment
from marlstack.ros_nodes.runner import EXIT_TEARDOWN_WEDGED
from marlstack.ros_nodes.supervisor import Supervisor, clean_exit

START_TIMEOUT_S = 120.0
POLL_S = 0.1
SETTLE_S = 1.0  # with --until-goals: keep running this long after the last robot arrived
STOP_ORDER = ["sim_node", "mav_sim_node", "policy_node", "fleet_policy_node", "mav_policy_node", "mav_team_policy_node",
              "safety_node",
              "hardware_adapter_node", "container"]  # the recorder stops last
START_ORDER = ["recorder_node", "foxglove_node", "hardware_adapter_node", "safety_node", "policy_node", "fleet_policy_node",
               "mav_policy_node", "mav_team_policy_node", "container", "sim_node", "mav_sim_node"]


class SitlError(Exception):
    """The run failed; the message says which node and why."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="marlstack sitl", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="deployment YAML (e.g. launch/robotarium_nav4.yaml; a MAV team: launch/cable3.yaml)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds to run after the simulator starts (default 30)")
    p.add_argument("--until-goals", action="store_true", help="stop early, once every robot has reached its goal (coverage: every landmark is covered; a scenario on the task topic: the scenario solved; a MAV team: the mission flown and landed)")
    p.add_argument("--record", metavar="BAG", help="record a rosbag2 bag (MCAP storage) to this new directory, e.g. out/run.mcap")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--foxglove", type=int, nargs="?", const=8765, metavar="PORT",
                   help="live view: stream the run to Foxglove on ws://127.0.0.1:PORT (default 8765; the run is then "
                        "not network-isolated, DDS stays on LOCALHOST discovery)")
    p.add_argument("--plot", metavar="PNG", help="a MAV team: draw the mission's load errors per goal to this PNG")
    p.add_argument("--logdir", help="where node logs and the sim summary go (default: a new temp dir)")
    p.add_argument("--arrangement", choices=ARRANGEMENTS,
                   help="how the nodes run: one process each; the onboard nodes (policies, safety, adapters) in "
                        "one fleet container process; or one fleet policy node for every robot (a central computer; "
                        "a MAV team: one team policy node for every MAV); default: the config's 'arrangement', else process_per_node")
    p.add_argument("--drop-poses", type=float, default=0.0, metavar="FRACTION",
                   help="fault injection: the sim node drops this fraction of pose messages")
    p.add_argument("--no-isolate", action="store_true",
                   help="do not re-run inside a loopback-only network namespace (DDS still uses LOCALHOST discovery)")
    c = p.add_argument_group("MAV team vs its JAX evaluation (ros_nodes/mav_compare.py)")
    c.add_argument("--compare-jax", metavar="RUN", help="fly `marlstack eval RUN`'s episodes in SITL and print both successes")
    c.add_argument("--runs", type=int, default=10, help="SITL missions, each with its own noise seed (default 10)")
    c.add_argument("--goals-per-run", type=int, default=3, help="evaluation episodes per mission (default 3)")
    c.add_argument("--eval-seed", type=int, default=0, help="the evaluation's seed (default 0, as marlstack eval)")
    c.add_argument("--episodes", type=int, default=256, help="the evaluation's episode count (default 256, as marlstack eval)")
    c.add_argument("--out", default="out/sitl_compare", help="missions, logs and compare.json (default out/sitl_compare)")
    c.add_argument("--resume", action="store_true", help="keep the runs of --out's compare.json that flew and landed")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        dep = load_deployment(args.config)
    except PlanError as exc:
        print(f"marlstack sitl: {exc}", file=sys.stderr)
        return 2
    if not dep.policy.is_file():
        print(f"marlstack sitl: policy {dep.policy} does not exist; set 'policy' in {dep.path} "
              f"(create one with `marlstack export` or `make demo`)", file=sys.stderr)
        return 2
    refusal = preflight(dep)
    if refusal:
        print(f"marlstack sitl: {refusal}", file=sys.stderr)
        return 2
    if not 0.0 <= args.drop_poses < 1.0:
        print("marlstack sitl: --drop-poses must be in [0, 1)", file=sys.stderr)
        return 2
    record = Path(args.record).resolve() if args.record else None
    if record is not None and record.exists():
        print(f"marlstack sitl: {record} exists already; choose a new --record path", file=sys.stderr)
        return 2
    if not args.no_isolate and args.foxglove is None and can_isolate():  # a live view must be reachable
        env = ros_env()
        env[ISOLATED_FLAG] = "1"
        child = subprocess.Popen(isolated([sys.executable, "-m", "marlstack.ros_nodes.sitl", *argv]), env=env)
        for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C / kill reach the run inside the namespace
            signal.signal(sig, lambda signum, _: child.poll() is None and child.send_signal(signal.SIGINT))
        return child.wait()
    if args.compare_jax:
        from marlstack.ros_nodes.mav_compare import main as compare
        return compare(dep.path, args)
    try:
        report = run(dep, args, record)
    except SitlError as exc:
        print(f"marlstack sitl: {exc}", file=sys.stderr)
        return 1
    if args.plot and report.get("team"):
        from marlstack.ros_nodes.mav_plot import plot_mission
        plot_mission(report["team"], Path(args.plot))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if not report["ok"]:
        print(f"marlstack sitl: FAILED: {report['error']}", file=sys.stderr)
    return 0 if report["ok"] else 1


def preflight(dep) -> str | None:
    """What the policy nodes would refuse at start (model metadata, shapes, a test inference), checked
    here once before any process starts: one line, or None. MAV teams are checked by their nodes."""
    if not isinstance(dep, Deployment):
        return None
    from marlstack.hardware.profile import load_profile
    from marlstack.ros_nodes.policy_node import open_policy
    from marlstack.ros_nodes.runner import StartError
    try:
        open_policy(str(dep.policy), dep.scenario, load_profile(dep.profile), dep.rate_hz, dep.robot_names,
                    dep.robot_names[0], dep.watchdog_periods / dep.rate_hz)
    except StartError as exc:
        return f"{exc} (policy of {dep.path})"
    return None


def faults(robots: dict, until_goals: bool) -> list[str]:
    """Why a ground fleet's run was not a good one, from the sim node's per-robot summary: collisions,
    arena exits, barrier brakes (infeasible certificate: the fleet froze), refused policy outputs and,
    with --until-goals, robots that never arrived. Watchdog stops and clipped commands are reported
    in the table but are the designed response to bad inputs, not failures of the run."""
    out = []
    for name, r in robots.items():
        if r.get("collision_steps"):
            out.append(f"{name} collided ({r['collision_steps']} steps)")
        if r.get("shelf_collision_steps"):
            out.append(f"{name} ran into a static obstacle ({r['shelf_collision_steps']} steps)")
        if r.get("boundary_exit_steps"):
            out.append(f"{name} left the arena ({r['boundary_exit_steps']} steps)")
        if r.get("barrier_brakes"):
            out.append(f"{name} braked by the barrier certificate in {r['barrier_brakes']} solves (infeasible: "
                       f"robots overlapping or starting unsafe)")
        if r.get("output_faults"):
            out.append(f"{name}'s policy gave {r['output_faults']} unusable outputs (non-finite or implausible)")
        if until_goals and "goal_reached" in r and not r["goal_reached"]:
            far = r.get("final_goal_distance_m")  # None: a task-topic scenario's success flag, no distance
            out.append(f"{name} did not reach its goal" + ("" if far is None else f" (final distance {far} m)"))
    return out


def run(dep, args, record: Path | None) -> dict:
    logdir = Path(args.logdir) if args.logdir else Path(tempfile.mkdtemp(prefix="marlstack-sitl-"))
    summary_path = logdir.resolve() / "sim_summary.json"
    summary_path.unlink(missing_ok=True)  # its appearance is how we know the sim has started
    arrangement = getattr(args, "arrangement", None) or getattr(dep, "arrangement", ARRANGEMENTS[0])
    specs = fleet_plan(dep, sitl=True, record=record, summary_path=summary_path, arrangement=arrangement)
    if args.foxglove is not None:
        from marlstack.ros_nodes.foxglove_node import node_spec
        specs.append(node_spec(dep, args.foxglove))
    if args.drop_poses:  # --drop-poses overrides the deployment's sim.pose_drop
        specs = [dataclasses.replace(s, parameters={**s.parameters, "drop_pose_fraction": args.drop_poses})
                 if s.executable == "sim_node" else s for s in specs]
    specs = arrange(specs, arrangement)
    stop = {"requested": False}
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.update(requested=True))
    sup = Supervisor(ros_env(), logdir)
    error = None
    cpu: dict[str, float] = {}
    started = time.monotonic()
    try:
        # Recorder first (it sees everything), the sim last (the robots wait for their nodes).
        for s in sorted(specs, key=lambda s: START_ORDER.index(s.executable)):
            sup.start(s)
        sim_start = None
        while not stop["requested"]:
            dead, failed = sup.exited(), sup.failures()
            if dead:
                p = dead[0]
                hosting = f" (hosting {', '.join(h.fqn for h in p.spec.hosted)})" if p.spec.hosted else ""
                error = (f"node {p.label}{hosting} exited with code {p.popen.returncode} during the run; its log ({p.log}) "
                         f"ends:\n{p.tail()}")
                break
            if failed:
                p, node, why = failed[0]
                error = (f"node {node} failed inside {p.label} during the run ({why}; the container stopped it and ran "
                         f"on); its log ({p.log}) ends:\n{p.tail(20)}")
                break
            now = time.monotonic()
            if sim_start is None:
                if summary_path.exists():
                    sim_start, cpu_start = now, sup.cpu_seconds()
                elif now - started > START_TIMEOUT_S:
                    error = f"the sim node did not start within {START_TIMEOUT_S:.0f} s (logs in {logdir})"
                    break
            elif now - sim_start >= args.duration or (args.until_goals and _all_arrived(summary_path, SETTLE_S)):
                break
            time.sleep(POLL_S)
        if sim_start is not None:  # CPU share of each node while the fleet was running
            window = time.monotonic() - sim_start
            cpu = {n: round(100 * (t - cpu_start.get(n, 0.0)) / window, 1) for n, t in sup.cpu_seconds().items()}
    finally:
        codes = sup.stop(STOP_ORDER)
        sup.kill_all()
    bad = {name: code for name, code in codes.items() if not clean_exit(code)}
    if error is None and bad:
        tails = {p.label: p.tail() for p in sup.procs if p.label in bad}
        error = "node(s) did not stop cleanly: " + "; ".join(
            f"{n} (exit {c} after {sup.stop_seconds.get(n, 0.0):.1f} s; its log ends:\n{tails[n]})" for n, c in bad.items())
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    if error is None and summary is None:
        error = f"the sim node wrote no summary (logs in {logdir})"
    if error is None and record is not None and not (record / "metadata.yaml").exists():
        error = f"the recorder did not close its bag {record} (log: {logdir})"
    latencies = summary.pop("all_latencies_ms", []) if summary else []
    robots = (summary.get("robots") or summary.get("mavs", {})) if summary else {}
    found = faults(robots, args.until_goals and not stop["requested"]) if summary and "robots" in summary else []
    if error is None and found:
        error = "; ".join(found)
    team = {k: v for k, v in summary.items() if k not in ("robots", "mavs")} if summary and "mavs" in summary else None
    return {"ok": error is None, "error": error, "interrupted": stop["requested"], "config": str(dep.path),
            "safety_mode": getattr(dep, "safety_mode", "none"), "scenario": dep.scenario, "team": team,
            "arrangement": arrangement,
            "done_at_s": summary["done_at_s"] if summary else None,
            **{k: summary[k] for k in ("success_label", "items_delivered", "items_requested") if summary and k in summary},
            "num_robots": len(dep.robot_names), "bag": str(record) if record else None, "logdir": str(logdir),
            "elapsed_s": summary["elapsed_s"] if summary else None,
            "robots": robots, "faults": found, "exit_codes": codes,
            "teardown_wedged": sorted(n for n, c in codes.items() if c == EXIT_TEARDOWN_WEDGED), "stop_s": sup.stop_seconds, "cpu_percent": cpu,
            "latency_ms": _quantiles(latencies)}


def _footer(report: dict) -> list[str]:
    """Where the bag and logs are, and any node whose DDS teardown hung after it saved its work."""
    out = [f"bag: {report['bag'] or '(not recorded; use --record)'}", f"logs: {report['logdir']}"]
    if report.get("teardown_wedged"):
        out.append(f"warning: DDS teardown hung after the work was saved in {', '.join(report['teardown_wedged'])} "
                   f"(exit {EXIT_TEARDOWN_WEDGED}; stacks in their logs)")
    return out


def _all_arrived(summary_path: Path, settle_s: float) -> bool:
    """The task is done (every robot arrived; coverage: every landmark covered) for `settle_s` already."""
    try:
        doc = json.loads(summary_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return doc["done_at_s"] is not None and doc["elapsed_s"] - doc["done_at_s"] >= settle_s


def _quantiles(samples_ms: list[float | None]) -> dict:
    """Latency stats over the whole fleet; None samples are late replies (see sim_node)."""
    from marlstack.ros_nodes.sim_node import latency_stats
    return latency_stats([math.inf if x is None else x / 1e3 for x in samples_ms])


def format_report(report: dict) -> str:
    if report.get("team") is not None:
        return format_team_report(report)
    head = ["robot", "goal", "reached_at_s", "collision_steps", "shelf_collision_steps", "boundary_exit_steps",
            "interventions", "watchdog_stops",
            "barrier_brakes", "clipped_commands", "output_faults"]
    rows = [[name, "yes" if r["goal_reached"] else "no", "-" if r["reached_at_s"] is None else f"{r['reached_at_s']:.2f}",
             *(str(r.get(k, 0)) for k in head[3:])] for name, r in report["robots"].items()]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    lat = report["latency_ms"]
    out = [f"== marlstack sitl: {report['num_robots']} robots, {report['safety_mode']} safety, "
           f"{report['elapsed_s']} s simulated, {report['arrangement']} ==", line(head), line(["-" * w for w in widths]), *map(line, rows)]
    for name, r in report["robots"].items():
        if r.get("stop_reasons"):
            out.append(f"{name} stopped because: " + "; ".join(f"{k} (x{v})" for k, v in r["stop_reasons"].items()))
    if lat["count"]:
        ms = lambda v: "> 1 period (late)" if v is None else f"{v:.2f} ms"  # noqa: E731
        out.append(f"pose -> cmd_vel latency: p50 {ms(lat['p50'])}, p99 {ms(lat['p99'])} "
                   f"({lat['count']} samples, {lat['late']} late)")
    task = {"navigation": "every robot arrived", "coverage": "every landmark covered",
            "rware": "every requested item delivered"}.get(report["scenario"], f"{report['scenario']} solved")
    done = report["done_at_s"]
    out.append(f"{task}: {'no' if done is None else f'at {done:.2f} s'}")
    if "success_label" in report:  # a scenario on the task topic: what its per-robot success counts
        won = sum(r["goal_reached"] for r in report["robots"].values())
        out.append(f"success: {won} of {report['num_robots']} {report['success_label']}")
    if "items_requested" in report:
        out.append(f"items delivered: {report['items_delivered']} of {report['items_requested']}")
    return "\n".join(out + _footer(report))


def format_team_report(report: dict) -> str:
    """A MAV team's mission: per goal the load's errors and success, then separation, slack, tilt, landing."""
    t, lat = report["team"], report["latency_ms"]
    out = [f"== marlstack sitl: {report['num_robots']} MAVs, {t['sim_time_s']} s simulated, {report['arrangement']} ==",
           "goal  position [m]       quaternion wxyz            success  after_s  final_err_m  final_err_deg  min_err_m  "
           "min_sep_m  slack  max_tilt"]
    for i, g in enumerate(t["goals"]):
        name = f"{i}" if g.get("scored", True) else f"{i} wp"  # a waypoint: not in the success rate
        ok = "yes" if g["success"] else ("crash" if g.get("crashed_after_s") is not None else "no")
        out.append(f"{name:<5} {str([round(v, 2) for v in g['goal_pos']]):<16} {str([round(v, 3) for v in g['goal_quat_wxyz']]):<26} "
                   f"{ok:<8} {g['success_after_s'] if g['success'] else '-':<8} "
                   f"{g['final_position_error_m']!s:<12} {g['final_orientation_error_deg']!s:<14} {g['min_position_error_m']!s:<10} "
                   f"{g.get('min_mav_separation_m', '-')!s:<10} {g.get('slack_events', '-')!s:<6} {g.get('max_tilt_deg', '-')}")
    if t.get("took_off"):
        out.append(f"took off from the ground: airborne (load at the start, set-points flying) at {t['airborne_at_s']} s")
    out.append(f"min MAV separation {t['min_mav_separation_m']} m (limit {t['mav_separation_limit_m']} m), "
               f"cable-slack events {t['slack_events']}, max tilt {t['max_tilt_deg']} deg")
    down = f"no, every motor cut: all on the ground at {t['landed_at_s']} s" if t.get("landed_at_s") else "no"
    out.append(f"landed: {'yes, at ' + str(t['landed_at_s']) + ' s' if t['landed'] else down} "
               f"(load set down at {t.get('load_down_at_s')} s, {t['load_touchdown_speed_mps']} m/s); "
               f"flight-controller modes {t['modes']}")
    if t.get("fault") and t.get("after_failure"):   # what the load did after the first fault
        a, names, f = t["after_failure"], list(report["robots"]), t["fault"]
        what = ", ".join(f"{names[c['mav']]} {'killed' if c['cause'] == 'kill' else 'lost its thrust'} at {c['at_s']} s"
                         for c in t["motors_cut"]) or f"{names[f['mav']]}'s odometry stopped at {f['at_s']} s"
        out.append(f"{what}; the load then: largest tilt {a['load_max_tilt_deg']} deg, "
                   f"largest sink {a['load_max_sink_mps']} m/s, down after {a['load_down_after_s']} s, "
                   f"tilt at touch-down {a.get('load_touchdown_tilt_deg')} deg")
    stops = {m: (r["watchdog_stops"], r["hold_steps"]) for m, r in report["robots"].items()}
    out.append(f"policy-node watchdog stops / hold steps per MAV: {stops}")
    certified = {m: (r.get("safety_interventions", 0), r.get("safety_infeasible", 0)) for m, r in report["robots"].items()}
    out.append(f"barrier interventions / infeasible solves per MAV: {certified}")
    if lat["count"]:
        ms = lambda v: "> 1 period (late)" if v is None else f"{v:.2f} ms"  # noqa: E731
        out.append(f"/load/odom -> setpoint latency: p50 {ms(lat['p50'])}, p99 {ms(lat['p99'])} ({lat['count']} samples)")
    return "\n".join(out + _footer(report))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
