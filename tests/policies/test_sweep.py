"""`marlstack sweep`: a grid x seeds of trainings as Ray tasks on a local Ray instance (1 CPU, loopback),
one table with every seed and the median per grid point, resumable."""
import json

import pytest

from marlstack.cli import main as cli
from marlstack.policies import asha, sweep
from marlstack.policies.config import ConfigError

# the smallest navigation training; the grid's key only changes the budget, so the Ray worker compiles once
TINY = ["--set", "num_agents=2", "--set", "barrier=none", "--set", "num_envs=2", "--set", "num_steps=4",
        "--set", "num_minibatches=1", "--set", "update_epochs=1", "--set", "hidden_sizes=[8]", "--set", "max_steps=20",
        "--set", "eval_episodes=0"]


def test_grid_values_seeds_and_the_table():
    grid = sweep.parse_grid(["lr=0.001,3e-4", "hidden-sizes=[64,64],[128,128]"])
    assert grid == {"lr": [0.001, 0.0003], "hidden_sizes": [(64, 64), (128, 128)]}
    assert len(sweep.points(grid)) == 4 and sweep.points({}) == [{}]
    assert sweep.points(grid)[1] == {"lr": 0.001, "hidden_sizes": [128, 128]}  # as trial.json gives it back
    for bad, message in ((["nope=1"], "unknown config key 'nope'"), (["lr"], "KEY=V1,V2"),
                         (["seed=1,2"], "--seeds"), (["lr=1", "lr=2"], "given twice"), (["num_envs=many"], "must be int")):
        with pytest.raises(ConfigError, match=message):
            sweep.parse_grid(bad)
    results = [{"point": {"lr": 0.001}, "seed": s, "train_success": v} for s, v in ((0, 0.5), (1, 0.9), (2, 0.6))]
    results.append({"point": {"lr": 0.0003}, "seed": 0, "error": "boom"})
    rows = sweep.table_rows(results, sweep.points({"lr": [0.001, 0.0003]}), [0, 1, 2], "train_success")
    assert rows[0] == {"lr": 0.001, "per_seed": [0.5, 0.9, 0.6], "median": 0.6, "seeds_done": 3}
    assert rows[1] == {"lr": 0.0003, "per_seed": [None, None, None], "median": None, "seeds_done": 0}


def test_random_points_are_seeded_typed_and_crossed_with_the_grid():
    space = sweep.parse_space(["lr=loguniform(1e-5,1e-2)", "num-minibatches=randint(1,5)", "ent_coef=uniform(0,0.1)",
                               "activation=choice(tanh,relu)"])
    draws = sweep.draw(space, 200, seed=7)
    assert draws == sweep.draw(space, 200, seed=7) and draws != sweep.draw(space, 200, seed=8)
    lrs = [d["lr"] for d in draws]
    assert min(lrs) >= 1e-5 and max(lrs) < 1e-2 and min(lrs) < 1e-4 and max(lrs) > 1e-3  # spans the decades
    assert {d["num_minibatches"] for d in draws} == {1, 2, 3, 4} and {d["activation"] for d in draws} == {"tanh", "relu"}
    assert all(0 <= d["ent_coef"] < 0.1 and isinstance(d["num_minibatches"], int) for d in draws)
    pts = sweep.points({"hidden_sizes": [(8,), (16,)]}, draws[:3])
    assert len(pts) == 6 and pts[4] == {"hidden_sizes": [16], **draws[1]}
    assert sweep.draw({}, 5, 0) == [{}]
    for bad, message in ((["lr=normal(0,1)"], "DIST one of"), (["lr=loguniform(0,1)"], "> 0"),
                         (["lr=uniform(2,1)"], "LOW < HIGH"), (["num_envs=randint(1.5,4)"], "integers"),
                         (["nope=uniform(0,1)"], "unknown config key"), (["num_envs=uniform(1,4)"], "must be int"),
                         (["lr=choice()"], "at least one value"), (["seed=randint(0,9)"], "--seeds")):
        with pytest.raises(ConfigError, match=message):
            sweep.parse_space(bad)


def test_asha_promotes_the_top_third_of_each_rung_as_soon_as_it_can():
    assert asha.rung_budgets(1000, 30000, 3) == [1000, 3000, 9000, 30000]
    assert asha.rung_budgets(1000, 3000, 3) == [1000, 3000]
    for bad in ((0, 10, 3), (10, 10, 3), (1, 10, 1)):
        with pytest.raises(ValueError):
            asha.rung_budgets(*bad)
    s = asha.Asha(points=6, rungs=[1, 3, 9])
    assert [s.next_job() for _ in range(3)] == [(0, 0), (1, 0), (2, 0)]
    for p, score in ((0, 0.2), (1, 0.9), (2, None)):  # None (a failed or unevaluated job) ranks last
        s.report(p, 0, score)
    assert s.next_job() == (1, 1)  # 3 finished rung 0: the best third (point 1) goes on at once
    assert s.next_job() == (3, 0)  # nothing else to promote: a new point
    s.report(3, 0, 0.5)
    s.report(1, 1, 0.4)
    assert s.next_job() == (4, 0)  # 4 finished rung 0: the top one is promoted already; rung 1 has 1 < 3
    s.report(4, 0, 0.95)
    s.report(5, 0, 0.1)
    assert s.next_job() == (4, 1)  # 6 finished: the top two (4, 1); 1 already went
    assert s.next_job() is None and s.reached(1) == 1 and s.reached(2) == 0 and s.reached(5) == -1 + 1


