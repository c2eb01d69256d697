"""Data-parallel training (issue 18): the same global batch on 1 and on 2 devices gives the same learning
curve; the environments are sharded over the devices. Two CPU devices, in a subprocess (XLA's device
count is fixed when JAX starts)."""
import json
import os
import subprocess
import sys

import numpy as np

SCRIPT = r"""
import json
import jax, numpy as np
from marlstack.policies.config import build_config
from marlstack.policies.ppo import Trainer
out, start = {}, None
for d in (1, 2):
    cfg = build_config({"scenario": "navigation", "num_agents": 2, "barrier": "none", "num_envs": 4, "num_steps": 4, "hidden_sizes": [16],
                        "num_minibatches": 2, "num_seeds": 1, "updates_per_call": 4, "max_steps": 10, "devices": d})
    trainer = Trainer(cfg)
    start = trainer.init_seeds() if start is None else start  # the same initial state, resharded by jit
    runners, metrics = trainer.chunk_fn()(start)
    out[d] = {"devices": len(runners.obs.sharding.device_set),
              "curve": {k: np.asarray(metrics[k]).tolist() for k in ("loss", "value_loss", "entropy", "return")},
              "params": [np.asarray(x).ravel()[:64].tolist() for x in jax.tree.leaves(runners.params)]}
print(json.dumps(out))
"""


def test_one_and_two_devices_learn_the_same_curve():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    one, two = out["1"], out["2"]
    assert (one["devices"], two["devices"]) == (1, 2)
    for k in one["curve"]:  # 4 updates; only the order of floating-point sums differs
        np.testing.assert_allclose(two["curve"][k], one["curve"][k], rtol=1e-3, atol=1e-4, err_msg=k)
    # Adam's normalised steps turn a rounding difference in a near-zero gradient into up to a step's size (lr)
    diff = np.abs(np.concatenate(two["params"]) - np.concatenate(one["params"]))
    assert np.median(diff) < 1e-5 and diff.max() < 1e-2
