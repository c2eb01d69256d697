"""Evaluation of cable-team policies beside the baselines, on the same episodes.

Each episode runs until it ends (goal held for `task.success_hold`, a crash, or the profile's
`task.episode_seconds`, whatever length training used); the
same keys give the same random starts and goals to the trained policy (every seed), the zero command
(hover thrust) and the classical carrot controller. Reported per controller: success, crashes, final
position / orientation errors, slack events, effort and time to success, overall and by goal tilt.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from marlstack.policies.checkpoint import LoadedPolicy, load_policy
from marlstack.policies.envs import barrier_step
from marlstack.policies.evaluate import agent_actions, barrier_rates

TILT_BINS = ((0.0, 30.0), (30.0, 45.0), (45.0, 90.0))  # goal tilt from level, degrees


def rollouts(env: Any, act: Callable[..., jax.Array], episodes: int, seed: int,
             params: Any = None, ranges: dict | None = None) -> dict[str, np.ndarray]:
    """Per-episode outcomes of `act(params, obs (N, D), state) -> actions (N, 5)` on `env` (a CableEnv):
    arrays (episodes,), or (K, episodes) when `params` carries a leading axis of K policies (the seeds of a
    run: one compiled program evaluates them all on the same episodes), and (R, ...) when `ranges` holds R
    variations (`sim.cable.variation` ranges, every factor an (R,) low and high; `env` needs a variation
    whose latency covers theirs)."""
    from marlstack.sim.cable.rotation import quat_to_rot
    from marlstack.sim.cable.variation import sample

    def one(params, ranges, key):
        _, state = env.reset(key)
        if ranges is not None:  # this row's variation in place of the environment's own draw
            state = state.replace(variation=sample(jax.random.fold_in(key, 1), ranges, env.num_agents, env.dt))
        obs = env.observations(state)
        tilt = jnp.degrees(jnp.arccos(jnp.clip(quat_to_rot(state.goal_quat)[2, 2], -1.0, 1.0)))
        zero = jnp.zeros((), jnp.float32)
        carry = dict(state=state, obs=obs, alive=jnp.ones((), bool),
                     success=jnp.zeros((), bool), crashed=jnp.zeros((), bool), cause=jnp.zeros((), jnp.int32),
                     steps=zero, e_pos=zero, e_rot=zero,
                     slack=zero, effort=zero, barrier_changed=zero, barrier_change=zero)

        def step(c, k):
            action = act(params, c["obs"], c["state"])
            # no reset after the end (nothing is counted there): a smaller, faster program
            obs, nxt, _, dones, info = env.step(k, c["state"], action, auto_reset=False)
            done, alive = dones["__all__"], c["alive"]
            succ = jnp.all(info["success"])
            crashed = done & ~succ & (c["state"].step + 1 < env.max_steps)
            sent = nxt.actions[:, 0, :3] * env.action_limit[:3]
            end = alive & done
            out = dict(state=nxt, obs=jnp.stack([obs[a] for a in env.agents]), alive=alive & ~done,
                       success=c["success"] | (end & succ), crashed=c["crashed"] | (end & crashed),
                       cause=jnp.where(end & crashed, info["crash_cause"][0], c["cause"]),
                       steps=c["steps"] + alive, e_pos=jnp.where(end, info["position_error"][0], c["e_pos"]),
                       e_rot=jnp.where(end, info["orientation_error"][0], c["e_rot"]),
                       slack=c["slack"] + jnp.where(alive, jnp.sum(info["slack"]), 0.0),
                       effort=c["effort"] + jnp.where(alive, jnp.mean(jnp.sum(sent ** 2, -1)), 0.0),
                       **{k: c[k] + jnp.where(alive, v, 0.0) for k, v in zip(("barrier_changed", "barrier_change"),
                                                                           barrier_step(info["barrier_intervention"]))})
            return out, None

        c, _ = jax.lax.scan(step, carry, jax.random.split(key, env.max_steps))
        return {"success": c["success"], "crashed": c["crashed"], "crash_cause": c["cause"], "steps": c["steps"],
                "position_error": c["e_pos"],
                "orientation_error": c["e_rot"], "slack_steps": c["slack"], "effort": c["effort"] / c["steps"],
                "goal_tilt_deg": tilt, **({"barrier_changed": c["barrier_changed"], "barrier_change": c["barrier_change"],
                                           "agent_steps": c["steps"] * env.num_agents} if env.barrier is not None else {})}

    keys = jax.random.split(jax.random.PRNGKey(seed), episodes)
    run = jax.vmap(one, (None, None, 0))
    run = run if params is None else jax.vmap(run, (0, None, None))
    run = run if ranges is None else jax.vmap(run, (None, 0, None))
    return {k: np.asarray(v) for k, v in jax.jit(run)(params, ranges, keys).items()}


def summarise(r: dict[str, np.ndarray], dt: float) -> dict[str, Any]:
    ok = r["success"].astype(bool)
    by_tilt = {}
    for lo, hi in TILT_BINS:
        m = (r["goal_tilt_deg"] >= lo) & (r["goal_tilt_deg"] < hi)
        by_tilt[f"{lo:.0f}-{hi:.0f}"] = {"episodes": int(m.sum()),
                                          "success_rate": float(ok[m].mean()) if m.any() else None}
    from marlstack.sim.cable.env import CRASH_CAUSES
    causes = {name: int(np.sum(r["crashed"] & (r["crash_cause"] == i + 1))) for i, name in enumerate(CRASH_CAUSES)}
    return {"success_rate": float(ok.mean()), "crash_rate": float(r["crashed"].mean()),
            "crashes_by_cause": {k: v for k, v in causes.items() if v},
            "position_error_median_m": float(np.median(r["position_error"])),
            "orientation_error_median_deg": float(np.degrees(np.median(r["orientation_error"]))),
            "slack_mav_steps": float(r["slack_steps"].sum()),
            "effort_mean": float(r["effort"].mean()),
            "time_to_success_s": float(r["steps"][ok].mean() * dt) if ok.any() else None,
            **barrier_rates(r),
            "by_goal_tilt_deg": by_tilt}


def baselines(env: Any) -> dict[str, Callable]:
    """The zero command (hover thrust) and the classical controller, as action functions on `env` (a CableEnv
    without residual actions)."""
    from marlstack.sim.cable.env import classical

    def zero(params, obs, state):
        return jnp.zeros((env.num_agents, 5), jnp.float32)

    def carrot(params, obs, state):
        acc = classical(env.sense(state), env.team_constants)
        return jnp.concatenate([acc, jnp.zeros((env.num_agents, 2), acc.dtype)], -1)

    return {"zero": zero, "classical": carrot}


def together(fns: dict[str, Callable]) -> tuple[Callable[..., jax.Array], jax.Array]:
    """Several action functions of one env as one: `act(which, obs, state)` runs `fns`' `which`-th, so
    `rollouts(env, act, ..., params=which)` evaluates all of them in one compiled program (one compilation,
    which dominates a short evaluation), on the same episodes; the outcomes' leading axis follows `fns`."""
    branches = [functools.partial(fn, None) for fn in fns.values()]

    def act(which, obs, state):
        return jax.lax.switch(which, branches, obs, state)

    return act, jnp.arange(len(branches))


