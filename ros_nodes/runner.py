"""What every node process shares: typed, documented parameters; start-up errors as one line; clean stop.

A node's `main()` calls `run_node(factory)`. Ctrl-C / SIGTERM end the spin and the node's
`close()` runs (the recorder closes its bag, the sim node writes its summary); a `StartError`
raised while building the node prints `<node>: <reason>` and exits with `EXIT_START_ERROR`.
"""
from __future__ import annotations

import ctypes
import faulthandler
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

from marlstack.hardware.profile import ProfileError, load_profile

EXIT_START_ERROR = 2  # documented in docs/ros.md: configuration or model refused at start-up
EXECUTOR_ENV = "MARLSTACK_EXECUTOR"
SPIN_TIMEOUT_S = 0.1  # how often the spin loop looks at rclpy.ok() when nothing happens
TEARDOWN_S = 4.0  # longest a stopped node may spend tearing down DDS (the supervisor waits 15 s)
EXIT_TEARDOWN_WEDGED = int(signal.SIGALRM)  # 14: work saved, DDS teardown hung (docs/ros.md)


class StartError(Exception):
    """The node refuses to start; the message says what is wrong and what to do."""


def declare(node: Any, name: str, default: Any, description: str,
            lo: float | None = None, hi: float | None = None, read_only: bool = True) -> Any:
    """Declare a parameter with a description and (for numbers) an inclusive range; return its value."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    from rclpy.exceptions import ParameterException

    desc = ParameterDescriptor(description=description, read_only=read_only)
    if lo is not None and hi is not None:
        if isinstance(default, float):
            desc.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        elif isinstance(default, int) and not isinstance(default, bool):
            desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
    try:
        value = node.declare_parameter(name, default, desc).value
    except ParameterException as exc:
        raise StartError(f"parameter '{name}': {exc}") from None
    if isinstance(default, (int, float)) and not isinstance(default, bool) and lo is not None and not lo <= value <= hi:
        raise StartError(f"parameter '{name}' = {value} is out of range [{lo}, {hi}] ({description})")
    return value


def declare_stamp_limits(node: Any, sources: str = "the pose source", period: str = "control",
                         age_allowance: bool = True) -> tuple[float, float]:
    """`watchdog_periods` and `clock_offset_s`, declared with one text for every node that judges its inputs by their
    stamps: (watchdog_periods, clock_offset_s). `sources`: whose stamps; `period`: which period counts; `age_allowance`:
    the offset also lengthens the age limit (the ground nodes' poses)."""
    periods = declare(node, "watchdog_periods", 3.0, f"inputs older than this many {period} periods trip the watchdog",
                      1.0, 100.0)
    older = ", and this much older than watchdog_periods" if age_allowance else ""
    offset = declare(node, "clock_offset_s", 0.02, f"allowance for the clock offset between this node and {sources}: "
                     f"stamps may be this far in the future{older}", 0.0, 1.0)
    return periods, offset


def declare_neighbour_max_age(node: Any) -> float | None:
    """`neighbour_max_age_s` of the ground policy nodes, in seconds; None for 0 (neighbours as fresh as the robot's own)."""
    from marlstack.ros_nodes.adapters import NEIGHBOUR_MAX_AGE_S
    return declare(node, "neighbour_max_age_s", NEIGHBOUR_MAX_AGE_S, "a neighbour's last good pose may be this old before "
                   "a robot that reads it stops (it feeds the model as last known, a bad sample refused; the safety node "
                   "keeps clear of where it could be by now); 0: as fresh as the robot's own", 0.0, 3600.0) or None


def node_profile(name: str, kind: str | None = None):
    """The vehicle profile a node's parameter 'profile' names; StartError in one line for an unknown or bad one,
    or one of another `kind` (e.g. a ground profile given to a MAV node)."""
    try:
        profile = load_profile(name)
    except ProfileError as exc:
        raise StartError(str(exc)) from None
    if kind is not None and profile.kind != kind:
        raise StartError(f"parameter 'profile' = {name!r} is a {profile.kind!r} profile, not {kind!r}")
    return profile


def profile_and_rate(name: str, rate_hz: float):
    """The vehicle profile and the control rate (parameter 0 means the profile's 1 / dt)."""
    profile = node_profile(name)
    return profile, rate_hz or 1.0 / profile.dt


def ros_now(node: Any) -> float:
    """The node clock in seconds (system time unless use_sim_time)."""
    return node.get_clock().now().nanoseconds * 1e-9


def run_node(factory: Callable[[], Any], label: str, argv: list[str] | None = None) -> int:
    """Init rclpy, build the node, spin until shutdown; one-line errors, never a bare traceback."""
    faulthandler.enable()  # a native crash anywhere from here on (DDS, onnxruntime) leaves its stack in the log
    import rclpy

    rclpy.init(args=sys.argv if argv is None else argv)
    node = executor = None
    try:
        try:
            node = factory()
            executor = make_executor()
        except StartError as exc:
            print(f"{label}: refusing to start: {exc}", file=sys.stderr, flush=True)
            return EXIT_START_ERROR
        executor.add_node(node)
        spin(executor)
        return 0
    finally:
        teardown([] if node is None else [node], executor, label)


def spin(executor: Any, between: Callable[[], None] | None = None) -> None:
    """Spin until rclpy shuts down (Ctrl-C / SIGTERM), calling `between` after each dispatch. What start-up built
    (imported modules, JAX's programs, the model) is frozen out of the garbage collector first: a full collection
    in the control loop would otherwise walk all of it (~150k objects in a MAV sim node) while a tick waits."""
    import gc

    import rclpy
    from rclpy.executors import ExternalShutdownException
    gc.freeze()
    try:
        while rclpy.ok():  # not executor.spin(): this build's EventsExecutor.spin() ignores SIGINT
            executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)
            if between is not None:
                between()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # Shutdown (Ctrl-C / SIGTERM) arrived while a callback ran and it touched the closed
        # context (e.g. a publish): that is a clean stop, not a crash.


