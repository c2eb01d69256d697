"""Export a trained policy to one self-describing ONNX file (DESIGN contracts 2 and 4).

The graph is traced by jax2onnx from the very functions the simulator and the trainer run:
the scenario's `observe` followed by the checkpoint's deterministic `act` (observation
normalisation, actor, tanh squashing to the action limits, clipping). Its inputs are the raw
sensor tensors a robot receives (batch axis first, dynamic); its outputs are the command in
physical units (and, for recurrent policies, the next hidden state). Before the file is
written, onnxruntime runs it on random sensor values spread over the arena and must match JAX
to `PARITY_TOL`; the spec goes into `metadata_props` and `onnx.checker` runs its full check.

Two kinds of environment export: the ground fleets (`env.scenario.observe(sensors, params)`, the
command is the action; a team robot's v scaled by the top speed it senses, `sensed_speed`) and the cable-load team (`CableEnv`: its bound `env.observe(sensors)` and
`env.command(sensors, action)`, which adds the classical controller's command to a residual action and
clips to the limits, so the graph's output is the world acceleration + body-rate reference the MAV
flies). Either way the sensor tensors and their units come from the task's plain-Python spec module
(`SENSORS`), so a change to the sensor set reaches the exporter without edits here.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import importlib.metadata
import logging
import subprocess
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
import onnx

import marlstack
from marlstack.hardware import profile_hash
from marlstack.policies import spec as specs
from marlstack.policies.spec import PolicyError

# Opset 20 in IR version 9: onnxruntime >= 1.17 (early 2024) loads it; checked with onnxruntime
# 1.17.3, 1.19.2, 1.22.0 and 1.32.0 (docs/export.md). jax2onnx itself would write IR 10.
OPSET = 20
IR_VERSION = 9
PARITY_TOL = 1e-5  # max |onnx - jax| of any output, in its physical units
HIDDEN_IN, HIDDEN_OUT = "hidden", "hidden_next"
REPO = Path(__file__).resolve().parent.parent


class ExportError(PolicyError):
    """The checkpoint cannot be exported (unsupported scenario or action type, failed parity check, ...)."""


@dataclass
class Step:
    """What goes into the graph: `fn(*sensors[, hidden]) -> cmd` or `(cmd, hidden_next)`."""
    fn: Callable[..., Any]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    recurrent: dict[str, Any] | None


def is_team(env: Any) -> bool:
    """The cable-load team: `observe` and `command` are the environment's own (bound) methods."""
    return all(callable(getattr(env, a, None)) for a in ("sense", "observe", "command"))


def spec_module(env: Any) -> Any:
    """The task's JAX-free spec module: `sim/scenarios/<name>_spec.py` (fleets) or `sim/cable/spec.py` (team)."""
    if is_team(env):
        return importlib.import_module(f"{type(env).__module__.rpartition('.')[0]}.spec")
    module = getattr(env, "scenario", None)
    if not (hasattr(env, "sense") and hasattr(module, "observe")):
        raise ExportError(f"environment {type(env).__name__} has no sense()/observe() split, so there is no "
                          f"onboard observation to export; only the fleet and cable-team scenarios export")
    return importlib.import_module(f"{module.__name__}_spec")


def sensor_spec(env: Any) -> dict[str, dict[str, Any]]:
    """The scenario's JAX-free sensor description (`SENSORS` of its spec module)."""
    return spec_module(env).SENSORS


def control_rate_hz(env: Any) -> float:
    """The rate the policy runs at: the fleet profile's 1 / dt, the MAV team's policy rate."""
    profile = env.profile
    return float(profile.control.policy_rate_hz) if is_team(env) else 1.0 / profile.dt


