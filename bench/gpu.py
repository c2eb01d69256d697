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

from marlstack.bench import train as train_bench
from marlstack.bench.report import Row, format_table, machine

BATCHES = {"cable": [256, 4096, 32768], "navigation": [256, 4096, 65536]}
CPU_BASELINE_MAX = 4096     # the CPU backend is timed up to this batch (beyond it, minutes per row)


def _navigation_cfg(batch: int, steps: int) -> Any:
    from marlstack.policies.config import build_config
    return build_config({"scenario": "navigation", "num_envs": batch, "num_steps": steps, "num_seeds": 1})


def _env(name: str, batch: int) -> tuple[Any, Callable[[jax.Array], Any]]:
    """(environment, key -> one batch of actions): the cable team hovers on zero actions, the fleet
    drives random ones."""
    if name == "cable":
        from marlstack.hardware import load_profile
        from marlstack.sim.cable.env import ACTION_DIM, CableEnv
        env = CableEnv(load_profile("mav_corl25"), 3)
        return env, lambda k: jax.numpy.zeros((batch, env.num_agents, ACTION_DIM), jax.numpy.float32)
    from marlstack.policies.envs import make_env
    env = make_env(_navigation_cfg(batch, 1))
    return env, lambda k: {a: jax.vmap(env.action_space(a).sample)(jax.random.split(jax.random.fold_in(k, i), batch))
                           for i, a in enumerate(env.agents)}


def measure(name: str, batch: int, total: int, repeats: int = 3) -> dict[str, float]:
    """One compiled program, `steps` batched env steps in a `lax.scan` on the default device: its env
    steps/s (best of `repeats`: other work only slows it down), the batched state's bytes per env, and
    the program's own footprint per env (arguments + outputs + temporaries, XLA's memory analysis)."""
    env, act = _env(name, batch)
    steps = max(10, total // batch)
    _, states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), batch))

    def run(states, key):
        def step(states, k):
            ka, ke = jax.random.split(k)
            obs, states, rew, *_ = jax.vmap(env.step)(jax.random.split(ke, batch), states, act(ka))
            return states, sum(x.sum() for x in jax.tree.leaves((obs, rew)))  # what training reads stays computed
        return jax.lax.scan(step, states, jax.random.split(key, steps))

    compiled = jax.jit(run).lower(states, jax.random.PRNGKey(1)).compile()
    mem = compiled.memory_analysis()
    go = lambda: jax.block_until_ready(compiled(states, jax.random.PRNGKey(1)))  # noqa: E731
    go()  # warm up
    best = train_bench._best_of({"run": go}, repeats)["run"]
    program = mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
    return {"steps_per_s": steps * batch / best, "state_bytes_per_env": sum(x.nbytes for x in jax.tree.leaves(states)) / batch,
            "program_bytes_per_env": program / batch}


def scaling(batches: dict[str, list[int]], total: int) -> list[Row]:
    accel, cpu = jax.devices()[0], jax.devices("cpu")[0]
    rows = []
    for name, sizes in batches.items():
        for b in sizes:
            with jax.default_device(accel):
                ours = measure(name, b, total)
            base = None
            if b <= CPU_BASELINE_MAX and accel.platform != "cpu":
                with jax.default_device(cpu):
                    base = measure(name, b, total)["steps_per_s"]
            rows.append(Row({"env": name, "envs": b, "device": accel.device_kind}, "env steps/s", "1/s",
                            ours.pop("steps_per_s"), base, f"the same batch on the CPU backend ({cpu.device_kind})",
                            True, ours))
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
    parser = argparse.ArgumentParser(prog="python -m marlstack.bench.gpu", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench-gpu"), help="folder for gpu.json and the run")
    parser.add_argument("--quick", action="store_true", help="tiny batches and a tiny training (a CPU smoke run)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["scaling", "train", "goal"], help="parts to leave out")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    batches = {k: [8] for k in BATCHES} if args.quick else BATCHES
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
