"""The cable scenarios' sensor spec in plain Python (no JAX), for exporters and onboard nodes.

`SENSORS` names the raw tensors each MAV senses (an exported graph adds a leading batch axis);
`N` is the team size and `H` the action history length. `sim.cable.env.observe` turns them into the
observation vector in the order `OBS_LAYOUT` lists.
"""
from __future__ import annotations

SENSORS = {
    "load_pos": {"shape": [3], "units": ["m"] * 3, "frame": "world", "doc": "load centre position"},
    "load_rot": {"shape": [3, 3], "units": [""] * 9, "frame": "world", "doc": "load attitude, body to world"},
    "pos": {"shape": [3], "units": ["m"] * 3, "frame": "world", "doc": "own position"},
    "rot": {"shape": [3, 3], "units": [""] * 9, "frame": "world", "doc": "own attitude, body to world"},
    "vel": {"shape": [3], "units": ["m/s"] * 3, "frame": "world", "doc": "own linear velocity"},
    "omega": {"shape": [3], "units": ["rad/s"] * 3, "frame": "body", "doc": "own body rates"},
    "goal_pos": {"shape": [3], "units": ["m"] * 3, "frame": "world", "doc": "goal position of the load"},
    "goal_rot": {"shape": [3, 3], "units": [""] * 9, "frame": "world", "doc": "goal attitude of the load"},
    "agent_id": {"shape": ["N"], "units": [""], "frame": "", "doc": "one-hot index of this MAV"},
    "past_actions": {"shape": ["H", 5], "units": [""], "frame": "",
                     "doc": "last H actions divided by the action limits, newest first"},
}

# (name, size) in observation order; N = team size, H = history length
OBS_LAYOUT = (("load_pos", 3), ("load_rot", 9), ("pos_minus_load", 3), ("rot", 9), ("vel", 3), ("omega", 3),
              ("goal_pos_error", 3), ("rot_load_to_goal_first_two_columns", 6), ("agent_id", "N"),
              ("past_actions", "5H"))

ACTIONS = {"names": ["acc_x", "acc_y", "acc_z", "roll_rate", "pitch_rate"],
           "units": ["m/s^2", "m/s^2", "m/s^2", "rad/s", "rad/s"], "frame": ["world"] * 3 + ["body"] * 2,
           "limits": ["control.max_acceleration"] * 3 + ["control.max_rate_reference"] * 2}
