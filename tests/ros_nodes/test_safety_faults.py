"""Say what happened: faults become stop reasons, counters, log lines, SITL failures or start refusals.

Mostly the nodes' pure parts (health, the policy's start-up check, the plan, the SITL verdict);
one short SITL run over real DDS shows a NaN policy failing the run with its reason.
"""
import json

import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from marlstack.hardware import load_profile, profile_hash
from marlstack.policies.export import Step, trace, write_artifact
from marlstack.policies.spec import build_spec, tensor
from ros_fixtures import REPO, config_with_policy, run_scenario, sitl  # noqa: F401
from marlstack.ros_nodes import health, sitl as sitl_cli
from marlstack.ros_nodes.adapters import MissingInput, StaleInput
from marlstack.ros_nodes.plan import PlanError, load_deployment
from marlstack.ros_nodes.policy_node import open_policy
from marlstack.ros_nodes.runner import StartError
from marlstack.ros_nodes.safety_node import Certificate

GRITS = load_profile("gritsbot_x")
ROBOTS = [f"robot_{i}" for i in range(4)]
LAUNCH = REPO / "launch"


def model(tmp_path, value, graph_others=3, spec_others=3, name="policy.onnx"):
    """A navigation 'policy' for 4 robots whose command is `value` (plus 0 × its inputs); the graph's
    'others' input has `graph_others` rows, its metadata says `spec_others`."""
    def spec(n):
        return build_spec(
            scenario="navigation", vehicle_kind="ground", agent={"role": "shared", "agents": ROBOTS},
            inputs=[tensor("pose", [3], ["m", "m", "rad"], "world"), tensor("others", [n, 3], ["m", "m", "rad"], "world"),
                    tensor("goal", [2], ["m", "m"], "world")],
            outputs=[tensor("cmd", [2], ["m/s", "rad/s"], "body")], recurrent=None, control_rate_hz=1 / GRITS.dt,
            profile_name=GRITS.name, profile_hash=profile_hash(GRITS), training_run_id="test", git_revision="abc",
            created="2026-01-01T00:00:00+00:00", marlstack_version="0.1.0", exporter={"opset": 20})

    def fn(pose, others, goal):
        zero = 0.0 * (jnp.sum(pose, -1) + jnp.sum(others, (-2, -1)) + jnp.sum(goal, -1))
        return jnp.stack([zero + value[0], zero + value[1]], axis=-1)

    graph = spec(graph_others)
    return write_artifact(trace(Step(fn, graph["inputs"], graph["outputs"], None)), spec(spec_others), tmp_path / name)


# --- health: reasons, plausibility, totals ------------------------------------------------------------

def test_a_fault_during_start_up_is_logged_and_stops_are_counted_by_kind():
    dog = health.Watchdog()
    assert not dog.trip(MissingInput("pose of robot_0", "none received yet"))   # waiting: not news
    assert dog.trip("barrier certificate: infeasible (min barrier -0.04: robots overlap)")  # news, though no stop
    assert dog.stops == 0 and dog.stop_reasons == {"barrier certificate: infeasible": 1}
    assert dog.clear()
    assert dog.trip(StaleInput("pose of robot_2", "last one 120 ms old (limit 99 ms)"))
    assert not dog.trip(StaleInput("pose of robot_2", "last one 150 ms old (limit 99 ms)"))
    dog.clear()
    dog.trip(StaleInput("pose of robot_2", "last one 101 ms old (limit 99 ms)"))
    assert dog.stops == 2
    assert dog.stop_reasons == {"barrier certificate: infeasible": 1, "pose of robot_2: stale": 2}


def test_implausible_commands_poses_and_outputs_are_named():
    assert health.command_fault(1e9, 0.0, GRITS) and health.command_fault(0.0, -1e9, GRITS)
    assert health.command_fault(0.2, 1.0, GRITS) is None
    assert health.clipped(0.5, 0.0, GRITS) and not health.clipped(0.1, 0.5, GRITS)
    assert "outside the arena" in health.pose_fault(1e12, 0.0, GRITS)
    assert health.pose_fault(GRITS.arena.x_max + 0.5, 0.0, GRITS) is None   # a robot just over the line is real
    assert health.output_fault(np.array([[np.nan, 0.0]]), GRITS) == "non-finite"
    assert health.output_fault(np.array([1e9, 0.0]), GRITS) == "implausible"
    assert health.output_fault(np.zeros(3), GRITS) == "expected 2 numbers (v, ω), got 3"
    assert health.output_fault(np.array([0.1, 0.2]), GRITS) is None