def _env(policy: LoadedPolicy, overrides: dict | None) -> Any:
    """The policy's task with the profile's full episode length (`task.episode_seconds`: training may use
    shorter episodes); `overrides["env_kwargs"]` is merged into the trained ones."""
    overrides = {"max_steps": 0, **(overrides or {})}
    kwargs = {**policy.config["env_kwargs"], **overrides.pop("env_kwargs", {})}
    return policy.make_env(env_kwargs=kwargs, **overrides)


def team_gif(path: Any, out: Any, seed: int = 0, failure: bool = False) -> Any:
    """A 3-D GIF (and PNG beside it) of the best seed's first evaluation episode."""
    from marlstack.sim.cable.render import animate, plot_trajectory, record

    policy = load_policy(path)
    env = _env(policy, {"env_kwargs": {"failure": True}} if failure else None)
    _, state = env.reset(jax.random.split(jax.random.PRNGKey(seed), 1)[0])

    def command(env, s):
        return env.command(env.sense(s), agent_actions(policy, env.observations(s)[None], None)[0][0])

    traj = record(env, state, command, env.max_steps)
    title = f"{policy.scenario}: {env.num_agents} MAVs, {policy.config['algo']} (seed {policy.seed_index})"
    plot_trajectory({k: (v[::10] if v.ndim > 1 else v) for k, v in traj.items()}, out.with_suffix(".png"), title)
    return animate({k: (v[::20] if v.ndim > 1 else v) for k, v in traj.items()}, out, title=title)


def seed_policies(path: Any, first: LoadedPolicy) -> tuple[Callable[..., jax.Array], Any]:
    """`act(params, obs, state)` for `rollouts` and every trained seed's parameters stacked on a leading axis
    (`first` is any seed of the run: the seeds share its network)."""
    seeds = [load_policy(path, s).params for s in range(int(first.config["num_seeds"]))]

    def act(params, obs, state):
        return agent_actions(dataclasses.replace(first, params=params), obs[None], None)[0][0]

    return act, jax.tree.map(lambda *p: jnp.stack(p), *seeds)


