"""`marlstack robotarium export`: the submission runs under rps 2.1.0 as the Robotarium would run it.

rps 2.1.0 lives in its own venv (conftest), so the run also proves the folder imports nothing but
the Robotarium's libraries. The starts of seed 2 are ones rps's initializer reaches within ~600
steps; `random` and numpy are seeded so its charger poses and deadlock waypoints repeat.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from marlstack.cli import main as marlstack
from rps21_env import TRAINED, Rps21Missing, find_wheel
from marlstack.targets.robotarium import export_submission, foreign_imports
from test_layers import imported_modules

RUNNER = Path(__file__).with_name("rps21_run.py")
TASK_SEED = 2


def run_submission(python: Path, folder: Path, tmp_path: Path) -> tuple[str, dict]:
    record = tmp_path / "trajectory.npz"
    env = {"MARLSTACK_SHOW_FIGURE": "0", "MARLSTACK_SIM_IN_REAL_TIME": "0", "MARLSTACK_TRAJECTORY": str(record),
           "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"}
    proc = subprocess.run([str(python), str(RUNNER), "main", str(folder), "0"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, dict(np.load(record))


def imported_anywhere(folder: Path) -> set[str]:
    """Top-level names of every import in the folder's Python files, inside functions too."""
    return {n.split(".")[0] for path in folder.glob("*.py") for n in imported_modules(path)}


def check_debug(stdout: str) -> None:
    assert "every robot at its goal after" in stdout, stdout
    assert "your script will run on the Robotarium!" in stdout and "Errors detected" not in stdout, stdout


@pytest.mark.parametrize("barrier", ["ours", "rps"])
def test_submission_runs_on_rps_2_1(barrier, rps21, nav_policy, tmp_path):
    folder = tmp_path / "submission"
    task = export_submission(nav_policy, folder, barrier=barrier, seed=TASK_SEED)
    assert task["parity_error"] <= 1e-5
    assert foreign_imports(folder) == []
    assert not {"jax", "onnxruntime", "onnx", "flax"} & imported_anywhere(folder)
    stdout, record = run_submission(rps21, folder, tmp_path)
    check_debug(stdout)
    poses, arrived = record["poses"], int(record["arrived"])
    goals = np.asarray(task["goals"])
    assert arrived > 0 and np.hypot(*(poses[-1, :, :2] - goals).T).max() <= task["success_radius"]
    # rps's initializer brought the robots to the task's starts (its own tolerance: 0.05 m)
    assert np.hypot(*(poses[0, :, :2] - np.asarray(task["initial_conditions"])[:, :2]).T).max() <= 0.05
    if barrier == "rps":
        return  # rps's barrier solves its QP to cvxopt's 1e-2 tolerances: no trajectory to match
    # marlstack sim, same policy (onnxruntime), same barrier (the JAX form of the same QP), from the poses
    # rps started the experiment at: the trajectories agree (rps integrates in float64)
    start = tmp_path / "start.json"
    start.write_text(json.dumps({"initial_conditions": poses[0].tolist(), "goals": task["goals"]}))
    # in its own process: --float64 switches JAX to 64 bits for the rest of the process it runs in
    run = subprocess.run([sys.executable, "-m", "marlstack", "sim", "navigation", "--policy", str(nav_policy),
                          "--start", str(start), "--float64", "--barrier", "unicycle_walls", "--steps", "1000",
                          "--no-render", "-o", str(tmp_path / "sim")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    sim = np.load(tmp_path / "sim" / "trajectory.npz")["poses"]
    assert sim.shape == poses.shape  # the same arrival step
    assert np.abs(sim[..., :2] - poses[..., :2]).max() <= 1e-6


def test_cli_refuses_bad_input_in_one_line(nav_policy, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    cases = [([str(nav_policy), "-o", str(tmp_path / "a"), "--num-robots", "5"], "for 4 robots, not 5"),
             ([str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "b")], "no such policy file"),
             ([str(nav_policy), "-o", str(tmp_path / "full")], "not empty")]
    for argv, message in cases:
        assert marlstack(["robotarium", "export", *argv]) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "a").exists() and (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_missing_rps_2_1_fails_saying_where_to_get_it(tmp_path):
    with pytest.raises(Rps21Missing, match="need rps 2.1.0.*github.com/robotarium/robotarium_python_simulator"):
        find_wheel({}, tmp_path / "no_shared" / "wheels")


def test_rps_2_1_tests_fail_rather_than_skip_without_the_wheel(tmp_path):
    """A clone without ../shared: the rps 2.1.0 tests fail, in one line saying what to do (CI has ../shared)."""
    (tmp_path / "test_needs_rps.py").write_text("def test_it(rps21):\n    pass\n")
    for name in ("conftest.py", "rps21_env.py"):
        (tmp_path / name).write_text((Path(__file__).parent / name).read_text())
    env = {k: v for k, v in os.environ.items() if k != "MARLSTACK_RPS21_WHEEL"}
    env["MARLSTACK_RPS21_WHEEL"] = str(tmp_path / "no_such.whl")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfs", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1 and "1 error" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]
    assert "need rps 2.1.0" in proc.stdout and "Traceback" not in proc.stdout, proc.stdout[-2000:]


def test_export_from_the_run_for_six_robots(tmp_path):
    task = export_submission(TRAINED, tmp_path / "six", num_robots=6, seed=3)
    assert task["num_robots"] == 6 and len(task["initial_conditions"]) == 6 and len(task["goals"]) == 6
    assert task["parity_error"] <= 1e-5
    spec = json.loads((tmp_path / "six" / "task.json").read_text())["policy_spec"]
    assert spec["inputs"][1]["shape"] == ["B", 5, 3]  # 'others' for 6 robots


def test_discrete_action_policy_runs_on_rps_2_1(rps21, tmp_path):
    """A discrete-action navigation policy (untrained weights): the waypoint action -> (v, omega) map is in
    the exported graph, so the numpy translation carries it (ArgMax + the command table) to the Robotarium;
    its commands match onnxruntime's and rps 2.1 runs the submission without an error (issue 17)."""
    from marlstack.bench.policy import write_untrained_run
    from marlstack.hardware import load_profile
    from marlstack.policies.export import export, random_inputs
    from marlstack.policies.runtime import PolicyRuntime, load_spec
    from marlstack.targets.robotarium import load_generated
    run = write_untrained_run(tmp_path / "run", {"scenario": "navigation", "num_agents": 4, "action_type": "discrete",
                                                 "barrier": "none"}, noise=0.5)
    onnx_path = tmp_path / "discrete.onnx"
    export(run, onnx_path)
    folder = tmp_path / "submission"
    task = export_submission(onnx_path, folder, seed=TASK_SEED, max_steps=20)
    assert task["parity_error"] <= 1e-5 and foreign_imports(folder) == []
    # the submission's policy emits the discrete map's commands, as onnxruntime does, over the whole arena
    spec = load_spec(onnx_path)
    sensors = random_inputs(spec["inputs"], load_profile(spec["profile"]["name"]).arena, 256, np.random.default_rng(1))
    want = PolicyRuntime(onnx_path).run(sensors)["cmd"]
    got = np.asarray(load_generated(folder).forward(**sensors)["cmd"])
    assert np.abs(got - want).max() <= 1e-5 and len({tuple(np.round(c, 4)) for c in want}) > 3
    stdout, record = run_submission(rps21, folder, tmp_path)
    assert "No errors or warnings in your simulation!  Your script will run on the Robotarium!" in stdout, stdout
    assert record["poses"].shape == (21, 4, 3)
