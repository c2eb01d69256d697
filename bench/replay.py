"""`marlstack bench replay`: `replay info` and `replay report` on logs, against the log libraries' own tools.

Flight log: the real PX4 ULog of the tests (4 MB). Ours: `info` (pyulog parse + the framing walk +
the common view + stream statistics) and `report` (the same + summary + six PNGs); baseline, in
the same run: pyulog's own `ulog_info` (parse + `show_info`, printed into a buffer).
Bag: a synthetic rosbag2 MCAP bag of `--bag-mb` MB as our recorder writes a fleet run (`write_bag`: 10
robots at 30 Hz, pose + cmd_vel_nominal + cmd_vel, written once to a temporary directory). `info`
against the `mcap` library iterating the same file's messages (no decoding, like ours); `report`
(metrics.json, three CSVs, three PNGs and the GIF, gritsbot_x rules) against rosbags reading and
deserialising every message (what the report did message by message before it read columns).
MAV team bag: the tests' 1.6 s SITL cut of a 3-MAV cable team (`tests/data/mav_team/cable3_wall`) tiled to
`--team-mb` MB (`write_team_bag`); the team `report` (summary.json and four PNGs, read as columns) against the
same report from the message-by-message read it replaced (`replay.team.read_team`: rosbags' deserialiser + the
nodes' `mav_io` conversions per message), and `csv` of one MAV's set-points against the message-by-message CSV
writer (`export.flatten` per decoded message, the code before the column path; the file is the same).
Every timed run is kept beside the median (`runs`, `baseline_runs`); ours and the baseline alternate
case by case in one process, so both see the same machine load.
Peak memory: tracemalloc's peak of Python allocations (numpy arrays included) during one call, as
a multiple of the file size, in a pass of its own (tracing slows the timed pass). Goals (issue 16):
info <= 2 s, report <= 15 s, peak memory <= 4x the file size.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import numpy as np

from marlstack.bench.report import Row

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
ULOG = DATA / "flight_logs" / "px4_sample.ulg"
TEAM_CUT = DATA / "mav_team" / "cable3_wall"
TEAM_PROFILE = "mav_corl25"
MCAP_BYTES_PER_MESSAGE = 47  # a message's MCAP record and index entry, beside its payload (rosbags' writer)
BAG_PROFILE = "gritsbot_x"
BAG_BYTES_PER_ROBOT_STEP = 330  # a pose, two twists, their MCAP records and message index entries
GOALS = {"info": 2.0, "report": 15.0, "memory": 4.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ulog", default=str(ULOG), help="PX4 log to measure (default: the tests' 4 MB real log)")
    parser.add_argument("--bag-mb", type=float, default=100.0, help="size of the synthetic bag in MB (0: skip)")
    parser.add_argument("--team-mb", type=float, default=100.0,
                        help="size of the MAV team bag in MB (the tests' SITL cut tiled; 0: skip)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per case; the median is reported")
    parser.add_argument("--no-pictures", action="store_true",
                        help="reports without their pictures (metrics and CSVs only; a quick check of the bench)")


def _timed(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float], list[float]]:
    """(median, every run, every run's CPU time) in seconds. The CPU time (this process, all threads) is
    what the run would take on an idle machine; on a shared one the wall time also holds the waits."""
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times), [round(x, 3) for x in times], [round(x, 3) for x in cpu]


def _time_row(params: dict[str, Any], ours: Callable[[], Any], base: Callable[[], Any], base_name: str,
              goal: float, repeats: int) -> Row:
    """Ours and the baseline timed in turn (same run, same machine load), every run kept beside the median."""
    base_s, base_runs, base_cpu = _timed(base, repeats)
    ours_s, ours_runs, ours_cpu = _timed(ours, repeats)
    return Row(params, "time", "s", ours_s, base_s, base_name, higher_is_better=False,
               extra={"goal": f"<= {goal} s", "runs": ours_runs, "baseline_runs": base_runs, "cpu_runs": ours_cpu,
                      "baseline_cpu_runs": base_cpu})


def _peak(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    try:
        fn()
        return float(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


def _pyulog_info(path: Path) -> None:
    from pyulog import ULog
    from pyulog.info import show_info

    with contextlib.redirect_stdout(io.StringIO()):
        show_info(ULog(str(path)), False)


def _our_info(path: Path) -> None:
    from marlstack.replay.flight_info import flight_info
    from marlstack.replay.flightlog import open_flight_log

    flight_info(open_flight_log(path))


def _our_report(path: Path, out: Path, pictures: bool) -> None:
    from marlstack.replay.flight_report import write_report
    from marlstack.replay.flightlog import open_flight_log

    write_report(open_flight_log(path), out, pictures=pictures)


def write_bag(path: Path, megabytes: float, robots: int = 10, rate_hz: float = 30.0) -> Path:
    """A rosbag2 MCAP bag of about `megabytes` MB as our recorder writes a fleet run: per robot a latched
    goal, then at `rate_hz` its pose (PoseStamped, logged with up to 0.8 ms of receive jitter, so every
    pose arrival is a sample of the report's time base), cmd_vel_nominal 4 ms later and cmd_vel 0.5 ms
    after that. Each robot circles its goal inside the gritsbot_x arena; one control period in seven
    the safety filter changes omega by 0.2 rad/s (an intervention)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    T = store.types
    pose_t, twist_t = "geometry_msgs/msg/PoseStamped", "geometry_msgs/msg/Twist"

    def pose(x: float, y: float, yaw: float, t_ns: int) -> bytes:
        stamp = T["builtin_interfaces/msg/Time"](sec=t_ns // 10 ** 9, nanosec=t_ns % 10 ** 9)
        p = T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=x, y=y, z=0.0),
                                        orientation=T["geometry_msgs/msg/Quaternion"](
                                            x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2)))
        return store.serialize_cdr(T[pose_t](header=T["std_msgs/msg/Header"](stamp=stamp, frame_id="world"), pose=p),
                                   pose_t)

    def twist(v: float, omega: float) -> bytes:
        vec = T["geometry_msgs/msg/Vector3"]
        return store.serialize_cdr(T[twist_t](linear=vec(x=v, y=0.0, z=0.0), angular=vec(x=0.0, y=0.0, z=omega)),
                                   twist_t)

    per_step = robots * BAG_BYTES_PER_ROBOT_STEP
    steps = max(1, int(megabytes * 1e6 / per_step))
    centres = [(-1.2 + 0.6 * (i % 5), -0.5 + (i // 5 % 2) - 0.2 * (i // 10)) for i in range(robots)]
    jitter = np.random.default_rng(0).integers(0, 800_000, (steps, robots))
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conn = {(r, kind): w.add_connection(f"/robot_{r}/{kind}", typ, typestore=store)
                for r in range(robots) for kind, typ in (("goal", pose_t), ("pose", pose_t),
                                                          ("cmd_vel_nominal", twist_t), ("cmd_vel", twist_t))}
        for r in range(robots):
            w.write(conn[r, "goal"], 10 ** 9, pose(*centres[r], 0.0, 10 ** 9))
        for k in range(steps):
            t_ns = 10 ** 9 + round(k * 1e9 / rate_hz)
            for r in range(robots):
                phase = 0.3 * (t_ns / 1e9) + r
                x, y = centres[r][0] + 0.28 * math.cos(phase), centres[r][1] + 0.28 * math.sin(phase)
                t_log = t_ns + int(jitter[k, r])
                w.write(conn[r, "pose"], t_log, pose(x, y, phase + math.pi / 2, t_ns))
                w.write(conn[r, "cmd_vel_nominal"], t_log + 4_000_000, twist(0.084, 0.3))
                w.write(conn[r, "cmd_vel"], t_log + 4_500_000, twist(0.084, 0.3 + 0.2 * ((k // 30 + r) % 7 == 0)))
    return path


def _our_bag_report(path: Path, out: Path, pictures: bool) -> None:
    from marlstack.hardware.profile import load_profile
    from marlstack.replay.bag import Bag
    from marlstack.replay.report import write_report

    profile = load_profile(BAG_PROFILE)
    write_report(Bag(path), out, profile, profile.barrier.unicycle_walls.safety_radius, pictures=pictures)


def _rosbags_decode_all(path: Path) -> None:
    """Baseline: what reading the bag message by message costs (rosbags' reader + CDR deserialiser)."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    with Reader(path) as reader:
        for conn, _, raw in reader.messages():
            store.deserialize_cdr(raw, conn.msgtype)


def _our_bag_info(path: Path) -> None:
    from marlstack.replay.bag import Bag
    from marlstack.replay.info import bag_info

    bag_info(Bag(path))


def _mcap_iterate(path: Path) -> None:
    from mcap.reader import make_reader

    for f in path.glob("*.mcap"):
        with f.open("rb") as fh:
            for _ in make_reader(fh).iter_messages():
                pass


def write_team_bag(path: Path, megabytes: float) -> Path:
    """The tests' 1.6 s MAV team cut tiled to about `megabytes` MB (uncompressed MCAP): tile k shifted by 2k s,
    log times and header stamps alike (every message of the cut starts with a std_msgs/Header, whose
    `stamp.sec` is the int32 right after the CDR encapsulation header)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from marlstack.replay.bag import Bag

    store = get_typestore(Stores.ROS2_KILTED)
    cut = list(Bag(TEAM_CUT).records())
    tiles = max(1, round(megabytes * 1e6 / sum(len(r.raw) + MCAP_BYTES_PER_MESSAGE for r in cut)))
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conn = {}
        for rec in cut:
            if rec.topic not in conn:
                conn[rec.topic] = w.add_connection(rec.topic, rec.msgtype, typestore=store)
        sec = np.array([int.from_bytes(r.raw[4:8], "little", signed=True) for r in cut])
        for k in range(tiles):
            for rec, s in zip(cut, sec):
                raw = bytearray(rec.raw)
                raw[4:8] = int(s + 2 * k).to_bytes(4, "little", signed=True)
                w.write(conn[rec.topic], rec.t_ns + 2 * k * 10 ** 9, bytes(raw))
    return path


def _our_team_report(path: Path, out: Path, pictures: bool) -> None:
    from marlstack.hardware.profile import load_profile
    from marlstack.replay.bag import Bag
    from marlstack.replay.team_report import write_team_report

    write_team_report(Bag(path), out, load_profile(TEAM_PROFILE), pictures=pictures)


def _team_report_per_message(path: Path, out: Path, pictures: bool) -> None:
    """Baseline: the same report from the message-by-message read (`read_team`), as before the column path."""
    from marlstack.hardware.profile import load_profile
    from marlstack.replay import team_arrays, team_report
    from marlstack.replay.bag import Bag
    from marlstack.replay.team import read_team, team_mavs

    bag = Bag(path)
    log = team_arrays.TeamArrays.of(read_team(bag, team_mavs(bag, None)))
    team_report.write_team_report(bag, out, load_profile(TEAM_PROFILE), pictures=pictures, log=log)


def _our_csv(path: Path, topic: str, out: Path) -> None:
    from marlstack.replay.bag import Bag
    from marlstack.replay.export import topic_to_csv

    topic_to_csv(Bag(path), topic, out)


def csv_per_message(path: Path, topic: str, out: Path) -> None:
    """Baseline: the CSV writer before the column path, every message decoded and flattened."""
    import csv

    from marlstack.replay.bag import Bag
    from marlstack.replay.export import flatten

    bag = Bag(path)
    rows, header = [], {"t_log_s": None}
    for rec in bag.records([topic]):
        msg = bag.decode(rec)
        if msg is not None:
            row = {"t_log_s": f"{rec.t_ns / 1e9:.9f}", **dict(flatten(msg))}
            header.update(dict.fromkeys(row))
            rows.append(row)
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(header))
        writer.writeheader()
        writer.writerows(rows)


def run(args: argparse.Namespace) -> list[Row]:
    ulog = Path(args.ulog)
    size = ulog.stat().st_size
    rows, pics = [], not args.no_pictures
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report"
        params = {"log": ulog.name, "MB": round(size / 1e6, 2)}
        rows.append(_time_row({**params, "case": "info"}, lambda: _our_info(ulog), lambda: _pyulog_info(ulog),
                              "pyulog ulog_info", GOALS["info"], args.repeats))
        rows.append(_time_row({**params, "case": "report"}, lambda: _our_report(ulog, out, pics),
                              lambda: _pyulog_info(ulog), "pyulog ulog_info", GOALS["report"], args.repeats))
        base_mem = _peak(lambda: _pyulog_info(ulog)) / size
        for case, fn in (("info", lambda: _our_info(ulog)), ("report", lambda: _our_report(ulog, out, pics))):
            rows.append(Row({**params, "case": case}, "peak memory", "x file size", _peak(fn) / size, base_mem,
                            "pyulog ulog_info", higher_is_better=False, extra={"goal": f"<= {GOALS['memory']}x"}))
        if args.bag_mb > 0:
            bag = write_bag(Path(tmp) / "synthetic", args.bag_mb)
            bag_size = sum(f.stat().st_size for f in bag.glob("*.mcap"))
            params = {"log": "synthetic bag", "MB": round(bag_size / 1e6, 2)}
            rows.append(_time_row({**params, "case": "info"}, lambda: _our_bag_info(bag), lambda: _mcap_iterate(bag),
                                  "mcap iter_messages", GOALS["info"], args.repeats))
            rows.append(_time_row({**params, "case": "report"}, lambda: _our_bag_report(bag, out, pics),
                                  lambda: _rosbags_decode_all(bag), "rosbags read + deserialize every message",
                                  GOALS["report"], args.repeats))
            mem = {"info": (lambda: _our_bag_info(bag), lambda: _mcap_iterate(bag), "mcap iter_messages"),
                   "report": (lambda: _our_bag_report(bag, out, pics), lambda: _rosbags_decode_all(bag),
                              "rosbags read + deserialize every message")}
            for case, (ours, base, name) in mem.items():
                rows.append(Row({**params, "case": case}, "peak memory", "x file size", _peak(ours) / bag_size,
                                _peak(base) / bag_size, name, higher_is_better=False,
                                extra={"goal": f"<= {GOALS['memory']}x"}))
        if args.team_mb > 0:
            team = write_team_bag(Path(tmp) / "team", args.team_mb)
            size = sum(f.stat().st_size for f in team.glob("*.mcap"))
            params = {"log": "MAV team bag", "MB": round(size / 1e6, 2)}
            rows.append(_time_row({**params, "case": "report"}, lambda: _our_team_report(team, out, pics),
                                  lambda: _team_report_per_message(team, out, pics),
                                  "the same report read message by message", GOALS["report"], args.repeats))
            topic, csv_out = "/mav_0/setpoint", Path(tmp) / "setpoints.csv"
            rows.append(_time_row({**params, "case": f"csv {topic}"}, lambda: _our_csv(team, topic, csv_out),
                                  lambda: csv_per_message(team, topic, csv_out),
                                  "csv message by message", GOALS["report"], args.repeats))
            rows.append(Row({**params, "case": "report"}, "peak memory", "x file size",
                            _peak(lambda: _our_team_report(team, out, pics)) / size,
                            _peak(lambda: _team_report_per_message(team, out, pics)) / size,
                            "the same report read message by message", higher_is_better=False,
                            extra={"goal": f"<= {GOALS['memory']}x"}))
    return rows
