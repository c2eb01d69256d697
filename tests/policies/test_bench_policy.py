"""`marlstack bench policy` runs and reports both comparisons (timings are not asserted: benchmarks are not tests)."""
import json
from pathlib import Path

from marlstack.cli import main


def test_bench_policy_compares_with_numpy_and_with_the_training_form_export(capsys):
    assert main(["bench", "policy", "--iters", "20", "--rounds", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    baselines = {(r["baseline_name"], r["agents_per_call"], r["session"]) for r in rows}
    assert baselines == {("numpy MLP forward", 1, "batch_size=1"), ("numpy MLP forward", 4, "batch_size=4"),
                         ("numpy MLP forward", 1, "any batch"), ("training-form export", 1, "batch_size=1"),
                         ("training-form export", 4, "batch_size=4")}
    assert all(r["ours"] > 0 and r["baseline"] > 0 for r in rows)


def test_bench_policy_steps_times_every_onnxruntime_setting_against_numpy(capsys):
    """One row per setting, each round's p50/p99 kept, on the committed cable-team export (no JAX, no export)."""
    cable = Path(__file__).resolve().parents[1] / "data" / "mav_team" / "cable3.onnx"
    assert main(["bench", "policy_steps", "--policy", str(cable), "--iters", "20", "--rounds", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["setting"][0] for r in rows] == list("123456") and {r["policy"] for r in rows} == {"cable"}
    assert all(len(r["runs_p99_us"]) == 2 and r["ours"] > 0 and r["baseline"] > 0 for r in rows)
