"""`marlstack robotarium export`: a folder the Robotarium runs as it is (rps 2.x API, numpy only).

What goes in (flat, since the Robotarium takes a list of files):
  main.py              the experiment (targets/robotarium_main.py with the task written in)
  policy.py + policy_weights.npz + ms_numpy_ops.py
                       the artifact's graph translated to numpy (targets.onnx_numpy), checked
                       against onnxruntime on PARITY_INPUTS inputs before anything is written
  ms_barrier.py, ms_barrier_qp.py, ms_unicycle.py, ms_arrays.py, ms_profile.py, <profile>.yaml
                       with --barrier ours: our deployment barrier (controllers.barrier, numpy
                       only) and the profile it reads, copied with their imports renamed
  task.json            the same task, for people and tests (starts, goals, limits)
Starts and goals come from the navigation scenario's own reset (seeded), like training episodes.
"""
from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from marlstack.hardware.profile import load_profile, profile_hash, profile_path
from marlstack.policies.spec import PolicyError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MAX_ROBOTS = 20  # the Robotarium runs experiments of at most 20 robots
PARITY_TOL = 1e-5
PARITY_INPUTS = 10_000
BARRIERS = ("ours", "rps")
# module -> name in the submission; their `from marlstack.controllers.x` / `...hardware.x` imports are renamed to match
VENDORED = {"controllers/arrays.py": "ms_arrays", "controllers/unicycle.py": "ms_unicycle",
            "controllers/barrier_qp.py": "ms_barrier_qp", "controllers/barrier.py": "ms_barrier",
            "hardware/profile.py": "ms_profile"}
# what a submission may import at module level besides the standard library and its own files:
# the Robotarium's libraries (../shared/wheels/robotarium-2.1.0-libraries.txt) by import name
ROBOTARIUM_MODULES = {"numpy", "scipy", "cvxopt", "yaml", "matplotlib", "rps", "torch", "sklearn", "shapely",
                      "networkx", "sympy", "cv2", "gym", "PIL", "pendulum", "requests", "graphviz"}


class RobotariumError(PolicyError):
    """The policy or the options cannot make a Robotarium submission (the message says why)."""


def load_model(source: str | Path, num_robots: int | None, work: Path) -> Path:
    """A policy.onnx for `num_robots`: the given file, or an export of the given run / checkpoint."""
    source = Path(source)
    if source.suffix == ".onnx":
        if not source.is_file():
            raise RobotariumError(f"{source}: no such policy file")
        return source
    if not source.exists():
        raise RobotariumError(f"{source}: no such run directory, checkpoint or policy file")
    from marlstack.policies.export import export  # JAX: only when exporting a run here
    out = work / "policy.onnx"
    export(source, out, num_agents=num_robots)
    return out


def check_spec(spec: dict[str, Any], num_robots: int | None, source: Path) -> tuple[int, Any]:
    """(fleet size, profile) for a navigation policy of the Robotarium's robot; RobotariumError otherwise."""
    if spec["scenario"] != "navigation":
        raise RobotariumError(f"{source}: a {spec['scenario']!r} policy; the Robotarium export covers navigation policies")
    if spec["recurrent"] is not None:
        raise RobotariumError(f"{source}: recurrent policies do not translate to numpy yet")
    profile = load_profile(spec["profile"]["name"])
    if profile_hash(profile) != spec["profile"]["hash"]:
        raise RobotariumError(f"{source}: exported for another version of profile {profile.name!r} "
                              f"(hash {spec['profile']['hash']} vs {profile_hash(profile)}); re-export it")
    if profile.name != "gritsbot_x":
        raise RobotariumError(f"{source}: exported for profile {profile.name!r}; the Robotarium's robot is gritsbot_x")
    others = next((e for e in spec["inputs"] if e["name"] == "others"), None)
    n = (others["shape"][1] + 1) if others else len(spec["agent"]["agents"])
    if num_robots is not None and num_robots != n:
        raise RobotariumError(f"{source}: this policy file is for {n} robots, not {num_robots}; export the run "
                              f"with --num-robots {num_robots} instead of the .onnx")
    if not 1 <= n <= MAX_ROBOTS:
        raise RobotariumError(f"{n} robots: the Robotarium runs 1..{MAX_ROBOTS}")
    return n, profile


def task_of(profile: Any, n: int, seed: int, max_steps: int, barrier: str) -> dict[str, Any]:
    """Starts and goals from the navigation scenario's reset with `seed`; limits from the profile."""
    import jax

    from marlstack.sim.fleet import FleetEnv
    from marlstack.sim.scenarios.navigation_spec import SUCCESS_RADIUS
    _, state = FleetEnv(profile, num_agents=n, scenario="navigation").reset(jax.random.PRNGKey(seed))
    params = profile.barrier.unicycle_walls
    a = profile.arena
    return {"num_robots": n, "seed": seed, "max_steps": max_steps, "success_radius": SUCCESS_RADIUS,
            "initial_conditions": np.asarray(state.poses, float).round(6).tolist(),
            "goals": np.asarray(state.task.goals, float).round(6).tolist(),
            "barrier": barrier, "barrier_form": "unicycle_walls", "profile_file": f"{profile.name}.yaml",
            "rps_barrier": {"safety_radius": params.safety_radius, "barrier_gain": params.gamma,
                            "projection_distance": params.projection_distance,
                            "velocity_magnitude_limit": profile.max_linear_speed,
                            "boundary_points": [a.x_min, a.x_max, a.y_min, a.y_max]}}


