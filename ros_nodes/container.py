"""A fleet container: several nodes in one process, spun by one executor (ROS 2's component-container idea).

Why: in SITL every pose tick wakes each robot's policy process at once; ten processes on two cores
spend the tick in wake-ups and context switches (docs/ros.md, "Process arrangements"). Hosting the
onboard nodes together turns that into one process working through the tick. A SITL / bench
arrangement (deployment key `arrangement: fleet_container`, honoured by `marlstack sitl` and
robotarium.launch.py; `marlstack sitl --arrangement`); on hardware each robot's computer runs its own
nodes, one process each (the default).

The node classes are the ones a process runs (`<module>.make_node()`). Each is built with the
`--ros-args` its own process would get (name, namespace, parameters, remaps), so its topics and
parameters are the same; rclpy has no NodeOptions for Python nodes, so the arguments reach the
node's `Node.__init__` while it is built (`node_arguments`). Messages between hosted nodes still go
through the middleware (rclpy has no intra-process transport).

A hosted node whose callback raises is failed alone: its traceback goes to the log, its callbacks
stop, its `close()` runs and it leaves the executor, so its robot is stopped by the watchdogs
downstream (safety node, sim / firmware) as when its process dies; the other nodes run on. The
failure is appended to the file named by `FAILURES_ENV` (one JSON line: node, error) for the
supervisor. A native crash (a segfault in a library) still ends the whole process. Exit codes as a
node process's (runner.py): 0, `EXIT_START_ERROR` (a hosted node refused to start: the container
does not start), `EXIT_TEARDOWN_WEDGED`; and `EXIT_HOSTED_FAILED` when a hosted node failed during the run.

Command line: `python -m marlstack.ros_nodes.container HOSTED_JSON... [--ros-args ...]`, one JSON object per
node: {"module": ..., "fqn": ..., "args": [--ros-args ...]} (`plan.NodeSpec.command` writes them); a trailing
`--ros-args` (ros2 launch's, naming the container) is not a hosted node.
"""
from __future__ import annotations

import contextlib
import faulthandler
import functools
import importlib
import json
import os
import sys
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from marlstack.ros_nodes.runner import EXIT_START_ERROR, StartError, make_executor, spin, teardown

EXIT_HOSTED_FAILED = 1  # a hosted node failed during the run (the others ran on); docs/ros.md
FAILURES_ENV = "MARLSTACK_HOSTED_FAILURES"
LABEL = "container"


@dataclass(frozen=True)
class Hosted:
    module: str       # python module with make_node()
    fqn: str          # the node's fully qualified name, for messages
    args: list[str]   # its --ros-args

    @classmethod
    def parse(cls, text: str) -> "Hosted":
        d = json.loads(text)
        return cls(d["module"], d["fqn"], list(d["args"]))


