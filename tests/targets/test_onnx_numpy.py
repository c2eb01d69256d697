"""The numpy translation of an exported policy agrees with onnxruntime (the artifact) to 1e-5."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from marlstack.hardware import load_profile
from marlstack.policies.runtime import load_spec
from marlstack.targets import numpy_ops
from marlstack.targets.onnx_numpy import TranslationError, translate
from marlstack.targets.robotarium import PARITY_TOL, load_generated, parity_error


def write_generated(model: onnx.ModelProto, folder):
    import shutil
    code, weights = translate(model)
    (folder / "policy.py").write_text(code)
    np.savez(folder / "policy_weights.npz", **weights)
    shutil.copy(numpy_ops.__file__, folder / "ms_numpy_ops.py")
    return load_generated(folder)


def test_trained_policy_parity_over_10000_inputs(nav_policy, tmp_path):
    generated = write_generated(onnx.load(str(nav_policy)), tmp_path)
    spec = load_spec(nav_policy)
    err = parity_error(nav_policy, generated, spec, load_profile("gritsbot_x"), count=10_000, seed=1)
    assert err <= PARITY_TOL
    # and it is a real policy: commands are not all equal (a broken translation returning constants would pass 0 == 0)
    rng = np.random.default_rng(0)
    cmd = generated.forward(pose=rng.uniform(-1, 1, (64, 3)), others=rng.uniform(-1, 1, (64, 3, 3)),
                            goal=rng.uniform(-1, 1, (64, 2)))["cmd"]
    assert cmd.shape == (64, 2) and cmd.dtype == np.float32 and np.ptp(cmd, axis=0).min() > 1e-3


def test_topk_ties_go_to_the_lower_index():
    values, idx = numpy_ops.topk(np.array([[1.0, 3.0, 3.0, 2.0]], np.float32), np.array([2]), axis=1)
    assert idx.tolist() == [[1, 2]] and values.tolist() == [[3.0, 3.0]]


def test_unsupported_operator_is_named(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Softplus", ["x"], ["y"])], "g", [x], [y])
    with pytest.raises(TranslationError, match="Softplus"):
        translate(helper.make_model(graph))
