"""Model inputs from HF-processor-style arrays: token ids, packed video patches and grids -> PreparedBatch.

Host-side numpy: left alignment and bucketing to static shapes, the vision layout (`vision.vision_layout`
packed, or `per_example_layout` for data-parallel training), feature_index (which merger row feeds each
video token) and mrope position ids (`rope.rope_index`). Inference (`inference.Model`) and training
batches (`train/batch.py`) both build their inputs here, so the model's array layout lives in models/.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vlatent_jax.models.config import ModelConfig
from vlatent_jax.models.rope import rope_index
from vlatent_jax.models.vision import VisionInputs, per_example_layout, vision_layout

SEQ_BUCKET = 64


def _round_up(n: int, multiple: int) -> int:
  return max(multiple, -(-n // multiple) * multiple)


@dataclasses.dataclass
class PreparedBatch:
  """Device-ready inputs; every array has a bucketed static shape."""
  input_ids: np.ndarray      # [B,S]
  attention_mask: np.ndarray  # [B,S] bool
  position_ids: np.ndarray   # [3,B,S]
  next_position: np.ndarray  # [B] position of the first generated token
  vision: VisionInputs | None
  feature_index: np.ndarray | None  # [B,S]


def prepare_batch(config: ModelConfig, input_ids, attention_mask=None, pixel_values_videos=None,
                  video_grid_thw=None, second_per_grid_ts=None, *, left_align: bool = False,
                  seq_len: int | None = None, per_example: bool = False) -> PreparedBatch:
  """HF processor outputs -> PreparedBatch.

  left_align=True moves each row's valid tokens to the right end (left padding),
  so that generation appends every row at the same cache index.
  per_example=True lays the videos out per row (`vision.per_example_layout`), as
  data-parallel training needs; the default packs all of them (no per-row padding).
  """
  ids = np.asarray(input_ids)
  if ids.ndim != 2:
    raise ValueError(f"input_ids must be [batch, seq], got shape {ids.shape}")
  mask = np.ones(ids.shape, bool) if attention_mask is None else np.asarray(attention_mask).astype(bool)
  if mask.shape != ids.shape:
    raise ValueError(f"attention_mask shape {mask.shape} != input_ids shape {ids.shape}")
  if (ids >= config.llm.vocab_size).any() or (ids < 0).any():
    raise ValueError(f"input_ids outside the vocabulary [0, {config.llm.vocab_size})")
  batch, seq = ids.shape
  target = seq_len or _round_up(seq, SEQ_BUCKET)
  if target < seq:
    raise ValueError(f"seq_len {target} < input length {seq}")
  pad = target - seq
  pad_id = config.pad_token_id or 0
  if left_align:
    new_ids = np.full((batch, target), pad_id, ids.dtype)
    new_mask = np.zeros((batch, target), bool)
    for b in range(batch):
      valid = ids[b][mask[b]]
      new_ids[b, target - len(valid):] = valid
      new_mask[b, target - len(valid):] = True
    ids, mask = new_ids, new_mask
  else:
    ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=pad_id)
    mask = np.pad(mask, ((0, 0), (0, pad)))

  is_video = (ids == config.video_token_id) & mask
  vision, feature_index = None, None
  if pixel_values_videos is not None:
    if video_grid_thw is None:
      raise ValueError("pixel_values_videos given without video_grid_thw")
    merged = int(np.prod(np.asarray(video_grid_thw).reshape(-1, 3), axis=1).sum()) // config.vision.merge_unit
    if is_video.sum() != merged:
      raise ValueError(f"input_ids hold {int(is_video.sum())} video tokens but the videos give "
                       f"{merged} merged features")
    if per_example:
      vision, feature_index = per_example_layout(pixel_values_videos, video_grid_thw, is_video, config.vision)
    else:
      vision = vision_layout(pixel_values_videos, video_grid_thw, config.vision)
      feature_index = np.full(ids.shape, -1, np.int32)
      feature_index[is_video] = np.arange(int(is_video.sum()), dtype=np.int32)
  elif is_video.any():
    raise ValueError("input_ids contain video tokens but pixel_values_videos is None")

  position_ids, _ = rope_index(
      ids, video_grid_thw if vision is not None else None, second_per_grid_ts, mask,
      video_token_id=config.video_token_id, image_token_id=config.image_token_id,
      spatial_merge_size=config.vision.spatial_merge_size, tokens_per_second=config.vision.tokens_per_second)
  # The first generated token follows the last prompt token (HF 5.x generate: last position + 1,
  # as in a full forward over prompt + answer). Not max position + 1 (= length + rope delta):
  # text after a video resumes at start + max(h, w) / merge, below the video's last temporal position.
  last = np.where(mask.any(-1), mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=-1), 0)
  next_position = np.where(mask.any(-1), position_ids[:, np.arange(batch), last].max(0) + 1, 0).astype(np.int32)
  return PreparedBatch(ids.astype(np.int32), mask, position_ids, next_position, vision, feature_index)
