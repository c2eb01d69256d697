"""A MAV team's `links:` section -> one flight link node per real MAV in the plan (ros_nodes/link_plan.py)."""
from pathlib import Path

import pytest
import yaml

from marlstack.ros_nodes.plan import PlanError, fleet_plan, load_deployment

LAUNCH = Path(__file__).resolve().parents[2] / "launch"


def write(tmp_path, **overrides):
    data = yaml.safe_load((LAUNCH / "cable3_px4.yaml").read_text())
    data.update(overrides)
    path = tmp_path / "team.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_px4_team_gets_a_flight_link_node_per_mav_and_sitl_simulates_it():
    dep = load_deployment(LAUNCH / "cable3_px4.yaml")
    specs = fleet_plan(dep)
    links = [s for s in specs if s.executable == "flight_link_node"]
    assert [s.namespace for s in links] == ["/mav_0", "/mav_1", "/mav_2"]
    mocap = {s.parameters["body"]: s for s in specs if s.executable == "mocap_odom_node"}   # each body's mocap -> its odometry
    assert sorted(mocap) == ["load", "mav_0", "mav_1", "mav_2"] and mocap["load"].namespace == "/load"
    assert mocap["mav_1"].parameters == {"body": "mav_1", "mocap_topic": "/vrpn_mocap/mav_1/pose", "mocap_up_axis": "z"}
    assert "mocap_topic" not in links[0].parameters
    assert [s.parameters["url"] for s in links] == [f"udpin:0.0.0.0:{p}" for p in (14540, 14541, 14542)]
    assert all(s.parameters["mav"] == s.namespace[1:] and s.parameters["profile"] == "mav_corl25"
               and s.parameters["hold_s"] == dep.failsafe["hold_s"] == 1.0 for s in links)
    assert sum(s.executable == "mav_policy_node" for s in specs) == 3 and "mav_sim_node" not in {s.executable for s in specs}
    # the node accepts exactly these parameters (--ros-args -p ...)
    assert "-p" in links[0].ros_args() and 'autopilot:="px4"' in links[0].ros_args()
    sitl = {s.executable for s in fleet_plan(dep, sitl=True)}
    assert "mav_sim_node" in sitl and "flight_link_node" not in sitl
    assert "flight_link_node" not in {s.executable for s in fleet_plan(load_deployment(LAUNCH / "cable3.yaml"))}


def test_mixed_link_kinds_and_all_sim(tmp_path):
    links = {"mav_0": {"link": "mavlink", "url": "udpout:127.0.0.1:14550", "autopilot": "ardupilot"},
             "mav_1": {"link": "crazyflie", "url": "radio://0/80/2M/E7E7E7E7E1", "takeoff_height": 0.5},
             "mav_2": {"link": "mavlink", "url": "/dev/ttyACM0", "mocap_message": "vision_position_estimate"}}
    params = {s.namespace: s.parameters for s in fleet_plan(load_deployment(write(tmp_path, links=links)))
              if s.executable == "flight_link_node"}
    assert params["/mav_0"]["autopilot"] == "ardupilot" and params["/mav_0"]["mocap_message"] == "att_pos_mocap"
    assert params["/mav_1"] == {"mav": "mav_1", "profile": "mav_corl25", "link": "crazyflie",
                                "url": "radio://0/80/2M/E7E7E7E7E1", "takeoff_height": 0.5, "hold_s": 1.0}
    assert params["/mav_2"]["mocap_message"] == "vision_position_estimate" and params["/mav_2"]["autopilot"] == "px4"
    all_sim = {m: {"link": "sim"} for m in ("mav_0", "mav_1", "mav_2")}
    assert "flight_link_node" not in {s.executable for s in fleet_plan(load_deployment(write(tmp_path, links=all_sim)))}


PX4 = {"link": "mavlink", "url": "udpin:0.0.0.0:14540"}


@pytest.mark.parametrize("links, needle", [
    ({"mav_0": PX4}, "must map every MAV (mav_0, mav_1, mav_2)"),
    ({"mav_0": PX4, "mav_1": {"link": "sim"}, "mav_2": {"link": "sim"}}, "every MAV is real or every one is 'sim'"),
    ({"mav_0": PX4, "mav_1": PX4, "mav_2": {**PX4, "url": "udpin:0.0.0.0:1"}}, "used by more than one MAV"),
    ({m: {"link": "wifi"} for m in ("mav_0", "mav_1", "mav_2")}, "links.mav_0.link' must be one of mavlink, crazyflie, sim"),
    ({m: {"link": "crazyflie", "url": "udpin:0.0.0.0:14540"} for m in ("mav_0", "mav_1", "mav_2")}, "links.mav_0.url"),
    ({m: {**PX4, "autopilot": "betaflight"} for m in ("mav_0", "mav_1", "mav_2")}, "links.mav_0.autopilot"),
    ({m: {"link": "crazyflie", "url": "radio://0/1", "autopilot": "px4"} for m in ("mav_0", "mav_1", "mav_2")},
     "autopilot not used by a crazyflie link"),
    ({m: {**PX4, "takeoff_height": 50} for m in ("mav_0", "mav_1", "mav_2")}, "links.mav_0.takeoff_height"),
    ({**{m: {**PX4, "url": f"udpin:0.0.0.0:{i}"} for i, m in enumerate(("mav_0", "mav_1", "mav_2"))},
      "load": {"mocap_topic": "vrpn/load"}}, "links.load': mocap_topic must be an absolute topic"),
    ({m: {"link": "sim"} for m in ("mav_0", "mav_1", "mav_2")} | {"load": {"mocap_topic": "/l"}}, "beside real MAVs"),
    ({m: {**PX4, "url": f"udpin:0.0.0.0:{i}", "mocap_up_axis": "y"} for i, m in enumerate(("mav_0", "mav_1", "mav_2"))},
     "links.mav_0.mocap_up_axis' needs a mocap_topic"),
])
def test_bad_links_fail_in_one_line_naming_the_key(tmp_path, links, needle):
    with pytest.raises(PlanError) as err:
        load_deployment(write(tmp_path, links=links))
    assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_flight_cli_refuses_teams_without_real_mavs_in_one_line(capsys):
    from marlstack.cli import main as marlstack
    cases = [(["arm", "--config", str(LAUNCH / "cable3.yaml")], "has no real MAVs"),
             (["kill", "--config", str(LAUNCH / "cable3_px4.yaml"), "--mavs", "mav_0,mav_9"], "mav_9 not among"),
             (["land", "--config", str(LAUNCH / "missing.yaml")], "no such deployment config")]
    for argv, needle in cases:
        assert marlstack(["flight", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1, err
