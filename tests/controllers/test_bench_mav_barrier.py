"""`marlstack bench mav_barrier` completes in its smoke mode and reports every row with a same-run baseline
(timings are not asserted: benchmarks are not tests)."""
import json

from marlstack.cli import main


def test_bench_mav_barrier_smoke(capsys):
    assert main(["bench", "mav_barrier", "--quick", "--teams", "3", "--only", "latency", "fuzz", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["bench"] == "mav_barrier"
    rows = {r["metric"]: r for r in doc["rows"]}
    for stage in ("onboard stage (1 MAV's QP)", "team QP"):
        for q in (50, 99):
            r = rows[f"{stage}: per-call latency p{q}"]
            assert r["ours"] > 0 and r["baseline"] > 0 and r["baseline_name"] == "cvxopt, same QP"
            assert r["unsolved"] == 0 and r["max_abs_diff_vs_cvxopt"] < 1e-2   # the same QP, solved alike
    assert rows["certificate + double integrator, batched"]["ours"] > 0
    fuzz = rows["fuzz: solves that were not optimal"]
    assert fuzz["ours"] == 0 and fuzz["collisions"] == 0 and fuzz["steps_beyond_5mm"] == 0
    assert fuzz["safe_steps"] == 4 * 500
    # with cables to a load held still and the cable rows: no two cables closer than task.min_cable_distance
    cables = rows["fuzz with cable rows: cable crossings"]
    assert cables["ours"] == 0 and cables["not_optimal"] == 0 and cables["collisions"] == 0
    assert cables["min_cable_margin_m"] > -0.1 and cables["safe_steps"] == 4 * 500
    for q in (50, 99):
        r = rows[f"onboard stage with cable rows: per-call latency p{q}"]
        assert r["ours"] > 0 and r["baseline"] > 0 and r["unsolved"] == 0
