"""`marlstack eval --num-agents`: a shared-parameter policy evaluated on another fleet size, or refused with the reason."""
import json
import shutil
from pathlib import Path

from marlstack.cli import main

TRAINED = Path(__file__).resolve().parents[1] / "data" / "navigation_4" / "checkpoint.msgpack"


def test_a_4_robot_navigation_policy_drives_8_robots_and_refuses_2(tmp_path, capsys):
    ck = tmp_path / "checkpoint.msgpack"
    shutil.copy(TRAINED, ck)
    assert main(["eval", str(ck), "--num-agents", "8", "--episodes", "8", "--best-seed", "--no-gif", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    # measured (eval seed 1000, the exported seed 3): 6 of these 8 episodes solved (0.75), 0 collisions; on 32
    # episodes 0.875, and the four seeds 0.00 / 0.875 / 0.875 / 0.875. 0.7: one more failed episode fails the test
    assert res["num_agents"] == 8 and res["seed"] == 3 and res["success_rate"] >= 0.7 and res["collisions"] == 0, res
    assert (tmp_path / "eval_8_agents.json").is_file() and not (tmp_path / "eval.json").exists()
    assert main(["eval", str(ck), "--num-agents", "2", "--episodes", "2", "--no-gif"]) == 2
    err = capsys.readouterr().err
    assert "observed 3 neighbour(s); a fleet of 2 fills 1" in err and "Traceback" not in err
