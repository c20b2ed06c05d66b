"""Run observability: metrics.jsonl, TensorBoard events and a progress display (main process only).

On a terminal the progress line is redrawn in place (steps/s, examples/s, ETA);
when stdout is not a TTY (CI, cluster logs) it prints a plain line every
`log_every_steps` steps instead, so logs stay readable.

A workdir that is a URI (gs://bucket/run) gets both files through etils.epath: object stores have no
append, so they are written in a local staging folder and copied up whole after every batch of rows
(metrics are fetched every `log_every_steps`, so a copy is a few kB per fetch); a resumed run first
copies the existing metrics.jsonl down and appends to it, and its TensorBoard events go to a new
event file beside the old ones, as TensorBoard expects.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from typing import Any

from etils import epath

from vlatent_jax.train.checkpoints import is_uri


class MetricsWriter:

  def __init__(self, workdir: str | os.PathLike, *, total_steps: int, global_batch: int, log_every_steps: int,
               enabled: bool = True, start_step: int = 0):
    self.enabled = enabled
    self.total_steps = total_steps
    self.global_batch = global_batch
    self.log_every = max(1, log_every_steps)
    self.tty = sys.stdout.isatty()
    self.start_step = start_step
    self.t0 = time.perf_counter()
    self.jsonl = None
    self.tb = None
    self.remote = None  # the URI workdir that the local staging folder mirrors
    if enabled:
      local = os.fspath(workdir)
      if is_uri(workdir):
        self.remote = epath.Path(workdir)
        (self.remote / "tensorboard").mkdir(parents=True, exist_ok=True)
        local = tempfile.mkdtemp(prefix="vlatent-metrics-")
        if (self.remote / "metrics.jsonl").exists():
          (self.remote / "metrics.jsonl").copy(os.path.join(local, "metrics.jsonl"))
      os.makedirs(local, exist_ok=True)
      self.local = local
      self.jsonl = open(os.path.join(local, "metrics.jsonl"), "a", buffering=1)
      from tensorboardX import SummaryWriter
      # Event files are named by second and host; the suffix keeps a resumed run from replacing the last one.
      self.tb = SummaryWriter(os.path.join(local, "tensorboard"), filename_suffix=f".{uuid.uuid4().hex[:8]}")

  def write(self, rows: list[tuple[int, dict[str, Any]]]) -> None:
    """Rows (step completed, 1-based; host scalars) fetched from the device together.

    They share one clock reading, taken here (after any validation the loop ran on the fetch): steps queued
    on the device have no host time of their own, so each row's rate is its step count over that time.
    """
    if not self.enabled or not rows:
      return
    elapsed = time.perf_counter() - self.t0
    for step, metrics in rows:
      self._write(step, metrics, elapsed)
    self._upload()

  def _upload(self) -> None:
    """Copies the staged files to the URI workdir (nothing to do for a local one)."""
    if self.remote is None:
      return
    self.jsonl.flush()
    self.tb.flush()
    epath.Path(self.local, "metrics.jsonl").copy(self.remote / "metrics.jsonl", overwrite=True)
    for event_file in epath.Path(self.local, "tensorboard").iterdir():
      event_file.copy(self.remote / "tensorboard" / event_file.name, overwrite=True)

  def _write(self, step: int, metrics: dict[str, Any], elapsed: float) -> None:
    row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
    done = step - self.start_step
    rate = done / elapsed if elapsed > 0 else 0.0
    row["steps_per_s"] = rate
    row["examples_per_s"] = rate * self.global_batch
    self.jsonl.write(json.dumps(row) + "\n")
    for key, value in row.items():
      if key != "step" and math.isfinite(value):
        self.tb.add_scalar(key, value, step)
    eta = (self.total_steps - step) / rate if rate > 0 else float("inf")
    line = (f"step {step}/{self.total_steps} loss {row.get('loss', float('nan')):.4f} "
            f"{rate:.2f} steps/s {row['examples_per_s']:.1f} ex/s ETA {_duration(eta)}")
    if self.tty:
      sys.stdout.write("\r" + line + " " * 8)
      sys.stdout.flush()
    elif step % self.log_every == 0 or step == self.total_steps:
      print(line, flush=True)

  def log(self, message: str) -> None:
    if self.enabled:
      print(("\n" if self.tty else "") + message, flush=True)

  def close(self) -> None:
    if self.enabled:
      if self.tty:
        print()
      self._upload()
      self.jsonl.close()
      self.tb.close()
      if self.remote is not None:
        shutil.rmtree(self.local)


def _duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  m, s = divmod(int(seconds), 60)
  h, m = divmod(m, 60)
  return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
