"""`marlstack bench policy` runs and reports both comparisons (timings are not asserted: benchmarks are not tests)."""
import json

from marlstack.cli import main


def test_bench_policy_compares_with_numpy_and_with_the_argmin_round_export(capsys):
    assert main(["bench", "policy", "--iters", "20", "--rounds", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    baselines = {(r["baseline_name"], r["agents_per_call"], r["session"]) for r in rows}
    assert baselines == {("numpy MLP forward", 1, "batch_size=1"), ("numpy MLP forward", 4, "batch_size=4"),
                         ("numpy MLP forward", 1, "any batch"), ("argmin-round export", 1, "batch_size=1"),
                         ("argmin-round export", 4, "batch_size=4")}
    assert all(r["ours"] > 0 and r["baseline"] > 0 for r in rows)
