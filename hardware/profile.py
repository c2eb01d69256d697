"""Vehicle profiles: the one place every limit and physical constant comes from.

A profile is a YAML file in `hardware/vehicles/` (or any path). Its `kind` picks a
schema: a tree of frozen dataclasses whose field metadata carries the allowed range.
The loader checks every key, type and range and names the file and key on error, so a
bad profile never reaches a simulator or a robot. Profiles are hashable and immutable,
so they can be passed as static arguments to `jax.jit`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import math
import typing
from pathlib import Path
from typing import Any, Mapping

import yaml

VEHICLES_DIR = Path(__file__).resolve().parent / "vehicles"


class ProfileError(ValueError):
    """A profile file is missing, malformed or out of range."""


def spec(lo: float | None = None, hi: float | None = None, doc: str = "", unit: str = "") -> dict:
    """Field metadata: inclusive range, a short description and the unit."""
    return {"lo": lo, "hi": hi, "doc": doc, "unit": unit}


def field(lo: float | None = None, hi: float | None = None, doc: str = "", unit: str = "", **kw):
    return dataclasses.field(metadata=spec(lo, hi, doc, unit), **kw)


@dataclasses.dataclass(frozen=True)
class Arena:
    x_min: float = field(-100, 100, "left wall", "m")
    x_max: float = field(-100, 100, "right wall", "m")
    y_min: float = field(-100, 100, "bottom wall", "m")
    y_max: float = field(-100, 100, "top wall", "m")

    def check(self, where: str) -> None:
        if not (self.x_min < self.x_max and self.y_min < self.y_max):
            raise ProfileError(f"{where}: arena needs x_min < x_max and y_min < y_max, got {self}")


@dataclasses.dataclass(frozen=True)
class BarrierParams:
    gamma: float = field(1e-6, 1e4, "class-K gain of the cubic barrier condition dh/dt >= -gamma h^3")
    safety_radius: float = field(0.0, 10.0, "barrier distance D_s (unicycle forms keep projection points D_s + projection_distance apart, as rps does)", "m")
    projection_distance: float = field(0.0, 1.0, "look-ahead of the unicycle projection point (0 for single integrators)", "m")


@dataclasses.dataclass(frozen=True)
class Barriers:
    """rps 2.1's defaults per barrier form."""
    unicycle: BarrierParams
    unicycle_walls: BarrierParams
    single_integrator: BarrierParams
    wall_gain: float = field(0.0, 10.0, "wall barriers use wall_gain * gamma (rps: 0.4)")


@dataclasses.dataclass(frozen=True)
class GroundProfile:
    """A differential-drive robot (unicycle model) and the arena it drives in."""
    name: str
    kind: str
    description: str
    dt: float = field(1e-4, 1.0, "control and simulation period", "s")
    max_linear_speed: float = field(0.0, 10.0, "forward speed limit", "m/s")
    max_angular_speed: float = field(0.0, 100.0, "turn-rate limit (used where saturation is 'unicycle')", "rad/s")
    max_wheel_speed: float = field(0.0, 1000.0, "per-wheel angular speed limit", "rad/s")
    wheel_radius: float = field(1e-4, 1.0, "", "m")
    base_length: float = field(1e-4, 2.0, "axle length between the wheels", "m")
    diameter: float = field(1e-4, 2.0, "robot footprint diameter", "m")
    collision_distance: float = field(0.0, 2.0, "robots collide when their collision centres are at most this far apart", "m")
    collision_offset: float = field(-1.0, 1.0, "collision centre shifted forward along the heading", "m")
    saturation: str = field(doc="'wheel': clip each wheel to max_wheel_speed; 'unicycle': clip v and omega independently")
    max_robots: int = field(1, 1000, "largest fleet the arena supports")
    arena: Arena
    barrier: Barriers

    def check(self, where: str) -> None:
        if self.saturation not in ("wheel", "unicycle"):
            raise ProfileError(f"{where}: key 'saturation' must be 'wheel' or 'unicycle', got {self.saturation!r}")
        self.arena.check(where)


# kind -> schema; other robot families name their schema module lazily ("module:Class").
KINDS: dict[str, type | str] = {"ground": GroundProfile, "mav_team": "marlstack.hardware.mav_profile:MavTeamProfile"}


