"""Data-parallel training (issue 18): the same global batch on 1 and on 2 devices gives the same learning
curve; the environments are sharded over the devices. Two CPU devices, in a subprocess (XLA's device
count is fixed when JAX starts); and two processes of one device each joined on loopback (`--coordinator`,
jax.distributed), as on two machines, started beside it."""
import csv
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from marlstack.policies import checkpoint

CONFIG = {"scenario": "navigation", "num_agents": 2, "barrier": "none", "num_envs": 4, "num_steps": 4, "hidden_sizes": [16],
          "num_minibatches": 2, "num_seeds": 1, "updates_per_call": 4, "max_steps": 10, "total_steps": 64}

SCRIPT = r"""
import json, sys
CONFIG = json.loads(sys.argv[1])
import jax, numpy as np
from marlstack.policies.config import build_config
from marlstack.policies.ppo import Trainer
out, start = {}, None
for d in (1, 2):
    cfg = build_config({**CONFIG, "devices": d})
    trainer = Trainer(cfg)
    start = trainer.init_seeds() if start is None else start  # the same initial state, resharded by jit
    runners, metrics = trainer.chunk_fn()(start)
    out[d] = {"devices": len(runners.obs.sharding.device_set),
              "curve": {k: np.asarray(metrics[k]).tolist() for k in ("loss", "value_loss", "entropy", "return")},
              "params": [np.asarray(x).ravel()[:64].tolist() for x in jax.tree.leaves(runners.params)]}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The in-process 1- and 2-device script, and `marlstack train` as two processes on loopback, at once."""
    tmp = tmp_path_factory.mktemp("hosts")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    script = subprocess.Popen([sys.executable, "-c", SCRIPT, json.dumps(CONFIG)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    flags = [f"--{k.replace('_', '-')}={v if isinstance(v, str) else json.dumps(v)}" for k, v in CONFIG.items()
             if k != "scenario"]
    hosts = [subprocess.Popen([sys.executable, "-m", "marlstack", "train", CONFIG["scenario"], *flags, "--eval-episodes=0",
                               "--no-progress", "--out", str(tmp / "run"), "--coordinator", f"127.0.0.1:{port}",
                               "--num-processes", "2", "--process-id", str(i)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for i in (1, 0)]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in (script, *hosts)]
    for out, err, rc in results:
        assert rc == 0, err[-2000:]
    return json.loads(results[0][0].strip().splitlines()[-1]), tmp / "run", results[1][0]


def test_one_and_two_devices_learn_the_same_curve(runs):
    out = runs[0]
    one, two = out["1"], out["2"]
    assert (one["devices"], two["devices"]) == (1, 2)
    for k in one["curve"]:  # 4 updates; only the order of floating-point sums differs
        np.testing.assert_allclose(two["curve"][k], one["curve"][k], rtol=1e-3, atol=1e-4, err_msg=k)
    # Adam's normalised steps turn a rounding difference in a near-zero gradient into up to a step's size (lr)
    diff = np.abs(np.concatenate(two["params"]) - np.concatenate(one["params"]))
    assert np.median(diff) < 1e-5 and diff.max() < 1e-2


def test_two_processes_on_loopback_learn_the_two_device_curve_and_one_writes_the_run(runs):
    out, run, secondary_stdout = runs
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["update"]) for r in rows] == [1, 2, 3, 4]
    for k in ("loss", "value_loss", "entropy"):  # the mesh spans both processes: the 2-device program
        np.testing.assert_allclose([float(r[k]) for r in rows], out["2"]["curve"][k][0], rtol=1e-3, atol=1e-4, err_msg=k)
    meta, state = checkpoint.read(run)  # gathered from both processes, written by process 0
    assert meta["updates"] == 4 and state["obs"].shape[:2] == (1, CONFIG["num_envs"])
    assert "run_dir" not in secondary_stdout and "per seed" not in secondary_stdout  # process 1 prints no summary


@pytest.mark.parametrize("argv, message", [
    (["--coordinator", "127.0.0.1"], "--coordinator must be HOST:PORT"),
    (["--coordinator", "127.0.0.1:1234"], "needs --num-processes N and --process-id I"),
    (["--num-processes", "2"], "need --coordinator"),
    (["--coordinator", "127.0.0.1:1234", "--num-processes", "2", "--process-id", "2"], "--process-id must be in 0 … 1"),
])
def test_a_bad_job_is_refused_in_one_line(argv, message, capsys):
    from marlstack.cli import main
    assert main(["train", "navigation", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