def test_reports_fold_into_per_robot_totals_with_reasons():
    policy = {"watchdog_stops": "1", "output_faults": "30", "stop_reasons": json.dumps({"model output: non-finite": 1})}
    safety = {"watchdog_stops": "2", "interventions": "5", "barrier_brakes": "0", "clipped_commands": "3",
              "stop_reasons": json.dumps({"cmd_vel_nominal of robot_0: stale": 2})}
    got = health.fold_reports([policy, safety])
    assert got == {"interventions": 5, "watchdog_stops": 3, "barrier_brakes": 0, "clipped_commands": 3,
                   "output_faults": 30, "deadlocks": 0, "stop_reasons": {"model output: non-finite": 1,
                                                         "cmd_vel_nominal of robot_0: stale": 2}}


# --- SITL verdict ----------------------------------------------------------------------------------------

def test_a_frozen_or_faulty_fleet_is_not_an_ok_run():
    good = {"goal_reached": True, "collision_steps": 0, "boundary_exit_steps": 0, "barrier_brakes": 0, "output_faults": 0}
    assert sitl_cli.faults({"robot_0": good}, until_goals=True) == []
    frozen = {**good, "goal_reached": False, "barrier_brakes": 185, "final_goal_distance_m": 1.2}
    nan = {**good, "output_faults": 30, "watchdog_stops": 1}
    found = sitl_cli.faults({"robot_0": frozen, "robot_1": nan, "robot_2": {**good, "collision_steps": 4}}, until_goals=True)
    assert any("robot_0 braked by the barrier certificate in 185 solves" in f for f in found)
    assert any("robot_0 did not reach its goal" in f for f in found)
    assert any("robot_1's policy gave 30 unusable outputs" in f for f in found)
    assert any("robot_2 collided (4 steps)" in f for f in found)
    assert not any("did not reach" in f for f in sitl_cli.faults({"robot_0": frozen}, until_goals=False))


# --- refused at start ------------------------------------------------------------------------------------

def test_a_model_with_the_right_names_but_wrong_shapes_is_refused_in_one_line(tmp_path):
    bad = model(tmp_path, (0.1, 0.0), graph_others=5, spec_others=3)
    with pytest.raises(StartError) as exc:
        open_policy(str(bad), "navigation", GRITS, 1 / GRITS.dt, ROBOTS, "robot_0", 0.1)
    msg = str(exc.value)
    assert "does not run on this fleet's inputs" in msg and "\n" not in msg and str(bad) in msg
    runtime, _ = open_policy(str(model(tmp_path, (0.1, 0.0), name="ok.onnx")), "navigation", GRITS, 1 / GRITS.dt,
                             ROBOTS, "robot_0", 0.1)
    assert runtime.spec["scenario"] == "navigation"


def test_sitl_refuses_the_wrong_shape_model_before_starting_any_node(tmp_path, capsys):
    config = config_with_policy("robotarium_nav4.yaml", model(tmp_path, (0.1, 0.0), graph_others=5), tmp_path)
    assert sitl_cli.main(["--config", str(config), "--duration", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not run on this fleet's inputs" in err[0] and "Traceback" not in err[0]


def write_plan(tmp_path, text=None, **overrides):
    data = yaml.safe_load((LAUNCH / "robotarium_nav4.yaml").read_text())
    data.update(overrides)
    path = tmp_path / "fleet.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("overrides,words", [
    ({"rate_hz": 0.5}, "key 'rate_hz' must be a number within a factor 2 of profile gritsbot_x's control rate"),
    ({"sim": {"seed": -1}}, "0 <= seed < 2**32"),
    ({"policy": "."}, "is a directory; point it at the exported policy.onnx file"),
])
def test_implausible_plan_values_are_refused_in_one_line(tmp_path, overrides, words):
    with pytest.raises(PlanError) as exc:
        load_deployment(write_plan(tmp_path, **overrides))
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_invalid_yaml_is_one_line_with_its_position(tmp_path):
    with pytest.raises(PlanError) as exc:
        load_deployment(write_plan(tmp_path, text="name: x\nrobots: [\n  - {name: a\n"))
    assert "not valid YAML" in str(exc.value) and "line" in str(exc.value) and "\n" not in str(exc.value)


