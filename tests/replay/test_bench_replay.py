"""`marlstack bench replay` runs end to end and prints its JSON (no timing asserted)."""
from __future__ import annotations

import json

from bench.cli import main


def test_bench_replay_json(capsys):
    assert main(["replay", "--json", "--repeats", "1", "--bag-mb", "0.3"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["bench"] == "replay"
    cases = {(r["log"], r["case"], r["metric"]) for r in doc["rows"]}
    assert cases == {("px4_sample.ulg", "info", "time"), ("px4_sample.ulg", "report", "time"),
                     ("px4_sample.ulg", "info", "peak memory"), ("px4_sample.ulg", "report", "peak memory"),
                     ("synthetic bag", "info", "time"), ("synthetic bag", "info", "peak memory")}
    for r in doc["rows"]:
        assert r["ours"] > 0 and r["baseline"] > 0 and r["ratio"] == r["baseline"] / r["ours"]
    bag = next(r for r in doc["rows"] if r["log"] == "synthetic bag")
    assert 0.2 < bag["MB"] < 0.5
