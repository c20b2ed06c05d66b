"""Examples -> one static-shape training batch (host, numpy).

An example holds a tokenised chat prompt (video placeholders already expanded,
ending with the assistant header), the answer tokens (ending with <|im_end|>)
and its processed video(s). The batch lays out the rollout's inputs:

    input_ids   prompt (+ <|latent_start|> when K > 0), left-aligned to a bucketed length
    targets     (<|latent_end|> when K > 0) + answer (or a rationale + answer), right-padded to a fixed length
    latent_mask [B,K] which of the K latent slots each example uses (a curriculum stage may use fewer)
    align_weights  [B,K,P] mean-pooling weights of each latent's temporal video segment
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from vlatent_jax.data.curriculum import ExamplePlan
from vlatent_jax.inference import prepare_batch
from vlatent_jax.models.config import ModelConfig
from vlatent_jax.models.vision import VisionInputs
from vlatent_jax.targets import segment_weights


@dataclasses.dataclass
class Example:
  prompt_ids: list[int]
  answer_ids: list[int]
  pixel_values_videos: np.ndarray | None = None  # [N, patch_dim]
  video_grid_thw: np.ndarray | None = None       # [V, 3]
  second_per_grid_ts: np.ndarray | None = None   # [V]
  reasoning_ids: list[list[int]] | None = None   # targets after dropping the first s rationale steps, s = 0..n

  @property
  def rationale_steps(self) -> int:
    return len(self.reasoning_ids) - 1 if self.reasoning_ids else 0

  def target_ids(self, drop: int | None) -> list[int]:
    """The answer (drop None), or the rationale target with its first `drop` steps dropped."""
    if drop is None:
      return list(self.answer_ids)
    if not self.reasoning_ids:
      raise ValueError("this example has no rationale (cot and latent.curriculum need manifests with 'rationale')")
    return list(self.reasoning_ids[min(drop, len(self.reasoning_ids) - 1)])


def collate(examples: list[Example], config: ModelConfig, *, num_latents: int, max_answer_len: int,
            prompt_len: int | None = None, plans: list[ExamplePlan] | None = None) -> dict[str, Any]:
  """Builds the batch dict consumed by `train.step` (numpy; device placement is the caller's).

  `plans` (one per example, `curriculum.TargetSchedule.plan`): its latent steps (<= num_latents slots) and
  target; default: every slot and the plain answer.
  """
  k = num_latents
  plans = plans or [ExamplePlan(k, None)] * len(examples)
  if any(plan.num_latents > k for plan in plans):
    raise ValueError(f"a plan uses more latent steps than the batch's {k} slots")
  if k > 0 and (config.latent_start_token_id is None or config.latent_end_token_id is None):
    raise ValueError("latent steps need <|latent_start|>/<|latent_end|> token ids in the model config")
  batch_size = len(examples)
  prompt_len_needed = max(len(e.prompt_ids) for e in examples) + (1 if k else 0)
  seq = prompt_len or prompt_len_needed
  if seq < prompt_len_needed:
    raise ValueError(f"prompt of {prompt_len_needed} tokens exceeds data.max_prompt_len={seq}")
  ids = np.zeros((batch_size, prompt_len_needed), np.int64)
  mask = np.zeros_like(ids)
  answers = np.zeros((batch_size, max_answer_len), np.int32)
  answer_mask = np.zeros((batch_size, max_answer_len), np.float32)
  for i, (e, plan) in enumerate(zip(examples, plans)):
    prompt = list(e.prompt_ids) + ([config.latent_start_token_id] if k else [])
    ids[i, :len(prompt)], mask[i, :len(prompt)] = prompt, 1
    target = e.target_ids(plan.drop)
    if len(target) > max_answer_len:
      raise ValueError(f"example {i}: target of {len(target)} tokens exceeds {max_answer_len}")
    answers[i, :len(target)] = target
    answer_mask[i, :len(target)] = 1.0

  with_video = [e for e in examples if e.pixel_values_videos is not None]
  pixels = np.concatenate([e.pixel_values_videos for e in with_video]) if with_video else None
  grids = np.concatenate([np.asarray(e.video_grid_thw).reshape(-1, 3) for e in with_video]) if with_video else None
  seconds = (np.concatenate([np.asarray(e.second_per_grid_ts, np.float32).reshape(-1) for e in with_video])
             if with_video else None)
  prepared = prepare_batch(config, ids, mask, pixels, grids, seconds, left_align=True, seq_len=seq,
                           per_example=True)

  if k:
    targets = np.concatenate([np.full((batch_size, 1), config.latent_end_token_id, np.int32), answers], 1)
    target_mask = np.concatenate([np.ones((batch_size, 1), np.float32), answer_mask], 1)
  else:
    targets, target_mask = answers, answer_mask

  latent_mask = np.arange(k)[None, :] < np.array([plan.num_latents for plan in plans])[:, None]
  align = np.zeros((batch_size, k, prepared.input_ids.shape[1]), np.float32)
  merge = config.vision.merge_unit
  for i, (e, plan) in enumerate(zip(examples, plans)):
    if e.pixel_values_videos is None or not plan.num_latents:
      continue
    grid = np.asarray(e.video_grid_thw).reshape(-1, 3)
    slice_ids, offset = [], 0
    for t, h, w in grid.tolist():
      slice_ids.append(np.repeat(np.arange(t) + offset, h * w // merge))
      offset += t
    positions = np.nonzero(prepared.feature_index[i] >= 0)[0]
    align[i, :plan.num_latents] = segment_weights(positions, np.concatenate(slice_ids), offset, plan.num_latents,
                                                  align.shape[-1])

  batch = {"input_ids": prepared.input_ids, "attention_mask": prepared.attention_mask,
           "position_ids": prepared.position_ids, "next_position": prepared.next_position,
           "targets": targets.astype(np.int32), "target_mask": target_mask,
           "answer_ids": answers, "answer_mask": answer_mask, "latent_mask": latent_mask, "align_weights": align}
  if prepared.vision is not None:
    batch["vision"] = prepared.vision
    batch["feature_index"] = prepared.feature_index
  return batch


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
