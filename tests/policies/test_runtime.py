"""The onboard runtime: spec checks, input validation, batching, errors, and no JAX on import.

A tiny artifact (a closed-form function of the navigation sensors, traced by the exporter's own
jax2onnx path) stands in for a policy, so these tests need no trainer.
"""
import json
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import onnx
import pytest

from marlstack.hardware import load_profile, profile_hash
from marlstack.policies.export import Step, trace, write_artifact
from marlstack.policies.runtime import ArtifactError, BadInput, PolicyError, PolicyRuntime, SpecMismatch, session_options
from marlstack.policies.spec import SPEC_KEY, SpecError, build_spec, check_expectations, dumps, tensor, validate_spec

PROFILE = load_profile("gritsbot_x")
HASH = profile_hash(PROFILE)
RATE = 1 / PROFILE.dt


def closed_form(pose, others, goal):
    """cmd = [goal_x - x, sum of the others' headings]: easy to check by hand."""
    return jnp.stack([goal[:, 0] - pose[:, 0], jnp.sum(others[:, :, 2], axis=-1)], axis=-1)


def make_spec(**overrides):
    fields = dict(scenario="navigation", vehicle_kind="ground", agent={"role": "shared", "agents": ["agent_0", "agent_1"]},
                  inputs=[tensor("pose", [3], ["m", "m", "rad"], "world"), tensor("others", [1, 3], ["m", "m", "rad"], "world"),
                          tensor("goal", [2], ["m", "m"], "world")],
                  outputs=[tensor("cmd", [2], ["m/s", "rad/s"], "body")], recurrent=None, control_rate_hz=RATE,
                  profile_name=PROFILE.name, profile_hash=HASH, training_run_id="test", git_revision="abc",
                  created="2026-01-01T00:00:00+00:00", marlstack_version="0.1.0", exporter={"opset": 20})
    return build_spec(**{**fields, **overrides})


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    spec = make_spec()
    model = trace(Step(closed_form, spec["inputs"], spec["outputs"], None))
    return write_artifact(model, spec, tmp_path_factory.mktemp("rt") / "policy.onnx")


def inputs(batch=2, rng=np.random.default_rng(0)):
    return {"pose": rng.normal(size=(batch, 3)).astype(np.float32),
            "others": rng.normal(size=(batch, 1, 3)).astype(np.float32),
            "goal": rng.normal(size=(batch, 2)).astype(np.float32)}


def test_runs_a_batch_of_agents(artifact):
    rt = PolicyRuntime(artifact, expect_scenario="navigation", expect_profile_hash=HASH, expect_rate_hz=RATE,
                       expect_agent="agent_1")
    x = inputs(5)
    out = rt.run(x)
    assert list(out) == ["cmd"] and out["cmd"].shape == (5, 2) and out["cmd"].dtype == np.float32
    want = np.stack([x["goal"][:, 0] - x["pose"][:, 0], x["others"][:, 0, 2]], -1)
    np.testing.assert_allclose(out["cmd"], want, atol=1e-6)
    x64 = {k: v.astype(np.float64) for k, v in x.items()}  # ROS messages carry doubles: accepted, cast
    np.testing.assert_array_equal(rt.run(x64)["cmd"], out["cmd"])
    assert rt.input_names == ["pose", "others", "goal"] and rt.output_names == ["cmd"]
    assert rt.control_rate_hz == pytest.approx(RATE) and not rt.recurrent and rt.initial_state(3) == {}


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # numpy's, as 1e39 becomes inf
def test_fixed_batch_size_gives_the_same_commands_and_refuses_other_batches(artifact):
    x = inputs(4)
    fixed = PolicyRuntime(artifact, batch_size=4)
    first = fixed.run(x)["cmd"]
    np.testing.assert_allclose(first, PolicyRuntime(artifact).run(x)["cmd"], atol=1e-6)
    # I/O-bound buffers: the next call neither changes a returned command nor reuses the last inputs
    kept, y = first.copy(), inputs(4)
    np.testing.assert_allclose(fixed.run(y)["cmd"], PolicyRuntime(artifact).run(y)["cmd"], atol=1e-6)
    np.testing.assert_array_equal(first, kept)
    huge = {**x, "goal": np.full((4, 2), 1e39)}  # finite as float64, inf as the float32 the graph takes
    with pytest.raises(BadInput, match="input 'goal': contains NaN or inf at index"):
        fixed.run(huge)
    with pytest.raises(BadInput, match="input 'pose': batch size 2 differs from this runtime's batch_size=4"):
        fixed.run(inputs(2))


def test_session_is_single_threaded():
    opts = session_options()
    assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1


def _replace(name, value):
    x = inputs()
    x[name] = value
    return x


def _nan_at(name, index):
    x = inputs()
    x[name][index] = np.nan
    return x


