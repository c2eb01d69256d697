"""Message conversions and the navigation task adapter (plain numbers in, model tensors out)."""
import math
import subprocess
import sys
from types import SimpleNamespace as NS

import numpy as np
import pytest

from marlstack.ros_nodes import convert
from marlstack.ros_nodes.adapters import InvalidInput, MissingInput, NavigationAdapter, StaleInput, make_adapter


def pose(x=0.0, y=0.0, q=(0.0, 0.0, 0.0, 1.0), t=(12, 500_000_000)):
    return NS(header=NS(stamp=NS(sec=t[0], nanosec=t[1])),
              pose=NS(position=NS(x=x, y=y, z=0.0), orientation=NS(x=q[0], y=q[1], z=q[2], w=q[3])))


def test_pose_round_trip_through_a_real_message():
    msg = convert.pose_to_msg(0.3, -0.2, 2.5, 12.25)
    x, y, yaw, t = convert.pose_from_msg(msg)
    assert (x, y, t) == pytest.approx((0.3, -0.2, 12.25)) and yaw == pytest.approx(2.5)
    assert convert.twist_to_cmd(convert.cmd_to_twist(0.1, -0.5)) == pytest.approx((0.1, -0.5))


@pytest.mark.parametrize("msg, error, needle", [
    (pose(x=math.nan), convert.NonFinite, "position.x"),
    (pose(q=(0.0, 0.0, math.inf, 1.0)), convert.NonFinite, "orientation.z"),
    (pose(q=(0.0, 0.0, 0.0, 0.0)), convert.Malformed, "norm 0"),
    (NS(header=None), convert.Malformed, "not a PoseStamped"),
])
def test_bad_poses_raise_a_specific_error(msg, error, needle):
    with pytest.raises(error, match=needle.replace("(", r"\(")):
        convert.pose_from_msg(msg)


def test_nan_command_is_never_published():
    msg = convert.cmd_to_twist(math.nan, 1.0)
    assert (msg.linear.x, msg.angular.z) == (0.0, 0.0)
    with pytest.raises(convert.NonFinite):
        convert.twist_to_cmd(NS(linear=NS(x=math.nan), angular=NS(z=0.0)))


def full_adapter():
    a = NavigationAdapter(["r0", "r1", "r2"], "r1", max_age_s=0.1)
    a.update_goal(1.0, 2.0)
    for i, r in enumerate(["r0", "r1", "r2"]):
        a.update_pose(r, float(i), 0.5, 0.1 * i, t_s=10.0)
    return a


def test_inputs_are_batch_of_one_float32_with_others_in_fleet_order():
    got = full_adapter().inputs(10.05)
    assert {k: v.shape for k, v in got.items()} == {"pose": (1, 3), "others": (1, 2, 3), "goal": (1, 2)}
    assert all(v.dtype == np.float32 for v in got.values())
    np.testing.assert_allclose(got["pose"], [[1.0, 0.5, 0.1]], rtol=1e-6)
    np.testing.assert_allclose(got["others"][0, :, 0], [0.0, 2.0])
    np.testing.assert_allclose(got["goal"], [[1.0, 2.0]])


def test_missing_stale_invalid_and_recovery():
    a = NavigationAdapter(["r0", "r1"], "r0", max_age_s=0.1)
    with pytest.raises(MissingInput, match="goal"):
        a.inputs(0.0)
    a.update_goal(0.0, 0.0)
    a.update_pose("r0", 0, 0, 0, 1.0)
    with pytest.raises(MissingInput, match="pose of r1"):
        a.inputs(1.0)
    a.update_pose("r1", 1, 0, 0, 1.0)
    with pytest.raises(StaleInput, match="pose of r0: last one 150 ms old"):
        a.inputs(1.15)
    a.update_pose("r0", 0, 0, 0, 1.1)
    a.update_pose("r0", math.nan, 0, 0, 1.11)
    with pytest.raises(InvalidInput, match="pose of r0: non-finite"):
        a.inputs(1.11)
    a.invalidate_pose("r0", "orientation quaternion has norm 0")
    a.update_pose("r1", 1, 0, 0, 1.1)
    with pytest.raises(InvalidInput, match="pose of r0: orientation"):
        a.inputs(1.1)
    a.update_pose("r0", 0, 0, 0, 1.12)
    assert a.inputs(1.12)["others"].shape == (1, 1, 3)