def vendor(out: Path, profile: Any) -> list[Path]:
    """Copy the numpy barrier and the profile loader, imports renamed to the flat `ms_*` names."""
    written = []
    for rel, name in VENDORED.items():
        text = (REPO / rel).read_text(encoding="utf-8")
        text = re.sub(r"^(\s*)from marlstack\.(controllers|hardware)\.(\w+) import",
                      lambda m: f"{m.group(1)}from {VENDORED.get(f'{m.group(2)}/{m.group(3)}.py', m.group(0))} import",
                      text, flags=re.M)
        path = out / f"{name}.py"
        path.write_text(f"# Copied from marlstack {rel} by `marlstack robotarium export`.\n{text}", encoding="utf-8")
        written.append(path)
    shutil.copy(profile_path(profile.name), out / f"{profile.name}.yaml")
    return written


def foreign_imports(folder: Path) -> list[str]:
    """'file: module' for every module-level import that is neither the standard library, the
    Robotarium's libraries nor a file of the folder (imports inside functions are optional paths)."""
    local = {p.stem for p in folder.glob("*.py")}
    bad = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for name in names:
                top = name.split(".")[0]
                if top not in local and top not in ROBOTARIUM_MODULES and top not in sys.stdlib_module_names \
                        and top != "__future__":
                    bad.append(f"{path.name}: {name}")
    return bad


def load_generated(folder: Path) -> Any:
    """Import folder/policy.py (and the ms_numpy_ops beside it) as a fresh module."""
    sys.path.insert(0, str(folder))
    try:
        sys.modules.pop("ms_numpy_ops", None)
        spec = importlib.util.spec_from_file_location(f"_robotarium_policy_{id(folder)}", folder / "policy.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(folder))


def parity_error(model_path: Path, generated: Any, spec: dict[str, Any], profile: Any, count: int = PARITY_INPUTS,
                 seed: int = 0) -> float:
    """Largest |numpy - onnxruntime| over every output, on `count` random sensor inputs spread over the arena."""
    import onnxruntime as ort

    from marlstack.policies.export import random_inputs
    from marlstack.policies.runtime import session_options
    feeds = random_inputs(spec["inputs"], profile.arena, count, np.random.default_rng(seed))
    session = ort.InferenceSession(str(model_path), session_options(), providers=["CPUExecutionProvider"])
    names = [e["name"] for e in spec["outputs"]]
    want = session.run(names, feeds)
    got = generated.forward(**feeds)
    return max(float(np.max(np.abs(np.asarray(got[n], np.float64) - w))) for n, w in zip(names, want))


def export_submission(source: str | Path, out: str | Path, num_robots: int | None = None, barrier: str = "ours",
                      seed: int = 0, max_steps: int = 1000) -> dict[str, Any]:
    """Write the submission folder `out`; returns its task. Nothing is left in `out` on error."""
    import onnx

    from marlstack.policies.runtime import load_spec
    from marlstack.targets.onnx_numpy import translate
    if barrier not in BARRIERS:
        raise RobotariumError(f"--barrier must be one of {', '.join(BARRIERS)}, got {barrier!r}")
    if max_steps < 1:
        raise RobotariumError(f"--max-steps must be at least 1, got {max_steps}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise RobotariumError(f"{out}: exists and is not empty; choose a new folder")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_path = load_model(source, num_robots, work)
        spec = load_spec(model_path)
        n, profile = check_spec(spec, num_robots, model_path)
        stage = work / "submission"
        stage.mkdir()
        code, weights = translate(onnx.load(str(model_path)), str(source))
        (stage / "policy.py").write_text(code, encoding="utf-8")
        np.savez(stage / "policy_weights.npz", **weights)
        shutil.copy(HERE / "numpy_ops.py", stage / "ms_numpy_ops.py")
        err = parity_error(model_path, load_generated(stage), spec, profile)
        if not err <= PARITY_TOL:
            raise RobotariumError(f"the numpy translation disagrees with onnxruntime by {err:.3g} (> {PARITY_TOL:g}); "
                                  f"nothing written. Please report this with the policy")
        task = task_of(profile, n, seed, max_steps, barrier)
        if barrier == "ours":
            vendor(stage, profile)
        main = (HERE / "robotarium_main.py").read_text(encoding="utf-8")
        main = main.replace("TASK = {}  # written by the exporter: robots, starts, goals, barrier, limits",
                            f"TASK = {json.dumps(task)}", 1)
        (stage / "main.py").write_text(main, encoding="utf-8")
        (stage / "task.json").write_text(json.dumps({**task, "parity_error": err,
                                                     "policy_spec": spec}, indent=1), encoding="utf-8")
        bad = foreign_imports(stage)
        if bad:
            raise RobotariumError(f"the submission would import modules the Robotarium lacks: {'; '.join(bad)}")
        out.mkdir(parents=True, exist_ok=True)
        for path in stage.iterdir():
            shutil.copy(path, out / path.name)
    return {**task, "parity_error": err}