def test_starts_the_certificate_cannot_start_from_are_refused(tmp_path):
    data = yaml.safe_load((LAUNCH / "robotarium_nav4.yaml").read_text())
    robots = data["robots"]
    robots[1]["start"] = list(robots[0]["start"])                 # two robots on one spot
    with pytest.raises(PlanError, match=r"robots\[1\]\.start': robot_1 starts 0.000 m from robot_0 .* move the starts apart"):
        load_deployment(write_plan(tmp_path, robots=robots))
    robots[1]["start"] = [GRITS.arena.x_max - 0.05, 0.0, 0.0]     # facing the wall, a few cm from it
    with pytest.raises(PlanError, match="within 0.105 m of a wall"):
        load_deployment(write_plan(tmp_path, robots=robots))


# --- over real DDS: a NaN policy fails the run, with its reason -------------------------------------------

def test_a_nan_policy_fails_sitl_with_its_reason(tmp_path):
    config = config_with_policy("robotarium_nav4.yaml", model(tmp_path, (float("nan"), 0.0)), tmp_path)
    report, err = sitl(config, "--duration", "2")
    assert not report["ok"] and "FAILED" in err
    for name, r in report["robots"].items():
        assert r["output_faults"] > 0, (name, r)
        assert r["stop_reasons"].get("model output: non-finite") == 1, (name, r)
    assert any("unusable outputs" in f for f in report["faults"])
    from pathlib import Path
    logs = "".join(p.read_text(errors="replace") for p in Path(report["logdir"]).rglob("*.log"))
    assert "refused (non-finite): zero velocity" in logs   # the policy node's own log says it, not just /diagnostics


# --- time-aware inputs: stamps, not arrival ---------------------------------------------------------------

def test_samples_are_judged_by_their_stamps():
    s = health.Stamps(offset_s=0.02, jump_s=0.053)
    now = 1_700_000_000.0
    assert s.judge("r0", now - 0.01, now) == (None, False) and s.delay_s["r0"] == pytest.approx(0.01)
    assert s.judge("r0", 0.0, now)[0].startswith("header stamp not set")
    assert "in the future" in s.judge("r0", now + 5.0, now)[0] and s.judge("r0", now + 5.0, now)[1]
    assert "in the future" in s.judge("r0", 1e12, now)[0]
    assert s.judge("r0", now + 0.015, now) == (None, False)                   # ahead, within the allowance
    assert s.judge("r0", now + 0.02, now + 0.02) == (None, False)
    assert s.judge("r0", now + 0.02, now + 0.03) == ("header stamp repeated: the source is frozen", True)
    reason, fatal = s.judge("r0", now + 0.001, now + 0.03)                     # one packet out of order
    assert not fatal and reason.startswith("out of order") and s.dropped == 1
    assert s.judge("r0", now + 0.04, now + 0.045) == (None, False)


def test_a_constant_delay_is_stale_every_time_not_reported_once_and_tolerated():
    """Timed by its stamp, a pose arriving 1 s late is 1 s old when it is used: its robot stops on
    every sample (and the delay is on /diagnostics); a stamp shifted into the past (1e9) likewise."""
    from marlstack.ros_nodes.adapters import LatestValues
    s, poses, now = health.Stamps(offset_s=0.02, jump_s=0.053), LatestValues(["r1"], 3, "pose"), 1_700_000_000.0
    for k in range(5):
        t = now + k * 0.033
        assert s.judge("r1", t - 1.0, t) == (None, False)
        poses.put("r1", (0.0, 0.0, 0.0), t - 1.0)
        problem = poses.problem("r1", t, 0.119)
        assert isinstance(problem, StaleInput) and "1000 ms old" in str(problem)
    assert s.worst_delay_ms() == pytest.approx(1000.0, abs=1e-3)
    assert s.judge("r2", 1e9, now) == (None, False)
    poses.put("r1", (0.0, 0.0, 0.0), 1e9)
    assert isinstance(poses.problem("r1", now, 0.119), StaleInput)


