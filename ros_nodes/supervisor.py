"""Run a fleet plan as plain processes (no `ros2 launch`): start, watch, stop in order.

Each node is its own process (`python -m ros_nodes.<node> --ros-args ...`) in its own session,
so a Ctrl-C in the terminal reaches only the supervisor, which then stops the nodes in a chosen
order with SIGINT (rclpy shuts down cleanly: the sim writes its summary, the recorder closes its
bag) and SIGKILLs whatever is still alive after a grace period. Each node's output goes to
`<logdir>/<node>.log`; a node that exits on its own is a crash, reported with its log's tail.
A container (a spec with `hosted` nodes, ros_nodes/container.py) is one process; a hosted node that
fails inside it while the others run on is listed by `failures()`.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from marlstack.ros_nodes.container import FAILURES_ENV
from marlstack.ros_nodes.plan import NodeSpec
from marlstack.ros_nodes.runner import EXIT_TEARDOWN_WEDGED

STOP_GRACE_S = 15.0


@dataclass
class Proc:
    spec: NodeSpec
    popen: subprocess.Popen
    log: Path

    @property
    def label(self) -> str:
        return self.spec.fqn

    @property
    def failures_file(self) -> Path:
        return failures_file(self.log)

    def tail(self, lines: int = 8) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


def failures_file(log: Path) -> Path:
    """Where a container whose output goes to `log` appends its hosted nodes' failures (one JSON line each)."""
    return log.with_suffix(".failures")


class Supervisor:
    def __init__(self, env: Mapping[str, str], logdir: Path, python: str = sys.executable):
        self.env, self.logdir, self.python = dict(env), Path(logdir), python
        self.procs: list[Proc] = []
        self.stop_seconds: dict[str, float] = {}  # how long each node took to exit after our SIGINT
        self.logdir.mkdir(parents=True, exist_ok=True)

    def start(self, spec: NodeSpec) -> Proc:
        log = self.logdir / f"{spec.fqn.strip('/').replace('/', '.')}.log"
        env = self.env
        if spec.hosted:
            failures = failures_file(log)
            failures.unlink(missing_ok=True)
            env = {**env, FAILURES_ENV: str(failures)}
        with log.open("wb") as out:
            popen = subprocess.Popen(spec.command(self.python), env=env, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        proc = Proc(spec, popen, log)
        self.procs.append(proc)
        return proc

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) each running node has used so far (Linux /proc)."""
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        for p in self.procs:
            try:
                fields = Path(f"/proc/{p.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[p.label] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14, 15)
        return out

    def exited(self) -> list[Proc]:
        """Nodes that are no longer running."""
        return [p for p in self.procs if p.popen.poll() is not None]

    def failures(self) -> list[tuple[Proc, str, str]]:
        """Hosted nodes that failed inside a container that runs on: (container, node, error)."""
        out = []
        for p in self.procs:
            if p.spec.hosted and p.failures_file.exists():
                for line in p.failures_file.read_text(errors="replace").splitlines():
                    try:
                        f = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # being written
                    out.append((p, f["node"], f["error"]))
        return out

    def stop(self, order: list[str] | None = None) -> dict[str, int]:
        """SIGINT every node (executables in `order` first, one group at a time); exit codes by node."""
        groups: list[list[Proc]] = []
        for exe in order or []:
            groups.append([p for p in self.procs if p.spec.executable == exe])
        groups.append([p for p in self.procs if not any(p in g for g in groups)])
        for group in groups:
            t0 = time.monotonic()
            for p in group:
                if p.popen.poll() is None:
                    p.popen.send_signal(signal.SIGINT)
            deadline = t0 + STOP_GRACE_S
            for p in group:
                try:
                    p.popen.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.popen.kill()
                    p.popen.wait()
                self.stop_seconds[p.label] = round(time.monotonic() - t0, 3)
        return {p.label: p.popen.returncode for p in self.procs}

    def kill_all(self) -> None:
        for p in self.procs:
            if p.popen.poll() is None:
                p.popen.kill()
                p.popen.wait()


def clean_exit(code: int) -> bool:
    """A node stopped by our SIGINT exits 0 (rclpy handled it), by the signal itself, or with
    runner.EXIT_TEARDOWN_WEDGED (its work saved, then the DDS teardown hung; reported apart)."""
    return code in (0, -signal.SIGINT, 128 + signal.SIGINT, EXIT_TEARDOWN_WEDGED)
