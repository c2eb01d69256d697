"""Run an exported policy onboard: numpy + onnxruntime only (importing this never imports JAX).

`PolicyRuntime` loads `policy.onnx`, refuses a model whose spec does not match what the node
was configured for (scenario, vehicle profile hash, control rate, agent), checks every input
before it reaches onnxruntime, and runs one single-threaded session. Axis 0 of every tensor is
the batch axis, so one call can serve several agents:

    rt = PolicyRuntime("policy.onnx", expect_scenario="navigation", expect_profile_hash=h, batch_size=4)
    cmd = rt.run({"pose": poses, "others": others, "goal": goals})["cmd"]   # (4, 2): v, omega

Recurrent policies take their hidden state as an input and return the next one as an output;
`initial_state(batch)` gives the state to start an episode with.

Errors (all subclasses of `PolicyError`): `ArtifactError` (unreadable file or spec),
`SpecMismatch` (exported for another configuration), `BadInput` (a bad input tensor).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import onnxruntime as ort

from marlstack.policies.spec import BATCH_AXIS, SPEC_KEY, PolicyError, SpecError, SpecMismatch, check_expectations, loads

__all__ = ["ArtifactError", "BadInput", "PolicyError", "PolicyRuntime", "SpecMismatch", "load_spec"]


class ArtifactError(PolicyError):
    """The file is missing, is not an ONNX model, or carries no valid marlstack spec."""


class BadInput(PolicyError):
    """An input tensor is missing, unexpected, of the wrong shape or dtype, or not finite."""


def session_options(batch_size: int | None = None) -> ort.SessionOptions:
    """One thread, sequential: a policy step is tiny, and a robot's other nodes need the cores.

    A fixed `batch_size` lets onnxruntime fold the graph's shape arithmetic at load (about a
    quarter of the nodes of a navigation policy), which shortens every call.
    """
    opts = ort.SessionOptions()
    if batch_size is not None:
        opts.add_free_dimension_override_by_name(BATCH_AXIS, batch_size)
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return opts


def _open(path: Path, batch_size: int | None = None) -> ort.InferenceSession:
    if not path.is_file():
        raise ArtifactError(f"{path}: no such policy file (create one with `marlstack export`)")
    try:
        return ort.InferenceSession(str(path), session_options(batch_size), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable models
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"{path}: onnxruntime cannot load this model: {first}") from None


def _spec_of(session: ort.InferenceSession, path: Path) -> dict[str, Any]:
    text = session.get_modelmeta().custom_metadata_map.get(SPEC_KEY)
    if text is None:
        raise ArtifactError(f"{path}: the model has no '{SPEC_KEY}' metadata; "
                            f"it was not written by `marlstack export`")
    try:
        return loads(text)
    except SpecError as exc:
        raise ArtifactError(f"{path}: bad '{SPEC_KEY}' metadata: {exc}") from None


def load_spec(path: str | Path) -> dict[str, Any]:
    """The spec of a policy file, validated (ArtifactError if it has none)."""
    path = Path(path)
    return _spec_of(_open(path), path)


class PolicyRuntime:
    """A loaded, checked policy. Not thread-safe; create one per node.

    `batch_size`: None accepts any number of agents per call; an int fixes it (faster calls,
    BadInput for any other batch). The `expect_*` arguments are checked against the spec
    (None skips a check); `rate_rel_tol` is the relative tolerance on the control rate.
    """

    def __init__(self, path: str | Path, expect_scenario: str | None = None, expect_profile_hash: str | None = None,
                 expect_rate_hz: float | None = None, expect_agent: str | None = None,
                 rate_rel_tol: float = 1e-6, batch_size: int | None = None) -> None:
        self.path = Path(path)
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be None or >= 1, got {batch_size}")
        self.batch_size = batch_size
        self._session = _open(self.path, batch_size)
        self.spec = _spec_of(self._session, self.path)
        try:
            check_expectations(self.spec, scenario=expect_scenario, profile_hash=expect_profile_hash,
                               rate_hz=expect_rate_hz, agent=expect_agent, rate_rel_tol=rate_rel_tol)
        except SpecMismatch as exc:
            raise SpecMismatch(f"{self.path}: {exc}") from None
        graph_inputs = [i.name for i in self._session.get_inputs()]
        graph_outputs = [o.name for o in self._session.get_outputs()]
        self.input_names = [e["name"] for e in self.spec["inputs"]]
        self.output_names = [e["name"] for e in self.spec["outputs"]]
        if sorted(graph_inputs) != sorted(self.input_names) or sorted(graph_outputs) != sorted(self.output_names):
            raise ArtifactError(f"{self.path}: the spec lists inputs {self.input_names} and outputs {self.output_names} "
                                f"but the graph has {graph_inputs} and {graph_outputs}")
        self._shapes = {e["name"]: tuple(e["shape"][1:]) for e in self.spec["inputs"]}
        self._bound = self._bind() if batch_size is not None else None

    @property
    def recurrent(self) -> bool:
        return self.spec["recurrent"] is not None

    @property
    def control_rate_hz(self) -> float:
        return float(self.spec["control_rate_hz"])

    def initial_state(self, batch: int) -> dict[str, np.ndarray]:
        """Zero hidden state for `batch` agents (empty for feed-forward policies), to merge into `run`'s inputs."""
        rec = self.spec["recurrent"]
        return {} if rec is None else {rec["input"]: np.zeros((batch, rec["size"]), np.float32)}

    def check_inputs(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """float32 arrays with one common batch size, or BadInput naming the input and the problem."""
        self._check_structure(inputs)
        for name in self.input_names:
            if not np.isfinite(inputs[name]).all():
                raise self._not_finite(name, inputs[name])
        return {name: inputs[name].astype(np.float32, copy=False) for name in self.input_names}

    def _check_structure(self, inputs: Mapping[str, Any]) -> None:
        """Names, types, dtypes, shapes and the common batch size (everything but the values)."""
        missing = [n for n in self.input_names if n not in inputs]
        extra = [n for n in inputs if n not in self._shapes]
        if missing or extra:
            raise BadInput(f"policy inputs must be exactly {self.input_names}: "
                           + "; ".join(filter(None, [missing and f"missing {missing}", extra and f"unexpected {extra}"])))
        batch = self.batch_size
        for name in self.input_names:
            value = inputs[name]
            if not isinstance(value, np.ndarray):
                raise BadInput(f"input {name!r}: expected a numpy array, got {type(value).__name__}")
            if value.dtype.kind != "f":
                raise BadInput(f"input {name!r}: expected a floating-point array, got dtype {value.dtype}")
            want = self._shapes[name]
            if value.ndim != len(want) + 1 or value.shape[1:] != want or value.shape[0] == 0:
                raise BadInput(f"input {name!r}: expected shape (B, {', '.join(map(str, want))}) with B >= 1, "
                               f"got {value.shape}")
            if batch is None:
                batch = value.shape[0]
            elif value.shape[0] != batch:
                raise BadInput(f"input {name!r}: batch size {value.shape[0]} differs from " + (
                    f"this runtime's batch_size={batch}" if self.batch_size else f"{self.input_names[0]!r}'s {batch}"))

    @staticmethod
    def _not_finite(name: str, value: np.ndarray) -> BadInput:
        return BadInput(f"input {name!r}: contains NaN or inf at index "
                        f"{tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])}")

    def _bind(self) -> tuple[Any, np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]] | None:
        """With a fixed batch: onnxruntime's I/O binding to preallocated arrays, so a call converts no
        numpy array and allocates no output (about 10 µs of a navigation step). None when an output's
        shape or type is not known before the call."""
        dtypes = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32}
        outputs = {o.name: o for o in self._session.get_outputs()}
        if any(o.type not in dtypes or not all(isinstance(d, int) for d in o.shape) for o in outputs.values()):
            return None
        binding = self._session.io_binding()
        # the inputs are views of one buffer: one finite check per call instead of one per input
        sizes = [self.batch_size * int(np.prod(self._shapes[n], dtype=int)) for n in self.input_names]
        flat = np.zeros(sum(sizes), np.float32)
        parts = np.split(flat, np.cumsum(sizes)[:-1])
        feeds = {n: p.reshape(self.batch_size, *self._shapes[n]) for n, p in zip(self.input_names, parts)}
        results = {n: np.zeros(outputs[n].shape, dtypes[outputs[n].type]) for n in self.output_names}
        for name, array in feeds.items():  # on the CPU an OrtValue uses the array's memory: copy into it, run
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array))
        for name, array in results.items():
            binding.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(array))
        return binding, flat, feeds, results

    def run(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Validate `inputs` (name -> (B, ...) array) and return every output by name."""
        if self._bound is None:
            feeds = self.check_inputs(inputs)
            return dict(zip(self.output_names, self._session.run(self.output_names, feeds)))
        binding, flat, bound_in, bound_out = self._bound
        self._check_structure(inputs)
        for name, array in bound_in.items():
            np.copyto(array, inputs[name])
        if not np.isfinite(flat).all():  # (checked as float32: a float64 beyond its range is inf too)
            name = next(n for n, a in bound_in.items() if not np.isfinite(a).all())
            raise self._not_finite(name, bound_in[name])
        self._session.run_with_iobinding(binding)
        return {name: array.copy() for name, array in bound_out.items()}