def test_a_stale_neighbour_does_not_stop_the_policy_but_a_stale_own_pose_does():
    from marlstack.ros_nodes.adapters import make_adapter
    a = make_adapter("navigation", ROBOTS, "robot_0", 0.1, neighbour_max_age_s=60.0)
    a.update_task(np.array([1.0, 0.0]))
    for i, r in enumerate(ROBOTS):
        a.update_pose(r, -1.0 + 0.5 * i, 0.0, 0.0, 10.0)
    a.update_pose("robot_0", -1.0, 0.0, 0.0, 15.0)
    got = a.inputs(15.05)                       # robot_2's marker was lost 5 s ago: its last pose is used
    assert got["others"][0, 1, 0] == pytest.approx(0.0)
    with pytest.raises(StaleInput, match="pose of robot_0"):
        a.inputs(15.2)                          # our own pose is too old: stop
    a.invalidate_pose("robot_2", "non-finite value")
    got = a.inputs(15.05)                       # a bad neighbour sample is refused: its last good pose stands
    assert got["others"][0, 1, 0] == pytest.approx(0.0)
    strict = make_adapter("navigation", ROBOTS, "robot_0", 0.1)
    strict.update_task(np.array([1.0, 0.0]))
    for r in ROBOTS:
        strict.update_pose(r, 0.0, 0.0, 0.0, 10.0)
    strict.update_pose("robot_0", 0.0, 0.0, 0.0, 15.0)
    with pytest.raises(StaleInput, match="pose of robot_1"):
        strict.inputs(15.05)                    # replay and sim2sim keep the one age limit


def test_a_stamp_jumping_ahead_of_its_arrivals_is_refused_for_one_sample():
    """Poses 90 ms late are within the 119 ms age window; the next one on time claims 90 ms fresher data
    than the source delivered a period ago: a clock step or a bad stamp, refused (fatal: the robot stops)."""
    s, now = health.Stamps(offset_s=0.02, jump_s=0.053), 1_700_000_000.0
    for k in range(5):
        assert s.judge("r0", now + k * 0.033 - 0.09, now + k * 0.033) == (None, False)
    t = now + 5 * 0.033
    reason, fatal = s.judge("r0", t, t)
    assert fatal and reason.startswith("header stamp jumped ahead (90 ms fresher than any sample of the last 1 s, "
                                       "tolerance 53 ms)") and "\n" not in reason and s.jumps == 1
    assert health.reason_kind(f"pose of r0: {reason}") == "pose of r0: header stamp jumped ahead"
    assert s.judge("r0", t + 0.033, t + 0.033) == (None, False)     # the refused one joined the window: fine again
    for k in range(6, 60):                                          # delay varying by 30 ms (< tolerance): no jump
        t = now + k * 0.033 + 0.5 * (k > 30)                        # and 0.5 s of silence: stamps and arrivals alike
        assert s.judge("r1", t - 0.03 * (k % 2), t) == (None, False)
    assert s.judge("r1", t + 0.033, t + 0.2) == (None, False)       # a stall: one sample 167 ms late (stale by its age) ...
    assert s.judge("r1", t + 0.201, t + 0.202) == (None, False)     # ... then on time again: not a jump
    assert s.jumps == 1


def test_the_jump_rule_keeps_its_answers_without_scanning_the_window():
    """`Stamps.judge` finds the window's smallest delay without a scan per sample (it runs for every odometry
    message of every MAV): on random streams (jitter, stalls, clock steps, out-of-order, repeated and unset stamps,
    arrivals that go back in time) every answer and counter equals a scan of the samples that arrived within
    JUMP_WINDOW_S (popped oldest first, as they joined)."""
    import collections

    rng, total = np.random.default_rng(7), 0
    for _ in range(8):
        s, window, last, jumps = health.Stamps(offset_s=0.02, jump_s=0.03), collections.deque(), None, 0
        now, delay = 1_700_000_000.0, 0.01
        for k in range(250):
            now += rng.choice([0.01, 0.01, 0.3, -0.05, 1.2], p=[0.85, 0.05, 0.04, 0.03, 0.03])
            delay = rng.choice([delay, rng.uniform(0.0, 0.1)], p=[0.9, 0.1])
            stamp = now - delay - rng.uniform(0.0, 0.015)
            stamp = rng.choice([stamp, stamp - 0.05, last or stamp, 0.0], p=[0.9, 0.04, 0.04, 0.02])
            got = s.judge("mav_0", stamp, now)
            # the rule with a scan (the answer before this change)
            want = None
            if stamp > 0 and now - stamp >= -0.02 and (last is None or stamp > last):
                last = stamp
                while window and now - window[0][0] > health.JUMP_WINDOW_S:
                    window.popleft()
                ahead = min((d for _, d in window), default=now - stamp) - (now - stamp)
                window.append((now, now - stamp))
                jumps += ahead > 0.03
                want = ahead > 0.03
            assert (got[0] is not None and got[0].startswith("header stamp jumped")) == bool(want), (k, got, want)
            assert s.jumps == jumps
        total += jumps
    assert total > 5   # the streams do jump