BAD = {
    "missing": ({k: v for k, v in inputs().items() if k != "goal"}, "missing ['goal']"),
    "unexpected": ({**inputs(), "lidar": np.zeros((2, 8), np.float32)}, "unexpected ['lidar']"),
    "wrong trailing shape": (_replace("others", np.zeros((2, 2, 3), np.float32)), "input 'others': expected shape (B, 1, 3)"),
    "no batch axis": (_replace("pose", np.zeros(3, np.float32)), "input 'pose': expected shape (B, 3)"),
    "empty batch": ({k: v[:0] for k, v in inputs().items()}, "input 'pose': expected shape (B, 3) with B >= 1"),
    "batch mismatch": (_replace("goal", np.zeros((3, 2), np.float32)), "input 'goal': batch size 3 differs"),
    "integer dtype": (_replace("goal", np.zeros((2, 2), np.int64)), "input 'goal': expected a floating-point array"),
    "list": (_replace("pose", [[0.0, 0.0, 0.0]] * 2), "input 'pose': expected a numpy array, got list"),
    "nan": (_nan_at("others", (1, 0, 2)), "input 'others': contains NaN or inf at index (1, 0, 2)"),
    "inf": (_replace("pose", np.array([[0, 0, 0], [np.inf, 0, 0]], np.float32)), "input 'pose': contains NaN or inf at index (1, 0)"),
}


@pytest.mark.parametrize("batch_size", [None, 2])  # any batch; fixed (I/O binding, one finite check)
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inputs_raise_bad_input_naming_the_problem(artifact, case, batch_size):
    feeds, message = BAD[case]
    with pytest.raises(BadInput) as err:
        PolicyRuntime(artifact, batch_size=batch_size).run(feeds)
    assert message in str(err.value)
    assert isinstance(err.value, PolicyError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize("expect, message", [
    ({"expect_scenario": "formation"}, "scenario: expected 'formation', found 'navigation'"),
    ({"expect_profile_hash": "0123456789abcdef"}, f"expected 0123456789abcdef, found {HASH} (profile 'gritsbot_x')"),
    ({"expect_rate_hz": 30.0}, "control rate: expected 30 Hz, found 30.303 Hz"),
    ({"expect_agent": "agent_9"}, "agent: expected 'agent_9'"),
])
def test_spec_mismatch_names_expected_and_found(artifact, expect, message):
    with pytest.raises(SpecMismatch) as err:
        PolicyRuntime(artifact, **expect)
    assert message in str(err.value) and str(artifact) in str(err.value)


def test_unusable_files_raise_artifact_error(artifact, tmp_path):
    with pytest.raises(ArtifactError, match="no such policy file"):
        PolicyRuntime(tmp_path / "nope.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match="onnxruntime cannot load"):
        PolicyRuntime(tmp_path / "junk.onnx")
    model = onnx.load(str(artifact))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    with pytest.raises(ArtifactError, match="no 'marlstack_spec' metadata"):
        PolicyRuntime(tmp_path / "bare.onnx")
    spec = json.loads(dumps(make_spec()))
    spec["format_version"] = 99
    onnx.helper.set_model_props(model, {SPEC_KEY: json.dumps(spec)})
    onnx.save(model, str(tmp_path / "future.onnx"))
    with pytest.raises(ArtifactError, match="format_version 99 is not supported"):
        PolicyRuntime(tmp_path / "future.onnx")


def test_spec_validation_names_the_key():
    spec = make_spec()
    for broken, message in [({k: v for k, v in spec.items() if k != "profile"}, "missing key 'profile'"),
                            ({**spec, "control_rate_hz": -1.0}, "'control_rate_hz' must be a positive number"),
                            ({**spec, "inputs": [{**spec["inputs"][0], "shape": [3]}]}, "'inputs[0].shape'"),
                            ({**spec, "recurrent": {"input": "h", "output": "h2", "size": 4}}, "not among the inputs")]:
        with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("(", r"\(")):
            validate_spec(broken)
    check_expectations(spec, scenario="navigation", profile_hash=HASH, rate_hz=RATE * (1 + 1e-9), agent="agent_0")


def test_onboard_path_never_imports_jax(artifact):
    """Load, check and run a policy, and inspect it, in a fresh interpreter: no jax, flax or jax2onnx."""
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        import marlstack.policies.runtime, marlstack.policies.spec
        from marlstack.policies import inspect_cli
        rt = marlstack.policies.runtime.PolicyRuntime({str(artifact)!r}, expect_scenario="navigation")
        out = rt.run({{"pose": np.zeros((1, 3), np.float32), "others": np.zeros((1, 1, 3), np.float32),
                      "goal": np.ones((1, 2), np.float32)}})
        assert out["cmd"].tolist() == [[1.0, 0.0]], out
        assert inspect_cli.main([{str(artifact)!r}]) == 0
        loaded = sorted(m for m in ("jax", "jaxlib", "flax", "jax2onnx", "optax") if m in sys.modules)
        print("LOADED", loaded)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout
