"""A training run's checkpoint -> a vlatent_jax model checkpoint, in one process.

    python -m vlatent_jax.train.export --workdir W [--step N | --best] [--out W/model]

Training exports `W/model` itself when it runs as one process; multi-process runs (and anyone who
wants the best checkpoint by validation loss rather than the last) export afterwards with this. Only
the parameters are read from the checkpoint (orbax partial restore), so the optimizer state never
occupies host memory.
"""

from __future__ import annotations

import argparse
import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from vlatent_jax.config import parse
from vlatent_jax.models.config import ModelConfig
from vlatent_jax.train.checkpoints import is_uri, resolve_path
from vlatent_jax.train.setup import _new_model


def restore_params(workdir: str, step: int | None = None, best: bool = False):
  """(ExperimentConfig, ModelConfig, param State on host, step) of a run's checkpoint."""
  workdir = resolve_path(workdir)  # a gs:// workdir stays a URI
  saved = json.loads((workdir / "config.json").read_text())
  config, model_config = parse(saved["experiment"]), ModelConfig.from_dict(saved["model"])
  best_fn = None
  if best:
    if not config.checkpoint.best_metric:
      raise SystemExit(f"{workdir}: --best needs a run trained with checkpoint.best_metric set")
    best_fn = lambda metrics: float(metrics[config.checkpoint.best_metric])  # noqa: E731
  manager = ocp.CheckpointManager(workdir / "checkpoints",
                                  options=ocp.CheckpointManagerOptions(best_fn=best_fn,
                                                                       best_mode=config.checkpoint.best_mode),
                                  item_names=("state", "data"))
  step = step if step is not None else (manager.best_step() if best else manager.latest_step())
  if step is None:
    raise SystemExit(f"no checkpoint in {workdir}/checkpoints")
  _, abstract_params, _ = nnx.split(nnx.eval_shape(lambda: _new_model(config, model_config, 0)), nnx.Param, ...)
  target = {"params": jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), abstract_params)}
  as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)  # on host, any mesh
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.PyTreeRestore(item=target, restore_args=as_numpy, partial_restore=True)))
  manager.close()
  return config, model_config, restored.state["params"], step


def main(argv=None) -> str:
  p = argparse.ArgumentParser(description="Export a training checkpoint as a vlatent_jax model checkpoint.")
  p.add_argument("--workdir", required=True)
  p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
  p.add_argument("--best", action="store_true", help="the best checkpoint by checkpoint.best_metric")
  p.add_argument("--out", default=None, help="output directory (default: WORKDIR/model)")
  a = p.parse_args(argv)
  if a.out is None and is_uri(a.workdir):
    p.error("a URI workdir needs --out (a local directory: the model checkpoint is written atomically by rename)")
  from vlatent_jax.train.embedded_data import with_embedded_data
  from vlatent_jax.train.loop import data_paths, export_model
  config, model_config, params, step = restore_params(a.workdir, a.step, a.best)
  out = a.out or os.path.join(a.workdir, "model")
  # A run of the CLI saved its resolved data.path; an empty one is the embedded benchmark under W/data.
  export_model(out, params, model_config, config, data_paths(with_embedded_data(config, a.workdir)), step)
  print(f"exported step {step} of {a.workdir} to {out}")
  return out


if __name__ == "__main__":
  main()
