"""Public inference API: `load(path)` -> `Model` with `.logits()` and `.generate()`.

Inputs are named and laid out as Hugging Face's Qwen2.5-VL processor returns
them (numpy or anything array-like). Host-side preparation (rope index, vision
layout, bucketing to static shapes) is numpy; the model runs in two jitted
programs: a forward pass and a generate loop (prefill + `lax.scan` of one-token
decode steps over a static KV cache).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vlatent_jax import decoding
from vlatent_jax.models.config import LATENT_MODES, MODES, ModelConfig
from vlatent_jax.models.decoder import causal_mask
from vlatent_jax.models.rope import rope_index
from vlatent_jax.models.vision import VisionInputs, per_example_layout, vision_layout
from vlatent_jax.models.vlm import VideoLM

SEQ_BUCKET = 64
GENERATE_STATIC = ("max_new_tokens", "temperature", "top_p", "num_latents", "use_lim", "stop_early",
                   "min_new_tokens", "lim_attention")


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


def forward_hidden(module: VideoLM, batch: dict[str, Any]) -> jax.Array:
  mask = causal_mask(batch["attention_mask"], 0, batch["input_ids"].shape[1])
  hidden, _ = module(batch["input_ids"], batch["position_ids"], mask, batch.get("vision"),
                     batch.get("feature_index"))
  return hidden


class Model:
  """A loaded Qwen2.5-VL-architecture model with a numpy-in, numpy-out API."""

  def __init__(self, config: ModelConfig, params: dict, *, dtype=jnp.float32, source: str | None = None,
               meta: dict | None = None):
    self.config = config
    self.dtype = jnp.dtype(dtype)
    self.source = source
    self.meta = meta or {}
    abstract = nnx.eval_shape(lambda: VideoLM(config, rngs=nnx.Rngs(0), dtype=self.dtype, param_dtype=self.dtype))
    self.graphdef, state = nnx.split(abstract)
    params = jax.tree.map(lambda x: jnp.asarray(x, self.dtype), params)
    nnx.replace_by_pure_dict(state, params)
    self.state = state
    self._logits_fn = jax.jit(self._logits_impl)
    self._generate_fn = jax.jit(self._generate_impl, static_argnames=GENERATE_STATIC)

  @property
  def module(self) -> VideoLM:
    return nnx.merge(self.graphdef, self.state)

  def _logits_impl(self, state, batch):
    module = nnx.merge(self.graphdef, state)
    return module.llm.logits(forward_hidden(module, batch)).astype(jnp.float32)

  def _generate_impl(self, state, batch, rng, **options):
    module = nnx.merge(self.graphdef, state)
    pad_id = self.config.pad_token_id if self.config.pad_token_id is not None else (self.config.eos_token_ids or (0,))[0]
    return decoding.generate(module, batch, rng, eos_ids=self.config.eos_token_ids, pad_id=pad_id,
                             latent_end_id=self.config.latent_end_token_id, **options)

  @staticmethod
  def _device_batch(prepared: PreparedBatch) -> dict[str, Any]:
    batch = {k: v for k, v in dataclasses.asdict(prepared).items() if v is not None and k != "vision"}
    if prepared.vision is not None:
      batch["vision"] = prepared.vision
    return jax.tree.map(jnp.asarray, batch)

  def logits(self, input_ids, attention_mask=None, pixel_values_videos=None, video_grid_thw=None,
             second_per_grid_ts=None, **processor_extras) -> np.ndarray:
    """Logits [batch, seq, vocab] (float32 numpy), as HF's model(...).logits.

    `processor_extras` absorbs other processor outputs (e.g. mm_token_type_ids),
    which this model derives from input_ids.
    """
    seq = np.asarray(input_ids).shape[-1]
    prepared = prepare_batch(self.config, input_ids, attention_mask, pixel_values_videos, video_grid_thw,
                             second_per_grid_ts)
    out = self._logits_fn(self.state, self._device_batch(prepared))
    return np.asarray(out)[:, :seq]

  def generate(self, input_ids, attention_mask=None, pixel_values_videos=None, video_grid_thw=None,
               second_per_grid_ts=None, *, max_new_tokens: int = 32, temperature: float = 0.0,
               top_p: float = 1.0, seed: int = 0, mode: str | None = None, num_latents: int = 8,
               stop_early: bool = False, cot_tokens: int = 256, return_info: bool = False,
               lim_attention: bool = False, **processor_extras):
    """New token ids [batch, max_new_tokens] (numpy); after an end-of-sequence token rows hold the pad id.

    mode: "sft" (plain decoding; greedy equals HF's greedy `generate`), "videolatent" (K = `num_latents`
    latent steps through the latent injection module, then the answer), "continuous_thought" (latent
    steps feeding the hidden state back), or "cot" (explicit chain of thought: at least `cot_tokens`
    text tokens, then the answer; `max_new_tokens` counts beyond them). Default: "videolatent" for a
    model with a latent module, else "sft". With return_info, also returns {"latent_steps": [B]}, and with
    `lim_attention` (mode videolatent, one video per row) {"lim_attention": [B, K, T]}: each latent step's
    LIM attention summed over the video tokens of each temporal slice (mean over heads; NaN past a row's T).
    """
    mode = mode or ("videolatent" if self.config.latent is not None else "sft")
    if mode not in MODES:
      raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if max_new_tokens < 1:
      raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if not (0.0 < top_p <= 1.0) or temperature < 0:
      raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
    latent = mode in LATENT_MODES
    if latent:
      if self.config.latent_start_token_id is None or self.config.latent_end_token_id is None:
        raise ValueError(f"mode {mode!r} needs <|latent_start|>/<|latent_end|> in the model config")
      if mode == "videolatent" and self.config.latent is None:
        raise ValueError("mode 'videolatent' needs a model with a latent injection module (config.latent)")
      if num_latents < 1:
        raise ValueError(f"num_latents must be >= 1 for mode {mode!r}, got {num_latents}")
      input_ids, attention_mask = _append_token(input_ids, attention_mask, self.config.latent_start_token_id)
    prepared = prepare_batch(self.config, input_ids, attention_mask, pixel_values_videos, video_grid_thw,
                             second_per_grid_ts, left_align=True)
    cot = cot_tokens if mode == "cot" else 0
    lim_attention = bool(lim_attention and mode == "videolatent")
    out = self._generate_fn(
        self.state, self._device_batch(prepared), jax.random.key(seed), max_new_tokens=max_new_tokens + cot,
        temperature=float(temperature), top_p=float(top_p), num_latents=num_latents if latent else 0,
        use_lim=mode == "videolatent", stop_early=bool(stop_early and latent), min_new_tokens=cot,
        lim_attention=lim_attention)
    tokens, info = np.asarray(out[0]), {"latent_steps": np.asarray(out[1])}
    if lim_attention:
      info["lim_attention"] = _per_slice(np.asarray(out[2]), prepared, video_grid_thw, self.config)
    return (tokens, info) if return_info else tokens


def _per_slice(weights: np.ndarray, prepared: PreparedBatch, video_grid_thw, config: ModelConfig) -> np.ndarray:
  """[B, K, S] attention over prompt positions -> [B, K, T] summed over each temporal slice's video tokens."""
  grids = np.asarray(video_grid_thw, np.int64).reshape(-1, 3)
  is_video = prepared.input_ids == config.video_token_id
  if len(grids) != weights.shape[0]:
    raise ValueError("lim_attention needs exactly one video per row")
  out = np.full(weights.shape[:2] + (int(grids[:, 0].max()),), np.nan, np.float32)
  for b, (t, h, w) in enumerate(grids.tolist()):
    positions = np.flatnonzero(is_video[b])  # in (t, h, w) order, as rope_index lays them out
    out[b, :, :t] = weights[b][:, positions].reshape(weights.shape[1], t, -1).sum(-1)
  return out


def _append_token(input_ids, attention_mask, token: int):
  """Appends `token` after each row's last valid token."""
  ids = np.asarray(input_ids)
  mask = np.ones(ids.shape, bool) if attention_mask is None else np.asarray(attention_mask).astype(bool)
  ids = np.concatenate([ids, np.zeros_like(ids[:, :1])], 1)
  mask = np.concatenate([mask, np.zeros_like(mask[:, :1])], 1)
  for b in range(ids.shape[0]):
    last = np.nonzero(mask[b])[0]
    pos = last[-1] + 1 if len(last) else 0
    ids[b, pos + 1:] = ids[b, pos:-1].copy()
    mask[b, pos + 1:] = mask[b, pos:-1].copy()
    ids[b, pos], mask[b, pos] = token, True
  return ids, mask


def load(path: str, dtype=None) -> Model:
  """Loads an HF Qwen2.5-VL directory or a vlatent_jax checkpoint directory.

  dtype: compute and parameter dtype (e.g. jnp.bfloat16 or "float32"); default:
  the stored dtype.
  """
  from vlatent_jax.checkpoint import load_params  # local: keeps `import vlatent_jax` light

  config, params, meta = load_params(path)
  if dtype is None:
    dtype = next(iter(jax.tree.leaves(params))).dtype
  return Model(config, params, dtype=dtype, source=str(path), meta=meta)