def test_the_policy_node_refuses_a_jumping_stamp_and_a_frozen_pose(tmp_path):
    """The policy node uses the shared health checks (not only the safety node): message by message
    through its real callbacks (tests/ros_nodes/policy_health_scenario.py)."""
    seen = run_scenario("policy_health_scenario.py", tmp_path, str(model(tmp_path, (0.1, 0.0))), timeout=60)
    assert seen["late_within_window"] is None                       # 85 ms late: used, timed by its stamp
    assert "pose of robot_0: header stamp jumped ahead (" in seen["jump"]
    assert seen["after_jump"] is None and seen["stamp_jumps"] == 4       # one per robot: every pose jumped
    assert seen["frozen"].startswith("pose of robot_0: frozen (unchanged for ")
    assert 1.0 <= seen["frozen_after_s"] < 4.0                      # FROZEN_S after the robot was told to drive
    assert seen["still_frozen_when_stopped"] is not None and seen["moved"] is None
    assert seen["stop_reasons"] == {"pose of robot_0: header stamp jumped ahead": 1, "pose of robot_0: frozen": 1}


def test_a_pose_is_frozen_only_after_commands_without_a_lapse():
    """A node that stalls (a loaded machine) lets its robot stop by the robot's own command watchdog: the unchanged
    pose is then expected, not a frozen source. Commands further apart than gap_s restart the count (in noise-free
    SITL a false trip was a stop for good: the 8-robot container run's robots that never arrived)."""
    period, gap = 0.033, 0.099
    frozen = health.FrozenValues(gap_s=gap)
    frozen.sample("r", (0.0, 0.0, 0.0), 0.0)
    for t in np.arange(0.0, 3.0, 0.15):   # moving commands every 150 ms: each lapse stopped the robot
        frozen.commanded("r", True, t)
        assert frozen.problem("r", t) is None
    for t in np.arange(3.0, 4.1, period):  # moving commands every period: a robot that does not move is frozen
        frozen.commanded("r", True, t)
    assert frozen.problem("r", 4.1).startswith("frozen (unchanged for 4.10 s while commanded to move)")
    frozen.sample("r", (0.001, 0.0, 0.0), 4.2)
    assert frozen.problem("r", 4.2) is None


def test_an_aged_neighbour_is_kept_further_away_by_its_possible_travel():
    """Onboard: robot a drives at neighbour b; b's pose is `age` old, so a keeps D + v_max·age away."""
    from marlstack.controllers.barrier_qp import barrier_points
    from marlstack.bench.barrier import numpy_step
    closest = {}
    for age in (0.0, 0.25):
        cert = Certificate(GRITS, ["a", "b"], ["a"], "unicycle_walls", deadlock_hold_s=0.0)
        spec = cert.filter.spec
        poses = np.array([[-0.5, 0.0, 0.0], [0.3, 0.0, 0.0]])
        margins = np.array([0.0, GRITS.max_linear_speed * age])
        gap = np.inf
        for _ in range(300):
            u, status, _ = cert(poses, np.array([[0.2, 0.0]]), margins=margins)
            assert status == "optimal"
            poses[0] = numpy_step(GRITS, poses[:1], u)[0]
            p = barrier_points(spec, poses)
            gap = min(gap, float(np.linalg.norm(p[0] - p[1])))
        closest[age] = gap
    assert spec.distance - 1e-6 <= closest[0.0] < spec.distance + 0.05   # the cubic barrier approaches slowly
    assert closest[0.25] >= spec.distance + GRITS.max_linear_speed * 0.25 - 1e-6
    assert closest[0.25] > closest[0.0] + 0.02


