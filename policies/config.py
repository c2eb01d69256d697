"""Typed training configuration: dataclass defaults < scenario YAML < user YAML < command line.

Every field can be set on the command line (`--num-envs 128`, `--hidden-sizes 64,64`,
`--set key=value`); an unknown key or a value of the wrong type is one clear error.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import typing
from pathlib import Path
from typing import Any, Mapping

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
ALGOS = ("ippo", "mappo")


class ConfigError(ValueError):
    """A configuration key or value the trainer cannot use."""


def _f(default: Any, doc: str):
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"doc": doc})
    return dataclasses.field(default=default, metadata={"doc": doc})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    # what to train
    scenario: str = _f("navigation", "scenario name (`marlstack train --list` shows them)")
    algo: str = _f("ippo", "ippo (decentralised critics) or mappo (centralised critic on world_state)")
    profile: str = _f("gritsbot_x", "vehicle profile of fleet scenarios")
    num_agents: int = _f(0, "robots / agents; 0 = the scenario's default")
    action_type: str = _f("continuous", "continuous or discrete (fleet scenarios)")
    barrier: str = _f("none", "barrier certificate applied every sim step ('none' or a form, e.g. unicycle_walls)")
    max_steps: int = _f(0, "episode length in steps; 0 = the scenario's default")
    env_kwargs: dict = _f({}, "extra keyword arguments for the environment constructor")
    # budget and seeds
    seed: int = _f(0, "first seed; seeds seed..seed+num_seeds-1 train side by side (vmap)")
    num_seeds: int = _f(1, "independent seeds trained in one call")
    total_steps: int = _f(1_000_000, "environment steps per seed (rounded up to whole update chunks)")
    num_envs: int = _f(64, "parallel environments per seed")
    num_steps: int = _f(128, "rollout length per update")
    # PPO
    update_epochs: int = _f(4, "passes over each rollout")
    num_minibatches: int = _f(4, "minibatches per epoch")
    lr: float = _f(3e-4, "Adam learning rate")
    anneal_lr: bool = _f(True, "decay the learning rate linearly to 0")
    gamma: float = _f(0.99, "discount")
    gae_lambda: float = _f(0.95, "GAE lambda")
    clip_eps: float = _f(0.2, "policy ratio clip")
    value_clip_eps: float = _f(0.2, "value clip around the old prediction; 0 = off")
    ent_coef: float = _f(0.01, "entropy bonus")
    vf_coef: float = _f(0.5, "value loss weight")
    max_grad_norm: float = _f(0.5, "global gradient norm clip")
    # networks
    hidden_sizes: tuple = _f((64, 64), "MLP widths (actor and critic)")
    activation: str = _f("tanh", "tanh, relu or gelu")
    recurrent: bool = _f(False, "add a GRU after the MLP (partial observability)")
    gru_size: int = _f(64, "GRU width when recurrent")
    agent_id: bool = _f(False, "append a one-hot agent id to each observation")
    roles: tuple = _f((), "role index per agent, one parameter set per role; () = all agents share")
    normalize_obs: bool = _f(True, "running mean/std observation normalisation (saved in the checkpoint)")
    log_std_init: float = _f(-0.5, "initial log std of the Gaussian head")
    # devices
    devices: int = _f(0, "devices the env batch and minibatches are sharded over; 0 = all (of all processes)")
    # bookkeeping
    updates_per_call: int = _f(1, "PPO updates per jitted call (progress bar, metrics and checkpoint granularity)")
    checkpoint_every: int = _f(20, "write the checkpoint every this many calls (and always at the end)")
    eval_episodes: int = _f(64, "episodes of the final evaluation written to eval.json")
    tensorboard: bool = _f(False, "also write TensorBoard event files, one run per seed (OUT/tensorboard/seed-<s>)")

    def validate(self) -> "TrainConfig":
        if self.algo not in ALGOS:
            raise ConfigError(f"unknown algorithm {self.algo!r} (choose from {', '.join(ALGOS)})")
        positive = ("num_seeds", "total_steps", "num_envs", "num_steps", "update_epochs", "num_minibatches",
                    "updates_per_call", "checkpoint_every", "gru_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"config key '{name}' must be >= 1, got {getattr(self, name)}")
        if (self.num_envs * self.num_steps) % self.num_minibatches and not self.recurrent:
            raise ConfigError(f"num_envs * num_steps ({self.num_envs * self.num_steps}) must be divisible by "
                              f"num_minibatches ({self.num_minibatches})")
        if self.recurrent and self.num_envs % self.num_minibatches:
            raise ConfigError(f"recurrent: num_envs ({self.num_envs}) must be divisible by num_minibatches "
                              f"({self.num_minibatches})")
        if self.devices < 0:
            raise ConfigError(f"config key 'devices' must be >= 0 (0 = all local devices), got {self.devices}")
        if self.activation not in ("tanh", "relu", "gelu"):
            raise ConfigError(f"config key 'activation' must be tanh, relu or gelu, got {self.activation!r}")
        if self.action_type not in ("continuous", "discrete"):
            raise ConfigError(f"config key 'action_type' must be continuous or discrete, got {self.action_type!r}")
        if not self.hidden_sizes or any(int(h) < 1 for h in self.hidden_sizes):
            raise ConfigError(f"config key 'hidden_sizes' needs positive widths, got {list(self.hidden_sizes)}")
        if self.roles and min(self.roles) < 0:
            raise ConfigError(f"config key 'roles' needs role indices >= 0, got {list(self.roles)}")
        return self

    @property
    def num_updates(self) -> int:
        per_update = self.num_envs * self.num_steps
        calls = -(-self.total_steps // (per_update * self.updates_per_call))
        return calls * self.updates_per_call

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def compile_key(self) -> str:
        """What the compiled programs depend on: every key but the host loop's (HOST_ONLY)."""
        return json.dumps({k: v for k, v in self.to_dict().items() if k not in HOST_ONLY}, sort_keys=True)


