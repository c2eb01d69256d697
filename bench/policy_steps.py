"""`marlstack bench policy_steps`: one onboard policy step (batch 1), onnxruntime setting by setting.

For the exported ground policy (an untrained navigation export, N = 4, observe() inside the graph) and
the shipped cable team's (its observe(), actor and classical controller), each row adds one setting to
the one above and times a call, so each setting's gain shows:

1. onnxruntime's defaults (a thread per core, any batch size);
2. graph optimisation off, one thread, sequential: what the optimisation is worth;
3. graph optimisation on (`ORT_ENABLE_ALL`), one thread;
4. the batch size fixed at 1 (shape arithmetic folded at load);
5. I/O binding to preallocated arrays (no numpy conversion, no output allocation per call);
6. `PolicyRuntime.run`: 5 plus the input checks every onboard call makes (what a robot pays).

Without `--policy`, the navigation export is also timed in its training-time form (observe() as one
array per feature, `export(wide=False)`) with the settings of row 5, as the same-run baseline of the
export's wide form (row 5 above it): `5 training-form export` in the table.

Baseline, timed in the same rounds: a numpy forward pass of the same MLP (the graph's weights), the
least any runtime must do. Each round times `iters` calls of every row in turn; p50 / p99 are per
round, and the table gives the median over rounds (every round's value in `runs_p50_us` /
`runs_p99_us`). Wall clock and the thread's CPU time are both reported: on a shared machine the wall
clock's tail is other processes' time slices.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from marlstack.bench.policy import GOAL_P99_US, _timed, _untrained_policy, numpy_mlp
from marlstack.bench.report import Row

ROOT = Path(__file__).resolve().parents[1]
# a hovering 3-MAV team (load 1 m up, MAVs 1 m above it): plausible inputs for a cable-team policy
CABLE_HOVER = {"load_pos": [0, 0, 1], "load_rot": np.eye(3), "load_vel": [0, 0, 0], "load_omega": [0, 0, 0],
               "pos": [0.5, 0, 2], "rot": np.eye(3), "vel": [0, 0, 0], "omega": [0, 0, 0],
               "others_pos": [[-0.25, 0.43, 2], [-0.25, -0.43, 2]], "goal_pos": [0.2, 0, 1.1], "goal_rot": np.eye(3),
               "agent_id": [1, 0, 0], "past_actions": np.zeros((1, 5))}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", type=Path, action="append", default=None,
                        help="exported policy.onnx files (repeatable; default: an untrained navigation export and "
                             "models/cable3 exported)")
    parser.add_argument("--iters", type=int, default=2000, help="timed calls per row and round (default 2000)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")


def step_inputs(spec: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One agent's inputs: spread over the arena for ground policies, a hovering team for cable teams."""
    names = [e["name"] for e in spec["inputs"]]
    if set(names) <= set(CABLE_HOVER):
        return {n: np.asarray(CABLE_HOVER[n], np.float32)[None] for n in names}
    from marlstack.hardware import load_profile
    from marlstack.policies.export import random_inputs
    return random_inputs(spec["inputs"], load_profile(spec["profile"]["name"]).arena, 1, rng)


def variants(path: Path, inputs: dict[str, np.ndarray]) -> dict[str, Callable[[], Any]]:
    """The rows' calls, each with one setting more than the one before."""
    import onnxruntime as ort

    from marlstack.policies.runtime import PolicyRuntime, session_options
    runtime = PolicyRuntime(path, batch_size=1)
    feeds = {**runtime.check_inputs(inputs), **runtime.initial_state(1)}
    names = runtime.output_names
    no_opt = session_options()
    no_opt.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sessions = {
        "1 onnxruntime defaults": ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]),
        "2 one thread, no graph optimisation": ort.InferenceSession(str(path), no_opt, providers=["CPUExecutionProvider"]),
        "3 + graph optimisation": ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"]),
        "4 + batch size fixed": ort.InferenceSession(str(path), session_options(1), providers=["CPUExecutionProvider"]),
    }
    calls: dict[str, Callable[[], Any]] = {k: (lambda s=s: s.run(names, feeds)) for k, s in sessions.items()}
    calls["5 + I/O binding"] = bound_call(path, inputs, runtime)
    calls["6 PolicyRuntime.run (+ input checks)"] = lambda: runtime.run(feeds)
    return calls


def bound_call(path: Path, inputs: dict[str, np.ndarray], runtime: Any = None) -> Callable[[], Any]:
    """One bare I/O-bound onnxruntime call (row 5's setting) of `path` on `inputs`."""
    from marlstack.policies.runtime import PolicyRuntime
    runtime = runtime or PolicyRuntime(path, batch_size=1)
    binding, _, bound_in, _ = runtime._bound
    for name, value in {**runtime.check_inputs(inputs), **runtime.initial_state(1)}.items():
        np.copyto(bound_in[name], value)
    return lambda: runtime._session.run_with_iobinding(binding)


def measure(calls: dict[str, Callable[[], Any]], iters: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    """Per call name: p50 / p99 of every round, wall clock and thread CPU time, in µs."""
    for fn in calls.values():
        _timed(fn, max(iters // 10, 10))  # warm caches and onnxruntime's allocator
    out = {k: {"p50": [], "p99": [], "cpu_p50": [], "cpu_p99": []} for k in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            wall, cpu = _timed(fn, iters), _timed(fn, iters, time.thread_time_ns)
            for q in (50, 99):
                out[name][f"p{q}"].append(float(np.percentile(wall, q)) / 1e3)
                out[name][f"cpu_p{q}"].append(float(np.percentile(cpu, q)) / 1e3)
    return out


def run(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = args.policy or [_untrained_policy(Path(tmp)), _cable_policy(Path(tmp))]
        rng = np.random.default_rng(0)
        for path in paths:
            from marlstack.policies.runtime import load_spec
            spec = load_spec(path)
            mlp = numpy_mlp(path)
            obs = rng.normal(size=(1, mlp.in_features)).astype(np.float32)
            inputs = step_inputs(spec, rng)
            calls = variants(path, inputs)
            if args.policy is None and spec["scenario"] == "navigation":
                from marlstack.sim.scenarios.navigation import SMALL_FLEET
                before = _untrained_policy(Path(tmp), SMALL_FLEET, "training_form.onnx", wide=False)
                calls["5 training-form export, I/O binding"] = bound_call(before, inputs)
            stats = measure({**calls, "numpy": lambda: mlp(obs)}, args.iters, args.rounds)
            base = stats.pop("numpy")
            for name, s in stats.items():
                p99 = float(np.median(s["p99"]))
                rows.append(Row({"policy": spec["scenario"], "setting": name}, "latency_p99", "us", p99,
                                float(np.median(base["p99"])), "numpy MLP forward (same weights)", False,
                                {"p50_us": float(np.median(s["p50"])), "cpu_p50_us": float(np.median(s["cpu_p50"])),
                                 "cpu_p99_us": float(np.median(s["cpu_p99"])), "baseline_p50_us": float(np.median(base["p50"])),
                                 "runs_p50_us": [round(v, 1) for v in s["p50"]], "runs_p99_us": [round(v, 1) for v in s["p99"]],
                                 "goal_p99_us": GOAL_P99_US, "meets_goal": p99 <= GOAL_P99_US}))
    return rows


def _cable_policy(tmp: Path) -> Path:
    """models/cable3 exported (the shipped 3-MAV team)."""
    from marlstack.policies.export import export
    export(ROOT / "models" / "cable3", tmp / "cable3.onnx")
    return tmp / "cable3.onnx"
