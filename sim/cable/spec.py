"""The cable scenarios' sensor spec in plain Python (no JAX), for exporters and onboard nodes.

`SENSORS` names the raw tensors each MAV senses (an exported graph adds a leading batch axis);
`N` is the team size and `H` the action history length. `sim.cable.env.observe` turns them into the
observation vector in the order `OBS_LAYOUT` lists.
"""
from __future__ import annotations

SENSORS = {
    "load_pos": {"shape": [3], "units": ["m"] * 3, "frame": "world", "doc": "load centre position"},
    "load_rot": {"shape": [3, 3], "units": [""] * 9, "frame": "world", "doc": "load attitude, body to world"},
    "load_vel": {"shape": [3], "units": ["m/s"] * 3, "frame": "world", "doc": "load centre velocity"},
    "load_omega": {"shape": [3], "units": ["rad/s"] * 3, "frame": "body", "doc": "load angular velocity, load frame"},
    "pos": {"shape": [3], "units": ["m"] * 3, "frame": "world", "doc": "own position"},
    "rot": {"shape": [3, 3], "units": [""] * 9, "frame": "world", "doc": "own attitude, body to world"},
    "vel": {"shape": [3], "units": ["m/s"] * 3, "frame": "world", "doc": "own linear velocity"},
    "omega": {"shape": [3], "units": ["rad/s"] * 3, "frame": "body", "doc": "own body rates"},
    "others_pos": {"shape": ["N-1", 3], "units": ["m"] * 3, "frame": "world",
                   "doc": "the other MAVs' positions, in agent order without this one"},
    "goal_pos": {"shape": [3], "units": ["m"] * 3, "frame": "world", "doc": "goal position of the load"},
    "goal_rot": {"shape": [3, 3], "units": [""] * 9, "frame": "world", "doc": "goal attitude of the load"},
    "agent_id": {"shape": ["N"], "units": [""], "frame": "", "doc": "one-hot index of this MAV"},
    "past_actions": {"shape": ["H", 5], "units": [""], "frame": "",
                     "doc": "last H actions divided by the action limits, newest first"},
}

# (name, size) in observation order; N = team size, H = history length
OBS_LAYOUT = (("goal_pos_minus_load_pos", 3), ("load_rot", 9), ("rot_load_to_goal_first_two_columns", 6),
              ("load_vel", 3), ("load_omega", 3), ("pos_minus_load_pos", 3), ("rot", 9), ("vel", 3), ("omega", 3),
              ("others_pos_minus_pos", "3(N-1)"), ("classical_acceleration", 3), ("agent_id", "N"),
              ("past_actions", "5H"))

ACTIONS = {"names": ["acc_x", "acc_y", "acc_z", "roll_rate", "pitch_rate"],
           "units": ["m/s^2", "m/s^2", "m/s^2", "rad/s", "rad/s"], "frame": ["world"] * 3 + ["body"] * 2,
           "limits": ["control.max_acceleration"] * 3 + ["control.max_rate_reference"] * 2}


def concrete_shape(shape: list, num_agents: int, history: int) -> list[int]:
    """A SENSORS shape with its symbols (N, N-1, H) replaced by the team size and history length."""
    sizes = {"N": num_agents, "N-1": num_agents - 1, "H": history}
    return [sizes.get(d, d) if isinstance(d, str) else d for d in shape]


def layout_sizes(num_agents: int, history: int) -> list[int]:
    """The sizes of OBS_LAYOUT's entries for this team size and history length."""
    sizes = {"N": num_agents, "3(N-1)": 3 * (num_agents - 1), "5H": 5 * history}
    return [sizes.get(n, n) if isinstance(n, str) else n for _, n in OBS_LAYOUT]
