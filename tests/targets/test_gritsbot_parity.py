"""`gritsbot_x` physics against rps 2.1.0 itself (the Robotarium's simulator), float64, ≤ 1e-9.

rps 2.1 clips each wheel to MAX_WHEEL_VELOCITY, checks the poses before the move with collision
centres shifted 0.025 m forward, and counts per step: one boundary error if any robot is outside,
one collision per pair too close, one actuator warning if any command asks a wheel for too much.
Starts hug the walls (and some robots start in pairs closer than the collision distance); commands
change every step: bang-bang far beyond every limit, and uniform within three times the limits.
"""
import subprocess
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marlstack.hardware import load_profile
from marlstack.sim.fleet import physics_step

STEPS = 1000
SIZES = (2, 7, 20)


def wall_hugging_starts(rng: np.random.Generator, n: int, profile) -> np.ndarray:
    """Robots 2-15 mm inside a wall, facing it, along it or away; every third one beside the previous."""
    a = profile.arena
    poses = np.zeros((n, 3))
    for i in range(n):
        if i % 3 == 2:  # beside the previous robot, closer than the collision distance
            poses[i] = poses[i - 1] + [0.0, np.sign(-poses[i - 1, 1]) * 0.1, 0.3]
            continue
        wall = rng.integers(4)
        inset = rng.uniform(0.002, 0.015)
        along = rng.uniform(-0.9, 0.9)
        x = [a.x_min + inset, a.x_max - inset, along * a.x_max, along * a.x_max][wall]
        y = [along * a.y_max, along * a.y_max, a.y_min + inset, a.y_max - inset][wall]
        facing = [np.pi, 0.0, -np.pi / 2, np.pi / 2][wall]
        poses[i] = [x, y, facing + rng.choice([0.0, np.pi / 2, np.pi, rng.uniform(-np.pi, np.pi)])]
    poses[:, 2] = np.angle(np.exp(1j * poses[:, 2]))
    return poses


def commands(rng: np.random.Generator, n: int, profile, kind: str) -> np.ndarray:
    lim = np.array([profile.max_linear_speed, profile.max_angular_speed])
    if kind == "bang":
        scale = rng.choice([0.5, 1.0, 2.0, 5.0], (STEPS, n, 1))
        return np.sign(rng.uniform(-1, 1, (STEPS, n, 2))) * lim * scale
    return rng.uniform(-3, 3, (STEPS, n, 2)) * lim


def ours(profile, initial: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with jax.enable_x64(True):
        def body(p, ui):
            p, viol, _ = physics_step(profile, p, ui)
            return p, (p, jnp.stack([viol.boundary_exits.max(), viol.collisions.sum() // 2,
                                     viol.actuator_excess.max()]))
        poses, errors = jax.jit(lambda p, c: jax.lax.scan(body, p, c)[1])(jnp.asarray(initial), jnp.asarray(u))
        return np.asarray(poses), np.asarray(errors)


def test_gritsbot_x_matches_rps_2_1(rps21, tmp_path):
    profile = load_profile("gritsbot_x")
    rng = np.random.default_rng(21)
    cases = {}
    for n in SIZES:
        for kind in ("bang", "uniform"):
            cases[f"{kind}{n}/initial"] = wall_hugging_starts(rng, n, profile)
            cases[f"{kind}{n}/commands"] = commands(rng, n, profile, kind)
    np.savez(tmp_path / "cases.npz", **cases)
    subprocess.run([str(rps21), str(Path(__file__).with_name("rps21_run.py")), "physics", str(tmp_path / "cases.npz"),
                    str(tmp_path / "rps.npz")], check=True, cwd=tmp_path, timeout=300)
    ref = np.load(tmp_path / "rps.npz")
    totals = np.zeros(3, int)
    for name in sorted({k.split("/")[0] for k in cases}):
        poses, errors = ours(profile, cases[f"{name}/initial"], cases[f"{name}/commands"])
        want = ref[f"{name}/poses"]
        assert np.abs(poses[..., :2] - want[..., :2]).max() <= 1e-9, name
        assert np.abs(np.angle(np.exp(1j * (poses[..., 2] - want[..., 2])))).max() <= 1e-9, name
        np.testing.assert_array_equal(errors, ref[f"{name}/errors"], err_msg=name)
        totals += errors.sum(0)
    # meaningful only if every kind of error happened (boundary, collision, actuator)
    assert (totals > 0).all(), totals