@contextlib.contextmanager
def node_arguments(cli_args: list[str]) -> Iterator[None]:
    """While a node is built, `rclpy.node.Node.__init__` takes `cli_args` (and not the process's own
    arguments) unless the node passes its own: the node gets what `--ros-args` gives it in its own process."""
    from rclpy.node import Node
    init = Node.__init__

    @functools.wraps(init)
    def with_arguments(self: Any, node_name: str, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("cli_args", cli_args)
        kwargs.setdefault("use_global_arguments", False)
        init(self, node_name, *args, **kwargs)

    Node.__init__ = with_arguments
    try:
        yield
    finally:
        Node.__init__ = init


class Container:
    """The hosted nodes, their executor, and which of them failed."""

    def __init__(self, failures_path: str | None) -> None:
        self.nodes: list[tuple[Hosted, Any]] = []
        self.failed: dict[str, str] = {}     # fqn -> one-line error
        self.pending: list[Any] = []          # failed nodes still in the executor
        self.executor: Any = None
        self.failures_path = failures_path

    def build(self, hosted: list[Hosted]) -> None:
        for h in hosted:
            try:
                with node_arguments(h.args):
                    node = importlib.import_module(h.module).make_node()
            except StartError as exc:
                raise StartError(f"{h.fqn}: {exc}") from None
            self.nodes.append((h, node))
        self.executor = make_executor()
        for h, node in self.nodes:
            self._guard(h.fqn, node)
            self.executor.add_node(node)

    def _guard(self, fqn: str, node: Any) -> None:
        """Every callback of `node` (subscriptions, timers, services, guard conditions: what our nodes
        create when built) fails only this node when it raises."""
        for entity in (*node.subscriptions, *node.timers, *node.services, *node.guards):
            if entity.callback is not None:
                entity.callback = self._guarded(fqn, node, entity.callback)

    def _guarded(self, fqn: str, node: Any, callback: Callable[..., Any]) -> Callable[..., Any]:
        import rclpy

        @functools.wraps(callback)  # the executor reads the signature (MessageInfo / TimerInfo arguments)
        def call(*args: Any, **kwargs: Any) -> Any:
            if fqn in self.failed:
                return None
            try:
                return callback(*args, **kwargs)
            except Exception as exc:
                if not rclpy.ok():
                    raise  # shutdown under a callback: the spin loop's clean stop
                self._fail(fqn, node, exc)
                return None
        return call

    def _fail(self, fqn: str, node: Any, exc: BaseException) -> None:
        first = (str(exc).strip().splitlines() or [""])[0]
        why = f"{type(exc).__name__}: {first}"[:500]
        self.failed[fqn] = why
        self.pending.append(node)
        print(f"{LABEL}: node {fqn} failed ({why}); it is stopped, the other nodes run on. Its traceback:",
              file=sys.stderr, flush=True)
        traceback.print_exc(file=sys.stderr)
        if self.failures_path:
            with open(self.failures_path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"node": fqn, "error": why}) + "\n")

    def reap(self) -> None:
        """Take failed nodes out of the executor (outside their callbacks), close and destroy them."""
        while self.pending:
            node = self.pending.pop()
            self.executor.remove_node(node)
            self.nodes = [(h, n) for h, n in self.nodes if n is not node]
            self.close(node)
            node.destroy_node()

    def close(self, node: Any) -> None:
        """A node's close(); one that raises is reported and the next one still closes."""
        close = getattr(node, "close", None)
        if close is None:
            return
        try:
            close()
        except Exception as exc:  # noqa: BLE001 - every hosted node must get its close()
            print(f"{LABEL}: node {node.get_fully_qualified_name()} failed to close ({type(exc).__name__}: {exc})",
                  file=sys.stderr, flush=True)
            traceback.print_exc(file=sys.stderr)


def host(hosted: list[Hosted], failures_path: str | None = None) -> int:
    """Build every hosted node, spin them in one executor until shutdown, stop them all cleanly."""
    faulthandler.enable()  # a native crash leaves every thread's stack in the log
    import rclpy

    rclpy.init(args=[LABEL])
    box = Container(failures_path)
    try:
        try:
            box.build(hosted)
        except StartError as exc:
            print(f"{LABEL}: refusing to start: {exc}", file=sys.stderr, flush=True)
            return EXIT_START_ERROR
        print(f"{LABEL}: hosting {len(box.nodes)} nodes: {', '.join(h.fqn for h, _ in box.nodes)}",
              file=sys.stderr, flush=True)
        spin(box.executor, between=box.reap)
        return EXIT_HOSTED_FAILED if box.failed else 0
    finally:
        teardown([n for _, n in box.nodes], box.executor, LABEL, close=box.close)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--ros-args" in args:  # what ros2 launch appends for the container itself (its name): not a hosted node
        args = args[:args.index("--ros-args")]
    try:
        hosted = [Hosted.parse(a) for a in args]
    except (ValueError, KeyError, TypeError) as exc:
        print(f"{LABEL}: each argument must be a hosted node as JSON {{module, fqn, args}} ({exc})", file=sys.stderr)
        return EXIT_START_ERROR
    if not hosted:
        print(f"{LABEL}: no nodes to host", file=sys.stderr)
        return EXIT_START_ERROR
    return host(hosted, os.environ.get(FAILURES_ENV))


if __name__ == "__main__":
    sys.exit(main())
