"""Runs inside the rps 2.1.0 venv (numpy + rps only), called by the tests in this folder.

  rps21_run.py physics CASES.npz OUT.npz   rps's own step() on each case: initial poses (N, 3) and
                                           commands (T, N, 2) -> poses (T, N, 3) and per-step error
                                           increments (T, 3): boundary, collision, actuator
  rps21_run.py main FOLDER SEED            a submission's main.py with `random` and numpy seeded
                                           (rps's initializer draws from both)
"""
import random
import runpy
import sys

import numpy as np

KINDS = ("robots_outside_boundaries", "robots_too_close", "exceeded_actuator_limits")


def physics(cases_path, out_path):
    import rps.robotarium as robotarium
    cases = np.load(cases_path)
    out = {}
    for name in sorted({k.split("/")[0] for k in cases.files}):
        initial, commands = cases[f"{name}/initial"], cases[f"{name}/commands"]
        n = initial.shape[0]
        r = robotarium.Robotarium(number_of_robots=n, show_figure=False, sim_in_real_time=False,
                                  initial_conditions=initial.T.copy(), skip_initialization=True)
        poses, errors = [], []
        for u in commands:
            r.get_poses()
            before = [r._errors.get(k, 0) for k in KINDS]
            r.set_velocities(np.arange(n), u.T.copy())
            r.step()
            poses.append(r._poses.T.copy())
            errors.append([r._errors.get(k, 0) - b for k, b in zip(KINDS, before)])
        out[f"{name}/poses"], out[f"{name}/errors"] = np.array(poses), np.array(errors)
    np.savez(out_path, **out)


if __name__ == "__main__":
    if sys.argv[1] == "physics":
        physics(sys.argv[2], sys.argv[3])
    else:
        random.seed(int(sys.argv[3]))
        np.random.seed(int(sys.argv[3]))
        sys.path.insert(0, sys.argv[2])
        runpy.run_path(f"{sys.argv[2]}/main.py", run_name="__main__")