def command_spec(env: Any, agent: str) -> dict[str, Any]:
    if is_team(env):  # the physical command (after the residual sum), clipped to the profile's limits
        actions, lim = spec_module(env).ACTIONS, np.asarray(env.action_limit, float)
        return specs.tensor("cmd", [len(actions["names"])], actions["units"], "world/body",
                            f"MAV command {actions['names']}: world-frame acceleration, roll/pitch body-rate "
                            f"references, within [low, high]", components=list(actions["names"]),
                            frames=list(actions["frame"]), low=(-lim).tolist(), high=lim.tolist())
    space = env.action_space(agent)
    if hasattr(space, "n"):  # the graph maps the discrete waypoint action to (v, omega) (sim.fleet.waypoint_commands)
        p = env.profile
        return specs.tensor("cmd", [2], ["m/s", "rad/s"], "body",
                            f"unicycle command [v, omega] tracking the discrete action's waypoint (one of "
                            f"{space.n}: stay, +x, -x, +y, -y), within [low, high]",
                            low=[-p.max_linear_speed, -p.max_angular_speed], high=[p.max_linear_speed, p.max_angular_speed])
    return specs.tensor("cmd", [2], ["m/s", "rad/s"], "body",
                        "unicycle command [v forward speed, omega turn rate], within [low, high]",
                        low=np.asarray(space.low, float).tolist(), high=np.asarray(space.high, float).tolist())


def sensed_speed(env: Any) -> Callable[[dict[str, Any]], Any] | None:
    """A team robot's top-speed factor from its own sensors, as the training fleet's `speed_factors` gives it.

    `FleetEnv` scales the nominal forward speed by the scenario's `speed_factors` (the robot's class; in arctic
    transport its class's speed on the tile under it) before the barrier. A real robot knows this from what it
    senses, so the exported command carries the scale: `capabilities`' speed, and where the class has a
    `water_speed`, that one when the team's `map` marks the robot's own tile as water (-1). Its own tile is
    mapped whenever its sensing radius reaches the tile's centre (every shipped class); an unmapped one reads as
    ice, as a tile outside the arena does in training. None: the scenario has no speed per robot, or every
    robot of the trained team has speed 1 and its sensors do not say otherwise.
    """
    if getattr(getattr(env, "scenario", None), "speed_factors", None) is None:
        return None
    fields, params = tuple(spec_module(env).CAPABILITIES), env.params
    if "speed" not in fields:
        if (params.column("speed") != 1).any():
            raise ExportError(f"scenario {env.name!r}: this team's classes have their own speeds but its robots do not "
                              f"sense them (capabilities {list(fields)}), so the exported command cannot scale by them")
        return None
    from marlstack.sim.scenarios.hetero import tile_values
    ice, water = fields.index("speed"), fields.index("water_speed") if "water_speed" in fields else None

    def factor(sensors: dict[str, Any]) -> Any:
        caps = sensors["capabilities"]
        if water is None:
            return caps[..., ice]
        tile = tile_values(sensors["map"], sensors["pose"][..., 0], sensors["pose"][..., 1], params)
        return jax.numpy.where(tile < 0, caps[..., water], caps[..., ice])
    return factor


def policy_step(loaded: Any, env: Any, agent_index: int, gather_above: int = 0, wide: bool = True) -> Step:
    """observe + act for one agent, as a function of the named raw sensor tensors (batch axis first).

    `gather_above`: nearest-first selections in observe() use argmin rounds up to this many
    candidates, top-k beyond; 0 (top-k always) runs fastest in onnxruntime, the same rows either way.
    `wide`: observe() in its few-wide-operations form where the scenario has one (navigation's
    `Params.wide`: a third of the kernels, the same numbers).
    """
    sensors = sensor_spec(env)
    names = list(sensors)
    example = jax.eval_shape(env.sense, jax.eval_shape(env.reset, jax.random.PRNGKey(0))[1])
    inputs = [specs.tensor(n, list(example[n].shape[1:]), sensors[n]["units"], sensors[n]["frame"],
                           sensors[n].get("doc", "")) for n in names]
    outputs = [command_spec(env, env.agents[agent_index])]
    act, params = loaded.act, loaded.params
    if is_team(env):
        observe_fn, finish = env.observe, env.command
    else:
        scenario, obs_params = env.scenario, env.params
        if hasattr(obs_params, "gather_above"):
            obs_params = dataclasses.replace(obs_params, gather_above=gather_above)
        if hasattr(obs_params, "wide"):
            obs_params = dataclasses.replace(obs_params, wide=wide)
        observe_fn, command = (lambda s: scenario.observe(s, obs_params)), (lambda s, a: a)
        from marlstack.sim.fleet import scale_forward, waypoint_commands
        if env.action_type == "discrete":
            command = lambda s, a: waypoint_commands(env.profile, s["pose"], a)  # noqa: E731
        speed = sensed_speed(env)
        finish = command if speed is None else lambda s, a: scale_forward(command(s, a), speed(s))  # noqa: E731
        if speed is not None:
            outputs[0]["doc"] += "; v scaled by the robot's own top-speed factor (its class, its tile) from its sensors"

    def run(tensors, *hidden):
        sensors = dict(zip(names, tensors))
        out = act(params, observe_fn(sensors), *hidden, agent_index=agent_index)
        return (finish(sensors, out[0]), out[1]) if hidden else finish(sensors, out)

    if not loaded.recurrent:
        return Step(lambda *s: run(s), inputs, outputs, None)
    size = int(loaded.init_hidden(1).shape[-1])
    inputs.append(specs.tensor(HIDDEN_IN, [size], [""] * size, "none", "recurrent state, zeros at episode start"))
    outputs.append(specs.tensor(HIDDEN_OUT, [size], [""] * size, "none", f"next recurrent state: feed back as {HIDDEN_IN!r}"))
    return Step(lambda *a: run(a[:-1], a[-1]), inputs, outputs, {"input": HIDDEN_IN, "output": HIDDEN_OUT, "size": size})


