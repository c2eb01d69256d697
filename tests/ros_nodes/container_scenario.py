"""One robot's fault in a fleet container stops only that robot; run as a script inside the loopback-only
namespace (test_container.py).

One container process (ros_nodes/container.py) hosts every robot's policy node and onboard safety node (the nodes a
robot runs); this process plays motion capture for four robots that drive as their `cmd_vel` says (fault_scenario.Mocap,
drive=True) and watches every `cmd_vel` and `/diagnostics`. robot_1 stands in robot_0's way. Once every robot drives:
1. robot_1's poses turn non-finite for good (a bad marker; issue 14 "Availability"). Observed: robot_1's commands from
   then on, the nodes' warnings (robot_1's and the others'), whether the others drove on (robot_0's straight path
   runs through robot_1, 0.4 m ahead: TRAVEL_M takes it round), the smallest distance between collision centres.
2. robot_3's onnxruntime call starts raising (injected: the container is started as
   `container_scenario.py --host VICTIM TRIGGER HOSTED...`, which wraps that node's runtime and then runs the
   container's own main; the fault begins when TRIGGER exists). Observed: robot_3's commands after the fault, robot_2
   still driving, the container still running, its failure report (supervisor.failures) and log, and its exit code
   after SIGINT.
It writes what it observed as JSON (argv[1]); the test asserts on it.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

INJECTED = "injected: onnxruntime failed"
VICTIM = "robot_3"   # whose policy node fails
START = [(-0.35, 0.0, 0.0), (0.05, 0.1, math.pi / 2), (0.7, 0.6, math.pi), (0.7, -0.6, math.pi)]
GOALS = [(0.6, 0.0), (0.05, 0.8), (-1.2, 0.6), (-1.2, -0.6)]
TRAVEL_M = 0.3     # after robot_1's marker fails, the others drive at least this far (robot_0 only round robot_1)


def host_with_fault(victim: str, trigger: Path, hosted: list[str]) -> int:
    """The container's main, with `victim`'s policy inference raising once `trigger` exists."""
    from marlstack.ros_nodes import container, policy_node
    make = policy_node.make_node

    def make_node():
        node = make()
        if node.robot == victim:
            run = node.runtime.run

            def failing(inputs):
                if trigger.exists():
                    raise RuntimeError(INJECTED)
                return run(inputs)
            node.runtime.run = failing
        return node

    policy_node.make_node = make_node
    return container.main(hosted)


def main(out: Path, policy: str, workdir: Path) -> None:
    import numpy as np
    import rclpy

    from fault_scenario import RATE_HZ, ROBOTS, Mocap, last_zero, moving
    from marlstack.bench.barrier import pair_distances
    from marlstack.hardware.profile import load_profile
    from marlstack.ros_nodes import health
    from marlstack.ros_nodes.container import FAILURES_ENV
    from marlstack.ros_nodes.isolation import ros_env
    from marlstack.ros_nodes.plan import NodeSpec, arrange
    from marlstack.ros_nodes.supervisor import Proc, Supervisor, failures_file

    common = {"profile": "gritsbot_x", "robots": ROBOTS, "rate_hz": RATE_HZ, "watchdog_periods": 3.0}
    specs = [NodeSpec("policy_node", "policy", f"/{r}", {**common, "robot": r, "scenario": "navigation",
                                                          "policy_path": policy}) for r in ROBOTS]
    specs += [NodeSpec("safety_node", "safety", f"/{r}", {**common, "mode": "onboard", "robot": r,
                                                          "form": "unicycle_walls"}) for r in ROBOTS]
    (box,) = arrange(specs, "fleet_container")
    sup = Supervisor(ros_env(), workdir / "logs")
    log, trigger = sup.logdir / "fleet_container.log", workdir / "fail_now"
    with log.open("wb") as f:  # as Supervisor.start, with the fault-injecting entry point
        popen = subprocess.Popen([sys.executable, __file__, "--host", VICTIM, str(trigger), *box.command()[3:]],
                                 env={**sup.env, FAILURES_ENV: str(failures_file(log))}, stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
    sup.procs.append(Proc(box, popen, log))
    rclpy.init()
    node = Mocap(START, GOALS, drive=True)
    profile = load_profile("gritsbot_x")
    result: dict = {}

    def warnings(since: float) -> dict[str, list[str]]:
        found: dict[str, set[str]] = {}
        for t, name, level, message, _ in node.diags:
            if t > since and level == health.WARN:
                found.setdefault(name, set()).add(message)
        return {k: sorted(v) for k, v in found.items()}

    try:
        t0 = time.monotonic()
        result["started"] = node.spin_for(90.0, lambda: all(moving(node, r, t0) for r in ROBOTS))
        result["startup_s"] = time.monotonic() - t0
        # 1. robot_1's marker sends NaN from now on
        t_nan, at_nan = time.monotonic(), node.poses.copy()
        node.fault = "nan_1"
        result["others_drove_on"] = node.spin_for(40.0, lambda: all(
            np.hypot(*(node.poses[i, :2] - at_nan[i, :2])) > TRAVEL_M for i in (0, 2, 3)))
        result["nan"] = {
            "robot_1_zero": last_zero(node, "robot_1", t_nan), "robot_1_moving_after": moving(node, "robot_1", t_nan + 0.5),
            "robot_1_drift_m": float(np.hypot(*(node.poses[1, :2] - at_nan[1, :2]))),
            "travel_m": {r: float(np.hypot(*(node.poses[i, :2] - at_nan[i, :2]))) for i, r in enumerate(ROBOTS)},
            "s": time.monotonic() - t_nan, "warnings": warnings(t_nan)}
        # 2. robot_3's policy node fails inside the container
        t_fault = time.monotonic()
        trigger.touch()
        # wait for the report and the stop (generously: a loaded machine delays every process), then watch it hold
        node.spin_for(20.0, lambda: bool(sup.failures()) and last_zero(node, VICTIM, t_fault))
        node.spin_for(1.0)
        after = [c for c in node.cmds[VICTIM] if c[0] > t_fault]
        first_zero = next((i for i, c in enumerate(after) if abs(c[1]) + abs(c[2]) == 0.0), None)
        result["fault"] = {"moving_commands_after": first_zero,
                           "stays_zero": first_zero is not None and all(abs(c[1]) + abs(c[2]) == 0.0 for c in after[first_zero:]),
                           "robot_2_still_moving": moving(node, "robot_2", time.monotonic() - 0.5),
                           "container_running": popen.poll() is None,
                           "failures": [[n, why] for _, n, why in sup.failures()]}
        result["min_distance_m"] = float(pair_distances(profile, np.array(node.trace)).min())
        result["collision_distance_m"] = profile.collision_distance
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        codes = sup.stop()
        sup.kill_all()
    result["exit_codes"] = codes
    result["log"] = log.read_text(errors="replace")
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    if sys.argv[1] == "--host":
        sys.exit(host_with_fault(sys.argv[2], Path(sys.argv[3]), sys.argv[4:]))
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
