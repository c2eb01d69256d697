"""`marlstack replay`: inspect, re-publish, re-evaluate, report on and convert robot and flight logs.

    marlstack replay info LOG [--json]
    marlstack replay play BAG [--rate X] [--topics T ...] [--loop] [--clock]
                              [--actuation (--namespace NS | --domain-id N)]
    marlstack replay eval BAG [BAG ...] --policy policy.onnx [--config fleet.yaml] [--offsets S ...] [-o DIR] [--json]
    marlstack replay report LOG -o DIR [--profile NAME | --config fleet.yaml]
    marlstack replay csv LOG [TOPIC | --topic TOPIC] -o file.csv
    marlstack replay convert FLIGHT_LOG -o out.mcap [--namespace NS]
    marlstack replay compare FLIGHT_LOG FLIGHT_LOG ... -o DIR [--offsets S S ...]
                             [--origins E,N,U E,N,U ... | --shared-frame]

LOG is a rosbag2 bag (MCAP / sqlite3) or a flight-controller log (PX4 .ulg, ArduPilot .bin /
.tlog, Crazyflie uSD). Log tooling for any machine: numpy, rosbags, pyulog, pymavlink, matplotlib and
onnxruntime; rclpy only for `play`; never JAX. The input log is only read. Errors are one line
on stderr, exit code 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_USAGE = 2
DEFAULT_BARRIER_FORM = "unicycle_walls"  # the safety node's default form (ros_nodes.plan)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="marlstack replay", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", metavar="<command>", required=True)
    bag_help = "rosbag2 directory (MCAP or sqlite3 storage) or a single .mcap / .db3 file"
    log_help = bag_help + ", or a flight log (PX4 .ulg, ArduPilot .bin / .tlog, Crazyflie uSD log)"

    s = sub.add_parser("info", help="topics, types, counts, rates, duration, gaps, drops and damage")
    s.add_argument("bag", help=log_help)
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")

    s = sub.add_parser("play", help="re-publish on ROS 2 with the original timing")
    s.add_argument("bag", help=bag_help)
    s.add_argument("--rate", type=float, default=1.0, help="time scale: 2 plays twice as fast (default 1)")
    s.add_argument("--topics", nargs="+", metavar="TOPIC", help="only these topics (default: all)")
    s.add_argument("--loop", action="store_true", help="start over at the end until Ctrl-C")
    s.add_argument("--clock", action="store_true", help="also publish the log time on /clock (for use_sim_time)")
    s.add_argument("--actuation", action="store_true",
                   help="also re-publish command topics (cmd_vel, set-points, thrusts: left out by default, as "
                        "they drive real vehicles); needs --namespace or --domain-id")
    s.add_argument("--namespace", metavar="NS", help="re-publish every topic under /NS (e.g. /NS/robot_0/pose)")
    s.add_argument("--domain-id", type=int, metavar="N", help="ROS domain to publish on (default: the shell's)")
    s.add_argument("--start-delay", type=float, default=0.5, metavar="S",
                   help="wait up to S seconds for every topic to have a subscriber before the first "
                        "message (default 0.5)")

    s = sub.add_parser("eval", help="re-run a policy on the logged inputs and compare with the logged commands "
                                    "(cmd_vel_nominal; a MAV team's set-points)")
    s.add_argument("bag", help=bag_help)
    s.add_argument("more", nargs="*", metavar="LOG",
                   help="a MAV team: more bags of the same run, one per vehicle (each recorded on its own clock); "
                        "each topic is read from one of them, all put on the first one's clock")
    s.add_argument("--offsets", type=float, nargs="+", metavar="S",
                   help="with several logs: seconds added to each log's clock, one per log (default: from the "
                        "sensor samples they share, by header stamp)")
    s.add_argument("--policy", required=True, help="policy.onnx written by `marlstack export`")
    s.add_argument("--config", help="deployment YAML of the run (robot order, remaps, rate, watchdog)")
    s.add_argument("-o", "--out", help="also write eval_commands.csv and eval_commands.png here")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.add_argument("--fail-above", type=float, metavar="TOL",
                   help="exit with status 1 if any |policy - logged| exceeds TOL (for CI)")

    s = sub.add_parser("report", help="metrics (JSON + CSV) and pictures of a run; for a flight log: "
                                      "trajectory, tracking, saturation, battery, modes")
    s.add_argument("bag", help=log_help)
    s.add_argument("-o", "--out", required=True, help="output directory")
    s.add_argument("--profile", help="vehicle profile whose rules define collisions and the arena")
    s.add_argument("--config", help="deployment YAML of the run (profile, robot order, remaps, barrier form)")
    s.add_argument("--barrier-form", help="barrier form whose safety radius is drawn "
                                          f"(default: the config's, else {DEFAULT_BARRIER_FORM})")
    s.add_argument("--intervention-tol", type=float, help="smallest change of v or omega by the safety filter counted as "
                                                          "an intervention (default: the safety node's, 1e-3)")
    s.add_argument("--no-pictures", action="store_true", help="only metrics.json and the CSVs (fast on long logs)")
    s.add_argument("--json", action="store_true", help="print the metrics JSON instead of a summary")

    s = sub.add_parser("csv", help="export one topic to CSV (one column per flattened field)")
    s.add_argument("bag", help=log_help)
    s.add_argument("topic", nargs="?", help="topic name, e.g. /robot_0/pose, or a flight log's stream, "
                                            "e.g. vehicle_attitude (instance 1: battery_status.1)")
    s.add_argument("--topic", dest="topic_opt", metavar="TOPIC", help="the same, as an option")
    s.add_argument("-o", "--out", required=True, help="CSV file to write")

    s = sub.add_parser("convert", help="a flight log as standard ROS 2 messages in a rosbag2 MCAP bag")
    s.add_argument("bag", metavar="flight_log", help="PX4 .ulg or ArduPilot .bin / .tlog")
    s.add_argument("-o", "--out", required=True, help="bag to create (a rosbag2 directory at this path, "
                                                      "holding the .mcap file; must not exist)")
    s.add_argument("--namespace", default="vehicle", help="topic namespace: /NS/odom, /NS/imu, ... (default vehicle)")

    s = sub.add_parser("compare", help="several flight logs (one per vehicle) on one time axis and in one frame, "
                                       "plotted together, with their closest approach")
    s.add_argument("logs", nargs="+", metavar="flight_log", help="PX4 .ulg or ArduPilot .bin / .tlog files")
    s.add_argument("-o", "--out", required=True, help="output directory")
    s.add_argument("--offsets", type=float, nargs="+", metavar="S",
                   help="seconds added to each log's clock, one per log (default: align by UTC from GPS)")
    s.add_argument("--origins", nargs="+", metavar="E,N,U",
                   help="where each log's local origin lies in one common frame (m, east,north,up; one per log), "
                        "for vehicles without GPS (default: from each log's GPS origin)")
    s.add_argument("--shared-frame", action="store_true",
                   help="the logs' local frames are one already (one motion-capture / Lighthouse / UWB system)")
    s.add_argument("--json", action="store_true", help="print alignment.json instead of a summary")
    return p


def _info(args: argparse.Namespace, bag: Any) -> int:
    from marlstack.replay.info import bag_info, format_info
    info = bag_info(bag)
    if not sum(bag.status.counts.values()) and bag.status.stops:  # damaged before its first message
        return _fail(f"info: nothing readable in {bag.path}: {bag.status.stops[0]}")
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def _play(args: argparse.Namespace, bag: Any) -> int:
    from marlstack.replay.play import ActuationRefused, play
    if not args.rate > 0:
        return _fail("play: --rate must be > 0")
    if args.domain_id is not None and not 0 <= args.domain_id <= 232:
        return _fail("play: --domain-id must be 0..232")
    try:
        n = play(bag, rate=args.rate, topics=args.topics, loop=args.loop, clock=args.clock,
                 start_delay_s=args.start_delay, say=lambda s: print(s, file=sys.stderr),
                 actuation=args.actuation, namespace=args.namespace, domain_id=args.domain_id)
    except KeyError as exc:
        return _fail(f"play: topic(s) {exc.args[0]} not in {bag.path} (see `marlstack replay info`)")
    except ActuationRefused as exc:
        return _fail(f"play: {exc}")
    print(f"published {n} messages")
    return 0


def _eval(args: argparse.Namespace, bag: Any) -> int:
    from marlstack.replay.evaluate import evaluate, format_result, write_outputs
    from marlstack.replay.fleet import load_config
    if args.more:
        from marlstack.replay.bag import Bag
        from marlstack.replay.merge import MergedBag
        bag = MergedBag([bag] + [Bag(p) for p in args.more], args.offsets)
    elif args.offsets:
        return _fail("eval: --offsets needs several logs")
    result = evaluate(bag, args.policy, load_config(args.config))
    if args.out:
        write_outputs(result, Path(args.out))
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "series"}, indent=2))
    else:
        print(format_result(result))
    if args.fail_above is not None and result["max_abs_diff"] is not None and result["max_abs_diff"] > args.fail_above:
        print(f"replay eval: max |policy - logged| = {result['max_abs_diff']:.3g} exceeds {args.fail_above:g}",
              file=sys.stderr)
        return 1
    return 0


def _report(args: argparse.Namespace, bag: Any) -> int:
    from marlstack.hardware.profile import load_profile
    from marlstack.replay import metrics
    from marlstack.replay.fleet import load_config
    from marlstack.replay.report import FILES, format_summary, write_report
    from tqdm import tqdm

    config = load_config(args.config)
    name = args.profile or (config.profile if config is not None else None)
    if name is None:
        return _fail("report: say which vehicle profile's rules apply: --profile NAME (e.g. gritsbot_x, mav_corl25) "
                     "or --config deployment.yaml")
    profile = load_profile(name)
    if _is_team(bag, config):
        return _team_report(args, bag, profile, config)
    if profile.kind == "mav_team":
        from marlstack.ros_nodes import topics
        return _fail(f"report: {bag.path} has no {topics.LOAD_ODOM.path()}: a MAV team's report follows the load; "
                     f"for one vehicle's flight, `marlstack replay report FLIGHT_LOG` reads the flight log itself")
    form = args.barrier_form or (config.safety_form if config is not None else DEFAULT_BARRIER_FORM)
    if not hasattr(profile.barrier, form):
        return _fail(f"report: profile {profile.name} has no barrier form {form!r}")
    tol = metrics.INTERVENTION_TOL if args.intervention_tol is None else args.intervention_tol
    out = Path(args.out)
    with tqdm(total=4, desc="pictures", disable=args.json or args.no_pictures or not sys.stderr.isatty()) as bar:
        summary = write_report(bag, out, profile, getattr(profile.barrier, form).safety_radius, config, tol, bar,
                               pictures=not args.no_pictures)
    files = [f for f in FILES if f.endswith((".json", ".csv")) or not args.no_pictures]
    print(json.dumps(summary, indent=2) if args.json else
          format_summary(summary) + f"\n\nwrote {', '.join(files)} to {out}")
    return 0


def _is_team(bag: Any, config: Any | None) -> bool:
    """A MAV team's bag: the config has a `mavs:` list, or the bag holds the load's odometry."""
    from marlstack.ros_nodes import topics
    if config is not None:
        return hasattr(config, "mavs")
    if not bag.types:
        for _ in bag.records():
            pass
    return topics.LOAD_ODOM.path() in bag.types


def _team_report(args: argparse.Namespace, bag: Any, profile: Any, config: Any | None) -> int:
    from marlstack.replay.team_report import FILES, format_team_summary, write_team_report
    if profile.kind != "mav_team":
        return _fail(f"report: {bag.path} is a MAV team's bag; profile {profile.name} is a {profile.kind!r} profile "
                     f"(give --profile of the team, e.g. mav_corl25)")
    summary = write_team_report(bag, Path(args.out), profile, config, pictures=not args.no_pictures)
    files = [f for f in FILES if f.endswith(".json") or not args.no_pictures]
    print(json.dumps(summary, indent=2) if args.json else
          format_team_summary(summary) + f"\n\nwrote {', '.join(files)} to {args.out}")
    return 0


def _csv(args: argparse.Namespace, bag: Any) -> int:
    from marlstack.replay.export import topic_to_csv
    args.topic = args.topic or args.topic_opt
    if not args.topic:
        return _fail("csv: say which topic: csv BAG TOPIC -o file.csv")
    try:
        n = topic_to_csv(bag, args.topic, Path(args.out))
    except KeyError:
        return _fail(f"csv: topic {args.topic} is not in {bag.path}; topics: {', '.join(sorted(bag.types))}")
    if not n and bag.status.stops:
        return _fail(f"csv: nothing readable on {args.topic} in {bag.path}: {bag.status.stops[0]}")
    print(f"wrote {n} rows to {args.out}")
    for w in bag.status.stops + bag.status.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def _fail(msg: str) -> int:
    print(f"marlstack replay {msg}", file=sys.stderr)
    return EXIT_USAGE


def _warn_problems(log: Any) -> None:
    for line in log.problems:
        print(f"warning: {log.path.name}: {line}", file=sys.stderr)


def _flight_info(args: argparse.Namespace, log: Any) -> int:
    from marlstack.replay.flight_info import flight_info, format_flight_info
    info = flight_info(log)
    print(json.dumps(info, indent=2) if args.json else format_flight_info(info))
    return 0


def _flight_report(args: argparse.Namespace, log: Any) -> int:
    from marlstack.replay.flight_report import FILES, write_report
    out = Path(args.out)
    summary = write_report(log, out, pictures=not args.no_pictures)
    files = [f for f in FILES if f.endswith(".json") or not args.no_pictures]
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{log.format}, {summary['duration_s']:.1f} s; wrote {', '.join(files)} to {out}")
        _warn_problems(log)
    return 0


def _flight_csv(args: argparse.Namespace, log: Any) -> int:
    from marlstack.replay.flight_info import stream_to_csv
    name = args.topic or args.topic_opt
    if not name:
        return _fail(f"csv: say which stream (--topic NAME); streams: {', '.join(sorted(log.streams))}")
    try:
        n = stream_to_csv(log, name, Path(args.out))
    except KeyError:
        return _fail(f"csv: stream {name} is not in {log.path}; streams: {', '.join(sorted(log.streams))}")
    print(f"wrote {n} rows to {args.out}")
    _warn_problems(log)
    return 0


def _flight_convert(args: argparse.Namespace, log: Any) -> int:
    from marlstack.replay.convert import convert
    counts = convert(log, Path(args.out), args.namespace)
    print(f"wrote {sum(counts.values())} messages on {len(counts)} topics to {args.out}: "
          + ", ".join(f"{t} {n}" for t, n in sorted(counts.items())))
    _warn_problems(log)
    return 0


def _not_for_flight_logs(args: argparse.Namespace, log: Any) -> int:
    return _fail(f"{args.cmd}: {log.path} is a {log.format} log, not a rosbag2 bag; "
                 f"`marlstack replay convert {log.path} -o run.mcap` makes one")


def _not_for_bags(args: argparse.Namespace, bag: Any) -> int:
    return _fail(f"{args.cmd}: {bag.path} is a rosbag2 bag already; convert reads flight logs (.ulg, .bin, .tlog)")


COMMANDS = {"info": _info, "play": _play, "eval": _eval, "report": _report, "csv": _csv, "convert": _not_for_bags}
FLIGHT_COMMANDS = {"info": _flight_info, "report": _flight_report, "csv": _flight_csv, "convert": _flight_convert,
                   "play": _not_for_flight_logs, "eval": _not_for_flight_logs}


def _compare(args: argparse.Namespace) -> int:
    from marlstack.replay.align import FILES, write_comparison
    from marlstack.replay.flightlog import flight_format, open_flight_log
    not_flight = [p for p in args.logs if flight_format(Path(p)) is None]
    if not_flight:
        return _fail(f"compare: {', '.join(not_flight)}: not a flight log (.ulg, .bin, .tlog)")
    try:
        origins = [[float(v) for v in o.split(",")] for o in args.origins] if args.origins else None
        if origins is not None and any(len(o) != 3 for o in origins):
            raise ValueError
    except ValueError:
        return _fail(f"compare: --origins takes E,N,U in metres per log (e.g. 0,0,0 12.5,-3,0), not {args.origins}")
    if origins is not None and args.shared_frame:
        return _fail("compare: --origins and --shared-frame are two answers to one question; give one")
    logs = [open_flight_log(p) for p in args.logs]
    doc = write_comparison(logs, Path(args.out), args.offsets, origins, args.shared_frame)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    for r in doc["logs"]:
        print(f"{r['log']}: {r['start_s']:.3f} .. {r['end_s']:.3f} s on the common axis ({r['method']})")
    frame = doc["frame"]
    print(f"positions: {frame['method']}" + ("" if frame["one_frame"] else f" ({frame['why']})"))
    if doc["separation"] is not None:
        sep = doc["separation"]
        print(f"closest approach: {sep['min_m']:.3f} m ({sep['pair']}) at {sep['t_s']:.3f} s")
    print(f"wrote {', '.join(FILES)} to {args.out}")
    for log in logs:
        _warn_problems(log)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    from marlstack.hardware.profile import ProfileError
    from marlstack.policies.spec import PolicyError
    from marlstack.replay.align import AlignError
    from marlstack.replay.bag import Bag, BagError
    from marlstack.replay.convert import ConvertError
    from marlstack.replay.fleet import FleetError
    from marlstack.replay.flightlog import FlightLogError, flight_format, open_flight_log
    from marlstack.replay.merge import MergeError
    try:
        if args.cmd == "compare":
            return _compare(args)
        if flight_format(Path(args.bag)) is not None:
            return FLIGHT_COMMANDS[args.cmd](args, open_flight_log(args.bag))
        bag = Bag(args.bag)
        if args.cmd in ("eval", "report", "csv") and not bag.types:  # no metadata.yaml: topics from one pass
            for _ in bag.records():
                pass
            if not bag.types and bag.status.stops:
                return _fail(f"{args.cmd}: nothing readable in {bag.path}: {bag.status.stops[0]}")
        return COMMANDS[args.cmd](args, bag)
    except (BagError, FleetError, ProfileError, PolicyError, FlightLogError, ConvertError, AlignError, MergeError) as exc:
        return _fail(f"{args.cmd}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
