"""`observe` must convert to ONNX (the exported policy graph contains it) and agree with JAX."""
import importlib

import jax
import numpy as np
import pytest

from marlstack.hardware import load_profile
from marlstack.sim import scenarios

jax2onnx = pytest.importorskip("jax2onnx")
ort = pytest.importorskip("onnxruntime")


# navigation in the exported wide form: no neighbours; padded slots; more others than slots.
# coverage: no others; padded landmarks
@pytest.mark.parametrize("scenario, n", [("navigation", 1), ("navigation", 3), ("navigation", 8),
                                         ("coverage", 1), ("coverage", 2)])
def test_observe_exports_and_matches(scenario, n):
    module = scenarios.get(scenario)
    spec = importlib.import_module(f"{module.__name__}_spec")
    p = module.make_params(load_profile("gritsbot_x"), n, **({"wide": True} if scenario == "navigation" else {}))
    names, shapes = list(spec.SENSORS), spec.sensor_shapes(n)

    def f(*tensors):
        return module.observe(dict(zip(names, tensors)), p)

    rng = np.random.default_rng(n)
    inputs = [rng.normal(size=(5, *shapes[name])).astype(np.float32) for name in names]
    model = jax2onnx.to_onnx(f, [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in inputs])
    session = ort.InferenceSession(model.SerializeToString())
    out = session.run(None, {i.name: a for i, a in zip(session.get_inputs(), inputs)})[0]
    assert out.shape == (5, module.obs_dim(p))
    np.testing.assert_allclose(out, np.asarray(f(*inputs)), rtol=1e-5, atol=1e-5)
