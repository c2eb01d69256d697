"""`marlstack train cable` and `eval` on a cable run: the run directory, the team options, and the
evaluation beside the zero command and the classical controller on the same episodes."""
import json

import pytest

from marlstack.cli import main as cli
from marlstack.policies.config import ConfigError


@pytest.fixture(scope="module")
def cable_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cable")
    rc = cli(["train", "cable", "--total-steps", "2048", "--num-envs", "8", "--num-steps", "16", "--updates-per-call", "1",
              "--max-steps", "200", "--seeds", "1", "--eval-episodes", "0", "--no-progress", "--failure", "--out", str(out)])
    assert rc == 0
    return out


def test_train_cable_writes_a_run_with_the_team_options(cable_run):
    from marlstack.policies.checkpoint import load_policy
    policy = load_policy(cable_run)
    assert policy.scenario == "cable" and policy.num_agents == 3 and policy.config["algo"] == "mappo"
    # --failure joins the scenario's env_kwargs instead of replacing them
    from marlstack.policies.config import scenario_defaults
    assert policy.config["env_kwargs"] == {**scenario_defaults("cable")["env_kwargs"], "failure": True}
    assert (cable_run / "metrics.csv").is_file() and (cable_run / "learning_curve.png").is_file()


def test_team_options_are_refused_outside_cable_scenarios(capsys):
    assert cli(["train", "navigation", "--mavs", "4", "--total-steps", "10"]) == 2
    assert "--mavs, --cable and --failure are for cable scenarios" in capsys.readouterr().err


def test_eval_reports_every_seed_beside_the_baselines(cable_run, capsys):
    assert cli(["eval", str(cable_run), "--episodes", "8", "--no-gif", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [s["seed"] for s in result["seeds"]] == [0]
    # the run trained with the barrier: the classical controller is reported with it and without it
    assert result["barrier"] is True and result["episodes"] == 8
    assert set(result["baselines"]) == {"zero", "classical", "classical_no_barrier"}
    zero, classical = result["baselines"]["zero"], result["baselines"]["classical"]
    # the run trained with a failing MAV, so it is evaluated with one (as trained); on the same episodes hover
    # thrust never reaches a goal, the classical controller often does
    assert result["failure"] is True
    assert zero["success_rate"] == 0.0 < classical["success_rate"]
    assert classical["position_error_median_m"] < zero["position_error_median_m"]
    assert sum(b["episodes"] for b in classical["by_goal_tilt_deg"].values()) == 8
    assert json.loads((cable_run / "eval.json").read_text())["median_success_rate"] == result["median_success_rate"]
    with pytest.raises(ConfigError, match="team size"):
        from marlstack.policies.eval_cli import evaluate_run
        evaluate_run(cable_run, episodes=2, gif=False, num_agents=4)


def test_cable_tasks_without_a_config_share_the_cable_teams():
    """`marlstack train cable_hover` used to fall back to the ground profile and fail deep in the env."""
    from marlstack.policies.config import build_config
    cfg = build_config({"scenario": "cable_hover"})
    assert cfg.profile == "mav_corl25" and cfg.algo == "mappo" and cfg.env_kwargs["barrier"] is True