def _converter() -> Callable[..., Any]:
    """jax2onnx's `to_onnx` with only the plugins our graphs need registered.

    Its first call otherwise imports every plugin it ships: the equinox ones compile models at
    import (15 s on a 2-core machine), and the `jnp.shape` one returns traced shapes that
    break flax's `nn.scan` inside the GRU. lax, jax.numpy and flax.linen plugins suffice.
    """
    from jax2onnx import to_onnx
    from jax2onnx.plugins import plugin_system as plugins
    if getattr(plugins, "_already_imported_plugins", True):
        return to_onnx
    root = Path(plugins.__file__).parent
    for path in sorted([*(root / "jax").rglob("*.py"), *(root / "flax").rglob("*.py")]):
        rel = path.relative_to(root).with_suffix("")
        if path.name != "__init__.py" and rel.parts != ("jax", "numpy", "shape"):
            importlib.import_module(".".join(("jax2onnx.plugins", *rel.parts)))
    plugins._already_imported_plugins = True
    return to_onnx


def trace(step: Step, opset: int = OPSET) -> onnx.ModelProto:
    """jax2onnx with a symbolic batch axis; then pin the IR version older runtimes read."""
    to_onnx = _converter()
    log = logging.getLogger("onnx_ir")
    level = log.level
    log.setLevel(logging.ERROR)  # its serializer warns about untyped shape constants it leaves out
    try:
        model = to_onnx(step.fn, [tuple(e["shape"]) for e in step.inputs], opset=opset, model_name="marlstack_policy",
                        input_names=[e["name"] for e in step.inputs], output_names=[e["name"] for e in step.outputs])
    except Exception as exc:  # tracing runs scenario and trainer code: name the line that failed
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(str(REPO))
                  and "site-packages" not in f.filename]
        where = f" at {Path(frames[-1].filename).relative_to(REPO)}:{frames[-1].lineno}" if frames else ""
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ExportError(f"jax2onnx cannot trace observe() + act() with a dynamic batch axis{where}: "
                          f"{type(exc).__name__}: {first}") from exc
    finally:
        log.setLevel(level)
    _drop_unused_initializers(model.graph)
    model.ir_version = IR_VERSION
    return model


def _drop_unused_initializers(graph: onnx.GraphProto) -> set[str]:
    """Remove constants nothing reads (jax2onnx leaves some in the GRU's Loop body and onnxruntime
    warns about each at load); returns the names this graph and its subgraphs read."""
    used = {o.name for o in graph.output}
    for node in graph.node:
        used.update(node.input)
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else attr.graphs:
                used |= _drop_unused_initializers(sub)
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return used


