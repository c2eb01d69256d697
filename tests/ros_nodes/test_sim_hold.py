"""The sim node releases the robots only once the fleet is connected (real DDS, real sim node)."""
from ros_fixtures import run_scenario, stopped


def test_sim_holds_the_robots_until_every_topic_is_connected(tmp_path):
    r = run_scenario("hold_scenario.py", tmp_path)
    # robot_1 not connected: no summary, no poses (the robots are not running yet)
    assert not r["released_with_one_robot"] and r["poses_while_held"] == 0, r
    assert "holding the robots" in r["log"] and "/robot_1/pose 0/1" in r["log"] and "/robot_1/cmd_vel 0/1" in r["log"]
    # (whether robot_0's match shows in a "holding" line depends on when the sim's 2 s report falls: not asserted;
    # under load both were still listed in the last one, then released a second later, in CI)
    # both connected: released at the start pose (robot_0 was commanded to drive all along), then it drives
    assert r["released"] and "releasing the robots" in r["log"], r["log"]
    poses = r["robot_0_poses"]
    assert poses[0] == [-0.5, 0.0] and poses[-1][0] > -0.5 + 0.02, poses[:3] + poses[-1:]
    assert r["summary"]["elapsed_s"] < 5.0 and stopped(r["exit_codes"]["/sim"]), r
