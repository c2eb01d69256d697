"""Training on several machines: one JAX process per machine (`jax.distributed`), one data mesh over them all.

Each process runs the same program (SPMD): the environment batch is sharded over every process's devices,
parameters are replicated, and XLA's collectives (gloo over TCP on CPUs, NCCL on GPUs) reduce the gradients.
Every process builds the same initial state from the seeds; `to_global` turns it into arrays that span the
processes, `to_host` gathers them back for the checkpoint. Only the primary process (index 0) writes files.
"""
from __future__ import annotations

from typing import Any

from marlstack.policies.config import ConfigError


def initialize(coordinator: str | None, num_processes: int | None, process_id: int | None) -> None:
    """Join the job: `coordinator` HOST:PORT (process 0's address), or "auto" for the cluster's own variables
    (SLURM, Open MPI, JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID ...). None: one process."""
    if coordinator is None:
        if num_processes is not None or process_id is not None:
            raise ConfigError("--num-processes / --process-id need --coordinator HOST:PORT (or --coordinator auto)")
        return
    if coordinator != "auto":
        host, sep, port = coordinator.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"--coordinator must be HOST:PORT (process 0's address) or 'auto', got {coordinator!r}")
        if num_processes is None or process_id is None:
            raise ConfigError("--coordinator HOST:PORT needs --num-processes N and --process-id I (0 … N-1)")
    if num_processes is not None and num_processes < 1:
        raise ConfigError(f"--num-processes must be >= 1, got {num_processes}")
    if process_id is not None and not 0 <= process_id < (num_processes or process_id + 1):
        raise ConfigError(f"--process-id must be in 0 … {num_processes - 1}, got {process_id}")
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU devices of other processes
    try:
        jax.distributed.initialize(None if coordinator == "auto" else coordinator, num_processes, process_id)
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot join the training job at {coordinator}: {first}") from None


def process_count() -> int:
    import jax
    return jax.process_count()


def is_primary() -> bool:
    """The process that writes the run directory (metrics, checkpoint, pictures) and prints summaries."""
    import jax
    return jax.process_index() == 0


def to_global(tree: Any, shardings: Any) -> Any:
    """Arrays every process holds alike (built from the same seeds or read from the same checkpoint) → arrays
    laid out by `shardings` across all processes. One process: unchanged (jit lays them out itself)."""
    if shardings is None or process_count() == 1:
        return tree
    import jax
    import numpy as np

    def place(x, sharding):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
    return jax.tree.map(place, tree, shardings)


def to_host(tree: Any) -> Any:
    """Global arrays → numpy on every process (a collective: every process must call it)."""
    if process_count() == 1:
        return tree
    from jax.experimental import multihost_utils
    return multihost_utils.process_allgather(tree, tiled=True)
