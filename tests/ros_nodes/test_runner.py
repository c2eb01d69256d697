"""The node runner: which executor the nodes spin in, and that SIGINT stops a node spinning in it."""
import signal
import subprocess
import sys
import time

import pytest
import rclpy

from ros_fixtures import REPO, stopped
from marlstack.ros_nodes.isolation import can_isolate, isolated, ros_env
from marlstack.ros_nodes.runner import EXECUTOR_ENV, EXIT_TEARDOWN_WEDGED, StartError, make_executor

TICKER = """
import sys
from marlstack.ros_nodes.runner import run_node
def make():
    from rclpy.node import Node
    class Ticker(Node):
        def __init__(self):
            super().__init__("ticker")
            self.ticks = 0
            self.create_timer(1 / 30, self.tick)
        def tick(self):
            self.ticks += 1
            if self.ticks == 15:
                print("ticking", flush=True)
        def close(self):
            print(f"ticks {self.ticks}", flush=True)
    return Ticker()
sys.exit(run_node(make, "ticker"))
"""


def test_executor_is_chosen_by_the_environment(monkeypatch):
    rclpy.init()
    try:
        monkeypatch.setenv(EXECUTOR_ENV, "single")
        assert type(make_executor()).__name__ == "SingleThreadedExecutor"
        monkeypatch.setenv(EXECUTOR_ENV, "events")
        assert type(make_executor()).__name__ == "EventsExecutor"
        monkeypatch.setenv(EXECUTOR_ENV, "fast")
        with pytest.raises(StartError, match="MARLSTACK_EXECUTOR='fast': use 'events' or 'single'"):
            make_executor()
    finally:
        rclpy.try_shutdown()


@pytest.mark.parametrize("executor", ["events", "single"])
def test_timers_run_at_rate_and_sigint_stops_the_node(executor):
    env = {**ros_env(), EXECUTOR_ENV: executor}
    argv = [sys.executable, "-c", TICKER]
    proc = subprocess.Popen(isolated(argv) if can_isolate() else argv, env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ticking"  # 15 timer callbacks at 30 Hz
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert stopped(proc.returncode), err[-2000:]
    ticks = int(out.split()[-1])
    assert ticks >= 15 + 5, out  # ~15 more in that half second (5 suffice to show the timer kept running until SIGINT)


WEDGED = """
import re, sys, time
from marlstack.ros_nodes.runner import _bound_teardown
_bound_teardown("wedge", 0.5)   # runner.TEARDOWN_S (4 s) in the nodes; the same machinery, sooner
print("saved", flush=True)
if sys.argv[1] == "gil":  # a C call that never lets go of the GIL, as rmw's node teardown did in CI
    re.match(r"(a+)+$", "a" * 64 + "b")
else:                     # a teardown blocked without the GIL
    time.sleep(60)
"""


@pytest.mark.parametrize("hold", ["gil", "sleep"])
def test_a_wedged_teardown_still_exits_with_its_own_code_and_stacks(hold):
    proc = subprocess.run([sys.executable, "-c", WEDGED, hold], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert proc.returncode == EXIT_TEARDOWN_WEDGED and proc.stdout == "saved\n", proc.stderr[-2000:]
    assert stopped(proc.returncode)
    assert 'line 7 in <module>' in proc.stderr if hold == "gil" else "teardown took over 0.5 s" in proc.stderr
