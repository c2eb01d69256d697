import dataclasses

import numpy as np
import pytest
import yaml

from marlstack.controllers.quadrotor import allocation
from marlstack.hardware import ProfileError, available_profiles, load_profile, profile_hash
from marlstack.hardware.profile import profile_path
from marlstack.sim.cable.equilibrium import hover


def test_paper_numbers_are_loaded():
    p = load_profile("mav_corl25")
    q, ld = p.quadrotor, p.load
    assert (q.mass, q.max_rotor_thrust, q.arm_length, q.arm_angle, q.motor_time_constant) == (0.6, 6.25, 0.106, 45.0, 0.033)
    assert (ld.mass, ld.inertia, p.cable.length) == (1.4, (0.02625, 0.0379, 0.0589), 1.0)
    assert p.team(3).attachment_points == ((0.27, 0.22, 0.14), (0.27, -0.22, 0.14), (-0.27, 0.0, 0.14))
    assert p.substeps == 4 and p.control.inner_loop == "indi"
    cf = load_profile("crazyflie_team")
    assert cf.control.inner_loop == "pid" and cf.quadrotor.max_rotor_thrust == 0.14
    assert {"mav_corl25", "crazyflie_team"} <= set(available_profiles())
    assert hash(p) == hash(load_profile("mav_corl25")) and profile_hash(p) != profile_hash(cf)


def test_allocation_places_rotors_on_the_x_frame():
    g = allocation(load_profile("mav_corl25").quadrotor)
    arm = 0.106 / np.sqrt(2)
    np.testing.assert_allclose(np.abs(g[1:3]), arm)          # every rotor has a roll and a pitch lever
    np.testing.assert_allclose(g[0], 1.0)
    assert np.sum(g[3]) == 0.0 and np.linalg.matrix_rank(g) == 4


@pytest.mark.parametrize("name", ["mav_corl25", "crazyflie_team"])
@pytest.mark.parametrize("n", [3, 4])
def test_hover_equilibrium_is_feasible_and_balanced(name, n):
    p = load_profile(name)
    h = hover(p, n)
    assert np.all(h.thrust > p.quadrotor.min_rotor_thrust) and np.all(h.thrust < p.quadrotor.max_rotor_thrust)
    # the rotors of the whole team carry every weight
    total = h.thrust.sum() * 1.0
    weight = (n * p.quadrotor.mass + p.load.mass) * p.gravity
    assert total >= weight and total < 1.05 * weight
    assert np.all(h.tension > 0)


def _bad(tmp_path, mutate):
    data = yaml.safe_load(profile_path("mav_corl25").read_text())
    mutate(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d["cable"].update(model="rope"), "key 'cable.model' must be one of"),
    (lambda d: d["control"].update(physics_rate_hz=250.0), "integer multiple"),
    (lambda d: d["quadrotor"].update(max_rotor_thrust=1.0), "cannot lift quadrotor.mass"),
    (lambda d: d["load"].update(mass=50.0), "cannot lift load.mass"),
    (lambda d: d["quadrotor"].update(inertia=[1.0, 1.0]), "key 'quadrotor.inertia' must be a list"),
    (lambda d: d["load"]["teams"][0].update(attachment_points=[[0.0, 0.0, 99.0]]), "out of range"),
    (lambda d: d["task"]["workspace"].update(low=[0.0, 0.0, 9.0]), "task.workspace needs low < high"),
])
def test_bad_mav_profiles_say_what_is_wrong(tmp_path, mutate, needle):
    path = _bad(tmp_path, mutate)
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_missing_team_size_is_a_clear_error():
    p = load_profile("mav_corl25")
    with pytest.raises(ProfileError, match="no attachment layout for 5 MAVs.*\\[3, 4\\]"):
        p.team(5)
    assert dataclasses.is_dataclass(p) and p.team(4).cable_tilt == 20.0