def random_inputs(inputs: list[dict[str, Any]], arena: Any, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Inputs spread over the whole arena, by unit: metres uniform in the walls (x then y), radians
    in [-pi, pi], anything else standard normal. Enough for a parity check, with no simulator."""
    ranges = {"m": [(arena.x_min, arena.x_max), (arena.y_min, arena.y_max)], "rad": [(-np.pi, np.pi)] * 2}
    out = {}
    for e in inputs:
        size = (batch, *e["shape"][1:-1])
        cols = []
        for i, unit in enumerate(e["units"]):
            nth = e["units"][:i].count(unit)  # the first metre of a pose is x, the second y
            lo_hi = ranges[unit][nth % 2] if unit in ranges else None
            cols.append(rng.normal(size=size) if lo_hi is None else rng.uniform(*lo_hi, size=size))
        out[e["name"]] = np.stack(cols, axis=-1).astype(np.float32)
    return out


def rollout_inputs(env: Any, num_envs: int, num_steps: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Every agent's sensors over rollouts with random actions (uniform in the action limits) from
    random resets: name -> (num_envs * num_steps * N, ...) float32. Parity inputs for tasks whose
    sensors (rotation matrices, a team's geometry) are not independent random numbers."""
    import jax.numpy as jnp
    lim = jnp.asarray(env.action_limit, jnp.float32)

    def step(state, k):
        u = jax.random.uniform(k, (env.num_agents, lim.shape[0]), jnp.float32, -lim, lim)
        # physics only (no reward, auto-reset or training shield: a far smaller graph to compile); with
        # residual actions the classical controller's command plus u, clipped to the limits, flies
        state = env.step_physics(state, env.command(env.sense(state), u))
        return state, env.sense(state)

    def run(k):
        k0, k1 = jax.random.split(k)
        return jax.lax.scan(step, env.reset(k0)[1], jax.random.split(k1, num_steps))[1]

    out = jax.jit(jax.vmap(run))(jax.random.split(jax.random.PRNGKey(seed), num_envs))
    return {n: np.asarray(v, np.float32).reshape(-1, *v.shape[3:]) for n, v in out.items()}


def check_inputs(env: Any, step: Step, batch: int, seed: int) -> dict[str, np.ndarray]:
    """The exporter's parity inputs: rollouts for the team, values spread over the arena for fleets."""
    if is_team(env):
        steps = 16
        feeds = rollout_inputs(env, max(1, -(-batch // (steps * env.num_agents))), steps, seed)
        feeds = {k: v[:batch] for k, v in feeds.items()}
        size = (step.recurrent or {}).get("size")
        return {**feeds, HIDDEN_IN: np.zeros((len(feeds["pos"]), size), np.float32)} if size else feeds
    return random_inputs(step.inputs, env.profile.arena, batch, np.random.default_rng(seed))


def parity_error(model: onnx.ModelProto, step: Step, feeds: dict[str, np.ndarray]) -> float:
    """Largest |onnxruntime - JAX| over every output for the batch `feeds`."""
    from marlstack.policies.runtime import session_options
    import onnxruntime as ort
    session = ort.InferenceSession(model.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
    names = [e["name"] for e in step.outputs]
    got = session.run(names, feeds)
    want = jax.jit(step.fn)(*(feeds[e["name"]] for e in step.inputs))
    want = want if isinstance(want, (tuple, list)) else (want,)
    return max(float(np.max(np.abs(g - np.asarray(w)))) for g, w in zip(got, want))


def git_revision() -> str:
    """`git describe --always --dirty` of this checkout, or 'unknown' outside one."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def check_obs_dim(loaded: Any, env: Any, agent_index: int) -> None:
    """The checkpoint's observation size must be what the scenario's observe() produces today."""
    want = getattr(loaded, "obs_dim", None)
    have = int(env.observation_space(env.agents[agent_index]).shape[-1])
    if want is not None and want != have:
        raise ExportError(f"the checkpoint was trained on {want}-dim observations but scenario {loaded.scenario!r} "
                          f"now observes {have}: observe() changed since training; retrain, or export from the "
                          f"revision it was trained with")


def check_fleet_size(trained_agents: int, target: Any) -> None:
    """The observation must mean the same at both fleet sizes: as many real (unpadded) neighbours.

    A policy trained with 4 robots never saw a 4th neighbour (that slot was always padding, with
    zero variance in its normalisation statistics); fed one with 8 robots it acts arbitrarily.
    `target` is the environment at the new size; its scenario parameters are the training ones.
    """
    k = getattr(getattr(target, "params", None), "num_neighbors", None)
    if k is None:
        raise ExportError(f"scenario of this run has no fleet-size-independent observation; export with the "
                          f"training fleet ({trained_agents} agents)")
    seen, wanted = min(trained_agents - 1, k), min(target.num_agents - 1, k)
    if seen != wanted:
        raise ExportError(f"trained with {trained_agents} agents, the policy observed {seen} neighbour(s); a fleet "
                          f"of {target.num_agents} fills {wanted} of the {k} neighbour slots, which it never saw. "
                          f"Train with at least {k + 1} agents to export for any fleet of {k + 1} or more")


def agent_dependent(config: dict[str, Any]) -> bool:
    """True when agents act differently on equal observations (one-hot agent id or several roles)."""
    return bool(config.get("agent_id")) or len(set(config.get("roles") or ())) > 1


def choose_agent(loaded: Any, agent: str | None) -> tuple[int, str, list[str]]:
    """(agent index to trace, spec role, agents the artifact is valid for)."""
    names = list(loaded.agent_names)
    if agent is None:
        if agent_dependent(loaded.config):
            raise ExportError(f"this policy gives each agent its own parameters or id; export one file per agent "
                              f"with --agent NAME (one of {', '.join(names)})")
        return 0, "shared", names
    if agent not in names:
        raise ExportError(f"agent {agent!r} is not in this run (agents: {', '.join(names)})")
    return names.index(agent), agent, [agent]


def export(source: str | Path | Any, out: str | Path, agent: str | None = None, *, num_agents: int | None = None,
           check_batch: int = 1024, seed: int = 0, gather_above: int = 0, wide: bool = True) -> dict[str, Any]:
    """Export a run dir or checkpoint (or a LoadedPolicy-like object) to `out`; returns the spec written.

    `gather_above` and `wide` are `policy_step`'s (`marlstack bench policy` / `bench policy_steps` export
    with the training defaults too, as their baselines).

    `num_agents` exports for another fleet size than the training one: possible when every
    agent runs the same parameters and the observation does not grow with the fleet (e.g.
    navigation's K nearest neighbours); the sensor tensors then take the new size.
    """
    from marlstack.policies.checkpoint import load_policy
    loaded = source if hasattr(source, "act") else load_policy(source)
    index, role, agents = choose_agent(loaded, agent)
    if num_agents is not None and num_agents != loaded.num_agents:
        if role != "shared":
            raise ExportError("--num-agents needs a policy whose agents share parameters without an agent id")
        env = loaded.make_env(num_agents=num_agents)
        check_fleet_size(loaded.num_agents, env)
        agents = list(env.agents)
    else:
        env = loaded.make_env()
    check_obs_dim(loaded, env, index)
    step = policy_step(loaded, env, index, gather_above, wide)
    model = trace(step)
    profile = env.profile
    spec = specs.build_spec(
        scenario=loaded.scenario, vehicle_kind=profile.kind, agent={"role": role, "agents": agents},
        inputs=step.inputs, outputs=step.outputs, recurrent=step.recurrent, control_rate_hz=control_rate_hz(env),
        profile_name=profile.name, profile_hash=profile_hash(profile), training_run_id=str(loaded.run_id),
        git_revision=git_revision(), created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        marlstack_version=marlstack.__version__,
        exporter={"jax2onnx": importlib.metadata.version("jax2onnx"), "opset": OPSET, "ir_version": IR_VERSION,
                  "source": str(getattr(source, "path", source) if hasattr(source, "act") else source)})
    err = parity_error(model, step, check_inputs(env, step, check_batch, seed))
    if not err <= PARITY_TOL:
        raise ExportError(f"the ONNX graph disagrees with JAX by {err:.3g} (> {PARITY_TOL:g}) on random sensor values; "
                          f"file not written. Please report this with the checkpoint")
    write_artifact(model, spec, out)
    return spec


def write_artifact(model: onnx.ModelProto, spec: dict[str, Any], out: str | Path) -> Path:
    """Attach the spec as `metadata_props`, run onnx's full check, save as one file."""
    onnx.helper.set_model_props(model, {specs.SPEC_KEY: specs.dumps(specs.validate_spec(spec))})
    onnx.checker.check_model(model, full_check=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out
