"""Jitted decoding over a static KV cache: plain, latent (VideoLatent / continuous thought) and CoT.

    prompt [<|latent_start|> z_1 .. z_K <|latent_end|>] answer ...

All modes are one program: prefill, an optional `lax.scan` of K latent steps
(each row may stop early when it predicts <|latent_end|>: its remaining latent
slots are masked out of the cache and its positions stop advancing), then a
`lax.scan` of one-token decode steps. Explicit chain of thought is plain
decoding that may not end before `min_new_tokens`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from vlatent_jax.models.decoder import KVCache, causal_mask, text_positions
from vlatent_jax.models.latent import inject, video_memory
from vlatent_jax.models.vlm import VideoLM


def sample_token(logits: jax.Array, rng: jax.Array, temperature: float, top_p: float) -> jax.Array:
  """Greedy when temperature == 0, else temperature + nucleus (top-p) sampling. logits [B,V]."""
  if temperature == 0.0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  logits = logits.astype(jnp.float32) / temperature
  if top_p < 1.0:
    sorted_logits = jnp.sort(logits, axis=-1)[:, ::-1]
    cum = jnp.cumsum(jax.nn.softmax(sorted_logits, axis=-1), axis=-1)
    # Keep the smallest prefix whose mass reaches top_p (always at least one token).
    cutoff_index = jnp.sum(cum < top_p, axis=-1, keepdims=True)
    cutoff = jnp.take_along_axis(sorted_logits, cutoff_index, axis=-1)
    logits = jnp.where(logits < cutoff, -jnp.inf, logits)
  return jax.random.categorical(rng, logits, axis=-1).astype(jnp.int32)


def generate(module: VideoLM, batch: dict[str, Any], rng: jax.Array, *, max_new_tokens: int, temperature: float,
             top_p: float, eos_ids: tuple[int, ...], pad_id: int, num_latents: int = 0, use_lim: bool = False,
             stop_early: bool = False, latent_end_id: int | None = None, min_new_tokens: int = 0,
             lim_attention: bool = False, answer_sees_video: bool = True):
  """Returns (new tokens [B, max_new_tokens], latent steps taken [B]); with `lim_attention` (videolatent)
  also the LIM's cross-attention of each latent step over the prompt positions [B, K, S], mean over heads.
  `answer_sees_video=False` (a model trained with sensory gating): after the latent steps, queries do not
  attend to the video tokens; the latent steps do."""
  llm = module.llm
  ids = batch["input_ids"]
  b, s = ids.shape
  k = num_latents
  start = s + (k + 1 if k else 0)
  max_len = start + max_new_tokens - 1
  cache = KVCache.empty(llm.config, b, max_len, llm.dtype)
  key_valid = jnp.zeros((b, max_len), bool).at[:, :s].set(batch["attention_mask"])
  embeds = module.embed_inputs(ids, batch.get("vision"), batch.get("feature_index"))
  hidden, cache = llm(embeds, batch["position_ids"], causal_mask(key_valid, 0, s), cache, 0)
  h = hidden[:, -1]
  next_position = batch["next_position"]
  steps = jnp.zeros((b,), jnp.int32)
  attention = jnp.zeros((b, k, s), jnp.float32)

  if k:
    feature_index = batch.get("feature_index")
    video_mask = jnp.zeros((b, s), bool) if feature_index is None else feature_index >= 0
    memory = video_memory(module, embeds, video_mask, use_lim)

    def latent_step(carry, i):
      h, cache, key_valid, active, steps = carry
      if lim_attention:
        z, weights = module.latent(h, memory, return_weights=True)
        weights = jnp.mean(weights, axis=1)
      else:
        z, weights = inject(module, h, memory), None
      index = s + i
      key_valid = key_valid.at[:, index].set(active)
      out, cache = llm(z[:, None].astype(llm.dtype), text_positions(next_position + steps, 1),
                       causal_mask(key_valid, index, 1), cache, index)
      h = jnp.where(active[:, None], out[:, 0], h)
      steps = steps + active.astype(jnp.int32)
      if stop_early:
        active = active & (jnp.argmax(llm.logits(h), axis=-1) != latent_end_id)
      return (h, cache, key_valid, active, steps), weights

    carry = (h, cache, key_valid, jnp.ones((b,), bool), steps)
    (h, cache, key_valid, _, steps), weights = jax.lax.scan(latent_step, carry, jnp.arange(k))
    if lim_attention:
      attention = jnp.swapaxes(weights, 0, 1)
    index = s + k
    if not answer_sees_video:  # from here on, only the text and the latents are visible
      key_valid = key_valid.at[:, :s].set(key_valid[:, :s] & ~video_mask)
    key_valid = key_valid.at[:, index].set(True)
    end = jnp.full((b, 1), latent_end_id, jnp.int32)
    out, cache = llm(llm.embed(end), text_positions(next_position + steps, 1), causal_mask(key_valid, index, 1),
                     cache, index)
    h = out[:, 0]
    next_position = next_position + steps + 1

  eos = jnp.asarray(eos_ids if eos_ids else (-1,), jnp.int32)

  def next_token(hidden, i, rng):
    logits = llm.logits(hidden).astype(jnp.float32)
    if min_new_tokens:
      blocked = jnp.zeros((logits.shape[-1],), bool).at[eos].set(eos_ids != ())
      logits = jnp.where((i < min_new_tokens) & blocked, -jnp.inf, logits)
    return sample_token(logits, rng, temperature, top_p)

  def split(rng):
    # Greedy decoding draws nothing: skip the per-step threefry work.
    return (rng, rng) if temperature == 0.0 else tuple(jax.random.split(rng))

  rng, step_rng = split(rng)
  first = next_token(h, 0, step_rng)

  def decode_step(carry, i):
    token, cache, key_valid, done, rng = carry
    index = start + i
    key_valid = key_valid.at[:, index].set(True)
    out, cache = llm(llm.embed(token[:, None]), text_positions(next_position + i, 1),
                     causal_mask(key_valid, index, 1), cache, index)
    rng, step_rng = split(rng)
    nxt = next_token(out[:, -1], i + 1, step_rng)
    done = done | jnp.isin(token, eos)
    nxt = jnp.where(done, pad_id, nxt)
    return (nxt, cache, key_valid, done, rng), nxt

  carry = (first, cache, key_valid, jnp.zeros((b,), bool), rng)
  _, rest = jax.lax.scan(decode_step, carry, jnp.arange(max_new_tokens - 1))
  tokens = jnp.concatenate([first[:, None], rest.T], axis=1)
  return (tokens, steps, attention) if lim_attention else (tokens, steps)
