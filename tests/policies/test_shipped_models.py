"""The shipped cable teams (models/*) still do what models/README.md and their eval.json state.

Each model is evaluated again on 32 fresh episodes (eval seed 1: the stated numbers use seed 0, 256
episodes) and must reach its stated median success within 0.15 (about three binomial standard
deviations at 32 episodes) with at most 0.1 more crashes."""
import json
from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parents[2] / "models"
SHIPPED = sorted(p.name for p in MODELS.iterdir() if (p / "checkpoint.msgpack").is_file()) if MODELS.is_dir() else []


def test_the_paper_platform_and_the_failure_team_are_shipped():
    assert {"cable3", "cable4_failure"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_meets_its_stated_evaluation(name):
    from policies.evaluate_cable import evaluate_cable
    stated = json.loads((MODELS / name / "eval.json").read_text())
    overrides = {"env_kwargs": {"failure": True}} if stated["failure"] else None
    result = evaluate_cable(MODELS / name, episodes=32, seed=1, env_overrides=overrides, compare=("classical",))
    assert result["num_agents"] == stated["num_agents"] and result["failure"] == stated["failure"]
    assert result["median_success_rate"] >= stated["median_success_rate"] - 0.15
    assert result["median_crash_rate"] <= stated["median_crash_rate"] + 0.1
    # the classical controller, evaluated on the same episodes, is what the model is compared with
    assert set(result["baselines"]) == {"classical"}
