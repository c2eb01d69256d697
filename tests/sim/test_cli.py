"""`marlstack sim` end to end (few steps): pictures written, summary printed, bad input is one clear line."""
from PIL import Image

from marlstack.sim_cli import main


def test_sim_writes_png_and_gif(tmp_path, capsys):
    assert main(["navigation", "--num-agents", "2", "--policy", "scripted", "--steps", "12", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 robots (gritsbot_x), scripted policy, 12 steps" in out and "violations:" in out
    png, gif = tmp_path / "trajectory.png", tmp_path / "trajectory.gif"
    assert Image.open(png).size[0] > 300
    with Image.open(gif) as im:
        assert im.n_frames == 13  # the start and every step


def test_sim_rejects_bad_input_in_one_line(tmp_path, capsys):
    assert main(["navigation", "--num-agents", "99", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("marlstack sim:") and "num_agents" in err and "\n" not in err
    assert main(["navigation", "--profile", "no_such_robot", "-o", str(tmp_path)]) == 2
    assert "no such profile" in capsys.readouterr().err
