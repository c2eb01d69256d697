"""`marlstack bench rps21` in its smoke mode: our batched physics against rps 2.1.0 in its venv (no timing asserted)."""
import json

from marlstack.cli import main


def test_bench_rps21_compares_with_rps_2_1_in_its_venv(rps21, capsys):
    assert main(["bench", "rps21", "--agents", "2", "--envs", "4", "--modes", "physics", "--rounds", "1", "--steps", "5",
                 "--seconds", "0.05", "--rps-python", str(rps21), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert (row["agents"], row["envs"], row["mode"]) == (2, 4, "physics") and row["baseline_name"].startswith("rps 2.1.0")
    assert row["ours"] > 0 and row["baseline"] > 0 and len(row["runs_rps"]) == len(row["runs_ratio"]) == 1
