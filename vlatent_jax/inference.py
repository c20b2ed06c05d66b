"""Public inference API: `load(path)` -> `Model` with `.logits()` and `.generate()`.

Inputs are named and laid out as Hugging Face's Qwen2.5-VL processor returns
them (numpy or anything array-like). Host-side preparation (rope index, vision
layout, bucketing to static shapes: `models.inputs.prepare_batch`) is numpy; the model runs in two jitted
programs: a forward pass and a generate loop (prefill + `lax.scan` of one-token
decode steps over a static KV cache).

With a `mesh` (`sharding.make_mesh`) the parameters are stored split by the logical axis rules (FSDP over
`fsdp`, tensor parallel over `tensor`) and all-gathered per program for compute, and each batch is split
over the batch axes (data x fsdp), so a model larger than one chip's memory still evaluates.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vlatent_jax import decoding, sharding
from vlatent_jax.models.config import LATENT_MODES, MODES, ExecutionConfig, ModelConfig
from vlatent_jax.models.decoder import causal_mask
from vlatent_jax.models.inputs import PreparedBatch, prepare_batch
from vlatent_jax.models.stacking import stack_layers, unstack_layers
from vlatent_jax.models.vlm import VideoLM

GENERATE_STATIC = ("max_new_tokens", "temperature", "top_p", "num_latents", "use_lim", "stop_early",
                   "answer_sees_video", "min_new_tokens", "lim_attention")


def forward_hidden(module: VideoLM, batch: dict[str, Any]) -> jax.Array:
  mask = causal_mask(batch["attention_mask"], 0, batch["input_ids"].shape[1])
  hidden, _ = module(batch["input_ids"], batch["position_ids"], mask, batch.get("vision"),
                     batch.get("feature_index"))
  return hidden


class Model:
  """A loaded Qwen2.5-VL-architecture model with a numpy-in, numpy-out API.

  params: a pure dict in either layer layout (per-layer as checkpoints hold it, or stacked); it is laid out
  as `execution.scan_layers` needs. mesh: a `sharding.make_mesh` mesh; each parameter goes from host straight
  into its shards (never whole on one device) and batches are split over the batch mesh axes.
  """

  def __init__(self, config: ModelConfig, params: dict, *, dtype=jnp.float32, source: str | None = None,
               meta: dict | None = None, mesh: jax.sharding.Mesh | None = None,
               execution: ExecutionConfig | None = None):
    self.config = config
    self.dtype = jnp.dtype(dtype)
    self.source = source
    self.meta = meta or {}
    self.mesh = mesh
    self.execution = execution or ExecutionConfig()
    abstract = nnx.eval_shape(lambda: VideoLM(config, rngs=nnx.Rngs(0), dtype=self.dtype, param_dtype=self.dtype,
                                              execution=self.execution))
    self.graphdef, state = nnx.split(abstract)
    params = stack_layers(params) if self.execution.scan_layers else unstack_layers(params)
    if mesh is None:
      nnx.replace_by_pure_dict(state, jax.tree.map(lambda x: jnp.asarray(x, self.dtype), params))
    else:
      shardings = sharding.param_shardings(state, mesh)  # from the abstract shapes, before the arrays exist
      nnx.replace_by_pure_dict(state, params)
      # device_put of a host array to a NamedSharding copies each device only its own slice.
      state = jax.tree.map(lambda x, s: jax.device_put(np.asarray(x, self.dtype), s), state, shardings)
    self.state = state
    self._logits_fn = jax.jit(self._logits_impl)
    self._generate_fn = jax.jit(self._generate_impl, static_argnames=GENERATE_STATIC)

  @property
  def module(self) -> VideoLM:
    return nnx.merge(self.graphdef, self.state)

  @property
  def batch_multiple(self) -> int:
    """Rows per batch must be a multiple of this (the batch mesh axes' size); batches are padded to it."""
    if self.mesh is None:
      return 1
    axes = dict(sharding.DEFAULT_RULES)["batch"]
    return math.prod(self.mesh.shape[a] for a in axes)

  def _compute_module(self, state) -> VideoLM:
    # Inside jit under mesh_context: FSDP-split weights are all-gathered for compute (a no-op without a mesh).
    return nnx.merge(self.graphdef, sharding.gather_params(state))

  def _logits_impl(self, state, batch):
    with sharding.mesh_context(self.mesh):
      module = self._compute_module(state)
      return module.llm.logits(forward_hidden(module, batch)).astype(jnp.float32)

  def _generate_impl(self, state, batch, rng, **options):
    pad_id = self.config.pad_token_id if self.config.pad_token_id is not None else (self.config.eos_token_ids or (0,))[0]
    with sharding.mesh_context(self.mesh):
      return decoding.generate(self._compute_module(state), batch, rng, eos_ids=self.config.eos_token_ids,
                               pad_id=pad_id, latent_end_id=self.config.latent_end_token_id, **options)

  def _prepare(self, *args, **kwargs) -> PreparedBatch:
    # Split over devices, each row needs its own videos (per-example layout); packed is leaner on one device.
    return prepare_batch(self.config, *args, **kwargs, per_example=self.mesh is not None)

  def _device_batch(self, prepared: PreparedBatch) -> dict[str, Any]:
    batch = {k: v for k, v in dataclasses.asdict(prepared).items() if v is not None and k != "vision"}
    if prepared.vision is not None:
      batch["vision"] = prepared.vision
    if self.mesh is None:
      return jax.tree.map(jnp.asarray, batch)
    # device_put, not shard_batch: every process holds the whole batch here, not its own share of it.
    batch = _pad_rows(batch, self.batch_multiple)
    return jax.device_put(batch, sharding.batch_shardings(batch, self.mesh))

  def logits(self, input_ids, attention_mask=None, pixel_values_videos=None, video_grid_thw=None,
             second_per_grid_ts=None, **processor_extras) -> np.ndarray:
    """Logits [batch, seq, vocab] (float32 numpy), as HF's model(...).logits.

    `processor_extras` absorbs other processor outputs (e.g. mm_token_type_ids),
    which this model derives from input_ids.
    """
    rows, seq = np.asarray(input_ids).shape[0], np.asarray(input_ids).shape[-1]
    prepared = self._prepare(input_ids, attention_mask, pixel_values_videos, video_grid_thw, second_per_grid_ts)
    out = self._logits_fn(self.state, self._device_batch(prepared))
    return np.asarray(out)[:rows, :seq]  # padding rows (mesh) and positions (bucket) dropped

  def generate(self, input_ids, attention_mask=None, pixel_values_videos=None, video_grid_thw=None,
               second_per_grid_ts=None, *, max_new_tokens: int = 32, temperature: float = 0.0,
               top_p: float = 1.0, seed: int = 0, mode: str | None = None, num_latents: int = 8,
               stop_early: bool = False, cot_tokens: int = 256, return_info: bool = False,
               lim_attention: bool = False, answer_sees_video: bool = True, **processor_extras):
    """New token ids [batch, max_new_tokens] (numpy); after an end-of-sequence token rows hold the pad id.

    mode: "sft" (plain decoding; greedy equals HF's greedy `generate`), "videolatent" (K = `num_latents`
    latent steps through the latent injection module, then the answer), "continuous_thought" (latent
    steps feeding the hidden state back), or "cot" (explicit chain of thought: at least `cot_tokens`
    text tokens, then the answer; `max_new_tokens` counts beyond them). Default: "videolatent" for a
    model with a latent module, else "sft". With return_info, also returns {"latent_steps": [B]}, and with
    `lim_attention` (mode videolatent, one video per row) {"lim_attention": [B, K, T]}: each latent step's
    LIM attention summed over the video tokens of each temporal slice (mean over heads; NaN past a row's T).
    `answer_sees_video=False` (latent modes): the answer does not attend to the video tokens, only the latent
    steps do, as a model trained with `latent.sensory_gating` learned to answer.
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
    prepared = self._prepare(input_ids, attention_mask, pixel_values_videos, video_grid_thw, second_per_grid_ts,
                             left_align=True)
    rows = prepared.input_ids.shape[0]
    cot = cot_tokens if mode == "cot" else 0
    lim_attention = bool(lim_attention and mode == "videolatent")
    out = self._generate_fn(
        self.state, self._device_batch(prepared), jax.random.key(seed), max_new_tokens=max_new_tokens + cot,
        temperature=float(temperature), top_p=float(top_p), num_latents=num_latents if latent else 0,
        use_lim=mode == "videolatent", stop_early=bool(stop_early and latent), min_new_tokens=cot,
        lim_attention=lim_attention, answer_sees_video=bool(answer_sees_video or not latent))
    tokens, info = np.asarray(out[0])[:rows], {"latent_steps": np.asarray(out[1])[:rows]}
    if lim_attention:
      info["lim_attention"] = _per_slice(np.asarray(out[2])[:rows], prepared, video_grid_thw, self.config)
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


def _pad_rows(batch: dict[str, Any], multiple: int) -> dict[str, Any]:
  """Repeats the last row until the rows are a multiple of `multiple` (copies of a real row: an all-padding
  row would attend to nothing). The batch dim of each key is where `sharding.BATCH_AXES` puts it."""
  rows = batch["input_ids"].shape[0]
  extra = -rows % multiple
  if not extra:
    return batch

  def pad(path, x):
    axis = sharding.logical_axes(sharding.path_string(path), sharding.BATCH_AXES).index("batch")
    last = np.take(np.asarray(x), [rows - 1] * extra, axis=axis)
    return np.concatenate([np.asarray(x), last], axis=axis)

  return jax.tree_util.tree_map_with_path(pad, batch)


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


def load(path: str, dtype=None, *, mesh: jax.sharding.Mesh | None = None,
         execution: ExecutionConfig | None = None) -> Model:
  """Loads an HF Qwen2.5-VL directory or a vlatent_jax checkpoint directory.

  dtype: compute and parameter dtype (e.g. jnp.bfloat16 or "float32"); default:
  the stored dtype. mesh, execution: see `Model`.
  """
  from vlatent_jax.checkpoint import load_params  # local: keeps `import vlatent_jax` light

  config, params, meta = load_params(path)
  if dtype is None:
    dtype = next(iter(jax.tree.leaves(params))).dtype
  return Model(config, params, dtype=dtype, source=str(path), meta=meta, mesh=mesh, execution=execution)
