"""`make bench-gpu`: the accelerator's scaling table, memory per environment and the cable team's time-to-goal.

Run with `JAX_PLATFORMS=cuda,cpu` (the CPU backend in the same process is the same-run baseline):
  * env-steps/s of the cable team (3 MAVs) and of navigation (the fleet simulator, random actions)
    against the batch size, on the accelerator and on this machine's CPU backend, one jitted scan each;
  * memory per environment: the batched state's bytes / batch, and the device's peak bytes in use while
    stepping that batch / batch (what sizes a batch on a given card);
  * `bench train` (PPO env-steps/s vs the bare simulator) on the accelerator;
  * time-to-goal: `marlstack train cable` with the shipped config, unchanged, then `marlstack eval` on
    256 unseen episodes beside the classical controller; wall time of each, every seed.
Writes one JSON (`--out DIR/gpu.json`) and prints the tables. `--quick` is a CPU smoke run.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import jax

from bench import cable as cable_bench
from bench import train as train_bench
from bench.report import Row, format_table, machine

BATCHES = {"cable": [256, 4096, 32768], "navigation": [256, 4096, 65536]}
CPU_BASELINE_MAX = 4096     # the CPU backend is timed up to this batch (beyond it, minutes per row)


def _navigation_rate(batch: int, total: int) -> float:
    cfg = _navigation_cfg(batch, max(10, total // batch))
    return cfg.num_envs * cfg.num_steps / _best(train_bench.sim_fn(cfg))


def _navigation_cfg(batch: int, steps: int) -> Any:
    from policies.config import build_config
    return build_config({"scenario": "navigation", "num_envs": batch, "num_steps": steps, "num_seeds": 1})


def _best(fn: Callable[[], Any], repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _cable_rate(batch: int, total: int, chunk: int) -> float:
    from hardware import load_profile
    from sim.cable.env import CableEnv
    return cable_bench._rate(CableEnv(load_profile("mav_corl25"), 3), batch, total, jax.random.PRNGKey(0), chunk)


def _memory(env_name: str, batch: int) -> dict[str, float]:
    """Bytes per environment: the batched state, and the device's peak while stepping (None on CPU)."""
    from hardware import load_profile
    from sim.cable.env import CableEnv
    if env_name == "cable":
        env = CableEnv(load_profile("mav_corl25"), 3)
    else:
        from policies.envs import make_env
        env = make_env(_navigation_cfg(batch, 1))
    _, states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), batch))
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(states))
    stats = jax.devices()[0].memory_stats() or {}
    return {"state_bytes_per_env": state_bytes / batch,
            "peak_device_bytes_per_env": stats["peak_bytes_in_use"] / batch if "peak_bytes_in_use" in stats else None}


def scaling(batches: dict[str, list[int]], total: int) -> list[Row]:
    accel = jax.devices()[0]
    cpu = jax.devices("cpu")[0]
    rows = []
    for name, sizes in batches.items():
        for b in sizes:
            rate = (lambda: _cable_rate(b, total, 0)) if name == "cable" else (lambda: _navigation_rate(b, total))
            with jax.default_device(accel):
                ours = rate()
                mem = _memory(name, b)
            base = None
            if b <= CPU_BASELINE_MAX and accel.platform != "cpu":
                with jax.default_device(cpu):
                    base = rate() if name == "navigation" else _cable_rate(b, total, 256)
            rows.append(Row({"env": name, "envs": b, "device": accel.device_kind}, "env steps/s", "1/s", ours, base,
                            f"the same batch on the CPU backend ({cpu.device_kind})", True, mem))
    return rows


def time_to_goal(out: Path, overrides: list[str]) -> dict[str, Any]:
    """The shipped cable command, timed, then its evaluation (every seed, classical beside it)."""
    from marlstack.cli import main as cli
    run_dir = out / "cable3"
    t0 = time.perf_counter()
    if cli(["train", "cable", "--out", str(run_dir), "--no-progress", *overrides]) != 0:
        raise SystemExit("bench gpu: the cable training failed (its error is above)")
    train_s = time.perf_counter() - t0
    buf = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(buf):
        rc = cli(["eval", str(run_dir), "--episodes", "256", "--no-gif", "--json"])
    if rc != 0:
        raise SystemExit("bench gpu: the evaluation failed (its error is above)")
    result = json.loads(buf.getvalue())
    return {"command": "marlstack train cable " + " ".join(overrides), "train_wall_s": train_s,
            "eval_wall_s": time.perf_counter() - t0, "eval": result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench-gpu"), help="folder for gpu.json and the run")
    parser.add_argument("--quick", action="store_true", help="tiny batches and a tiny training (a CPU smoke run)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["scaling", "train", "goal"], help="parts to leave out")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    batches = {k: [8, 32] for k in BATCHES} if args.quick else BATCHES
    doc: dict[str, Any] = {"bench": "gpu", "machine": machine(), "devices": [d.device_kind for d in jax.devices()]}
    path = args.out / "gpu.json"

    def save(key: str, value: Any) -> None:
        doc[key] = value
        path.write_text(json.dumps(doc, indent=2, default=float))

    if "scaling" not in args.skip:
        rows = scaling(batches, 2_000 if args.quick else 200_000)
        print(format_table("gpu scaling", rows), flush=True)
        save("scaling", [r.as_dict() for r in rows])
    if "train" not in args.skip:
        targs = SimpleNamespace(quick=args.quick, num_envs=None, algos="mappo",
                                cases="navigation_barrier,cable", against=None)
        rows = train_bench.run(targs)
        print(format_table("gpu train", rows), flush=True)
        save("train", [r.as_dict() for r in rows])
    if "goal" not in args.skip:
        tiny = ["--total-steps", "2048", "--num-envs", "8", "--num-steps", "16", "--seeds", "1",
                "--updates-per-call", "1", "--eval-episodes", "0"] if args.quick else []
        goal = time_to_goal(args.out, tiny)
        print(json.dumps({k: v for k, v in goal.items() if k != "eval"}), flush=True)
        save("time_to_goal", goal)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
