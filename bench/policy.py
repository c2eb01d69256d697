"""`marlstack bench policy`: per-agent latency of an exported policy on the onboard runtime.

Ours: `PolicyRuntime.run` on one single-threaded onnxruntime session — input checks, the
scenario's observe(), normalisation, the MLP and the action scaling, i.e. everything a robot
does per control step. Baseline, timed in the same process and interleaved with ours: a bare
numpy forward pass of the same MLP (the weights read from the ONNX file), which is the least
any runtime must do. Latencies are per agent (one call's time / batch size).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench.report import Row

GOAL_P99_US = 50.0  # issue 5: onboard p99 per agent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", type=Path, default=None,
                        help="an exported policy.onnx (default: export an untrained navigation policy, N=4)")
    parser.add_argument("--iters", type=int, default=3000, help="timed calls per measurement (default: 3000)")
    parser.add_argument("--rounds", type=int, default=5, help="alternations of ours and the baseline (default: 5)")


def numpy_mlp(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """The policy's MLP as numpy: every Gemm of the graph in order, with the activation that consumes it."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(path))
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    consumers = {i: n.op_type for n in model.graph.node for i in n.input}
    acts = {"Tanh": np.tanh, "Relu": lambda x: np.maximum(x, 0)}
    layers = []
    for node in model.graph.node:
        if node.op_type != "Gemm":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        w, b = weights[node.input[1]], weights[node.input[2]]
        layers.append((w.T if attrs.get("transB") else w, b, acts.get(consumers.get(node.output[0]))))
    if not layers:
        raise ValueError(f"{path}: no Gemm layers found; the numpy baseline needs an MLP policy")
    w_in = layers[0][0].shape[0]

    def forward(x: np.ndarray) -> np.ndarray:
        for w, b, act in layers:
            x = x @ w + b
            x = act(x) if act is not None else x
        return x

    forward.in_features = w_in  # type: ignore[attr-defined]
    return forward


def sensor_inputs(spec: dict[str, Any], batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random robots inside the profile's arena, in the layout the spec asks for."""
    from hardware import load_profile
    a = load_profile(spec["profile"]["name"]).arena
    lo, hi = np.array([a.x_min, a.y_min, -np.pi]), np.array([a.x_max, a.y_max, np.pi])
    out = {}
    for e in spec["inputs"]:
        shape = (batch, *e["shape"][1:])
        k = shape[-1]
        out[e["name"]] = (rng.uniform(lo[:k], hi[:k], shape) if k <= 3 else rng.normal(size=shape)).astype(np.float32)
    return out


def _timed(fn: Callable[[], Any], iters: int) -> np.ndarray:
    out = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter_ns()
        fn()
        out[i] = time.perf_counter_ns() - t0
    return out


def _latencies(ours: Callable[[], Any], base: Callable[[], Any], iters: int, rounds: int) -> tuple[np.ndarray, np.ndarray]:
    for fn in (ours, base):
        _timed(fn, max(iters // 10, 10))  # warm caches and onnxruntime's allocator
    samples = [(_timed(ours, iters), _timed(base, iters)) for _ in range(rounds)]
    return np.concatenate([s[0] for s in samples]), np.concatenate([s[1] for s in samples])


def write_untrained_run(run_dir: Path, overrides: dict[str, Any], noise: float = 0.0, seed: int = 0) -> Path:
    """An untrained run directory through the trainer's public API (init + save), for timing and tests.

    `noise` > 0 adds Gaussian noise of that scale to the actor weights and the observation
    statistics, so an untrained policy's actions span the whole action range (the freshly
    initialised head is 0.01-scaled and would output almost nothing).
    """
    import jax
    from policies.checkpoint import FILENAME, make_meta, save
    from policies.config import build_config
    from policies.ppo import Trainer
    cfg = build_config({"num_envs": 2, "num_steps": 8, "num_minibatches": 1, **overrides})
    trainer = Trainer(cfg)
    runner = trainer.init_seeds()
    if noise:
        keys = iter(jax.random.split(jax.random.PRNGKey(seed), 64))
        jitter = lambda a: a + noise * jax.random.normal(next(keys), a.shape, a.dtype)  # noqa: E731
        stats = runner.obs_stats
        runner = runner.replace(params={**runner.params, "actor": jax.tree.map(jitter, runner.params["actor"])},
                                obs_stats=stats.replace(mean=jitter(stats.mean), var=stats.var * (1 + jax.numpy.abs(jitter(stats.var)))))
    run_dir.mkdir(parents=True, exist_ok=True)
    save(run_dir / FILENAME, make_meta(cfg, trainer.spec, f"untrained-{seed}", 0, 0), runner)
    return run_dir


def _untrained_policy(tmp: Path) -> Path:
    from policies.export import export
    run = write_untrained_run(tmp / "run", {"scenario": "navigation", "num_agents": 4})
    export(run, tmp / "policy.onnx")
    return tmp / "policy.onnx"


def run(args: argparse.Namespace) -> list[Row]:
    from policies.runtime import PolicyRuntime
    with tempfile.TemporaryDirectory() as tmp:
        path = args.policy or _untrained_policy(Path(tmp))
        rt = PolicyRuntime(path)
        mlp = numpy_mlp(path)
        rows = []
        rng = np.random.default_rng(0)
        n = len(rt.spec["agent"]["agents"])
        for batch in sorted({1, n}):
            inputs = {**sensor_inputs(rt.spec, batch, rng), **rt.initial_state(batch)}
            obs = rng.normal(size=(batch, mlp.in_features)).astype(np.float32)
            ours, base = _latencies(lambda: rt.run(inputs), lambda: mlp(obs), args.iters, args.rounds)
            for q in (50, 99):
                ours_us, base_us = np.percentile(ours, q) / 1e3 / batch, np.percentile(base, q) / 1e3 / batch
                extra = {"goal_us": GOAL_P99_US, "meets_goal": bool(ours_us <= GOAL_P99_US)} if q == 99 else {}
                rows.append(Row({"policy": rt.spec["scenario"], "agents_per_call": batch}, f"latency_p{q}_per_agent",
                                "us", float(ours_us), float(base_us), "numpy MLP forward", higher_is_better=False,
                                extra=extra))
        return rows
