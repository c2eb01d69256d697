"""Checkpoints: Ctrl-C keeps the last state, --resume continues bit for bit, a fixed seed reproduces
the same metrics, and incompatible or broken checkpoints are refused with one clear line."""
from types import SimpleNamespace

import jax
import numpy as np
import pytest

from marlstack.policies import checkpoint, train_cli
from marlstack.policies.checkpoint import CheckpointError, load_policy
from marlstack.policies.config import build_config
from marlstack.policies.run_dir import read_metrics

# tiny navigation runs: 2 robots, no barrier, 6 updates in 3 calls of 2
CFG = {"scenario": "navigation", "num_agents": 2, "num_seeds": 1, "barrier": "none", "max_steps": 40, "num_envs": 8,
       "num_steps": 16, "num_minibatches": 2, "hidden_sizes": [32, 32], "updates_per_call": 2,
       "checkpoint_every": 1, "total_steps": 6 * 8 * 16, "eval_episodes": 0, "seed": 3}
METRICS = ("return", "loss", "policy_loss", "value_loss", "entropy", "approx_kl", "episodes")


class Stop(KeyboardInterrupt):
    pass


def interrupt_after(n_updates):
    def hook(updates):
        if updates >= n_updates:
            raise Stop()
    return hook


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A straight run, and a run interrupted (Ctrl-C) after 2 updates then resumed: one compile for all."""
    tmp = tmp_path_factory.mktemp("ckpt")
    cfg = build_config(CFG)
    # the straight run also writes TensorBoard files (a host-only key: the same compiled update)
    straight = train_cli.train(build_config({**CFG, "tensorboard": True}), tmp / "straight", progress=False)
    interrupted = train_cli.train(cfg, tmp / "resumed", progress=False, after_call=interrupt_after(2))
    kept = {"rows": read_metrics(tmp / "resumed"), "policy": load_policy(tmp / "resumed")}
    resumed = train_cli.train(cfg, tmp / "resumed", resume=True, progress=False)
    return SimpleNamespace(tmp=tmp, cfg=cfg, straight=straight, interrupted=interrupted, kept=kept, resumed=resumed)


def _values(rows):
    return [(r["update"], r["seed"], *[r[k] for k in METRICS]) for r in rows]


def test_ctrl_c_keeps_last_checkpoint_and_metrics(runs):
    assert runs.interrupted["interrupted"] and runs.interrupted["updates"] == 2
    assert [r["update"] for r in runs.kept["rows"]] == [1, 2]
    meta, _ = checkpoint.read(runs.tmp / "resumed")
    assert meta["updates"] == 6  # after the resume
    assert runs.kept["policy"].run_id == load_policy(runs.tmp / "resumed").run_id


def test_fixed_seed_reproduces_metrics(runs):
    straight = read_metrics(runs.tmp / "straight")
    np.testing.assert_array_equal(np.array(_values(straight[:2]), float), np.array(_values(runs.kept["rows"]), float))


def test_resume_continues_identically(runs):
    straight, resumed = read_metrics(runs.tmp / "straight"), read_metrics(runs.tmp / "resumed")
    assert [r["update"] for r in resumed] == list(range(1, 7))
    np.testing.assert_array_equal(np.array(_values(straight), float), np.array(_values(resumed), float))
    _, a = checkpoint.read(runs.tmp / "straight")
    _, b = checkpoint.read(runs.tmp / "resumed")
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


def test_resume_refuses_incompatible_runs(runs, capsys):
    out = str(runs.tmp / "straight")
    assert train_cli.main(["--resume", "--out", out, "--num-agents", "3", "--no-progress"]) == 2
    assert "--resume cannot change num_agents" in capsys.readouterr().err
    assert train_cli.main(["MPE_simple_spread_v3", "--resume", "--out", out, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "trained scenario 'navigation', not 'MPE_simple_spread_v3'" in err and len(err.splitlines()) == 1
    other = build_config({**CFG, "num_agents": 3})
    meta, _ = checkpoint.read(out)
    from marlstack.policies.ppo import Trainer
    with pytest.raises(CheckpointError, match="incompatible: num_agents 2 != 3"):
        checkpoint.check_compatible(meta, other, Trainer(other).spec, out)


def test_resume_restarts_episodes_when_the_environment_state_changed_layout(runs, capsys):
    """A checkpoint saved before the environment's state gained a field (the shipped cable teams and
    CableState.variation): the learner, optimiser and normalisers continue, the episodes restart."""
    from marlstack.policies.ppo import Trainer
    _, raw = checkpoint.read(runs.tmp / "straight")
    old = {**raw, "env_log": {**raw["env_log"], "env_state": {k: v for k, v in raw["env_log"]["env_state"].items()
                                                             if k != sorted(raw["env_log"]["env_state"])[0]}}}
    template = Trainer(runs.cfg).init_seeds()
    with pytest.raises(CheckpointError, match="does not match this run's state"):
        checkpoint.restore_state(template, old, runs.tmp / "straight")
    state, restarted = checkpoint.restore_state(template, old, runs.tmp / "straight", train_cli.EPISODE_FIELDS)
    assert restarted
    for x, y in zip(jax.tree.leaves(state.params), jax.tree.leaves(raw["params"])):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(state.obs, template.obs)  # fresh episodes
    no_params = {k: v for k, v in raw.items() if k != "params"}  # the learner itself missing: refused
    with pytest.raises(CheckpointError):
        checkpoint.restore_state(template, no_params, runs.tmp / "straight", train_cli.EPISODE_FIELDS)


def test_broken_or_missing_checkpoint(runs, tmp_path, capsys):
    bad = tmp_path / "checkpoint.msgpack"
    bad.write_bytes(b"not msgpack at all")
    with pytest.raises(CheckpointError, match="is not a marlstack checkpoint"):
        load_policy(bad)
    from marlstack.policies import eval_cli
    assert eval_cli.main([str(tmp_path / "nothing")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="seed index 5 out of range"):
        load_policy(runs.tmp / "straight", seed_index=5)


def _scalars(folder):
    """{tag: [(step, value)]} from TensorBoard event files (TFRecord: length, crc, Event proto, crc)."""
    from tensorboardX.proto.event_pb2 import Event
    out = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            n = int.from_bytes(data[pos:pos + 8], "little")
            event = Event.FromString(data[pos + 12:pos + 12 + n])
            pos += 12 + n + 4
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


def test_tensorboard_files_hold_the_metrics_rows(runs):
    rows = read_metrics(runs.tmp / "straight")
    scalars = _scalars(runs.tmp / "straight" / "tensorboard" / "seed-3")
    assert [s for s, _ in scalars["train/loss"]] == [r["env_steps"] for r in rows]
    np.testing.assert_allclose([v for _, v in scalars["train/loss"]], [r["loss"] for r in rows], rtol=1e-5)  # the CSV keeps 6 digits
    finished = [(r["env_steps"], r["return"]) for r in rows if np.isfinite(r["return"])]
    assert len(scalars.get("train/return", [])) == len(finished)  # updates without a finished episode: no point
    assert not (runs.tmp / "resumed" / "tensorboard").exists()  # off by default
