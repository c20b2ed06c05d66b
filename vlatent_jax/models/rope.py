"""Multimodal RoPE: 3D position ids for text + video (host, numpy) and the rotation (jax).

`rope_index` ports Hugging Face's `Qwen2_5_VLModel.get_rope_index` (transformers
5.x) for text and video: text advances one position per token; a video block
gets temporal positions spaced by `tokens_per_second * second_per_grid_t`
and row/column positions on the merged grid; the text after it resumes at
start + max(h, w) / merge. It runs on the host because the layout depends on
the token values, and its output is a plain array input to the jitted model.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np


def rope_index(input_ids, video_grid_thw=None, second_per_grid_ts=None, attention_mask=None, *,
               video_token_id: int, image_token_id: int | None = None, spatial_merge_size: int = 2,
               tokens_per_second: float = 2.0):
  """Returns position_ids [3, B, S] int32 and rope_deltas [B] int32 (next position - length)."""
  input_ids = np.asarray(input_ids)
  batch, seq = input_ids.shape
  mask = np.ones_like(input_ids, bool) if attention_mask is None else np.asarray(attention_mask).astype(bool)
  if image_token_id is not None and np.any(input_ids[mask] == image_token_id):
    raise ValueError("image tokens are not supported; pass videos (single images as 2-frame videos)")
  grids = iter([] if video_grid_thw is None else np.asarray(video_grid_thw, np.int64).reshape(-1, 3).tolist())
  seconds = iter(np.ones(seq, np.float32) if second_per_grid_ts is None
                 else np.asarray(second_per_grid_ts, np.float32).reshape(-1))
  position_ids = np.zeros((3, batch, seq), np.int64)  # padding keeps position 0, as in HF
  deltas = np.zeros(batch, np.int64)
  for b in range(batch):
    is_video = input_ids[b][mask[b]] == video_token_id
    pieces, pos = [], 0
    for video, group in itertools.groupby(is_video):
      length = len(list(group))
      if not video:
        pieces.append(np.broadcast_to(np.arange(length) + pos, (3, length)))
        pos += length
        continue
      try:
        t, h, w = next(grids)
        interval = np.float32(tokens_per_second) * next(seconds)
      except StopIteration:
        raise ValueError(f"batch row {b}: more video token blocks than rows in video_grid_thw") from None
      lh, lw = h // spatial_merge_size, w // spatial_merge_size
      if t * lh * lw != length:
        raise ValueError(f"batch row {b}: a video block has {length} tokens but its grid {(t, h, w)} "
                         f"gives {t * lh * lw}")
      tt = (np.arange(t, dtype=np.float32) * interval).astype(np.int64)
      tt, hh, ww = np.meshgrid(tt, np.arange(lh), np.arange(lw), indexing="ij")
      pieces.append(np.stack([tt.ravel(), hh.ravel(), ww.ravel()]) + pos)
      pos += max(h, w) // spatial_merge_size
    positions = np.concatenate(pieces, axis=1) if pieces else np.zeros((3, 0), np.int64)
    position_ids[:, b, mask[b]] = positions
    deltas[b] = (positions.max() + 1 if positions.size else 0) - positions.shape[1]
  return position_ids.astype(np.int32), deltas.astype(np.int32)


def mrope_cos_sin(position_ids: jax.Array, head_dim: int, theta: float, mrope_section, dtype):
  """position_ids [3,B,S] -> cos, sin [B,S,head_dim]; frequency band i takes axis i % 3."""
  inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
  freqs = position_ids.astype(jnp.float32)[..., None] * inv_freq  # [3,B,S,H/2]
  bounds = np.cumsum((0,) + tuple(mrope_section))
  freqs = jnp.concatenate([freqs[i % 3, ..., lo:hi] for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))],
                          axis=-1)
  freqs = jnp.concatenate([freqs, freqs], axis=-1)
  return jnp.cos(freqs).astype(dtype), jnp.sin(freqs).astype(dtype)
