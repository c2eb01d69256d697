"""`make bench-gpu` in its CPU smoke mode: the scaling rows and the memory per environment are written."""
import json

from marlstack.bench.gpu import main


def test_gpu_bench_smoke_writes_scaling_rows_with_memory_per_env(tmp_path, capsys):
    assert main(["--quick", "--skip", "train", "goal", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "gpu.json").read_text())
    rows = {(r["env"], r["envs"]): r for r in doc["scaling"]}
    assert set(rows) == {("cable", 8), ("navigation", 8)} and "gpu scaling" in capsys.readouterr().out
    for r in rows.values():
        assert r["ours"] > 0 and r["metric"] == "env steps/s"
        # a batched state holds at least its positions; the step program at least reads and writes the state
        assert r["state_bytes_per_env"] >= 4 * 3 and r["program_bytes_per_env"] >= 2 * r["state_bytes_per_env"]
    assert rows[("cable", 8)]["state_bytes_per_env"] > rows[("navigation", 8)]["state_bytes_per_env"]