@pytest.mark.parametrize("fault, reason", [
    ({"x": math.nan}, "pose: non-finite position.x"),
    ({"q": (0.0, 0.0, 0.0, 0.0)}, "norm 0"),
    ({"x": 1e12}, "outside the arena (more than 1 m): a sensing fault"),
    ({"stamp": 0.0}, "header stamp not set"),
])
def test_a_neighbours_bad_pose_is_refused_as_a_sample_and_its_last_good_one_ages(fault, reason):
    """A neighbour whose marker sends garbage is a silent neighbour: its last good pose, with that pose's stamp,
    feeds the model (and the safety node's age margin) until neighbour_max_age_s; the robot itself stops at once."""
    from marlstack.hardware.profile import load_profile
    from marlstack.ros_nodes import health
    profile, stamps, robots = load_profile("gritsbot_x"), health.Stamps(0.02, 0.053), ["r0", "r1", "r2"]
    a = NavigationAdapter(robots, "r0", max_age_s=0.119, neighbour_max_age_s=2.0)
    a.update_goal(1.0, 0.0)

    def send(r, t, x=None, q=(0.0, 0.0, 0.0, 1.0), stamp=None):
        x = 0.3 * robots.index(r) if x is None else x
        msg = convert.pose_to_msg(x, 0.4, 0.0, t if stamp is None else stamp)
        msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z, msg.pose.orientation.w = q
        return health.take_pose(a.poses, r, msg, stamps, profile, t)

    t0 = 1_700_000_000.0
    with pytest.raises(MissingInput, match="pose of r2: no good one received yet; the samples since refused"):
        send("r0", t0), send("r1", t0), send("r2", t0, **fault)
        a.inputs(t0)   # a neighbour that never sent a good pose: unknown position, stop
    for k in range(1, 31):   # r1 good for 1 s, then only bad samples
        t = t0 + k * 0.033
        for r in robots:
            assert send(r, t, **(fault if r == "r1" and k > 1 else {})) == (((0.3 * robots.index(r), 0.4, 0.0), False)
                                                                              if r != "r1" or k == 1 else (None, False))
        got = a.inputs(t)
        np.testing.assert_allclose(got["others"][0, 0], [0.3, 0.4, 0.0], atol=1e-6)   # r1's last good pose
        assert a.poses.times[1] == pytest.approx(t0 + 0.033) and got["pose"][0, 0] == 0.0
    own = NavigationAdapter(robots, "r1", 0.119, 2.0, poses=a.poses)   # r1's own node (a shared store: the fleet node)
    own.update_goal(0.0, 0.0)
    with pytest.raises(InvalidInput, match=f"pose of r1: .*{reason.split('(')[0]}"):
        own.inputs(t)
    late = t0 + 0.033 + 2.05   # past neighbour_max_age_s: r1's whereabouts are too old, r0 stops too, naming why
    send("r0", late), send("r1", late, **fault)
    with pytest.raises(StaleInput, match=r"pose of r1: last good one 2050 ms old \(limit 2000 ms\); the samples since "
                                         r"refused \(latest: .*" + reason.split("(")[0].replace(".", r"\.")):
        a.inputs(late)
    send("r1", late + 0.033)   # a good one: r1 is back
    assert a.inputs(late + 0.033)["others"].shape == (1, 2, 3)


