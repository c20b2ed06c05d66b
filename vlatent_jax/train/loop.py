"""The training driver: data, model, mesh, checkpoints and the jitted step, wired from one config.

    python -m vlatent_jax.train --config configs/tiny.py --workdir W [--config.key=value ...]

Every config value is validated before any compute. The loop takes prepared shards (`data.path`,
`data.val_path`); the CLI fills them with the embedded benchmark when they are empty. The run
resumes from the latest checkpoint in `W/checkpoints`, data iterator included; SIGTERM
(preemption) saves and exits 0, every process at the same step (`distributed.PreemptionWatch`); a
non-finite loss stops the run naming the step and keeps the last good checkpoint. W may be a gs://
URI (checkpoints and config.json go through etils.epath).

Metrics stay on the device until a log, eval, checkpoint or last step: no step waits for the host.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils

from vlatent_jax import sharding
from vlatent_jax.distributed import PreemptionWatch
from vlatent_jax.config import ConfigError, ExperimentConfig, model_config as build_model_config
from vlatent_jax.data.curriculum import TargetSchedule
from vlatent_jax.models.config import ModelConfig
from vlatent_jax.train import batch as model_batch
from vlatent_jax.train.checkpoints import TrainCheckpointer, abstract_like, is_uri, resolve_path
from vlatent_jax.train.observe import MetricsWriter
from vlatent_jax.train.setup import init_sharded_train_state, load_pretrained
from vlatent_jax.train.step import make_eval_step, make_train_step

class NonFiniteLoss(RuntimeError):
  pass


@dataclasses.dataclass(frozen=True)
class DataPaths:
  train: str       # prepared shards
  val: str         # prepared validation shards ("" = none)
  tokenizer: str


def data_paths(config: ExperimentConfig) -> DataPaths:
  """`data.path` / `data.val_path` and the tokenizer their spec.json names."""
  if not config.data.path:
    raise ConfigError("config key 'data.path': no prepared shards (python -m vlatent_jax.train generates the "
                      "embedded benchmark under the workdir when it is empty)")
  with open(os.path.join(config.data.path, "spec.json")) as f:
    spec = json.load(f)
  return DataPaths(config.data.path, config.data.val_path, spec["tokenizer"])


def common_shapes(batch: dict, model_config: ModelConfig) -> dict:
  """Pads this process's batch to the largest buckets any process drew: a global array needs one shape.

  Several processes only, and the loop's one wait per step: the gather is a device computation queued
  behind the running step (fixed batch shapes, or a host-side exchange, would remove it)."""
  if jax.process_count() == 1:
    return batch
  shapes = multihost_utils.process_allgather(np.asarray(model_batch.batch_shapes(batch), np.int64)).max(0)
  return model_batch.pad_batch(batch, model_config, *(int(n) for n in shapes))


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


def target_schedule(config: ExperimentConfig) -> TargetSchedule:
  """Latent steps and targets of each training step, from `latent.*` (see data/curriculum.py)."""
  latent = config.latent
  return TargetSchedule(num_latents=latent.steps, rationale=latent.mode == "cot", stages=latent.curriculum,
                        latents_per_step=latent.latents_per_step, total_steps=config.train.steps)


def validate(eval_fn, params, val_dir: str, model_config: ModelConfig, config: ExperimentConfig, mesh) -> dict:
  """Mean training losses and diagnostics over the validation shards (one pass, whole batches, the
  curriculum's last stage), as val_* metrics."""
  dataset = model_batch.make_dataset(
      val_dir, model_config=model_config, schedule=target_schedule(config), final_stage=True,
      batch_size=config.train.batch_size // jax.process_count(), max_answer_len=config.data.max_answer_len,
      seed=0, shuffle=False, num_epochs=1, prompt_buckets=(config.data.max_prompt_len,),
      teacher=config.latent.needs_teacher)
  totals, count = {}, 0
  for batch in dataset:
    batch = sharding.shard_batch(common_shapes(batch, model_config), mesh)
    for k, v in jax.device_get(eval_fn(params, batch)).items():
      totals[k] = totals.get(k, 0.0) + float(v)
    count += 1
  if not count:
    raise ValueError(f"{val_dir}: fewer validation examples than one batch of {config.train.batch_size}")
  return {f"val_{k}": v / count for k, v in totals.items()}


def export_model(path: str, params, model_config: ModelConfig, config: ExperimentConfig, paths: DataPaths,
                 step: int) -> None:
  """W/model: a vlatent_jax model checkpoint (`vlatent_jax.load`, predict, eval, jax-to-hf) with the
  tokenizer and the video processor / frame sampling the training data was prepared with."""
  from vlatent_jax.checkpoint import save_checkpoint
  host = jax.tree.map(np.asarray, jax.device_get(nnx.to_pure_dict(params)))
  meta = {"train": {"mode": config.latent.mode, "num_latents": config.latent.steps, "step": step,
                    "curriculum": config.latent.curriculum, "max_new_tokens": config.data.max_answer_len,
                    "stop_early": config.latent.stop_early,
                    "answer_sees_video": not config.latent.sensory_gating}}
  extra_files = {}
  spec_path = os.path.join(paths.train, "spec.json")
  if os.path.isfile(spec_path):
    with open(spec_path) as f:
      spec = json.load(f)
    meta["frames"] = {"fps": spec.get("fps"), "max_frames": spec.get("max_frames"),
                      "num_frames": spec.get("num_frames")}
    if spec.get("processor"):  # the processor the shards were made with, in HF's file format
      extra_files["video_preprocessor_config.json"] = spec["processor"]
  save_checkpoint(path, model_config, host, meta, tokenizer_dir=paths.tokenizer, overwrite=True,
                  extra_files=extra_files)


def _fetch(pending: list, checkpointer) -> list[tuple[int, dict]]:
  """Device metrics of the pending steps -> host rows; a non-finite loss stops the run naming its step."""
  rows = [(step, {k: float(v) for k, v in m.items()}) for step, m in jax.device_get(pending)]
  for step, m in rows:
    if not np.isfinite(m["loss"]):
      raise NonFiniteLoss(f"loss is {m['loss']} at step {step}; the last good checkpoint "
                          f"(step {checkpointer.latest_step()}) is kept")
  return rows


def train(config: ExperimentConfig, workdir) -> dict:
  """Runs (or resumes) training in `workdir` (a local path or a gs:// URI); returns the last metrics."""
  is_main = jax.process_index() == 0
  workdir = resolve_path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  paths = data_paths(config)
  if config.train.eval_every_steps and not paths.val:
    raise ConfigError("config key 'data.val_path': train.eval_every_steps > 0 needs validation shards; "
                      "set data.val_path or train.eval_every_steps=0")
  model_config, pretrained = resolve_model(config, paths.tokenizer)
  mesh = sharding.make_mesh(config.mesh)
  global_batch, accum = config.train.batch_size, config.train.grad_accum_steps
  shards = mesh.shape["data"] * mesh.shape["fsdp"]  # the batch is split over both (sharding.DEFAULT_RULES)
  # Each micro-batch (batch_size / grad_accum_steps examples) must still split over every batch shard.
  if global_batch % (shards * accum) or global_batch % jax.process_count():
    raise ConfigError(f"config key 'train.batch_size': {global_batch} is not divisible by train.grad_accum_steps "
                      f"({accum}) x the {shards} batch shards (mesh.data * mesh.fsdp), and by the "
                      f"{jax.process_count()} processes")
  graphdef, rest, state, tx, schedule, state_shardings = init_sharded_train_state(
      config, model_config, mesh, config.train.seed, pretrained)
  dataset = model_batch.make_dataset(
      paths.train, model_config=model_config, schedule=target_schedule(config),
      batch_size=global_batch // jax.process_count(), max_answer_len=config.data.max_answer_len,
      seed=config.train.seed, num_workers=config.data.num_workers, teacher=config.latent.needs_teacher,
      **({"max_prompt_len": config.data.max_prompt_len} if config.data.bucket_prompts
         else {"prompt_buckets": (config.data.max_prompt_len,)}))
  data_iter = iter(dataset)
  checkpointer = TrainCheckpointer(workdir / "checkpoints", every_steps=config.checkpoint.every_steps,
                                   keep=config.checkpoint.keep, best_metric=config.checkpoint.best_metric or None,
                                   best_mode=config.checkpoint.best_mode)
  start = 0
  if checkpointer.latest_step() is not None:
    state, start = checkpointer.restore(abstract_like(state, state_shardings), data_iter)
  if is_main:
    (workdir / "config.json").write_text(
        json.dumps({"experiment": dataclasses.asdict(config), "model": model_config.to_dict()}, indent=2))
  writer = MetricsWriter(os.fspath(workdir), total_steps=config.train.steps, global_batch=global_batch,
                         log_every_steps=config.train.log_every_steps, enabled=is_main, start_step=start)
  writer.log(f"[train] {config.latent.mode}: {jax.process_count()} processes, {jax.device_count()} devices, "
             f"mesh {dict(mesh.shape)}, steps {start}->{config.train.steps}, batch {global_batch}"
             + (f" in {accum} micro-batches" if accum > 1 else ""))

  replicated = sharding.replicated(mesh)
  eval_fn = make_eval_step(graphdef, rest, config, in_shardings=(state_shardings.params, None),
                           out_shardings=replicated, mesh=mesh) if paths.val and config.train.eval_every_steps else None
  profile = range(config.train.profile_start_step, config.train.profile_start_step + config.train.profile_steps)
  rng = jax.random.key(config.train.seed)  # made once: the step folds its own step number into it
  tracing = False
  step_fn = None
  metrics: dict = {}
  val_metrics: dict = {}
  pending: list = []  # (step, device metrics) not yet on the host
  saved = start
  preempted = False
  try:
    with sharding.mesh_context(mesh), PreemptionWatch() as preemption:
      for step in range(start, config.train.steps):
        if config.train.profile_start_step and step + 1 == profile.start:
          jax.profiler.start_trace(os.fspath(workdir / "profile"))
          tracing = True
        batch = sharding.shard_batch(common_shapes(next(data_iter), model_config), mesh)
        if step_fn is None:
          step_fn = make_train_step(graphdef, rest, config, tx, schedule,
                                    in_shardings=(state_shardings, sharding.batch_shardings(batch, mesh), replicated),
                                    out_shardings=(state_shardings, replicated))
        state, device_metrics = step_fn(state, batch, rng)
        if tracing and step + 1 == profile.stop - 1:
          jax.profiler.stop_trace()
          tracing = False
          writer.log(f"[train] profiler trace of steps {profile.start}-{profile.stop - 1} in {workdir}/profile")
        done = step + 1
        preempted = preemption.reached(done)  # asked every step, on every process (the sync point needs it)
        last = done == config.train.steps or preempted
        pending.append((done, device_metrics))
        evaluating = eval_fn is not None and (done % config.train.eval_every_steps == 0 or last or
                                              (config.checkpoint.best_metric and checkpointer.due(done)))
        # Metrics stay on the device between these steps, so the host runs ahead queueing steps; only
        # `_fetch` (and validation) bring device values to the host.
        if evaluating or last or done % config.train.log_every_steps == 0 or checkpointer.due(done):
          rows = _fetch(pending, checkpointer)
          pending.clear()
          metrics = rows[-1][1]
          if evaluating:
            val_metrics = validate(eval_fn, state.params, paths.val, model_config, config, mesh)
            metrics.update(val_metrics)
          writer.write(rows)
        if checkpointer.save(done, state, data_iter, metrics={**metrics, **val_metrics}, force=last):
          saved = done
        if preempted:
          writer.log(f"[train] preempted (SIGTERM) at step {done}: saved, exiting")
          break
      if metrics and saved != done:
        checkpointer.save(done, state, data_iter, metrics={**metrics, **val_metrics}, force=True)
    if metrics and config.checkpoint.export_model and not preempted:
      if jax.process_count() == 1 and not is_uri(workdir):
        export_model(os.fspath(workdir / "model"), state.params, model_config, config, paths, done)
        writer.log(f"[train] model exported to {workdir}/model")
      else:  # a model checkpoint is written to local disk (atomic rename), so a URI workdir exports afterwards
        writer.log("[train] multi-process run or URI workdir: export the model with one process "
                   f"(python -m vlatent_jax.train.export --workdir {workdir} --out LOCAL_DIR)")
  finally:
    if tracing:
      jax.profiler.stop_trace()
    checkpointer.close()
    writer.close()
  return metrics
