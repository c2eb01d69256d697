"""Keep DDS on this machine: the environment and the network namespace every SITL process runs in.

Three layers. `ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST` makes DDS discover only local
participants; a per-run `ROS_DOMAIN_ID` keeps concurrent runs (tests, engineers) apart; and
where the OS allows it (root, `unshare` present, as in CI) the whole run is re-executed inside
a fresh network namespace whose only interface is `lo`, so no packet can leave loopback.

Children inherit the ROS wheels' bootstrap state (`LD_LIBRARY_PATH` plus its guard variable)
unchanged: dropping one without the other would make rclpy unimportable in the child.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
from typing import Any, Callable, Mapping

ISOLATED_FLAG = "MARLSTACK_NETNS"  # set inside the namespace, so we never nest namespaces
DOMAIN_IDS = (1, 100)  # valid ROS_DOMAIN_IDs that map to ports on every platform


def ros_env(base: Mapping[str, str] | None = None, domain_id: int | None = None) -> dict[str, str]:
    """A copy of `base` (default os.environ) with loopback-only discovery and a domain id."""
    env = dict(os.environ if base is None else base)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_STATIC_PEERS", None)
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    elif env.get(ISOLATED_FLAG) != "1" or "ROS_DOMAIN_ID" not in env:  # inside a run: keep the run's id
        env["ROS_DOMAIN_ID"] = str(random.randint(*DOMAIN_IDS))
    env.setdefault("JAX_PLATFORMS", "cpu")
    # the simulator nodes' compiled JAX programs kept across runs: a MAV team's physics compiles in 33 s at load 10,
    # loads from here in 6 s (the cache key is the program, JAX's version and backend: a change compiles afresh)
    env.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "marlstack", "jax"))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")   # its many small programs too (~0.5 s each)
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    return env


def can_isolate() -> bool:
    """True when a loopback-only network namespace can be created here (needs root and unshare)."""
    if os.environ.get(ISOLATED_FLAG) == "1":
        return False
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


def isolated(argv: list[str]) -> list[str]:
    """`argv` wrapped to run in a new network namespace with only `lo`, brought up."""
    return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', *argv]


def run_isolated(argv: list[str], env: Mapping[str, str] | None = None, run: Callable[..., Any] = subprocess.run,
                 **kw) -> subprocess.CompletedProcess:
    """Run `argv` with a loopback-only ROS environment, inside its own network namespace if possible (`run`:
    how, with subprocess.run's arguments)."""
    env = ros_env(env)
    if can_isolate():
        env[ISOLATED_FLAG] = "1"
        argv = isolated(argv)
    return run(argv, env=env, **kw)
