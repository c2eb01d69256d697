"""`observe` must convert to ONNX (the exported policy graph contains it) and agree with JAX."""
import jax
import numpy as np
import pytest

from hardware import load_profile
from sim.scenarios import navigation as nav

jax2onnx = pytest.importorskip("jax2onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("n", [1, 4, 8])  # no neighbours; the argmin selection; the top-k selection
def test_observe_exports_and_matches(n):
    p = nav.make_params(load_profile("gritsbot_x"), n)

    def f(pose, others, goal):
        return nav.observe({"pose": pose, "others": others, "goal": goal}, p)

    rng = np.random.default_rng(n)
    inputs = [rng.normal(size=s).astype(np.float32) for s in [(5, 3), (5, n - 1, 3), (5, 2)]]
    model = jax2onnx.to_onnx(f, [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in inputs])
    session = ort.InferenceSession(model.SerializeToString())
    out = session.run(None, {i.name: a for i, a in zip(session.get_inputs(), inputs)})[0]
    assert out.shape == (5, nav.obs_dim(p))
    np.testing.assert_allclose(out, np.asarray(f(*inputs)), rtol=1e-5, atol=1e-5)