def teardown(nodes: list[Any], executor: Any, label: str, close: Callable[[Any], None] | None = None) -> None:
    """Each node's `close()` (its work saved: bag closed, summary written), then the DDS teardown, bounded
    in time (`_bound_teardown`). `close` replaces the plain call (a container reports one node's failure
    and goes on to the next)."""
    import rclpy
    for node in nodes:
        if close is not None:
            close(node)
        elif getattr(node, "close", None) is not None:
            node.close()
    if nodes:
        _bound_teardown(label)
    if executor is not None:  # release the nodes' entities first: the EventsExecutor holds
        executor.shutdown()   # their event handlers, and destroying them under it deadlocked
    for node in nodes:
        node.destroy_node()
    if rclpy.ok():
        rclpy.try_shutdown()


def make_executor():
    """The executor every node spins in: `MARLSTACK_EXECUTOR` = events (default) or single.

    rclpy's SingleThreadedExecutor rebuilds its wait set in Python on every wake-up, which at
    30 Hz x 10 pose topics was most of a policy node's CPU; the C++ EventsExecutor
    (rclpy.experimental) dispatches each ready entity directly. `bench ros --executor` compares them.
    Its spin() busy-loops and ignores SIGINT in the pip Kilted build; spin_once() in a loop works.
    """
    choice = os.environ.get(EXECUTOR_ENV, "events")
    if choice == "events":
        from rclpy.experimental import EventsExecutor
        return EventsExecutor()
    if choice == "single":
        from rclpy.executors import SingleThreadedExecutor
        return SingleThreadedExecutor()
    raise StartError(f"{EXECUTOR_ENV}={choice!r}: use 'events' or 'single'")


def _bound_teardown(label: str, limit_s: float = TEARDOWN_S) -> None:
    """Never let a wedged middleware teardown keep a stopped node alive.

    The node's own work is saved by now (close() ran). Tearing down the DDS participant can
    hang (a known class of rmw/Fast DDS futex deadlocks, seen twice in CI); after `limit_s` we
    print every thread's stack to the node's log and exit with EXIT_TEARDOWN_WEDGED, which the
    supervisor counts as a clean stop with a warning. When the wedged C call holds the GIL no
    Python thread can run: faulthandler's own thread prints the stacks and a C-level SIGALRM
    handler (libc `_exit`, called with the signal's number) leaves with the same code.
    """
    def force() -> None:
        time.sleep(limit_s)
        print(f"{label}: middleware teardown took over {limit_s:g} s; exiting anyway. Stacks:",
              file=sys.stderr, flush=True)
        faulthandler.dump_traceback(sys.stderr, all_threads=True)
        os._exit(EXIT_TEARDOWN_WEDGED)

    threading.Thread(target=force, daemon=True).start()
    faulthandler.dump_traceback_later(limit_s + 1.0, exit=False)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.signal.restype, libc.signal.argtypes = ctypes.c_void_p, [ctypes.c_int, ctypes.c_void_p]
    libc.signal(EXIT_TEARDOWN_WEDGED, ctypes.cast(libc._exit, ctypes.c_void_p))
    signal.setitimer(signal.ITIMER_REAL, limit_s + 1.5)
