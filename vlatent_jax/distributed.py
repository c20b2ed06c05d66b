"""Multi-controller start-up: `jax.distributed.initialize` driven by the environment.

- TPU pods and SLURM jobs: `jax.distributed.initialize()` detects the cluster itself.
- Explicit (GPU hosts, local multi-process tests): VLATENT_COORDINATOR=host:port,
  VLATENT_NUM_PROCESSES=N, VLATENT_PROCESS_ID=i.
Single-process runs initialise nothing.
"""

from __future__ import annotations

import os

import jax


def initialize_from_env() -> str:
  """Initialises the JAX distributed runtime when the environment asks for it; returns how."""
  if os.environ.get("VLATENT_COORDINATOR"):
    jax.distributed.initialize(coordinator_address=os.environ["VLATENT_COORDINATOR"],
                               num_processes=int(os.environ["VLATENT_NUM_PROCESSES"]),
                               process_id=int(os.environ["VLATENT_PROCESS_ID"]))
    return "explicit"
  if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
    jax.distributed.initialize()
    return "slurm"
  if os.environ.get("TPU_WORKER_HOSTNAMES", "").count(",") > 0 or os.environ.get("MEGASCALE_COORDINATOR_ADDRESS"):
    jax.distributed.initialize()
    return "tpu"
  return "single"
