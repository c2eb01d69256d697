"""Re-record tests/data/mav_team/cable3_wall in one command (README.md beside this file says what it holds).

    .venv/bin/python tests/data/mav_team/record_cable3_wall.py [--keep DIR]

Flies `launch/cable3.yaml` changed to the wall case (start [2.8, 0, 1.5], one goal [3.4, 0, 1.5]: the front
MAVs want to pass the certified x = 3.7 m, so the onboard safety stage brakes mav_0) with this folder's
`cable3.onnx`, `marlstack sitl --until-goals --record` in a loopback-only namespace; cuts `CUT_S` of the bag
where the stage brakes mav_0 in flight (`window_start_ns`; the topics `replay eval / report` read, the latched goal re-logged at the cut's start as a late recorder
receives it) into `cable3_wall/`; then runs `marlstack replay eval` on it and prints the counts for the README.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
OUT = HERE / "cable3_wall"
# the cut: CUT_S long, from BEFORE_S before one of mav_0's set-points braked by the stage at the wall (x acceleration
# at the certificate's brake, -BRAKE_SHARE x max_acceleration = -2.5 m/s²) with the load lifted: of those, the window
# with the most /load/odom samples, i.e. where the loaded machine ran the sim fastest and the nodes held least
BEFORE_S, CUT_S = 0.4, 1.6
WALL_START = [2.8, 0.0, 1.5]
# on wall clock, as recorded (SITL's default is now simulated time, whose bags have no loaded-machine holds)
WALL = {"start": WALL_START, "goals": [{"position": [3.4, 0.0, 1.5], "rpy_deg": [0, 0, 0]}], "goal_timeout_s": 6,
        "sim": {"seed": 0, "clock": "wall"}}


def keep(topic: str) -> bool:
    parts = topic.strip("/").split("/")
    return topic in ("/load/odom", "/load/goal", "/diagnostics") or (len(parts) == 2 and parts[0].startswith("mav_")
                                                                     and parts[1] in ("odom", "setpoint"))


def window_start_ns(src: Path) -> int:
    """Where the cut starts: BEFORE_S before a set-point of mav_0 at the stage's full brake, the one whose window
    holds the most load samples."""
    import numpy as np

    from marlstack.controllers.mav_barrier import BRAKE_SHARE
    from marlstack.hardware.profile import load_profile
    from marlstack.replay.bag import Bag
    from marlstack.ros_nodes import mav_io
    brake = -BRAKE_SHARE * load_profile("mav_corl25").control.max_acceleration
    bag = Bag(src)
    starts = [rec.t_ns - int(BEFORE_S * 1e9) for rec in bag.records(["/mav_0/setpoint"])
              if mav_io.setpoint_values(bag.decode(rec))[0] <= brake + 1e-6]
    if not starts:
        raise SystemExit(f"{src}: the stage never braked mav_0 at the wall; nothing to cut")
    load = [(rec.t_ns, mav_io.odometry(bag.decode(rec))[2]) for rec in bag.records(["/load/odom"])]
    times, heights = np.array([t for t, _ in load]), np.array([z for _, z in load])
    # in flight: the load lifted to the start's height (during take-off the policy nodes run but are not flown)
    lifted = [t for t in starts if heights[min(np.searchsorted(times, t), len(times) - 1)] > WALL_START[2] - 0.1]
    if not lifted:
        raise SystemExit(f"{src}: the stage never braked mav_0 with the load lifted; nothing to cut")
    samples = [int(np.sum((times >= t) & (times <= t + int(CUT_S * 1e9)))) for t in lifted]
    return lifted[int(np.argmax(samples))]


def cut(src: Path, dst: Path, lo: int, hi: int) -> dict[str, int]:
    """The kept topics of `src` logged within [lo, hi] ns, into a new bag `dst`."""
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer
    from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
    from rosbags.typesys import Stores, get_typestore
    store = get_typestore(Stores.ROS2_KILTED)
    with Reader(src) as reader:
        records = [(c.topic, c.msgtype, t, raw) for c, t, raw in reader.messages()]
    goals = [r for r in records if r[0] == "/load/goal" and r[2] < lo]
    chosen = ([(goals[-1][0], goals[-1][1], lo, goals[-1][3])] if goals else []) \
        + [r for r in records if keep(r[0]) and lo <= r[2] <= hi]
    counts: dict[str, int] = {}
    if dst.exists():
        shutil.rmtree(dst)
    w = Writer(dst, version=9, storage_plugin=StoragePlugin.MCAP)
    w.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)   # zstd chunks
    with w:
        conns = {}
        for topic, msgtype, t, raw in sorted(chosen, key=lambda r: r[2]):
            if topic not in conns:
                conns[topic] = w.add_connection(topic, msgtype, typestore=store)
            w.write(conns[topic], t, raw)
            counts[topic] = counts.get(topic, 0) + 1
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keep", type=Path, help="keep the full SITL bag and report in this new directory")
    args = p.parse_args(argv)
    from marlstack.ros_nodes.isolation import run_isolated
    work = Path(tempfile.mkdtemp(prefix="cable3_wall_")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "launch" / "cable3.yaml").read_text())
    config.update(WALL, policy=str(HERE / "cable3.onnx"))
    (work / "wall.yaml").write_text(yaml.safe_dump(config))
    proc = run_isolated([sys.executable, "-m", "marlstack", "sitl", "--config", str(work / "wall.yaml"), "--json",
                         "--until-goals", "--duration", "120", "--record", str(work / "full.mcap")],
                        capture_output=True, text=True, cwd=REPO, timeout=900)
    if not proc.stdout.strip():
        print(f"sitl printed no report (exit {proc.returncode}): {proc.stderr[-2000:]}", file=sys.stderr)
        return 1
    report = json.loads(proc.stdout)
    (work / "sitl.json").write_text(json.dumps(report, indent=2))
    start = window_start_ns(work / "full.mcap")
    counts = cut(work / "full.mcap", OUT, start, start + int(CUT_S * 1e9))
    size = sum(f.stat().st_size for f in OUT.iterdir())
    print(f"wrote {OUT}: {sum(counts.values())} messages, {size / 1e3:.0f} kB; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    robots = report.get("robots", {})
    print("sitl:", "ok" if report.get("ok") else f"error {report.get('error')}", "; per MAV:",
          json.dumps({m: {k: v for k, v in r.items() if k.startswith(("safety", "watchdog", "hold"))}
                      for m, r in robots.items()}))
    subprocess.run([sys.executable, "-m", "marlstack", "replay", "eval", str(OUT), "--policy", str(HERE / "cable3.onnx")],
                   cwd=REPO, check=False)
    if args.keep is None:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
