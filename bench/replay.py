"""`marlstack bench replay`: `replay info` and `replay report` on logs, against the log libraries' own tools.

Flight log: the real PX4 ULog of the tests (4 MB). Ours: `info` (pyulog parse + the framing walk +
the common view + stream statistics) and `report` (the same + summary + six PNGs); baseline, in
the same run: pyulog's own `ulog_info` (parse + `show_info`, printed into a buffer).
Bag: a synthetic rosbag2 MCAP bag of `--bag-mb` MB (PoseStamped of 10 robots at 100 Hz, written once
to a temporary directory); ours: `replay info`; baseline: the `mcap` library iterating the same
file's messages (no decoding, like ours).
Peak memory: tracemalloc's peak of Python allocations (numpy arrays included) during one call, as
a multiple of the file size, in a pass of its own (tracing slows the timed pass). Goals (issue 16):
info <= 2 s, report <= 15 s, peak memory <= 4x the file size.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

from bench.report import Row

ULOG = Path(__file__).resolve().parent.parent / "tests" / "data" / "flight_logs" / "px4_sample.ulg"
GOALS = {"info": 2.0, "report": 15.0, "memory": 4.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ulog", default=str(ULOG), help="PX4 log to measure (default: the tests' 4 MB real log)")
    parser.add_argument("--bag-mb", type=float, default=100.0, help="size of the synthetic bag in MB (0: skip)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per case; the median is reported")


def _timed(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


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
    from replay.flight_info import flight_info
    from replay.flightlog import open_flight_log

    flight_info(open_flight_log(path))


def _our_report(path: Path, out: Path) -> None:
    from replay.flight_report import write_report
    from replay.flightlog import open_flight_log

    write_report(open_flight_log(path), out)


def write_bag(path: Path, megabytes: float) -> Path:
    """A rosbag2 MCAP bag of PoseStamped messages (10 robots, 100 Hz) of about `megabytes` MB."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    T = store.types
    header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="world")
    pose = T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=0.1, y=0.2, z=0.0),
                                       orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0))
    raw = store.serialize_cdr(T["geometry_msgs/msg/PoseStamped"](header=header, pose=pose),
                              "geometry_msgs/msg/PoseStamped")
    per_message = len(raw) + 31  # the MCAP message record around it
    n = int(megabytes * 1e6 / per_message)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns = [w.add_connection(f"/robot_{i}/pose", "geometry_msgs/msg/PoseStamped", typestore=store)
                 for i in range(10)]
        for k in range(n):
            w.write(conns[k % 10], 1_000_000_000 + (k // 10) * 10_000_000, raw)
    return path


def _our_bag_info(path: Path) -> None:
    from replay.bag import Bag
    from replay.info import bag_info

    bag_info(Bag(path))


def _mcap_iterate(path: Path) -> None:
    from mcap.reader import make_reader

    for f in path.glob("*.mcap"):
        with f.open("rb") as fh:
            for _ in make_reader(fh).iter_messages():
                pass


def run(args: argparse.Namespace) -> list[Row]:
    ulog = Path(args.ulog)
    size = ulog.stat().st_size
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report"
        params = {"log": ulog.name, "MB": round(size / 1e6, 2)}
        base = _timed(lambda: _pyulog_info(ulog), args.repeats)
        ours = _timed(lambda: _our_info(ulog), args.repeats)
        rows.append(Row({**params, "case": "info"}, "time", "s", ours, base, "pyulog ulog_info",
                        higher_is_better=False, extra={"goal": f"<= {GOALS['info']} s"}))
        ours = _timed(lambda: _our_report(ulog, out), args.repeats)
        rows.append(Row({**params, "case": "report"}, "time", "s", ours, base, "pyulog ulog_info",
                        higher_is_better=False, extra={"goal": f"<= {GOALS['report']} s"}))
        base_mem = _peak(lambda: _pyulog_info(ulog)) / size
        for case, fn in (("info", lambda: _our_info(ulog)), ("report", lambda: _our_report(ulog, out))):
            rows.append(Row({**params, "case": case}, "peak memory", "x file size", _peak(fn) / size, base_mem,
                            "pyulog ulog_info", higher_is_better=False, extra={"goal": f"<= {GOALS['memory']}x"}))
        if args.bag_mb > 0:
            bag = write_bag(Path(tmp) / "synthetic", args.bag_mb)
            bag_size = sum(f.stat().st_size for f in bag.glob("*.mcap"))
            params = {"log": "synthetic bag", "MB": round(bag_size / 1e6, 2), "case": "info"}
            base = _timed(lambda: _mcap_iterate(bag), args.repeats)
            ours = _timed(lambda: _our_bag_info(bag), args.repeats)
            rows.append(Row(params, "time", "s", ours, base, "mcap iter_messages", higher_is_better=False,
                            extra={"goal": f"<= {GOALS['info']} s"}))
            rows.append(Row(params, "peak memory", "x file size", _peak(lambda: _our_bag_info(bag)) / bag_size,
                            _peak(lambda: _mcap_iterate(bag)) / bag_size, "mcap iter_messages",
                            higher_is_better=False, extra={"goal": f"<= {GOALS['memory']}x"}))
    return rows
