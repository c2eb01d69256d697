"""`marlstack bench replay` runs end to end and prints its JSON (no timing asserted).

On the first 400 kB of the real ULog (a cut log is read up to the cut): the whole 4 MB log made this
the slowest test of the suite (the peak-memory passes trace every allocation of a full report)."""
from __future__ import annotations

import json

import pytest

from marlstack.bench.cli import main
from marlstack.bench.replay import ULOG


def test_bench_replay_json(capsys, tmp_path):
    ulog = tmp_path / "px4_sample.ulg"
    ulog.write_bytes(ULOG.read_bytes()[:400_000])
    assert main(["replay", "--json", "--repeats", "1", "--bag-mb", "0.1", "--team-mb", "0.2", "--no-pictures",
                 "--ulog", str(ulog)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["bench"] == "replay"
    cases = {(r["log"], r["case"], r["metric"]) for r in doc["rows"]}
    assert cases == {("px4_sample.ulg", "info", "time"), ("px4_sample.ulg", "report", "time"),
                     ("px4_sample.ulg", "info", "peak memory"), ("px4_sample.ulg", "report", "peak memory"),
                     ("synthetic bag", "info", "time"), ("synthetic bag", "info", "peak memory"),
                     ("synthetic bag", "report", "time"), ("synthetic bag", "report", "peak memory"),
                     ("MAV team bag", "report", "time"), ("MAV team bag", "csv /mav_0/setpoint", "time"),
                     ("MAV team bag", "report", "peak memory")}
    for r in doc["rows"]:
        assert r["ours"] > 0 and r["baseline"] > 0 and r["ratio"] == r["baseline"] / r["ours"]
        if r["metric"] == "time":  # every run is kept beside the median
            assert len(r["runs"]) == len(r["baseline_runs"]) == 1 and r["ours"] == pytest.approx(r["runs"][0], abs=1e-3)
    bag = next(r for r in doc["rows"] if r["log"] == "synthetic bag")
    assert 0.05 < bag["MB"] < 0.2
    team = next(r for r in doc["rows"] if r["log"] == "MAV team bag")
    assert 0.1 < team["MB"] < 1.0  # the SITL cut once
