"""`marlstack bench jaxmarl_ippo` refuses what it cannot run in one line (JaxMARL's IPPO is a script in its
repository, not on PyPI: no CI machine has a checkout, so the comparison itself is run by hand; docs/training.md)."""
import pytest

from marlstack.bench.cli import main


@pytest.mark.parametrize("make_checkout, python, message", [
    (False, "python", "has no baselines/IPPO/ippo_ff_mpe.py"),
    (True, "nowhere/python", "add --make-venv"),
])
def test_missing_checkout_or_venv_is_one_line(make_checkout, python, message, tmp_path, capsys):
    repo = tmp_path / "JaxMARL"
    if make_checkout:
        (repo / "baselines" / "IPPO" / "config").mkdir(parents=True)
        (repo / "baselines" / "IPPO" / "ippo_ff_mpe.py").write_text("")
        (repo / "baselines" / "IPPO" / "config" / "ippo_ff_mpe.yaml").write_text('"LR": 2.5e-4\n')
    py = tmp_path / python if python != "python" else __import__("sys").executable
    with pytest.raises(SystemExit) as exc:
        main(["jaxmarl_ippo", "--jaxmarl-repo", str(repo), "--jaxmarl-python", str(py), "--quick"])
    assert message in str(exc.value) and "\n" not in str(exc.value)
