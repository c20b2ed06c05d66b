"""Qwen2.5-VL vision tower: 3D patch embedding, 2D rotary, window attention, 2x2 merger.

HF packs all patches of all videos into one sequence and permutes it so that
windows are contiguous. Every attention in this tower (window or "full") stays
inside one temporal slice of one video, so we lay patches out as
[slices, patches_per_slice] instead, padded to static bucket sizes: inside a
slice window after window, each window padded to its full size
(`VisionConfig.window_patches` slots, 2x2 units row by row, 4 patches each).
Window blocks then attend within [slices * windows, window_patches] (windows
as a batch axis: a window's cost, not a slice's), full blocks within the
slice; padding is masked. Attention is permutation equivariant and the
merger acts on whole 2x2 units, so the result equals HF's while jit compiles
one program per bucket rather than one per video size.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vlatent_jax.models.config import ExecutionConfig, VisionConfig
from vlatent_jax.models.layers import (ACT_FNS, GatedMLP, RMSNorm, attention, linear, per_layer_compute, remat,
                                      rotate_half, scan_layers, stacked)
from vlatent_jax.sharding import constrain


class VisionInputs(NamedTuple):
  """Static-shape vision batch in one of two layouts.

  packed (inference): slices F of all videos of the batch, `merged_index` maps HF-order merged token m
    to its row of the flat [F*P/4] merger output.
  per example (training, `per_example_layout`): a leading batch dim [B, S, ...] so the batch can be
    split over hosts and devices; `merged_index` is None and `feature_index` addresses each example's
    own [S*P/4] merger output.
  """
  patches: jax.Array     # [(B,) F, P, patch_dim] float
  positions: jax.Array   # [(B,) F, P, 2] int32 (row, col) of each patch
  window_ids: jax.Array  # [(B,) F, P] int32 window of each patch within its slice, -1 for padding
  merged_index: jax.Array | None = None  # packed layout: [M] int32


def _round_up(n: int, multiple: int) -> int:
  return max(multiple, -(-n // multiple) * multiple)


def _bucket(n: int, minimum: int) -> int:
  """Next power of two >= n (at least `minimum`), so jit sees few distinct shapes."""
  return max(minimum, 1 << max(0, int(n - 1).bit_length()))


def slice_bucket(n: int, window_patches: int = 1) -> int:
  """Patch slots per slice for `n` needed: a power of two up to 64 (small frames, e.g. 56 px = 16 patches),
  then multiples of 64, rounded up to whole windows, so padding stays small while jit sees few shapes."""
  return _round_up(_bucket(n, 16) if n <= 64 else _round_up(n, 64), window_patches)


def _slot_of_patch(h: int, w: int, config: VisionConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """For one [h, w] patch grid in HF's order (2x2 units row by row, 4 patches each): each patch's slot in
  the window-major slice layout, its (row, col), and the slot count (whole windows)."""
  m, wm = config.spatial_merge_size, config.window_merged
  lh, lw = h // m, w // m
  uy, ux, i, j = np.meshgrid(np.arange(lh), np.arange(lw), np.arange(m), np.arange(m), indexing="ij")
  windows_w = -(-lw // wm)
  window = (uy // wm) * windows_w + ux // wm
  unit_slot = window * wm * wm + (uy % wm) * wm + ux % wm  # partial edge windows leave padded slots
  slot = (unit_slot * m + i) * m + j
  pos = np.stack([(uy * m + i).ravel(), (ux * m + j).ravel()], axis=-1)
  return slot.ravel(), pos, -(-lh // wm) * windows_w * config.window_patches


def vision_layout(pixel_values_videos, video_grid_thw, config: VisionConfig,
                  num_slices: int | None = None, slice_len: int | None = None) -> VisionInputs:
  """Host-side: HF's packed `pixel_values_videos` + `video_grid_thw` -> padded VisionInputs."""
  pixels = np.asarray(pixel_values_videos)
  grid = np.asarray(video_grid_thw, dtype=np.int64).reshape(-1, 3)
  if pixels.ndim != 2 or pixels.shape[1] != config.patch_dim:
    raise ValueError(f"pixel_values_videos must be [num_patches, {config.patch_dim}], got {pixels.shape}")
  m = config.spatial_merge_size
  if np.any(grid[:, 1:] % m) or np.any(grid <= 0):
    raise ValueError(f"video_grid_thw rows must be positive with h, w divisible by {m}, got {grid.tolist()}")
  total = int(np.prod(grid, axis=1).sum())
  if total != pixels.shape[0]:
    raise ValueError(f"video_grid_thw {grid.tolist()} describes {total} patches but "
                     f"pixel_values_videos has {pixels.shape[0]}")

  layouts = {(h, w): _slot_of_patch(h, w, config) for h, w in {(int(h), int(w)) for _, h, w in grid}}
  n_slices = int(grid[:, 0].sum())
  needed = max(slots for _, _, slots in layouts.values())
  num_slices = num_slices or _bucket(n_slices, 1)
  slice_len = slice_len or slice_bucket(needed, config.window_patches)
  if num_slices < n_slices or slice_len < needed or slice_len % config.window_patches:
    raise ValueError(f"bucket ({num_slices}, {slice_len}) cannot hold {n_slices} slices of {needed} patch slots "
                     f"in whole windows of {config.window_patches}")

  patches = np.zeros((num_slices, slice_len, pixels.shape[1]), pixels.dtype)
  positions = np.zeros((num_slices, slice_len, 2), np.int32)
  window_ids = np.full((num_slices, slice_len), -1, np.int32)
  merged_index = []
  offset, row = 0, 0
  for t, h, w in grid.tolist():
    slot, pos, _ = layouts[(h, w)]
    for _ in range(t):
      patches[row, slot] = pixels[offset:offset + h * w]
      positions[row, slot] = pos
      window_ids[row, slot] = slot // config.window_patches
      # HF's merged token order is its 2x2 units row by row, i.e. every 4th patch in pixel order.
      merged_index.append(row * (slice_len // config.merge_unit) + slot[::config.merge_unit] // config.merge_unit)
      offset += h * w
      row += 1
  return VisionInputs(patches, positions, window_ids, np.concatenate(merged_index).astype(np.int32))


def per_example_layout(pixel_values_videos, video_grid_thw, is_video, config: VisionConfig,
                       num_slices: int | None = None, slice_len: int | None = None):
  """Host-side: packed videos + the [B, T] video-token mask -> (per-example VisionInputs, feature_index).

  Videos belong to rows in order, each row taking as many as its video tokens account for.
  feature_index [B, T] maps each video-token position to a row of that example's merger output; -1 elsewhere.
  """
  pixels = np.asarray(pixel_values_videos)
  grid = np.asarray(video_grid_thw, dtype=np.int64).reshape(-1, 3)
  is_video = np.asarray(is_video, bool)
  merged_per_video = (np.prod(grid, axis=1) // config.merge_unit).tolist()
  patch_offsets = np.concatenate([[0], np.cumsum(np.prod(grid, axis=1))])
  rows, v = [], 0
  for b in range(is_video.shape[0]):
    need, start = int(is_video[b].sum()), v
    while need > 0 and v < len(grid):
      need -= merged_per_video[v]
      v += 1
    if need != 0:
      raise ValueError(f"row {b}: its video tokens do not match whole videos of video_grid_thw {grid.tolist()}")
    rows.append((start, v))
  if v != len(grid):
    raise ValueError(f"video_grid_thw holds {len(grid)} videos but input_ids only place {v}")
  slices = [int(grid[a:z, 0].sum()) for a, z in rows]
  slots = [_slot_of_patch(int(h), int(w), config)[2] for _, h, w in grid]
  num_slices = num_slices or _bucket(max(slices), 1)
  slice_len = slice_len or slice_bucket(max(slots, default=1), config.window_patches)
  batch = is_video.shape[0]
  patches = np.zeros((batch, num_slices, slice_len, pixels.shape[1]), pixels.dtype)
  positions = np.zeros((batch, num_slices, slice_len, 2), np.int32)
  window_ids = np.full((batch, num_slices, slice_len), -1, np.int32)
  feature_index = np.full(is_video.shape, -1, np.int32)
  for b, (a, z) in enumerate(rows):
    if z == a:
      continue
    one = vision_layout(pixels[patch_offsets[a]:patch_offsets[z]], grid[a:z], config, num_slices, slice_len)
    patches[b], positions[b], window_ids[b] = one.patches, one.positions, one.window_ids
    feature_index[b, is_video[b]] = one.merged_index
  return VisionInputs(patches, positions, window_ids), feature_index


def vision_rotary(positions: jax.Array, head_dim: int, theta: float):
  """2D axial rotary: half the frequencies rotate by row, half by column."""
  spatial = head_dim // 2
  inv_freq = 1.0 / (theta ** (jnp.arange(0, spatial, 2, dtype=jnp.float32) / spatial))
  freqs = positions.astype(jnp.float32)[..., None] * inv_freq  # [F,P,2,H/4]
  freqs = jnp.concatenate([freqs[..., 0, :], freqs[..., 1, :]], axis=-1)
  freqs = jnp.concatenate([freqs, freqs], axis=-1)
  return jnp.cos(freqs), jnp.sin(freqs)


class VisionAttention(nnx.Module):

  def __init__(self, rngs, config: VisionConfig, dtype, param_dtype, attention_impl: str = "einsum"):
    d = config.hidden_size
    kw = dict(bias=True, init_std=config.initializer_range, dtype=dtype, param_dtype=param_dtype)
    self.qkv = linear(rngs, d, 3 * d, **kw)
    self.proj = linear(rngs, d, d, **kw)
    self.num_heads = config.num_heads
    self.attention_impl = attention_impl

  def __call__(self, x, cos, sin, valid, window: int):
    """x [F,P,D], valid [F,P] real patches; window > 0: attend within consecutive groups of `window`
    patches (the layout's windows, as a batch axis), 0: within the whole slice."""
    f, p, d = x.shape
    q, k, v = jnp.moveaxis(self.qkv(x).reshape(f, p, 3, self.num_heads, -1), 2, 0)
    # Rotary in float32, cast back (HF apply_rotary_pos_emb_vision).
    c, s = cos[:, :, None, :], sin[:, :, None, :]
    q = (q.astype(jnp.float32) * c + rotate_half(q.astype(jnp.float32)) * s).astype(x.dtype)
    k = (k.astype(jnp.float32) * c + rotate_half(k.astype(jnp.float32)) * s).astype(x.dtype)
    if window:
      q, k, v = (a.reshape(f * p // window, window, *a.shape[2:]) for a in (q, k, v))
      valid = valid.reshape(f * p // window, window)
    out = attention(q, k, v, valid[:, None, :], impl=self.attention_impl)
    return self.proj(out.reshape(f, p, d))


class VisionBlock(nnx.Module):

  def __init__(self, rngs, config: VisionConfig, dtype, param_dtype, attention_impl: str = "einsum"):
    self.norm1 = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, param_dtype=param_dtype)
    self.norm2 = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, param_dtype=param_dtype)
    self.attn = VisionAttention(rngs, config, dtype, param_dtype, attention_impl)
    self.mlp = GatedMLP(rngs, config.hidden_size, config.intermediate_size, act=config.hidden_act,
                        bias=True, init_std=config.initializer_range, dtype=dtype, param_dtype=param_dtype)

  def __call__(self, x, cos, sin, valid, window: int):
    x = x + self.attn(self.norm1(x), cos, sin, valid, window)
    return x + self.mlp(self.norm2(x))


class PatchMerger(nnx.Module):
  """RMSNorm, then each 2x2 unit (4 consecutive patches) -> MLP -> one LLM token."""

  def __init__(self, rngs, config: VisionConfig, dtype, param_dtype):
    d = config.hidden_size * config.merge_unit
    self.ln_q = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, param_dtype=param_dtype)
    kw = dict(bias=True, init_std=config.initializer_range, dtype=dtype, param_dtype=param_dtype)
    self.mlp_in = linear(rngs, d, d, **kw)
    self.mlp_out = linear(rngs, d, config.out_hidden_size, **kw)
    self.merge_unit = config.merge_unit

  def __call__(self, x):
    f, p, d = x.shape
    x = self.ln_q(x).reshape(f, p // self.merge_unit, d * self.merge_unit)
    return self.mlp_out(ACT_FNS["gelu"](self.mlp_in(x)))


class PatchEmbed(nnx.Module):
  """Conv3d with stride == kernel is a linear map of each flattened (C, T, P, P) patch."""

  def __init__(self, rngs, config: VisionConfig, dtype, param_dtype):
    self.proj = linear(rngs, config.patch_dim, config.hidden_size, bias=False,
                       init_std=config.initializer_range, dtype=dtype, param_dtype=param_dtype)

  def __call__(self, patches):
    return self.proj(patches)


class VisionTransformer(nnx.Module):

  def __init__(self, config: VisionConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32,
               execution: ExecutionConfig = ExecutionConfig()):
    self.config = config
    self.dtype = dtype
    self.execution = execution
    self.patch_embed = PatchEmbed(rngs, config, dtype, param_dtype)
    make = lambda: VisionBlock(rngs, config, dtype, param_dtype, execution.attention)
    n = config.depth
    self.blocks = stacked(make, n) if execution.scan_layers else nnx.List([make() for _ in range(n)])
    self.merger = PatchMerger(rngs, config, dtype, param_dtype)

  def __call__(self, inputs: VisionInputs) -> jax.Array:
    """Packed layout: merged video tokens [M, out_hidden_size] in HF order.
    Per-example layout: each example's merger output [B, S*P/4, out_hidden_size]."""
    if inputs.patches.ndim == 4:
      batch = inputs.patches.shape[0]
      flat = VisionInputs(*(x.reshape(-1, *x.shape[2:]) for x in inputs[:3]))
      merged = self._merged(flat)
      return merged.reshape(batch, -1, merged.shape[-1])
    merged = self._merged(inputs)
    return merged.reshape(-1, merged.shape[-1])[inputs.merged_index]

  def _merged(self, inputs: VisionInputs) -> jax.Array:
    """[F, P/4, out_hidden_size] merger output of every slice."""
    cfg = self.config
    x = constrain(self.patch_embed(inputs.patches.astype(self.dtype)), ("batch", "length", "embed"))  # F as batch
    cos, sin = vision_rotary(inputs.positions, cfg.head_dim, cfg.rope_theta)
    valid = inputs.window_ids >= 0
    window = cfg.window_patches
    full = np.isin(np.arange(cfg.depth), cfg.fullatt_block_indexes)

    def body(block, x, is_full):
      if isinstance(is_full, (bool, np.bool_)):  # the Python loop knows each block's kind
        x = block(x, cos, sin, valid, 0 if is_full else window)
      else:  # one scanned body serves both kinds
        x = jax.lax.cond(is_full, lambda x: block(x, cos, sin, valid, 0),
                         lambda x: block(x, cos, sin, valid, window), x)
      return constrain(x, ("batch", "length", "embed")), None

    if self.execution.scan_layers:
      x, _ = scan_layers(self.blocks, body, x, jnp.asarray(full), policy=self.execution.remat,
                         gather=per_layer_compute(self.dtype))
    else:
      for block, is_full in zip(self.blocks, full):
        graphdef, state = nnx.split(block)
        x, _ = remat(lambda st, x: body(nnx.merge(graphdef, st), x, is_full), self.execution.remat)(state, x)
    return self.merger(x)