# keys only the host loop reads (every other one is baked into the compiled programs): the ones a resumed
# run may change, and the ones a cached compile ignores
HOST_ONLY = ("total_steps", "checkpoint_every", "eval_episodes", "tensorboard")


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)


def coerce(key: str, value: Any) -> Any:
    """Check one value against the field's type (ints accepted for floats, lists for tuples)."""
    if key not in FIELDS:
        raise ConfigError(f"unknown config key '{key}' (known keys: {', '.join(FIELDS)})")
    tp = _HINTS[key]
    bad = ConfigError(f"config key '{key}' must be {tp.__name__}, got {value!r}")
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    if tp is tuple:
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"config key '{key}' must be a list of integers, got {value!r}")
        return tuple(value)
    if tp is dict:
        if not isinstance(value, Mapping):
            raise bad
        return dict(value)
    raise TypeError(f"unsupported config type {tp!r}")


def scenario_defaults(scenario: str) -> dict[str, Any]:
    """The scenario's YAML; the cable tasks without their own (cable_hover, ...) share the cable team's."""
    path = CONFIG_DIR / f"{scenario}.yaml"
    if not path.is_file() and scenario.startswith("cable_"):
        path = CONFIG_DIR / "cable.yaml"
    return read_yaml(path) if path.is_file() else {}


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a config file must be a YAML mapping")
    return dict(data)


def build_config(*layers: Mapping[str, Any]) -> TrainConfig:
    """Merge override layers (later wins) over the scenario's YAML defaults."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    scenario = merged.get("scenario", TrainConfig.scenario)
    values = {**scenario_defaults(str(scenario)), **merged}
    return TrainConfig(**{k: coerce(k, v) for k, v in values.items()}).validate()


def parse_value(text: str) -> Any:
    """A command-line value: YAML scalars/lists, or comma-separated integers (`64,64`)."""
    if "," in text and not text.strip().startswith(("[", "{")):
        text = f"[{text}]"
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # YAML 1.1 reads exponents without a dot (3e-4) as strings
    def number(v: Any) -> Any:
        return float(v) if isinstance(v, str) and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+", v) else v
    return [number(v) for v in value] if isinstance(value, list) else number(value)


def add_config_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One `--field-name` option per config field (parsed later, so defaults stay layered)."""
    group = parser.add_argument_group("config fields (override the scenario defaults)")
    for name, f in FIELDS.items():
        if name in skip:
            continue
        flag = "--" + name.replace("_", "-")
        if _HINTS[name] is bool:
            group.add_argument(flag, dest=f"cfg_{name}", action=argparse.BooleanOptionalAction, default=None,
                               help=f.metadata["doc"])
        else:
            group.add_argument(flag, dest=f"cfg_{name}", metavar="V", default=None, help=f.metadata["doc"])
    group.add_argument("--config", metavar="FILE", help="YAML file of config overrides")
    group.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                       help="override any config key (repeatable)")


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Config overrides from parsed arguments: --config file < --set < explicit --field options."""
    out: dict[str, Any] = dict(read_yaml(args.config)) if getattr(args, "config", None) else {}
    for item in getattr(args, "set", []):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key = key.strip().replace("-", "_")
        out[key] = coerce(key, parse_value(value))
    for name in FIELDS:
        raw = getattr(args, f"cfg_{name}", None)
        if raw is not None:
            out[name] = raw if isinstance(raw, bool) else (raw if _HINTS[name] is str else parse_value(raw))
    return out