def test_bad_sweeps_are_refused_in_one_line(tmp_path, capsys):
    assert cli(["sweep", "navigation", "--grid", "lr=fast", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert cli(["sweep", "navigation", "--seeds", "0,0", "--out", str(tmp_path)]) == 2
    assert "repeated" in capsys.readouterr().err
    sweep.check_sweep(tmp_path / "s", {"scenario": "navigation"})
    assert cli(["sweep", "coverage", "--out", str(tmp_path / "s")]) == 2
    assert "another config" in capsys.readouterr().err
    assert cli(["sweep", "navigation", "--grid", "lr=1e-3", "--sample", "lr=uniform(0,1)", "--out", str(tmp_path)]) == 2
    assert "both set lr" in capsys.readouterr().err
    sweep.check_sweep(tmp_path / "r", {"scenario": "navigation"}, [{"lr": 0.001}])  # drawn points are the sweep's
    with pytest.raises(ConfigError, match="other random points"):
        sweep.check_sweep(tmp_path / "r", {"scenario": "navigation"}, [{"lr": 0.002}])


LR = sweep.draw(sweep.parse_space(["lr=loguniform(1e-4,1e-3)"]), 1, 0)[0]["lr"]  # the grid test's one draw


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (1 CPU, loopback) for the module: its worker keeps the compiled update, and the
    sweeps join it instead of starting their own."""
    import ray
    assert sweep._start_ray(None, 1)
    yield
    ray.shutdown()


@pytest.mark.filterwarnings("ignore:os.fork")  # Ray starts its processes with subprocess (fork + exec)
def test_a_tiny_grid_runs_on_local_ray_and_resumes(local_ray, tmp_path, capsys, monkeypatch):
    out = tmp_path / "sweep"
    # the grid crossed with one random draw (one learning rate: still one compile)
    args = ["sweep", "navigation", "--grid", "total_steps=8,16", "--sample", "lr=loguniform(1e-4,1e-3)", "--samples",
            "1", "--seeds", "1", *TINY, "--num-cpus", "1", "--out", str(out), "--no-progress", "--json"]
    assert cli(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["metric"] == "train_success" and result["seeds"] == [0]
    lr = LR
    assert [(r["total_steps"], r["lr"]) for r in result["table"]] == [(8, lr), (16, lr)]
    assert [t["env_steps"] for t in result["trials"]] == [8, 16]  # each trial trained its own budget
    for trial in result["trials"]:
        assert (out / "trials" / sweep.point_name(trial["point"]) / "seed-0" / "metrics.csv").is_file()
        assert (out / "trials" / sweep.point_name(trial["point"]) / "seed-0" / "config.yaml").read_text().count(
            f"lr: {lr}") == 1
    assert json.loads((out / "results.json").read_text())["table"] == result["table"]
    assert (out / "results.csv").read_text().splitlines()[0] == "total_steps,lr,seed_0,median_train_success"
    # rerun: every trial is read back, Ray is not started
    monkeypatch.setattr(sweep, "_start_ray", lambda *a: pytest.fail("a finished sweep started Ray"))
    assert cli(args) == 0 and json.loads(capsys.readouterr().out)["trials"] == result["trials"]
    # a trial that did not finish is the only one left to run, and resumes from the checkpoint it saved
    first = out / "trials" / sweep.point_name(result["trials"][0]["point"]) / "seed-0"
    (first / sweep.TRIAL_FILE).unlink()
    pts = [t["point"] for t in result["trials"]]
    done, todo = sweep.split_finished(sweep.trials(out, result["base"], pts, [0]))
    assert [t["dir"] for t in todo] == [str(first)] and len(done) == 1 and (first / "checkpoint.msgpack").is_file()


@pytest.mark.filterwarnings("ignore:os.fork")
def test_asha_stops_all_but_the_best_third_and_resumes(local_ray, tmp_path, capsys, monkeypatch):
    """Three points that differ in a host-only key (one compile): ties go to the first point, which alone
    is promoted from 8 to 24 env steps, continuing its checkpoint; a rerun reads every rung back."""
    out = tmp_path / "asha"
    args = ["sweep", "navigation", "--grid", "checkpoint_every=1,2,3", "--asha", "8", "--set", "total_steps=24",
            "--set", f"lr={LR}", "--seeds", "1", *TINY, "--num-cpus", "1", "--out", str(out), "--no-progress", "--json"]
    assert cli(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["asha"] == {"rungs": [8, 24], "eta": 3}
    assert [r["steps"] for r in result["table"]] == [24, 8, 8]
    assert [(t["rung"], t["stopped"], t["env_steps"], t["resumed"]) for t in result["trials"]] == \
        [(1, False, 24, True), (0, True, 8, False), (0, True, 8, False)]
    first = out / "trials" / sweep.point_name({"checkpoint_every": 1}) / "seed-0"
    assert (first / "rung-0.json").is_file() and (first / sweep.TRIAL_FILE).is_file()
    assert len((first / "metrics.csv").read_text().splitlines()) == 1 + 3  # 3 updates of 8 steps, not 1 + 3
    monkeypatch.setattr(sweep, "_start_ray", lambda *a: pytest.fail("a finished sweep started Ray"))
    assert cli(args) == 0 and json.loads(capsys.readouterr().out)["trials"] == result["trials"]
    assert cli([*args[:4], "--asha", "4", *args[6:]]) == 2
    assert "ASHA rungs" in capsys.readouterr().err
