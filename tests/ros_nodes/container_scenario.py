"""A policy node failing inside a fleet container; run as a script inside the loopback-only namespace (test_container.py).

One container process (ros_nodes/container.py) hosts the policy nodes of robot_0 and robot_1 and the fleet safety
node; this process plays motion capture for four standing robots (fault_scenario.Mocap) and watches `cmd_vel`.
Once both robots drive, robot_0's onnxruntime call starts raising (injected: the container is started as
`container_scenario.py --host VICTIM TRIGGER HOSTED...`, which wraps that node's runtime and then runs the container's
own main; the fault begins when TRIGGER exists). Observed: robot_0's commands after the fault, robot_1 still driving,
the container still running, its failure report (supervisor.failures) and log, and its exit code after SIGINT.
It writes what it observed as JSON (argv[1]); the test asserts on it.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

INJECTED = "injected: onnxruntime failed"


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
    import rclpy

    from fault_scenario import RATE_HZ, ROBOTS, Mocap, last_zero, moving
    from marlstack.ros_nodes.container import FAILURES_ENV
    from marlstack.ros_nodes.isolation import ros_env
    from marlstack.ros_nodes.plan import NodeSpec, arrange
    from marlstack.ros_nodes.supervisor import Proc, Supervisor, failures_file

    common = {"profile": "gritsbot_x", "robots": ROBOTS, "rate_hz": RATE_HZ, "watchdog_periods": 3.0}
    specs = [NodeSpec("policy_node", "policy", f"/{r}", {**common, "robot": r, "scenario": "navigation",
                                                          "policy_path": policy}) for r in ROBOTS[:2]]
    specs.append(NodeSpec("safety_node", "safety", "/", {**common, "mode": "fleet", "robot": "", "form": "unicycle_walls"}))
    (box,) = arrange(specs, "fleet_container")
    sup = Supervisor(ros_env(), workdir / "logs")
    log, trigger = sup.logdir / "fleet_container.log", workdir / "fail_now"
    with log.open("wb") as f:  # as Supervisor.start, with the fault-injecting entry point
        popen = subprocess.Popen([sys.executable, __file__, "--host", ROBOTS[0], str(trigger), *box.command()[3:]],
                                 env={**sup.env, FAILURES_ENV: str(failures_file(log))}, stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
    sup.procs.append(Proc(box, popen, log))
    rclpy.init()
    node = Mocap()
    result: dict = {}
    try:
        t0 = time.monotonic()
        result["started"] = node.spin_for(90.0, lambda: moving(node, "robot_0", t0) and moving(node, "robot_1", t0))
        t_fault = time.monotonic()
        trigger.touch()
        # wait for the report and the stop (generously: a loaded machine delays every process), then watch it hold
        node.spin_for(20.0, lambda: bool(sup.failures()) and last_zero(node, "robot_0", t_fault))
        node.spin_for(1.0)
        after = [c for c in node.cmds["robot_0"] if c[0] > t_fault]
        first_zero = next((i for i, c in enumerate(after) if abs(c[1]) + abs(c[2]) == 0.0), None)
        result["fault"] = {"moving_commands_after": first_zero,
                           "stays_zero": first_zero is not None and all(abs(c[1]) + abs(c[2]) == 0.0 for c in after[first_zero:]),
                           "robot_1_still_moving": moving(node, "robot_1", time.monotonic() - 0.5),
                           "container_running": popen.poll() is None,
                           "failures": [[n, why] for _, n, why in sup.failures()]}
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
