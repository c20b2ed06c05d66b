"""Training checkpoints with orbax: the TrainState and the Grain iterator state, saved together.

Saves are asynchronous and atomic (orbax writes a temporary directory and
commits it when complete), so a run killed mid-save keeps the previous
checkpoint. Keeps the last `keep` checkpoints, and with `best_metric` also the
best ones. Restoring into abstract arrays that carry the target sharding lets a
checkpoint saved on one mesh restore on another.
"""

from __future__ import annotations

import os
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from etils import epath


def is_uri(path: str | os.PathLike) -> bool:
  """gs://bucket/run and the like: written through epath, never `os` (no append, no atomic rename)."""
  return "://" in os.fspath(path)


def resolve_path(path: str | os.PathLike) -> epath.Path:
  """A run directory as an `epath.Path`: a URI (gs://bucket/run) stays one, a local path becomes absolute.

  `os.path.abspath("gs://b/run")` is the local folder '<cwd>/gs:/b/run'; orbax and grain's checkpointing
  write through epath, so a gs:// path given as epath goes to the bucket.
  """
  text = os.fspath(path)
  return epath.Path(text if is_uri(text) else os.path.abspath(text))


class TrainCheckpointer:

  def __init__(self, directory: str | os.PathLike, *, every_steps: int, keep: int, best_metric: str | None = None,
               best_mode: str = "min"):
    self.best_metric = best_metric
    self.every_steps = every_steps
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=every_steps, max_to_keep=keep,
        best_fn=(lambda metrics: float(metrics[best_metric])) if best_metric else None,
        best_mode=best_mode, keep_checkpoints_without_metrics=best_metric is None)
    self.manager = ocp.CheckpointManager(resolve_path(directory), options=options)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def due(self, step: int) -> bool:
    """Whether `step` is a multiple of every_steps (orbax alone would also save the first step)."""
    return step % self.every_steps == 0

  def save(self, step: int, state, data_iterator=None, metrics: dict[str, Any] | None = None,
           force: bool = False) -> bool:
    """Saves when `step` is due (or `force`); returns whether a save started."""
    if not (force or self.due(step)):
      return False
    items = {"state": ocp.args.StandardSave(state)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    metrics = None if metrics is None else {k: float(v) for k, v in metrics.items()}
    return self.manager.save(step, args=ocp.args.Composite(**items), metrics=metrics, force=True)

  def restore(self, abstract_state, data_iterator=None, step: int | None = None):
    """Restores (state, step) into `abstract_state` (jax.ShapeDtypeStruct leaves with shardings);
    the data iterator, if given, is restored in place."""
    step = self.manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.manager.directory}")
    items = {"state": ocp.args.StandardRestore(abstract_state)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    restored = self.manager.restore(step, args=ocp.args.Composite(**items))
    return restored.state, step

  def wait(self) -> None:
    """Blocks until pending async saves are committed; raises their errors."""
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def abstract_like(state, shardings=None):
  """ShapeDtypeStructs of `state`, carrying `shardings` (a matching pytree) when given."""
  if shardings is None:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)
