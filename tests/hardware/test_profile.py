import dataclasses

import pytest
import yaml

from marlstack.hardware.profile import ProfileError, available_profiles, load_profile, profile_hash, profile_path


def test_bundled_ground_profiles_load():
    assert {"gritsbot_x", "rps_v1"} <= set(available_profiles())
    g = load_profile("gritsbot_x")
    assert (g.dt, g.max_linear_speed, g.wheel_radius, g.base_length, g.max_wheel_speed) == (0.033, 0.2, 0.016, 0.11, 12.5)
    assert (g.collision_distance, g.collision_offset, g.saturation, g.max_robots) == (0.135, 0.025, "wheel", 50)
    assert (g.arena.x_min, g.arena.x_max, g.arena.y_min, g.arena.y_max) == (-1.6, 1.6, -1.0, 1.0)
    assert g.barrier.unicycle_walls.gamma == 150.0 and g.barrier.unicycle_walls.safety_radius == 0.18
    r = load_profile("rps_v1")
    assert (r.base_length, r.collision_distance, r.saturation) == (0.105, 0.11, "unicycle")


def test_profiles_are_hashable_and_hash_is_stable():
    a, b = load_profile("gritsbot_x"), load_profile("gritsbot_x")
    assert hash(a) == hash(b) and profile_hash(a) == profile_hash(b)
    assert profile_hash(a) != profile_hash(load_profile("rps_v1"))


def _write(tmp_path, mutate):
    data = yaml.safe_load(profile_path("gritsbot_x").read_text())
    mutate(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d.pop("dt"), "missing key 'dt'"),
    (lambda d: d.update(dt="fast"), "key 'dt' must be a finite float"),
    (lambda d: d.update(max_linear_speed=-1.0), "key 'max_linear_speed' = -1.0 is out of range"),
    (lambda d: d.update(max_wheel_speed=float("nan")), "key 'max_wheel_speed' must be a finite float"),
    (lambda d: d["arena"].update(x_max=-2.0), "arena needs x_min < x_max"),
    (lambda d: d["barrier"]["unicycle"].update(gamma=0.0), "key 'barrier.unicycle.gamma' = 0.0 is out of range"),
    (lambda d: d.update(wheel_size=1), "unknown key(s) wheel_size"),
    (lambda d: d.update(kind="boat"), "key 'kind' must be one of"),
    (lambda d: d.update(saturation="soft"), "key 'saturation' must be 'wheel' or 'unicycle'"),
    (lambda d: d.update(max_robots=2.5), "key 'max_robots' must be a finite int"),
])
def test_bad_profiles_name_file_key_and_expectation(tmp_path, mutate, needle):
    path = _write(tmp_path, mutate)
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ProfileError, match="no such profile.*gritsbot_x"):
        load_profile("nonexistent_robot")
    bad = tmp_path / "x.yaml"
    bad.write_text("dt: [1, 2\n")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ProfileError, match="must be a YAML mapping"):
        load_profile(bad)


def test_profile_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        load_profile("gritsbot_x").dt = 0.1
