"""Multi-controller start-up (`jax.distributed.initialize` driven by the environment) and preemption.

- TPU pods and SLURM jobs: `jax.distributed.initialize()` detects the cluster itself.
- Explicit (GPU hosts, local multi-process tests): VLATENT_COORDINATOR=host:port,
  VLATENT_NUM_PROCESSES=N, VLATENT_PROCESS_ID=i.
Single-process runs initialise nothing.
"""

from __future__ import annotations

import os
import signal

import jax
from jax.experimental import multihost_utils


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


class PreemptionWatch:
  """`reached(step)` is True at the step where the run should save and stop because it is being preempted.

  Several processes: jax's preemption sync point (the distributed runtime's notifier catches SIGTERM). Each
  host gets its notice at its own time; a process that saved and left at its own step would leave the others
  blocked in that step's collectives and the checkpoint half written. The sync point makes every process
  return True at one step (one past the furthest any had reached when the notice came), together. It must
  be asked at every step, with the same step numbers on every process.
  One process: the sync point needs `jax.distributed` (without it jax answers False forever), so a SIGTERM
  handler sets a flag that the next step reads. Enter the context to install the handler (single process
  only: several processes keep the runtime's); leaving it restores the previous one.
  """

  def __init__(self):
    self.multiprocess = jax.process_count() > 1
    self.signal: int | None = None
    self._previous = None

  def __enter__(self) -> PreemptionWatch:
    if not self.multiprocess:
      self._previous = signal.signal(signal.SIGTERM, self._notice)
    return self

  def __exit__(self, *exc) -> None:
    if not self.multiprocess:
      signal.signal(signal.SIGTERM, self._previous)

  def _notice(self, signum, frame) -> None:
    del frame
    self.signal = signum

  def reached(self, step: int) -> bool:
    if self.multiprocess:
      # Raises RuntimeError naming `jax_enable_preemption_service` when that is switched off.
      return multihost_utils.reached_preemption_sync_point(step)
    return self.signal is not None