def test_a_pose_that_stops_changing_while_the_robot_is_commanded_is_frozen():
    f = health.FrozenValues(hold_s=1.0)
    f.sample("r0", (0.0, 0.0, 0.0), 0.0)
    assert f.problem("r0", 5.0) is None                  # standing still and not commanded: fine
    f.commanded("r0", True, 5.0)
    assert f.problem("r0", 5.5) is None                  # commanded for 0.5 s only
    f.sample("r0", (0.0, 0.0, 0.0), 5.9)                 # same values again (fresh stamps do not matter)
    assert f.problem("r0", 6.1).startswith("frozen (unchanged for 6.10 s")
    assert health.reason_kind("pose of r0: " + f.problem("r0", 6.1)) == "pose of r0: frozen"
    f.commanded("r0", False, 6.2)                        # the stop does not clear it: the source is still frozen
    assert f.problem("r0", 6.3) is not None
    f.sample("r0", (0.001, 0.0, 0.0), 6.4)               # the values move again: fine
    assert f.problem("r0", 6.5) is None
    f.commanded("r1", True, 0.0)
    for k in range(30):                                  # a moving robot's pose changes every sample
        f.sample("r1", (0.006 * k, 0.0, 0.0), 0.033 * k)
        assert f.problem("r1", 0.033 * k) is None


def test_the_deployment_sets_the_sitl_sensing_model_and_the_certificate_delay(tmp_path):
    from marlstack.ros_nodes.plan import fleet_plan
    dep = load_deployment(write_plan(tmp_path, sim={"seed": 1, "pose_delay_s": 0.1, "pose_jitter_s": 0.02,
                                                     "pose_noise_m": 0.001, "pose_drop": 0.05},
                                     safety={"mode": "fleet", "form": "unicycle_walls", "delay_s": 0.12}))
    specs = {s.executable: s.parameters for s in fleet_plan(dep, sitl=True)}
    sim = specs["sim_node"]
    assert (sim["pose_delay_s"], sim["pose_jitter_s"], sim["pose_noise_m"], sim["drop_pose_fraction"]) == (0.1, 0.02, 0.001, 0.05)
    assert specs["safety_node"]["delay_s"] == 0.12
    with pytest.raises(PlanError, match=r"key 'sim.pose_delay_s' must be a number in \[0, 10.0\]"):
        load_deployment(write_plan(tmp_path, sim={"pose_delay_s": -1}))
    with pytest.raises(PlanError, match="key 'safety.delay_s'"):
        load_deployment(write_plan(tmp_path, safety={"mode": "fleet", "delay_s": 5}))


def test_the_onboard_certificate_brakes_a_robot_driving_into_a_shelf():
    """Onboard mode takes the same box rows as the fleet node (the plan gives both `boxes`): robot a drives at a
    shelf at full speed beside a parked neighbour; its barrier point stops at the box's margin, never inside."""
    from marlstack.bench.barrier import numpy_step
    from marlstack.controllers.barrier_qp import barrier_points, box_normals
    box = (-0.1, 0.1, 0.25, 0.35)
    cert = Certificate(GRITS, ["a", "b"], ["a"], "unicycle_walls", boxes=np.array([box]))
    spec = cert.filter.spec
    poses = np.array([[0.0, -0.1, np.pi / 2], [1.0, -0.5, 0.0]])
    closest = np.inf
    for _ in range(200):
        u, status, _ = cert(poses, np.array([[GRITS.max_linear_speed, 0.0]]))
        assert status == "optimal"
        poses[0] = numpy_step(GRITS, poses[:1], u)[0]
        closest = min(closest, float(box_normals(spec, barrier_points(spec, poses[:1]))[1][0, 0]))
    # it started 0.32 m from the box and came within 0.07 m of the margin (the cubic rows slow the last bit: measured
    # 0.174 m after 200 periods), never inside it
    assert spec.distance / 2 - 1e-6 <= closest < spec.distance / 2 + 0.07, closest
