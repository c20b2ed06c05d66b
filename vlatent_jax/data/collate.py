"""Examples -> one static-shape training batch (host, numpy).

An example holds a tokenised chat prompt (video placeholders already expanded,
ending with the assistant header), the answer tokens (ending with <|im_end|>)
and its processed video(s). The batch lays out the rollout's inputs:

    input_ids   prompt (+ <|latent_start|> when K > 0), left-aligned to a bucketed length
    targets     (<|latent_end|> when K > 0) + answer, right-padded to a fixed length
    align_weights  [B,K,P] mean-pooling weights of each latent's temporal video segment
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from vlatent_jax.inference import prepare_batch
from vlatent_jax.models.config import ModelConfig
from vlatent_jax.targets import segment_weights


@dataclasses.dataclass
class Example:
  prompt_ids: list[int]
  answer_ids: list[int]
  pixel_values_videos: np.ndarray | None = None  # [N, patch_dim]
  video_grid_thw: np.ndarray | None = None       # [V, 3]
  second_per_grid_ts: np.ndarray | None = None   # [V]


def collate(examples: list[Example], config: ModelConfig, *, num_latents: int, max_answer_len: int,
            prompt_len: int | None = None) -> dict[str, Any]:
  """Builds the batch dict consumed by `train.step` (numpy; device placement is the caller's)."""
  k = num_latents
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
  for i, e in enumerate(examples):
    prompt = list(e.prompt_ids) + ([config.latent_start_token_id] if k else [])
    ids[i, :len(prompt)], mask[i, :len(prompt)] = prompt, 1
    if len(e.answer_ids) > max_answer_len:
      raise ValueError(f"example {i}: answer of {len(e.answer_ids)} tokens exceeds {max_answer_len}")
    answers[i, :len(e.answer_ids)] = e.answer_ids
    answer_mask[i, :len(e.answer_ids)] = 1.0

  with_video = [e for e in examples if e.pixel_values_videos is not None]
  pixels = np.concatenate([e.pixel_values_videos for e in with_video]) if with_video else None
  grids = np.concatenate([np.asarray(e.video_grid_thw).reshape(-1, 3) for e in with_video]) if with_video else None
  seconds = (np.concatenate([np.asarray(e.second_per_grid_ts, np.float32).reshape(-1) for e in with_video])
             if with_video else None)
  prepared = prepare_batch(config, ids, mask, pixels, grids, seconds, left_align=True, seq_len=seq)

  if k:
    targets = np.concatenate([np.full((batch_size, 1), config.latent_end_token_id, np.int32), answers], 1)
    target_mask = np.concatenate([np.ones((batch_size, 1), np.float32), answer_mask], 1)
  else:
    targets, target_mask = answers, answer_mask

  align = np.zeros((batch_size, k, prepared.input_ids.shape[1]), np.float32)
  merge = config.vision.merge_unit
  for i, e in enumerate(examples):
    if e.pixel_values_videos is None or not k:
      continue
    grid = np.asarray(e.video_grid_thw).reshape(-1, 3)
    slice_ids, offset = [], 0
    for t, h, w in grid.tolist():
      slice_ids.append(np.repeat(np.arange(t) + offset, h * w // merge))
      offset += t
    positions = np.nonzero(prepared.feature_index[i] >= 0)[0]
    align[i] = segment_weights(positions, np.concatenate(slice_ids), offset, k, align.shape[-1])

  batch = {"input_ids": prepared.input_ids, "attention_mask": prepared.attention_mask,
           "position_ids": prepared.position_ids, "next_position": prepared.next_position,
           "targets": targets.astype(np.int32), "target_mask": target_mask,
           "answer_ids": answers, "answer_mask": answer_mask, "align_weights": align}
  if prepared.vision is not None:
    batch["vision"] = prepared.vision
    batch["feature_index"] = prepared.feature_index
  return batch
