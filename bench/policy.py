"""`marlstack bench policy`: per-agent latency of an exported policy on the onboard runtime.

Ours: `PolicyRuntime.run` on one single-threaded onnxruntime session — input checks, the
scenario's observe(), normalisation, the MLP and the action scaling, i.e. everything a robot
does per control step. Baseline, timed in the same process and interleaved with ours: a bare
numpy forward pass of the same MLP (the weights read from the ONNX file), which is the least
any runtime must do. Latencies are per agent (one call's time / batch size).

Without `--policy` it also times the export choice: the same untrained policy exported with
observe()'s training-time form (one array per feature, argmin rounds for up to `navigation.SMALL_FLEET`
candidates) as the baseline of ours (the wide form with top-k + gather, what `marlstack export` writes).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from marlstack.bench.report import Row

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
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    consumer = {i: n.op_type for n in model.graph.node for i in n.input}
    acts = {"Tanh": np.tanh, "Relu": lambda x: np.maximum(x, 0)}

    def const(name: str) -> np.ndarray:
        """An initializer, or one squeezed by the graph (a parameter set picked from a role axis)."""
        if name in consts:
            return consts[name]
        node = producer[name]
        if node.op_type != "Squeeze":
            raise ValueError(f"{path}: Gemm operand {name!r} is computed by {node.op_type}, not a constant")
        return np.squeeze(const(node.input[0]), axis=tuple(int(a) for a in const(node.input[1])))

    layers = []
    for node in model.graph.node:
        if node.op_type == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            w = const(node.input[1])
            layers.append((w.T if attrs.get("transB") else w, const(node.input[2]), acts.get(consumer.get(node.output[0]))))
    if not layers:
        raise ValueError(f"{path}: no Gemm layers found; the numpy baseline needs an MLP policy")

    def forward(x: np.ndarray) -> np.ndarray:
        for w, b, act in layers:
            x = x @ w + b
            x = act(x) if act is not None else x
        return x

    forward.in_features = layers[0][0].shape[0]  # type: ignore[attr-defined]
    return forward


def _timed(fn: Callable[[], Any], iters: int, clock: Callable[[], int] = time.perf_counter_ns) -> np.ndarray:
    out = np.empty(iters)
    for i in range(iters):
        t0 = clock()
        fn()
        out[i] = clock() - t0
    return out


def _latencies(ours: Callable[[], Any], base: Callable[[], Any], iters: int, rounds: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wall-clock ns of ours and the baseline, interleaved round by round, and ours in thread CPU time
    (on a shared machine the wall clock's tail is other processes' time slices, not ours)."""
    for fn in (ours, base):
        _timed(fn, max(iters // 10, 10))  # warm caches and onnxruntime's allocator
    samples = [(_timed(ours, iters), _timed(base, iters), _timed(ours, iters, time.thread_time_ns))
               for _ in range(rounds)]
    return tuple(np.concatenate([s[i] for s in samples]) for i in range(3))  # type: ignore[return-value]


def write_untrained_run(run_dir: Path, overrides: dict[str, Any], noise: float = 0.0, seed: int = 0) -> Path:
    """An untrained run directory through the trainer's public API (init + save), for timing and tests.

    `noise` > 0 adds Gaussian noise of that scale to the actor weights and the observation
    statistics, so an untrained policy's actions span the whole action range (the freshly
    initialised head is 0.01-scaled and would output almost nothing).
    """
    import jax
    from marlstack.policies.checkpoint import FILENAME, make_meta, save
    from marlstack.policies.config import build_config
    from marlstack.policies.ppo import Trainer
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


def _untrained_policy(tmp: Path, gather_above: int = 0, name: str = "policy.onnx", wide: bool = True) -> Path:
    from marlstack.policies.export import export
    run = tmp / "run" if (tmp / "run").is_dir() else write_untrained_run(tmp / "run", {"scenario": "navigation",
                                                                                        "num_agents": 4})
    export(run, tmp / name, gather_above=gather_above, wide=wide)
    return tmp / name


def run(args: argparse.Namespace) -> list[Row]:
    from marlstack.hardware import load_profile
    from marlstack.policies.export import random_inputs
    from marlstack.policies.runtime import PolicyRuntime
    with tempfile.TemporaryDirectory() as tmp:
        path = args.policy or _untrained_policy(Path(tmp))
        mlp = numpy_mlp(path)
        spec = PolicyRuntime(path).spec
        arena = load_profile(spec["profile"]["name"]).arena
        n = len(spec["agent"]["agents"])
        rng = np.random.default_rng(0)
        rows = []
        # (agents per call, fixed batch_size): one robot per node; the whole fleet in one call; any batch
        for batch, fixed in ((1, True), (n, True), (1, False)):
            rt = PolicyRuntime(path, batch_size=batch if fixed else None)
            inputs = {**random_inputs(spec["inputs"], arena, batch, rng), **rt.initial_state(batch)}
            obs = rng.normal(size=(batch, mlp.in_features)).astype(np.float32)
            ours, base, cpu = _latencies(lambda: rt.run(inputs), lambda: mlp(obs), args.iters, args.rounds)
            params = {"policy": spec["scenario"], "agents_per_call": batch,
                      "session": f"batch_size={batch}" if fixed else "any batch"}
            for q in (50, 99):
                ours_us, base_us, cpu_us = (np.percentile(x, q) / 1e3 / batch for x in (ours, base, cpu))
                extra = {"ours_cpu_time_us": float(cpu_us)}
                if q == 99:
                    extra |= {"goal_us": GOAL_P99_US, "meets_goal": bool(ours_us <= GOAL_P99_US)}
                rows.append(Row(params, f"latency_p{q}_per_agent", "us", float(ours_us), float(base_us),
                                "numpy MLP forward", higher_is_better=False, extra=extra))
        if args.policy is None:  # the export's form: wide + top-k (ours) vs training's per-feature + argmin rounds
            from marlstack.sim.scenarios.navigation import SMALL_FLEET
            rounds = _untrained_policy(Path(tmp), SMALL_FLEET, "training_form.onnx", wide=False)
            for batch in (1, n):
                rt, rt_base = (PolicyRuntime(p, batch_size=batch) for p in (path, rounds))
                inputs = {**random_inputs(spec["inputs"], arena, batch, rng), **rt.initial_state(batch)}
                assert np.allclose(rt.run(inputs)["cmd"], rt_base.run(inputs)["cmd"], rtol=0, atol=1e-5)  # the same policy
                ours, base, cpu = _latencies(lambda: rt.run(inputs), lambda: rt_base.run(inputs), args.iters, args.rounds)
                params = {"policy": spec["scenario"], "agents_per_call": batch, "session": f"batch_size={batch}"}
                for q in (50, 99):
                    ours_us, base_us, cpu_us = (np.percentile(x, q) / 1e3 / batch for x in (ours, base, cpu))
                    rows.append(Row(params, f"latency_p{q}_per_agent", "us", float(ours_us), float(base_us),
                                    "training-form export", higher_is_better=False, extra={"ours_cpu_time_us": float(cpu_us)}))
        return rows