def test_a_robots_own_bad_pose_stops_it_with_the_reason():
    from marlstack.hardware.profile import load_profile
    from marlstack.ros_nodes import health
    a = NavigationAdapter(["r0", "r1"], "r0", max_age_s=0.119, neighbour_max_age_s=60.0)
    a.update_goal(1.0, 0.0)
    stamps, profile, t = health.Stamps(0.02, 0.053), load_profile("gritsbot_x"), 1_700_000_000.0
    for r in ("r0", "r1"):
        health.take_pose(a.poses, r, convert.pose_to_msg(0.0, 0.0, 0.0, t), stamps, profile, t)
    assert a.inputs(t)["pose"].shape == (1, 3)
    assert health.take_pose(a.poses, "r0", convert.pose_to_msg(1e12, 0.0, 0.0, t + 0.033), stamps, profile, t + 0.033) \
        == (None, False)
    with pytest.raises(InvalidInput, match=r"pose of r0: position \(1e\+12, 0\) is 1e\+12 m outside the arena"):
        a.inputs(t + 0.034)   # at once, not when the last good one is too old


def test_coverage_takes_the_landmarks_message_and_checks_their_count():
    a = make_adapter("coverage", ["r0", "r1"], "r1", 0.1)
    assert a.task_topic.path() == "/landmarks" and a.shapes()["landmarks"] == (2, 2)
    for r in ("r0", "r1"):
        a.update_pose(r, 0.0, 0.0, 0.0, 1.0)
    with pytest.raises(MissingInput, match="landmarks"):
        a.inputs(1.0)
    point = lambda x, y: NS(position=NS(x=x, y=y, z=0.0))  # noqa: E731
    a.update_task(a.task_from_msg(NS(poses=[point(1.0, 0.5), point(-1.0, 0.5)])))
    np.testing.assert_allclose(a.inputs(1.0)["landmarks"], [[[1.0, 0.5], [-1.0, 0.5]]])
    a.update_task(a.task_from_msg(NS(poses=[point(1.0, 0.5)])))  # one landmark for a fleet of two
    with pytest.raises(InvalidInput, match="landmarks: expected 2 x 2 numbers for this fleet of 2, got 2"):
        a.inputs(1.0)
    with pytest.raises(convert.NonFinite, match=r"landmarks\[1\]"):
        a.task_from_msg(NS(poses=[point(1.0, 0.5), point(math.nan, 0.0)]))
    with pytest.raises(convert.Malformed, match="empty"):
        a.task_from_msg(NS(poses=[]))


def test_unknown_scenario_is_a_clear_error():
    with pytest.raises(ValueError, match="no ROS task adapter for scenario 'herding'"):
        make_adapter("herding", ["a"], "a", 0.1)


ONBOARD = ["marlstack.ros_nodes.policy_node", "marlstack.ros_nodes.safety_node", "marlstack.ros_nodes.recorder_node", "marlstack.ros_nodes.rate_controller_node",
           "marlstack.ros_nodes.mav_policy_node", "marlstack.ros_nodes.mav_io", "marlstack.ros_nodes.mav_safety", "marlstack.ros_nodes.team_plan", "marlstack.ros_nodes.adapters",
           "marlstack.ros_nodes.convert", "marlstack.ros_nodes.topics", "marlstack.ros_nodes.plan", "marlstack.ros_nodes.health", "marlstack.ros_nodes.runner",
           "marlstack.ros_nodes.sitl", "marlstack.policies.runtime", "marlstack.controllers.barrier", "marlstack.ros_nodes.hardware_adapter_node",
           "marlstack.hardware.mavlink", "marlstack.hardware.crazyflie", "marlstack.ros_nodes.flight_link_node",
           "marlstack.ros_nodes.mav_team_policy_node", "marlstack.ros_nodes.fleet_policy_node", "marlstack.ros_nodes.task_adapter"]


def test_onboard_node_modules_never_import_jax():
    code = ("import sys\n"
            f"for m in {ONBOARD!r}: __import__(m)\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'flax', 'optax'))\n"
            "print(','.join(loaded))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
