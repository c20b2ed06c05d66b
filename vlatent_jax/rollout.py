"""Latent self-forcing rollout: prefix pass -> K latent steps (lax.scan, KV cache) -> teacher-forced answer.

The latents are produced exactly as at inference, by the model's own
autoregressive rollout, and the whole function is differentiable:

    prompt ... <|latent_start|>   one prefill pass, hidden h_0 at the last position
    z_{k+1} = LIM(h_k)            K one-position decode steps inside `lax.scan`
                                  (continuous thought: z_{k+1} = h_k)
    [targets[:-1]]                one teacher-forced pass against the same cache

`targets` are what the model must predict after the rollout: for K > 0 they
start with <|latent_end|> (predicted from h_K, which lets inference stop
early on it), then the answer; for K = 0 (SFT) the answer alone, predicted
from the prompt's last hidden state. Positions continue the prompt's text
positions (mrope: all three axes advance together).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from vlatent_jax.models.decoder import KVCache, causal_mask, text_positions
from vlatent_jax.models.latent import inject, video_memory
from vlatent_jax.models.layers import remat
from vlatent_jax.models.vlm import VideoLM


class RolloutOutput(NamedTuple):
  logits: jax.Array         # [B,A,V] predictions of batch["targets"]
  latents: jax.Array        # [B,K,D] z_1..z_K, the injected latent embeddings
  prompt_embeds: jax.Array  # [B,P,D] prompt embeddings with video features in place
  video_attention: jax.Array | None = None  # [B,A] attention mass on video tokens behind each prediction
  lim_attention: jax.Array | None = None    # [B,K,P] each latent step's LIM attention over prompt positions


def _video_mass(weights, video_keys: jax.Array) -> jax.Array:
  """Per-layer probabilities [L,B,N,T,S] -> attention mass on video keys [B,T], mean over layers and heads."""
  return jnp.einsum("lbnts,bs->bt", weights, video_keys) / (weights.shape[0] * weights.shape[2])


def self_forcing_rollout(module: VideoLM, batch: dict[str, Any], *, num_latents: int, use_lim: bool,
                         grad_steps: int | None = None, attention_to_video: bool = False,
                         answer_sees_video: jax.Array | None = None, lim_attention: bool = False) -> RolloutOutput:
  """One differentiable rollout. `grad_steps` = m backpropagates through the last m latent steps only.

  batch["latent_mask"] [B,K] (default: all) marks the latent slots each example uses; an unused slot is
  left out of the cache and does not advance positions, so an example with k active slots computes
  exactly what a k-step rollout computes. `answer_sees_video` [B] bool (default: all) lets the answer tokens of
  an example attend to its video tokens; where False only the latent steps read the video (sensory gating).
  `attention_to_video` also returns, for every prediction, the
  attention mass its query puts on the video tokens (a diagnostic of how much answers use the video);
  `lim_attention` (with the LIM) each latent step's cross-attention over the prompt positions, mean over heads.
  """
  llm = module.llm
  ids, targets = batch["input_ids"], batch["targets"]
  b, p = ids.shape
  k_steps, a = num_latents, targets.shape[1]
  max_len = p + k_steps + a - 1
  active = batch.get("latent_mask")
  active = jnp.ones((b, k_steps), bool) if active is None else active.astype(bool)
  key_valid = jnp.ones((b, max_len), bool).at[:, :p].set(batch["attention_mask"]).at[:, p:p + k_steps].set(active)
  offsets = jnp.cumsum(active, axis=1) - active  # latent k's position offset: active slots before it

  embeds = module.embed_inputs(ids, batch.get("vision"), batch.get("feature_index"))
  feature_index = batch.get("feature_index")
  video_mask = jnp.zeros((b, p), bool) if feature_index is None else feature_index >= 0
  video_keys = jnp.zeros((b, max_len), jnp.float32).at[:, :p].set(video_mask)
  prefill = llm(embeds, batch["position_ids"], causal_mask(key_valid[:, :p], 0, p),
                KVCache.empty(llm.config, b, p, llm.dtype), 0, return_weights=attention_to_video)
  hidden, prompt_cache = prefill[:2]
  h = hidden[:, -1]
  memory = video_memory(module, embeds, video_mask, use_lim)

  # The latent steps read the prompt's cache as a loop constant and carry only their own K slots: a carried
  # full cache would be kept once per step for the backward pass.
  def step(carry, xs):
    h, cache = carry
    k, on, offset = xs
    weights = None
    if lim_attention:
      z, weights = module.latent(h, memory, return_weights=True)
      weights = jnp.mean(weights, axis=1)
    else:
      z = inject(module, h, memory)
    out, cache = llm(z[:, None], text_positions(batch["next_position"] + offset, 1),
                     causal_mask(key_valid[:, :p + k_steps], p + k, 1), cache, k, prefix=prompt_cache)
    return (jnp.where(on[:, None], out[:, 0], h), cache), (z, weights)

  step = remat(step, module.execution.remat, prevent_cse=False)

  def scan(carry, lo, hi):
    return jax.lax.scan(step, carry, (jnp.arange(lo, hi), active[:, lo:hi].T, offsets[:, lo:hi].T))

  m = k_steps if grad_steps is None else min(grad_steps, k_steps)
  cache = KVCache.empty(llm.config, b, k_steps, llm.dtype)
  if lim_attention and memory is None:
    raise ValueError("lim_attention needs the latent injection module (use_lim)")
  latents = []
  if k_steps - m > 0:
    (h, cache), early = scan((h, cache), 0, k_steps - m)
    # Cut the early steps out of the backward pass: their outputs and the cache slots they wrote.
    h, early = jax.lax.stop_gradient(h), jax.lax.stop_gradient(early)
    region = (jnp.arange(k_steps) < k_steps - m)[None, None, :, None, None]  # [L, B, K, kv heads, H]
    cache = jax.tree.map(lambda c: jnp.where(region, jax.lax.stop_gradient(c), c), cache)
    latents.append(early)
  if m > 0:
    (h, cache), late = scan((h, cache), k_steps - m, k_steps)
    latents.append(late)
  lim_weights = None
  if latents:
    latents, lim_weights = jax.tree.map(lambda *parts: jnp.concatenate(parts, axis=0), *latents)
  else:
    latents = jnp.zeros((0, b, hidden.shape[-1]), hidden.dtype)

  # Teacher-forced answer against the prompt's and the latents' keys; h (h_K, or the prompt's last state)
  # predicts targets[0].
  before = jax.tree.map(lambda x, y: jnp.concatenate([x, y], axis=2), prompt_cache, cache)
  answer_start = batch["next_position"] + jnp.sum(active, axis=1)
  answer_keys = key_valid
  if answer_sees_video is not None:
    answer_keys = key_valid & ~((video_keys > 0) & ~answer_sees_video[:, None])
  answer = llm(llm.embed(targets[:, :-1]), text_positions(answer_start, a - 1),
               causal_mask(answer_keys, p + k_steps, a - 1), KVCache.empty(llm.config, b, a - 1, llm.dtype), 0,
               return_weights=attention_to_video, prefix=before)
  answer_hidden = answer[0]
  logits = llm.logits(jnp.concatenate([h[:, None].astype(answer_hidden.dtype), answer_hidden], axis=1))
  attention = None
  if attention_to_video:  # targets[0] is predicted by the prompt's last query (for K > 0: <|latent_end|>, unused)
    attention = jnp.concatenate([_video_mass(prefill[2][:, :, :, -1:], video_keys[:, :p]),
                                 _video_mass(answer[2], video_keys)], axis=1)
  return RolloutOutput(logits, jnp.swapaxes(latents, 0, 1), embeds, attention,
                       None if lim_weights is None else jnp.swapaxes(lim_weights, 0, 1))
