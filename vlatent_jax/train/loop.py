"""The training driver: data, model, mesh, checkpoints and the jitted step, wired from one config.

    python -m vlatent_jax.train --config configs/tiny.py --workdir W [--config.key=value ...]

Every config value is validated before any compute. With no `data.path` the embedded
benchmark is generated and prepared under `W/data` (process 0; the others wait). The run
resumes from the latest checkpoint in `W/checkpoints`, data iterator included; SIGTERM
(preemption) saves and exits 0; a non-finite loss stops the run naming the step and keeps the
last good checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal

import jax
import numpy as np
from jax.experimental import multihost_utils

from vlatent_jax import sharding
from vlatent_jax.config import ExperimentConfig, model_config as build_model_config
from vlatent_jax.data import pipeline
from vlatent_jax.models.config import ModelConfig
from vlatent_jax.train.checkpoints import TrainCheckpointer, abstract_like
from vlatent_jax.train.observe import MetricsWriter
from vlatent_jax.train.setup import init_sharded_train_state, load_pretrained
from vlatent_jax.train.step import make_train_step

# The embedded benchmark: events last 2-4 frames at 8 fps, so every frame is decoded.
EMBEDDED = {"counts": {"train": 2000, "val": 200, "test": 400}, "frames": 16, "size": 56, "fps": 8}


class NonFiniteLoss(RuntimeError):
  pass


def ensure_data(config: ExperimentConfig, workdir: str) -> tuple[str, str]:
  """Returns (shard dir, tokenizer dir), generating + preparing the embedded benchmark if needed."""
  if config.data.path:
    spec = json.load(open(os.path.join(config.data.path, "spec.json")))
    return config.data.path, spec["tokenizer"]
  raw, shards = os.path.join(workdir, "data", "raw"), os.path.join(workdir, "data", "train_shards")
  if jax.process_index() == 0 and not os.path.isfile(os.path.join(shards, "spec.json")):
    from vlatent_jax.data import prepare, synthetic
    if not os.path.isfile(os.path.join(raw, "benchmark.json")):
      synthetic.generate(raw, seed=0, counts=EMBEDDED["counts"], frames=EMBEDDED["frames"], size=EMBEDDED["size"],
                         fps=EMBEDDED["fps"])
    prepare.prepare(prepare.parse_args([
        "--manifest", os.path.join(raw, "train.jsonl"), "--out", shards, "--fps", str(EMBEDDED["fps"]),
        "--max-frames", str(EMBEDDED["frames"]), "--workers", "2", "--min-pixels", str(28 * 28),
        "--max-pixels", str(EMBEDDED["size"] ** 2)]))
  multihost_utils.sync_global_devices("embedded benchmark ready")
  return shards, os.path.join(raw, "tokenizer")


def resolve_model(config: ExperimentConfig, tokenizer_dir: str) -> tuple[ModelConfig, dict | None]:
  """The architecture and pretrained weights: `model.init_from`, or the inline tiny model whose
  vocabulary and special-token ids come from the tokenizer."""
  if config.model.init_from:
    model_config, params, _ = load_pretrained(config)
    return model_config, params
  from transformers import AutoTokenizer
  tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
  ids = lambda t: tokenizer.convert_tokens_to_ids(t)  # noqa: E731
  tokens = {"image_token_id": ids("<|image_pad|>"), "video_token_id": ids("<|video_pad|>"),
            "vision_start_token_id": ids("<|vision_start|>"), "vision_end_token_id": ids("<|vision_end|>"),
            "latent_start_token_id": ids("<|latent_start|>"), "latent_end_token_id": ids("<|latent_end|>"),
            "bos_token_id": None, "eos_token_id": ids("<|im_end|>"), "pad_token_id": ids("<|endoftext|>"),
            **config.model.tokens}
  llm = {"vocab_size": -(-len(tokenizer) // 64) * 64, **config.model.llm}
  spec = dataclasses.replace(config.model, llm=llm, tokens=tokens)
  return build_model_config(spec, config.latent), None


def train(config: ExperimentConfig, workdir: str) -> dict:
  """Runs (or resumes) training; returns the last metrics."""
  is_main = jax.process_index() == 0
  os.makedirs(workdir, exist_ok=True)
  data_dir, tokenizer_dir = ensure_data(config, workdir)
  model_config, pretrained = resolve_model(config, tokenizer_dir)
  mesh = sharding.make_mesh(config.mesh)
  global_batch = config.train.batch_size
  if global_batch % jax.process_count():
    raise ValueError(f"train.batch_size {global_batch} is not divisible by {jax.process_count()} processes")
  graphdef, rest, state, tx, schedule, state_shardings = init_sharded_train_state(
      config, model_config, mesh, config.train.seed, pretrained)
  dataset = pipeline.make_dataset(
      data_dir, model_config=model_config, num_latents=config.latent.steps,
      batch_size=global_batch // jax.process_count(), max_answer_len=config.data.max_answer_len,
      seed=config.train.seed, num_workers=config.data.num_workers, prompt_buckets=(config.data.max_prompt_len,))
  data_iter = iter(dataset)
  checkpointer = TrainCheckpointer(os.path.join(workdir, "checkpoints"), every_steps=config.checkpoint.every_steps,
                                   keep=config.checkpoint.keep)
  start = 0
  if checkpointer.latest_step() is not None:
    state, start = checkpointer.restore(abstract_like(state, state_shardings), data_iter)
  if is_main:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      json.dump({"experiment": dataclasses.asdict(config), "model": model_config.to_dict()}, f, indent=2)
  writer = MetricsWriter(workdir, total_steps=config.train.steps, global_batch=global_batch,
                         log_every_steps=config.train.log_every_steps, enabled=is_main, start_step=start)
  writer.log(f"[train] {config.latent.mode}: {jax.device_count()} devices, mesh {dict(mesh.shape)}, "
             f"steps {start}->{config.train.steps}, batch {global_batch}")

  stop = {"signal": None}
  previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.update(signal=signum))
  step_fn = None
  metrics: dict = {}
  saved = start
  try:
    with sharding.mesh_context(mesh):
      for step in range(start, config.train.steps):
        batch = sharding.shard_batch(next(data_iter), mesh)
        if step_fn is None:
          replicated = sharding.replicated(mesh)
          step_fn = make_train_step(graphdef, rest, config, tx, schedule,
                                    in_shardings=(state_shardings, sharding.batch_shardings(batch, mesh), replicated),
                                    out_shardings=(state_shardings, replicated))
        state, device_metrics = step_fn(state, batch, jax.random.key(config.train.seed))
        metrics = {k: float(v) for k, v in jax.device_get(device_metrics).items()}
        if not np.isfinite(metrics["loss"]):
          raise NonFiniteLoss(f"loss is {metrics['loss']} at step {step + 1}; the last good checkpoint "
                              f"(step {checkpointer.latest_step()}) is kept")
        writer.write(step + 1, metrics)
        if checkpointer.save(step + 1, state, data_iter, metrics=metrics):
          saved = step + 1
        if stop["signal"] is not None:
          writer.log(f"[train] SIGTERM at step {step + 1}: saving and exiting")
          break
      if metrics and saved != step + 1:  # the last step (or the preempted one) is always kept
        checkpointer.save(step + 1, state, data_iter, metrics=metrics, force=True)
  finally:
    signal.signal(signal.SIGTERM, previous)
    checkpointer.close()
    writer.close()
  return metrics
