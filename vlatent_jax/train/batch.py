"""Examples -> the train step's batch (host numpy): data/'s stacked examples laid out for the model.

    input_ids   prompt (+ <|latent_start|> when K > 0), left-aligned to a bucketed length
    targets     (<|latent_end|> when K > 0) + answer (or a rationale + answer), right-padded to a fixed length
    latent_mask [B,K] which of the K latent slots each example uses (a curriculum stage may use fewer)
    align_weights  [B,K,P] mean-pooling weights of each latent's temporal video segment
    teacher_targets [B,K,D], teacher_trajectory [B,K,P]   LaViT, when the examples carry a teacher's outputs
                   (the trajectory placed on each example's video-token positions)
    vision, feature_index, position_ids, next_position   `models.inputs.prepare_batch`, per-example layout

data/ stacks examples with numbers only (`data.collate.stack`); the layout here needs the model config,
so the Grain pipeline takes it as a hook: `make_dataset` binds `ModelBatch` into `data.pipeline`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import grain
import numpy as np

from vlatent_jax.data import pipeline
from vlatent_jax.data.collate import Example, stack
from vlatent_jax.data.curriculum import ExamplePlan
from vlatent_jax.data.preprocess import VideoProcessorConfig, normalize_patches
from vlatent_jax.models.config import ModelConfig
from vlatent_jax.models.inputs import prepare_batch
from vlatent_jax.models.vision import VisionInputs
from vlatent_jax.targets import segment_weights


def collate(examples: list[Example], config: ModelConfig, *, num_latents: int, max_answer_len: int,
            prompt_len: int | None = None, plans: list[ExamplePlan] | None = None) -> dict[str, Any]:
  """Builds the batch dict consumed by `train.step` (numpy; device placement is the caller's).

  `plans` (one per example, `curriculum.TargetSchedule.plan`): its latent steps (<= num_latents slots) and
  target; default: every slot and the plain answer.
  """
  k = num_latents
  stacked = stack(examples, num_latents=k, max_answer_len=max_answer_len,
                  latent_start_id=config.latent_start_token_id, latent_end_id=config.latent_end_token_id,
                  prompt_len=prompt_len, plans=plans)
  prepared = prepare_batch(config, stacked.prompt_ids, stacked.prompt_mask, stacked.pixel_values_videos,
                           stacked.video_grid_thw, stacked.second_per_grid_ts, left_align=True,
                           seq_len=prompt_len or stacked.prompt_ids.shape[1], per_example=True)

  seq = prepared.input_ids.shape[1]
  align = segment_pooling(examples, prepared.feature_index, stacked.latent_mask.sum(1), k, config.vision.merge_unit,
                          seq)
  batch = {"input_ids": prepared.input_ids, "attention_mask": prepared.attention_mask,
           "position_ids": prepared.position_ids, "next_position": prepared.next_position,
           "targets": stacked.targets, "target_mask": stacked.target_mask, "answer_ids": stacked.answer_ids,
           "answer_mask": stacked.answer_mask, "latent_mask": stacked.latent_mask, "align_weights": align}
  if prepared.vision is not None:
    batch["vision"] = prepared.vision
    batch["feature_index"] = prepared.feature_index
  if k and any(e.teacher_targets is not None for e in examples):  # sft (K = 0) has no latent to align
    batch.update(_teacher_fields(examples, prepared.feature_index, k, seq))
  return batch


def segment_pooling(examples: list[Example], feature_index: np.ndarray | None, steps, num_latents: int,
                    merge: int, seq_len: int) -> np.ndarray:
  """[B, K, seq_len] `targets.segment_weights` of each example over its prompt positions, for its first
  steps[i] latents (the rest, and examples without video, get zeros)."""
  b, p = len(examples), seq_len
  weights = np.zeros((b, num_latents, p), np.float32)
  for i, e in enumerate(examples):
    if e.pixel_values_videos is None or not steps[i]:
      continue
    slice_ids, offset = [], 0
    for t, h, w in np.asarray(e.video_grid_thw).reshape(-1, 3).tolist():
      slice_ids.append(np.repeat(np.arange(t) + offset, h * w // merge))
      offset += t
    positions = np.nonzero(feature_index[i] >= 0)[0]
    weights[i, :steps[i]] = segment_weights(positions, np.concatenate(slice_ids), offset, int(steps[i]), p)
  return weights


def _teacher_fields(examples: list[Example], feature_index: np.ndarray | None, k: int,
                    p: int) -> dict[str, np.ndarray]:
  """teacher_targets [B,K,D] and teacher_trajectory [B,K,P] (each example's [K, M] put on its M video-token
  positions), checked against the batch's latent slots and video tokens."""
  shapes = {np.asarray(e.teacher_targets).shape if e.teacher_targets is not None else None for e in examples}
  if None in shapes or len(shapes) != 1 or next(iter(shapes))[0] != k:
    raise ValueError(f"teacher targets of shapes {sorted(map(str, shapes))} in one batch; every example needs "
                     f"[K, D] with K = {k} latent steps (write them with --num-latents {k})")
  targets = np.stack([np.asarray(e.teacher_targets, np.float32) for e in examples])
  trajectory = np.zeros((len(examples), k, p), np.float32)
  for i, e in enumerate(examples):
    positions = np.zeros(0, np.int64) if feature_index is None else np.nonzero(feature_index[i] >= 0)[0]
    t = np.asarray(e.teacher_trajectory, np.float32)
    if t.shape != (k, len(positions)):
      raise ValueError(f"example {i} of the batch: teacher trajectory {t.shape}, expected {(k, len(positions))} "
                       "(K latent steps over its video tokens): written for another video preprocessing?")
    trajectory[i][:, positions] = t
  return {"teacher_targets": targets, "teacher_trajectory": trajectory}


@dataclasses.dataclass(frozen=True)
class ModelBatch:
  """`collate` for one model config: the Grain pipeline's batch function (picklable for its workers)."""
  config: ModelConfig

  def __call__(self, examples: list[Example], **options) -> dict[str, Any]:
    return collate(examples, self.config, **options)


def normalize_vision(batch: dict[str, Any], processor: VideoProcessorConfig) -> dict[str, Any]:
  """Batch with uint8 vision patches -> float32 `normalize_patches` on the valid rows, 0 on padding.

  Patches stay uint8 through `collate` (the vision layout copies rows and keeps the dtype), so normalising
  the valid rows afterwards yields exactly `collate`'s output on float32 `normalize_patches` input.
  """
  vision = batch.get("vision")
  if vision is None:
    return batch
  valid = vision.window_ids >= 0  # the vision layout marks every real patch with its window id
  pixels = np.zeros(vision.patches.shape, np.float32)
  pixels[valid] = normalize_patches(vision.patches[valid], processor)
  return dict(batch, vision=vision._replace(patches=pixels))


def make_dataset(data_dir: str, *, model_config: ModelConfig, **options) -> grain.IterDataset:
  """`data.pipeline.make_dataset` yielding `collate` batches for `model_config` (same options)."""
  return pipeline.make_dataset(data_dir, batch_fn=ModelBatch(model_config), normalize_fn=normalize_vision,
                               patch_dim=model_config.vision.patch_dim, **options)


def batch_shapes(batch: dict[str, Any]) -> tuple[int, int, int]:
  """(prompt length, video slices per example, patches per slice) of a `collate` batch; 0 without video."""
  vision = batch.get("vision")
  slices, slice_len = vision.patches.shape[1:3] if vision is not None else (0, 0)
  return batch["input_ids"].shape[1], slices, slice_len


def pad_batch(batch: dict[str, Any], config: ModelConfig, prompt_len: int, num_slices: int, slice_len: int):
  """Pads a `collate` batch to larger buckets without changing what the model computes.

  Multi-host training needs every process to pass the same shapes to the global batch. Prompts are
  left-padded (they are right-aligned), video slices and slice lengths padded at the end (masked out
  by window id -1), and feature_index remapped to the wider merger rows.
  """
  seq, slices, length = batch_shapes(batch)
  if prompt_len < seq or (slices and (num_slices < slices or slice_len < length)):
    raise ValueError(f"cannot pad shapes {(seq, slices, length)} down to {(prompt_len, num_slices, slice_len)}")
  out = dict(batch)
  extra = prompt_len - seq
  if extra:
    left = lambda x, axis, value=0: np.pad(x, [(extra, 0) if a == axis else (0, 0) for a in range(x.ndim)],  # noqa: E731
                                           constant_values=value)
    out["input_ids"] = left(batch["input_ids"], 1, config.pad_token_id or 0)
    out["attention_mask"] = left(batch["attention_mask"], 1, False)
    out["position_ids"] = left(batch["position_ids"], 2)
    out["align_weights"] = left(batch["align_weights"], 2)
    if "teacher_trajectory" in batch:  # [B,K,P] over prompt positions, like the pooling weights
      out["teacher_trajectory"] = left(batch["teacher_trajectory"], 2)
    if "feature_index" in batch:
      out["feature_index"] = left(batch["feature_index"], 1, -1)
  if not num_slices:
    return out
  batch_size = batch["input_ids"].shape[0]
  vision = batch.get("vision")
  patch_dim = config.vision.patch_dim
  if vision is None:  # this process drew no video: an all-padding video batch
    vision = VisionInputs(np.zeros((batch_size, 0, 0, patch_dim), np.float32),
                          np.zeros((batch_size, 0, 0, 2), np.int32), np.zeros((batch_size, 0, 0), np.int32))
    out["feature_index"] = np.full(out["input_ids"].shape, -1, np.int32)
    slices, length = 0, 0
  grow = lambda x, value: np.pad(x, [(0, 0), (0, num_slices - slices), (0, slice_len - length)]  # noqa: E731
                                 + [(0, 0)] * (x.ndim - 3), constant_values=value)
  out["vision"] = VisionInputs(grow(vision.patches, 0), grow(vision.positions, 0), grow(vision.window_ids, -1))
  if length and slice_len != length:
    units, new_units = length // config.vision.merge_unit, slice_len // config.vision.merge_unit
    index = out["feature_index"]
    out["feature_index"] = np.where(index >= 0, index // units * new_units + index % units, -1).astype(np.int32)
  return out