def evaluate_cable(path: Any, episodes: int = 256, seed: int = 0, env_overrides: dict | None = None) -> dict[str, Any]:
    """Every trained seed of a cable run and the baselines on the same `episodes` episodes."""
    first = load_policy(path, 0)
    env = _env(first, env_overrides)
    plain = _env(first, {**(env_overrides or {}), "env_kwargs": {**(env_overrides or {}).get("env_kwargs", {}),
                                                                "residual": 0.0}})
    dt = env.dt
    act, stacked = seed_policies(path, first)
    per_seed = rollouts(env, act, episodes, seed, stacked)
    seeds = [{"seed": int(first.config["seed"]) + i, **summarise({k: v[i] for k, v in per_seed.items()}, dt)}
             for i in range(int(first.config["num_seeds"]))]
    fns = baselines(plain)
    act_base, which = together(fns)
    both = rollouts(plain, act_base, episodes, seed, which)   # the zero command and the classical controller
    base = {name: summarise({k: v[i] for k, v in both.items()}, dt) for i, name in enumerate(fns)}
    if plain.barrier is not None:  # the classical controller as the issue measured it, without the certificate
        bare = _env(first, {**(env_overrides or {}), "env_kwargs": {**(env_overrides or {}).get("env_kwargs", {}),
                                                                    "residual": 0.0, "barrier": False}})
        base["classical_no_barrier"] = summarise(rollouts(bare, baselines(bare)["classical"], episodes, seed), dt)
    result = {"scenario": first.scenario, "run_id": first.run_id, "episodes": episodes, "eval_seed": seed,
              "episode_seconds": env.max_steps * dt,
              "num_agents": env.num_agents, "failure": bool(env.failure), "seeds": seeds,
              "median_success_rate": float(np.median([s["success_rate"] for s in seeds])),
              "median_crash_rate": float(np.median([s["crash_rate"] for s in seeds])),
              "barrier": plain.barrier is not None,
              "baselines": base}
    return result


def robustness_rows(profile: Any) -> list[tuple[str, dict[str, tuple[float, float]]]]:
    """The robustness table's rows, from the profile's `randomization:` spread: nominal, each physical
    factor at both ends of its range, the sensor noise, the largest latency, every factor drawn at once,
    and every factor drawn from twice the spread (beyond what training with randomisation saw)."""
    from marlstack.sim.cable.variation import NOISES, SCALES, profile_ranges
    r = profile_ranges(profile)
    rows = [("nominal", {})]
    for k in SCALES:
        lo, hi = r[k]
        rows += [(f"{k} x{v:.2f}", {k: (v, v)}) for v in (lo, hi) if v != 1.0]
    rows.append(("sensor noise", {k: (r[k][1], r[k][1]) for k in NOISES}))
    rows.append((f"latency {r['latency'][1] * 1e3:.0f} ms", {"latency": (r["latency"][1], r["latency"][1])}))
    rows.append(("all drawn (profile ranges)", r))
    rows.append(("all drawn, twice the spread", {k: (max(2 * lo - hi, 0.05) if k in SCALES else lo, 2 * hi - lo)
                                                  for k, (lo, hi) in r.items()}))
    return rows


def robustness(path: Any, episodes: int = 64, seed: int = 0, env_overrides: dict | None = None,
               rows: list[tuple[str, dict]] | None = None, classical: bool = True) -> dict[str, Any]:
    """Every seed of a cable run and (unless `classical=False`) the classical controller under each variation
    of `rows` (default `robustness_rows`), on the same episodes (one compiled program per controller for all
    rows)."""
    from marlstack.hardware import load_profile
    from marlstack.sim.cable.variation import FACTORS, check_ranges
    first = load_policy(path, 0)
    rows = robustness_rows(load_profile(first.profile)) if rows is None else rows
    latency = max(r.get("latency", (0.0, 0.0))[1] for _, r in rows)
    kw = {**(env_overrides or {}).get("env_kwargs", {}), "variation": {"latency": (0.0, latency)}}
    env = _env(first, {**(env_overrides or {}), "env_kwargs": kw})
    plain = _env(first, {**(env_overrides or {}), "env_kwargs": {**kw, "residual": 0.0}})
    nominal = {k: (0.0, 0.0) if k.startswith("noise") or k == "latency" else (1.0, 1.0) for k in FACTORS}
    full = [{**nominal, **check_ranges(r)} for _, r in rows]
    ranges = {k: (jnp.asarray([f[k][0] for f in full], jnp.float32), jnp.asarray([f[k][1] for f in full], jnp.float32))
              for k in FACTORS}
    act, stacked = seed_policies(path, first)
    trained = rollouts(env, act, episodes, seed, stacked, ranges)                  # (R, K, episodes)
    base = rollouts(plain, baselines(plain)["classical"], episodes, seed, None, ranges) if classical else None
    out = []
    for i, (name, r) in enumerate(rows):
        seeds = [summarise({k: v[i, j] for k, v in trained.items()}, env.dt) for j in range(int(first.config["num_seeds"]))]
        out.append({"name": name, "ranges": {k: list(v) for k, v in r.items()},
                    "success_per_seed": [s["success_rate"] for s in seeds],
                    "crash_per_seed": [s["crash_rate"] for s in seeds],
                    "median_success_rate": float(np.median([s["success_rate"] for s in seeds])),
                    "median_crash_rate": float(np.median([s["crash_rate"] for s in seeds])),
                    "classical": summarise({k: v[i] for k, v in base.items()}, env.dt) if classical else None})
    return {"scenario": first.scenario, "run_id": first.run_id, "episodes": episodes, "eval_seed": seed,
            "num_agents": env.num_agents, "barrier": plain.barrier is not None,
            "trained_with": first.config["env_kwargs"].get("variation"), "rows": out}


