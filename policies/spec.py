"""The policy artifact's self-description (DESIGN contract 4), as plain JSON.

`policy.onnx` carries this spec in `metadata_props["marlstack_spec"]`. The exporter builds it,
the onboard runtime reads it back and compares it with the node's configuration before the
first command leaves the robot. Plain Python only (no numpy, no JAX), so every side can use it.

Tensor entries describe one graph input or output *per agent*; axis 0 of every tensor is the
batch axis (`"B"`, dynamic), so several agents run in one call.
"""
from __future__ import annotations

import json
import math
from typing import Any, Mapping

SPEC_KEY = "marlstack_spec"
FORMAT = "marlstack-policy"
FORMAT_VERSION = 1
BATCH_AXIS = "B"

# key -> type of a valid spec's top-level value (None allowed where the tuple holds type(None))
_TOP_LEVEL: dict[str, type | tuple[type, ...]] = {
    "format": str, "format_version": int, "scenario": str, "vehicle_kind": str, "agent": dict,
    "inputs": list, "outputs": list, "recurrent": (dict, type(None)), "control_rate_hz": (int, float),
    "profile": dict, "training_run_id": str, "git_revision": str, "created": str,
    "marlstack_version": str, "exporter": dict,
}
_TENSOR: dict[str, type | tuple[type, ...]] = {"name": str, "shape": list, "dtype": str, "units": list, "frame": str}


class PolicyError(ValueError):
    """Base of every error about a policy artifact: catch this (or ValueError) to catch them all."""


class SpecError(PolicyError):
    """The artifact's spec is missing or malformed: the file was not written by `marlstack export`."""


class SpecMismatch(PolicyError):
    """The artifact is fine, but was exported for another scenario, vehicle, rate or agent."""


def tensor(name: str, shape: list[int], units: list[str], frame: str, doc: str = "", **extra: Any) -> dict[str, Any]:
    """One input or output entry: per-agent `shape` gets the batch axis prepended."""
    return {"name": name, "shape": [BATCH_AXIS, *shape], "dtype": "float32", "units": list(units),
            "frame": frame, "doc": doc, **extra}


def build_spec(*, scenario: str, vehicle_kind: str, agent: Mapping[str, Any], inputs: list[dict],
               outputs: list[dict], recurrent: Mapping[str, Any] | None, control_rate_hz: float,
               profile_name: str, profile_hash: str, training_run_id: str, git_revision: str,
               created: str, marlstack_version: str, exporter: Mapping[str, Any]) -> dict[str, Any]:
    """Assemble and validate a spec; keyword-only so no field can be swapped silently."""
    spec = {"format": FORMAT, "format_version": FORMAT_VERSION, "scenario": scenario,
            "vehicle_kind": vehicle_kind, "agent": dict(agent), "inputs": inputs, "outputs": outputs,
            "recurrent": None if recurrent is None else dict(recurrent), "control_rate_hz": control_rate_hz,
            "profile": {"name": profile_name, "hash": profile_hash}, "training_run_id": training_run_id,
            "git_revision": git_revision, "created": created, "marlstack_version": marlstack_version,
            "exporter": dict(exporter)}
    return validate_spec(spec)


def validate_spec(spec: Any) -> dict[str, Any]:
    """Return `spec` if it is a well-formed version-1 spec, else raise SpecError naming the key."""
    if not isinstance(spec, dict):
        raise SpecError(f"the spec must be a JSON object, got {type(spec).__name__}")
    if spec.get("format") != FORMAT:
        raise SpecError(f"key 'format' must be {FORMAT!r}, got {spec.get('format')!r}")
    if spec.get("format_version") != FORMAT_VERSION:
        raise SpecError(f"spec format_version {spec.get('format_version')!r} is not supported "
                        f"(this marlstack reads version {FORMAT_VERSION}); re-export the policy")
    _check_keys(spec, _TOP_LEVEL, "")
    if not (math.isfinite(spec["control_rate_hz"]) and spec["control_rate_hz"] > 0):
        raise SpecError(f"key 'control_rate_hz' must be a positive number, got {spec['control_rate_hz']!r}")
    _check_keys(spec["profile"], {"name": str, "hash": str}, "profile.")
    _check_keys(spec["agent"], {"role": str, "agents": list}, "agent.")
    for group in ("inputs", "outputs"):
        if not spec[group]:
            raise SpecError(f"key '{group}' must list at least one tensor")
        for i, entry in enumerate(spec[group]):
            if not isinstance(entry, dict):
                raise SpecError(f"key '{group}[{i}]' must be an object, got {type(entry).__name__}")
            _check_keys(entry, _TENSOR, f"{group}[{i}].")
            shape = entry["shape"]
            if not shape or shape[0] != BATCH_AXIS or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
                raise SpecError(f"key '{group}[{i}].shape' must be ['{BATCH_AXIS}', positive ints...], got {shape!r}")
        names = [e["name"] for e in spec[group]]
        if len(set(names)) != len(names):
            raise SpecError(f"key '{group}' repeats a tensor name: {names}")
    rec = spec["recurrent"]
    if rec is not None:
        _check_keys(rec, {"input": str, "output": str, "size": int}, "recurrent.")
        if rec["input"] not in {e["name"] for e in spec["inputs"]} or rec["output"] not in {e["name"] for e in spec["outputs"]}:
            raise SpecError(f"key 'recurrent' names state tensors {rec['input']!r}/{rec['output']!r} "
                            f"that are not among the inputs/outputs")
    return spec


def _check_keys(obj: Mapping[str, Any], schema: Mapping[str, type | tuple[type, ...]], prefix: str) -> None:
    for key, tp in schema.items():
        if key not in obj:
            raise SpecError(f"missing key '{prefix}{key}'")
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, tp):
            want = " or ".join(t.__name__ for t in (tp if isinstance(tp, tuple) else (tp,)))
            raise SpecError(f"key '{prefix}{key}' must be {want}, got {value!r}")


def dumps(spec: Mapping[str, Any]) -> str:
    """Canonical JSON (sorted keys) so the same spec always serialises to the same bytes."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def loads(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"the spec is not valid JSON: {exc}") from None
    return validate_spec(data)


def check_expectations(spec: Mapping[str, Any], *, scenario: str | None = None, profile_hash: str | None = None,
                       rate_hz: float | None = None, agent: str | None = None, rate_rel_tol: float = 1e-6) -> None:
    """Raise SpecMismatch naming every expectation (given as not None) the spec does not meet."""
    problems = []
    if scenario is not None and spec["scenario"] != scenario:
        problems.append(f"scenario: expected {scenario!r}, found {spec['scenario']!r}")
    if profile_hash is not None and spec["profile"]["hash"] != profile_hash:
        problems.append(f"vehicle profile hash: expected {profile_hash}, found {spec['profile']['hash']} "
                        f"(profile {spec['profile']['name']!r})")
    if rate_hz is not None and not math.isclose(spec["control_rate_hz"], rate_hz, rel_tol=rate_rel_tol):
        problems.append(f"control rate: expected {rate_hz:g} Hz, found {spec['control_rate_hz']:g} Hz")
    if agent is not None and agent not in spec["agent"]["agents"]:
        problems.append(f"agent: expected {agent!r}, found a policy for {spec['agent']['agents']} "
                        f"(role {spec['agent']['role']!r})")
    if problems:
        raise SpecMismatch("policy does not match this node's configuration: " + "; ".join(problems)
                           + ". Export the policy for this configuration or fix the node's parameters.")
