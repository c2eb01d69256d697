"""A marlstack policy on the Robotarium (rps 2.x API), written by `marlstack robotarium export`.

Upload every file of this folder and name this one the main script. Each control period it reads
the poses, runs the exported policy (observe() + actor, in numpy: policy.py + policy_weights.npz)
for every robot in one batch, passes the commands through the barrier certificate (marlstack's own,
ms_barrier.py, or rps's), and sends them; it stops when every robot is at its goal, then calls
r.debug(). Only the Robotarium's libraries are imported (numpy, PyYAML, rps; cvxopt via rps).

Local runs: MARLSTACK_SHOW_FIGURE=0 / MARLSTACK_SIM_IN_REAL_TIME=0 turn the figure and the real-time
throttle off; MARLSTACK_TRAJECTORY=out.npz saves poses, commands and the arrival step.
"""
import os

import numpy as np
import rps.robotarium as robotarium
from rps.utilities.barrier_certificates import create_uni_barrier_certificate_with_boundary

import policy

HERE = os.path.dirname(os.path.abspath(__file__))
TASK = {}  # written by the exporter: robots, starts, goals, barrier, limits


def sensors(x, goals):
    """The policy's inputs for every robot (batch axis = robot): own pose, the others' poses in
    ascending robot index without itself, own goal (the exported spec's sensor contract)."""
    poses = x.T.astype(np.float32)
    n = poses.shape[0]
    others = np.stack([np.delete(poses, i, axis=0) for i in range(n)])
    return {"pose": poses, "others": others, "goal": goals.astype(np.float32)}


def make_barrier(task):
    """(dxu 2 x N, x 3 x N) -> safe dxu 2 x N."""
    n = task["num_robots"]
    if task["barrier"] == "ours":
        from ms_barrier import BarrierFilter
        from ms_profile import load_profile
        certificate = BarrierFilter(load_profile(os.path.join(HERE, task["profile_file"])), n, form=task["barrier_form"])
        return lambda dxu, x: np.asarray(certificate.filter(x.T, dxu.T).u).T
    p = task["rps_barrier"]
    return create_uni_barrier_certificate_with_boundary(
        safety_radius=p["safety_radius"], barrier_gain=p["barrier_gain"], projection_distance=p["projection_distance"],
        velocity_magnitude_limit=p["velocity_magnitude_limit"], boundary_points=np.array(p["boundary_points"]))


def main(show_figure=True, sim_in_real_time=True, record=None):
    n = TASK["num_robots"]
    goals = np.array(TASK["goals"], dtype=float)
    r = robotarium.Robotarium(number_of_robots=n, show_figure=show_figure, sim_in_real_time=sim_in_real_time,
                              initial_conditions=np.array(TASK["initial_conditions"], dtype=float).T)
    barrier = make_barrier(TASK)
    poses, commands, arrived = [], [], None
    for step in range(TASK["max_steps"] + 1):
        x = r.get_poses()
        poses.append(x.T.copy())
        if np.all(np.hypot(x[0] - goals[:, 0], x[1] - goals[:, 1]) <= TASK["success_radius"]):
            arrived = step
            break
        if step == TASK["max_steps"]:
            break
        dxu = np.asarray(policy.forward(**sensors(x, goals))["cmd"], dtype=float).T
        dxu = barrier(dxu, x)
        commands.append(dxu.T.copy())
        r.set_velocities(np.arange(n), dxu)
        r.step()
    print(f"every robot at its goal after {arrived} steps" if arrived is not None
          else f"not every robot reached its goal within {TASK['max_steps']} steps")
    if record:
        np.savez(record, poses=np.array(poses), commands=np.array(commands).reshape(-1, n, 2),
                 arrived=-1 if arrived is None else arrived)
    r.debug()


if __name__ == "__main__":
    main(show_figure=os.environ.get("MARLSTACK_SHOW_FIGURE", "1") != "0",
         sim_in_real_time=os.environ.get("MARLSTACK_SIM_IN_REAL_TIME", "1") != "0",
         record=os.environ.get("MARLSTACK_TRAJECTORY"))