def robustness_table(result: dict[str, Any]) -> str:
    head = (f"robustness · {result['scenario']} · {result['num_agents']} MAVs · {result['episodes']} episodes per row "
            f"(eval seed {result['eval_seed']}) · trained with variation: {result['trained_with'] or 'none'}")
    lines = [head, "-" * len(head), f"{'':<30}{'trained policy (median over seeds)':^42}{'classical':^20}",
             f"{'variation':<30}{'success':>9}{'per seed':>22}{'crashes':>11}{'success':>10}{'crashes':>10}"]
    for r in result["rows"]:
        per = " ".join(f"{x:.3f}" for x in r["success_per_seed"])
        lines.append(f"{r['name']:<30}{r['median_success_rate']:>9.3f}{per:>22}{r['median_crash_rate']:>11.3f}"
                     f"{r['classical']['success_rate']:>10.3f}{r['classical']['crash_rate']:>10.3f}")
    return "\n".join(lines)


def table(result: dict[str, Any]) -> str:
    cols = [(f"seed {s['seed']}", s) for s in result["seeds"]] + list(result["baselines"].items())
    head = (f"{result['scenario']} · {result['num_agents']} MAVs · {result['episodes']} episodes of "
            f"{result['episode_seconds']:.0f} s{', barrier on' if result['barrier'] else ''} (eval seed "
            f"{result['eval_seed']}){' · one MAV fails mid-episode' if result['failure'] else ''} · run {result['run_id']}")
    rows = [("success rate", "success_rate", "{:.3f}"), ("crash rate", "crash_rate", "{:.3f}"),
            ("median position error (m)", "position_error_median_m", "{:.3f}"),
            ("median orientation error (deg)", "orientation_error_median_deg", "{:.1f}"),
            ("slack MAV-steps", "slack_mav_steps", "{:.0f}"), ("effort (m²/s⁴ per MAV-step)", "effort_mean", "{:.2f}"),
            ("time to success (s)", "time_to_success_s", "{:.2f}"),
            ("barrier changed (MAV-steps)", "barrier_rate", "{:.3f}"), ("barrier change (m/s², mean)", "barrier_change", "{:.2f}")]
    short = {"classical_no_barrier": "no barrier"}
    lines = [head, "-" * len(head), f"{'':<32}" + "".join(f"{short.get(name, name):>12}" for name, _ in cols)]
    for label, key, fmt in rows:
        lines.append(f"{label:<32}" + "".join(f"{'-' if c.get(key) is None else fmt.format(c[key]):>12}" for _, c in cols))
    for lo, hi in TILT_BINS:
        k = f"{lo:.0f}-{hi:.0f}"
        cells = [c["by_goal_tilt_deg"][k]["success_rate"] for _, c in cols]
        n = cols[0][1]["by_goal_tilt_deg"][k]["episodes"]
        lines.append(f"{f'success, goal tilt {k} deg ({n})':<32}" + "".join(
            f"{'-' if v is None else f'{v:.3f}':>12}" for v in cells))
    for name, c in cols:
        if c.get("crashes_by_cause"):
            lines.append(f"crashes of {short.get(name, name)}: " + ", ".join(f"{k} {v}" for k, v in c["crashes_by_cause"].items()))
    lines.append(f"median over seeds: success {result['median_success_rate']:.3f}, crashes {result['median_crash_rate']:.3f}")
    return "\n".join(lines)


def goal_rejection_rate(env: Any, samples: int = 4096, seed: int = 0) -> float:
    """Share of the random task's raw goal draws that `goal_feasible` rejects."""
    start = jnp.asarray(env.hover.load_pos, jnp.float32)
    feasible = jax.jit(lambda key: env.goal_feasible(*env.sample_goals(key, start, samples)))   # not op by op: 2x less CPU
    return float(1.0 - np.asarray(feasible(jax.random.PRNGKey(seed))).mean())

