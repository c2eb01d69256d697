"""The PPO update's speed work must not change what it learns: minibatches are the same samples in
the same order, and `marlstack bench train` runs (smoke mode) and writes its JSON."""
import json

import jax
import jax.numpy as jnp
import numpy as np

from marlstack.cli import main as cli
from marlstack.policies.config import build_config
from marlstack.policies.ppo import Batch, Trainer
from test_ppo_truncation import Countdown


def test_packed_minibatches_are_the_per_field_shuffle():
    cfg = build_config({"scenario": "navigation", "num_envs": 4, "num_steps": 6, "num_minibatches": 3})
    trainer = Trainer(cfg, env=Countdown())
    t, e, n = cfg.num_steps, cfg.num_envs, 1
    key = jax.random.PRNGKey(3)
    ks = jax.random.split(key, 6)
    data = Batch(jax.random.normal(ks[0], (t, e, n, 5)), None, None,
                 jax.random.randint(ks[1], (t, e, n), 0, 2),  # discrete actions stay integers
                 *(jax.random.normal(k, (t, e, n)) for k in ks[2:]))
    got, _, _ = trainer._minibatches(key, data, None, None)
    # the reference: each field gathered on its own with the same permutation
    perm = jax.random.permutation(key, t * e)
    for name, field in data._asdict().items():
        if field is None:
            assert getattr(got, name) is None
            continue
        want = jnp.take(field.reshape(t * e, *field.shape[2:]), perm, axis=0).reshape(3, -1, *field.shape[2:])
        assert getattr(got, name).dtype == field.dtype
        np.testing.assert_array_equal(np.asarray(getattr(got, name)), np.asarray(want))


def test_bench_train_smoke(capsys):
    assert cli(["bench", "train", "--quick", "--cases", "navigation", "--algos", "ippo", "--num-envs", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["scenario"], r["barrier"], r["algo"]) for r in rows] == [("navigation", "none", "ippo")]
    assert rows[0]["ours"] > 0 and rows[0]["baseline"] > 0 and rows[0]["sim_share"] > 0
