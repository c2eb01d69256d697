"""`marlstack demo`: the whole road in one command.

train a small navigation policy → export it to ONNX → check it in pybullet (sim-to-sim gap) → run
it over ROS 2 (policy nodes, barrier safety node, simulator bridge as fake hardware) with recording
→ replay the log into a report.
Each step runs as its own `marlstack` process, exactly as a user would type it, so a failure
names the command to re-run by hand.
"""
from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENT = ROOT / "launch" / "robotarium_nav4.yaml"
CABLE_MODEL = ROOT / "models" / "cable3"  # the shipped 3-MAV cable team (models/README.md: how it was trained)
CABLE_TEAM = ROOT / "launch" / "cable3.yaml"


def _run(step: str, args: list[str]) -> None:
    cmd = [sys.executable, "-m", "marlstack", *args]
    print(f"\n==> {step}\n    $ marlstack {shlex.join(args)}", flush=True)
    start = time.monotonic()
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        raise SystemExit(f"demo: step '{step}' failed (exit {proc.returncode}); re-run it by hand: "
                         f"marlstack {shlex.join(args)}")
    print(f"    ({time.monotonic() - start:.0f} s)", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="marlstack demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="where everything is written")
    parser.add_argument("--total-steps", type=int, default=None,
                        help="training budget in env steps (default: the navigation config's)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of software-in-the-loop")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    run_dir, onnx, bag, report = out / "run", out / "policy.onnx", out / "sitl.mcap", out / "report"

    _run("roll out the navigation scenario with a scripted policy",
         ["sim", "navigation", "--num-agents", "4", "--policy", "scripted", "-o", str(out / "sim")])
    train = ["train", "navigation", "--num-agents", "4", "--out", str(run_dir)]
    if args.total_steps:
        train += ["--total-steps", str(args.total_steps)]
    _run("train a navigation policy (IPPO, barrier in the loop)", train)
    _run("evaluate it (barrier as trained)", ["eval", str(run_dir), "--episodes", "16"])
    _run("export it to ONNX", ["export", str(run_dir), "-o", str(onnx)])
    _run("export the same policy for 8 robots (launch/robotarium_onboard8.yaml)",
         ["export", str(run_dir), "-o", str(out / "policy_8.onnx"), "--num-agents", "8"])
    _run("inspect the artifact", ["inspect", str(onnx)])

    config = yaml.safe_load(DEPLOYMENT.read_text())
    config["policy"] = str(onnx.resolve())
    fleet = out / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(config, sort_keys=False))
    _run("check it in a second physics engine (pybullet)", ["sim2sim", "--config", str(fleet), "-o", str(out / "sim2sim")])
    if bag.exists():  # `sitl --record` never overwrites a bag; this one is the previous demo's own
        print(f"\n(replacing the previous demo's bag {bag})")
        shutil.rmtree(bag)
    _run("run 4 robots over ROS 2 with the safety layer, recording",
         ["sitl", "--config", str(fleet), "--duration", str(args.duration), "--record", str(bag)])
    _run("summarise the log", ["replay", "info", str(bag)])
    _run("re-run the policy on the logged data", ["replay", "eval", str(bag), "--policy", str(onnx), "--config", str(fleet)])
    _run("report: metrics and pictures", ["replay", "report", str(bag), "-o", str(report), "--config", str(fleet)])

    cable_run = out / "cable_run"
    _run("train the 3-MAV cable team briefly, for its learning curve (an hour trains the shipped one)",
         ["train", "cable", "--seeds", "1", "--total-steps", "300000", "--eval-episodes", "0", "--out", str(cable_run)])
    shipped = out / "cable3_model"   # eval writes eval.json into the run: a copy keeps the shipped one's provenance
    shutil.rmtree(shipped, ignore_errors=True)
    shutil.copytree(CABLE_MODEL, shipped)
    _run("evaluate the shipped cable team beside the zero command and the classical controller (3-D GIF)",
         ["eval", str(shipped), "--episodes", "32", "--gif", str(out / "cable_team.gif")])
    cable_onnx, cable_bag = out / "cable.onnx", out / "cable3.mcap"
    _run("export the shipped cable team to ONNX", ["export", str(shipped), "-o", str(cable_onnx)])
    team = yaml.safe_load(CABLE_TEAM.read_text())
    team.update(policy=str(cable_onnx.resolve()), goals=team["goals"][:2])  # a short mission: two goals
    (out / "cable3.yaml").write_text(yaml.safe_dump(team, sort_keys=False))
    if cable_bag.exists():
        shutil.rmtree(cable_bag)
    _run("fly it over ROS 2: take off, two goals, land (3 MAV policy nodes, the MAV sim node), recording",
         ["sitl", "--config", str(out / "cable3.yaml"), "--until-goals", "--duration", "100", "--record", str(cable_bag),
          "--plot", str(out / "cable_mission.png")])

    print(f"\nDone. Pictures of the scripted rollout: {out / 'sim'}/trajectory.png, trajectory.gif\n"
          f"Training run (config, checkpoint, metrics.csv, learning curve): {run_dir}\n"
          f"Sim-to-sim gap (our simulator vs pybullet): {out / 'sim2sim'}/sim2sim.json, sim2sim.png\n"
          f"Policy artifacts: {onnx} (4 robots), {out / 'policy_8.onnx'} (8 robots)\nROS 2 log (rosbag2 MCAP): {bag}\nReplay report (JSON, CSV, PNG, GIF): {report}\n"
          f"Cable team: short training run {cable_run} (learning_curve.png); the shipped team flying: "
          f"{out / 'cable_team.gif'}, {out / 'cable_team.png'}; its SITL mission: {out / 'cable_mission.png'}, "
          f"log {cable_bag}")
    return 0