def _schema(kind: str) -> type:
    cls = KINDS[kind]
    if isinstance(cls, str):
        module, attr = cls.split(":")
        cls = KINDS[kind] = getattr(importlib.import_module(module), attr)
    return cls


def _build(cls: type, data: Any, where: str, key: str) -> Any:
    if not isinstance(data, Mapping):
        raise ProfileError(f"{where}: key '{key or '<root>'}' must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(_join(key, u) for u in unknown)} "
                           f"(expected: {', '.join(sorted(names))})")
    values = {}
    for f in dataclasses.fields(cls):
        path = _join(key, f.name)
        if f.name not in data:
            if f.default is not dataclasses.MISSING:
                values[f.name] = f.default
                continue
            raise ProfileError(f"{where}: missing key '{path}' ({_describe(f, hints[f.name])})")
        values[f.name] = _value(hints[f.name], f, data[f.name], where, path)
    obj = cls(**values)
    if hasattr(obj, "check") and not key:
        obj.check(where)
    return obj


def _value(tp: Any, f: dataclasses.Field, raw: Any, where: str, path: str) -> Any:
    if dataclasses.is_dataclass(tp):
        obj = _build(tp, raw, where, path)
        return obj
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        item_tp = args[0]
        if not isinstance(raw, (list, tuple)) or (args[-1] is not Ellipsis and len(raw) != len(args)):
            raise ProfileError(f"{where}: key '{path}' must be a list ({_describe(f, tp)}), got {raw!r}")
        return tuple(_value(item_tp, f, r, where, f"{path}[{i}]") for i, r in enumerate(raw))
    if tp is str:
        if not isinstance(raw, str):
            raise ProfileError(f"{where}: key '{path}' must be a string, got {raw!r}")
        return raw
    if tp is bool:
        if not isinstance(raw, bool):
            raise ProfileError(f"{where}: key '{path}' must be true or false, got {raw!r}")
        return raw
    if tp in (int, float):
        ok = isinstance(raw, int) if tp is int else isinstance(raw, (int, float))
        if isinstance(raw, bool) or not ok or not math.isfinite(raw):
            raise ProfileError(f"{where}: key '{path}' must be a finite {tp.__name__} ({_describe(f, tp)}), got {raw!r}")
        lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
        if (lo is not None and raw < lo) or (hi is not None and raw > hi):
            raise ProfileError(f"{where}: key '{path}' = {raw!r} is out of range [{lo}, {hi}] ({_describe(f, tp)})")
        return tp(raw)
    raise TypeError(f"unsupported profile field type {tp!r} at {path}")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _describe(f: dataclasses.Field, tp: Any) -> str:
    name = getattr(tp, "__name__", str(tp))
    parts = [name]
    lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
    if lo is not None or hi is not None:
        parts.append(f"in [{lo}, {hi}]")
    if f.metadata.get("unit"):
        parts.append(f.metadata["unit"])
    if f.metadata.get("doc"):
        parts.append(f.metadata["doc"])
    return ", ".join(parts)


def profile_path(name_or_path: str | Path) -> Path:
    """A bundled profile by name (`gritsbot_x`) or any YAML file by path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        return p
    return VEHICLES_DIR / f"{name_or_path}.yaml"


def available_profiles() -> list[str]:
    return sorted(p.stem for p in VEHICLES_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | Path) -> Any:
    """Load and validate a vehicle profile; raises ProfileError naming file, key and expectation."""
    path = profile_path(name_or_path)
    where = str(path)
    if not path.is_file():
        raise ProfileError(f"{where}: no such profile (bundled profiles: {', '.join(available_profiles())})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ProfileError(f"{where}: a profile must be a YAML mapping, got {type(data).__name__}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ProfileError(f"{where}: key 'kind' must be one of {sorted(KINDS)}, got {kind!r}")
    return _build(_schema(kind), data, where, "")


def profile_hash(profile: Any) -> str:
    """Stable digest of a profile's values: a policy artifact records it, a node compares it. The ranges of
    domain randomisation (`randomization:`) only shape training and a MAV's flight-controller failsafe
    (`failsafe:`) only flies when the policy does not, so they are left out."""
    values = {k: v for k, v in dataclasses.asdict(profile).items() if k not in ("randomization", "failsafe")}
    blob = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
