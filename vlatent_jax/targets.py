"""Latent alignment targets: visual evidence the model itself provides, no extra labels.

The video tokens (merged vision features) of an example are cut into K
temporal segments; target t_k is the stop-gradient pool of segment k:
  mean_pool       plain mean over the segment's tokens (default);
  attention_pool  weighted by how much the answer tokens attend to each video token in a
                  teacher-forced plain pass (last decoder layer, mean over heads and answer tokens);
  teacher         features of an external teacher, given by the data (`teacher_targets` [B,K,D]).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vlatent_jax.models.decoder import causal_mask, text_positions


def segment_weights(video_positions: np.ndarray, slice_ids: np.ndarray, num_slices: int, num_latents: int,
                    seq_len: int) -> np.ndarray:
  """Host: mean-pooling weights [K, seq_len] of one example.

  video_positions [M]: prompt positions of its video tokens; slice_ids [M]: temporal slice of each
  (0..num_slices-1, across all its videos in order). Latent k pools slices
  [floor(k T / K), max(floor((k+1) T / K), floor(k T / K) + 1)), so every latent has evidence even when K > T.
  """
  weights = np.zeros((num_latents, seq_len), np.float32)
  if num_slices == 0:
    return weights
  for k in range(num_latents):
    lo = (k * num_slices) // num_latents
    hi = max(((k + 1) * num_slices) // num_latents, lo + 1)
    chosen = video_positions[(slice_ids >= lo) & (slice_ids < hi)]
    weights[k, chosen] = 1.0 / len(chosen)
  return weights


def pooled_targets(weights: jax.Array, prompt_embeds: jax.Array) -> jax.Array:
  """weights [B,K,P] x prompt embeddings [B,P,D] -> stop-gradient targets [B,K,D]."""
  return jax.lax.stop_gradient(jnp.einsum("bkp,bpd->bkd", weights, prompt_embeds.astype(jnp.float32)))


def answer_attention(module, batch, prompt_embeds: jax.Array) -> jax.Array:
  """Attention of answer tokens over prompt positions in a teacher-forced plain pass: [B,P], stop-gradient.

  The plain pass is prompt + answer with no latents (what the SFT model would see); we read the
  last decoder layer's attention probabilities (the decoder's own, `return_weights`), averaged over
  heads and answer tokens.
  """
  return answer_pass(module, batch, prompt_embeds)[0]


def answer_pass(module, batch, prompt_embeds: jax.Array) -> tuple[jax.Array, jax.Array]:
  """`answer_attention` [B,P] and the same pass's final hidden states at the prompt positions [B,P,D], both
  stop-gradient (a LaViT teacher pools the second along the first)."""
  llm = module.llm
  p = prompt_embeds.shape[1]
  answer = batch["answer_ids"]
  embeds = jnp.concatenate([prompt_embeds, llm.embed(answer)], 1)
  positions = jnp.concatenate([batch["position_ids"], text_positions(batch["next_position"], answer.shape[1])], 2)
  key_valid = jnp.concatenate([batch["attention_mask"], batch["answer_mask"] > 0], 1)
  hidden, _, weights = llm(embeds, positions, causal_mask(key_valid, 0, embeds.shape[1]), return_weights="last")
  probs = weights[-1][:, :, p:, :p]  # answer queries over prompt keys [B,N,A,P]
  answer_w = (batch["answer_mask"] > 0).astype(jnp.float32)
  relevance = jnp.einsum("bnts,bt->bs", probs, answer_w) / jnp.maximum(answer_w.sum(-1, keepdims=True), 1.0)
  return jax.lax.stop_gradient(relevance / probs.shape[1]), jax.lax.stop_gradient(hidden[:, :p])


def attention_weighted(weights: jax.Array, relevance: jax.Array) -> jax.Array:
  """Reweights each segment's pooling weights by relevance [B,P] and renormalises per segment."""
  w = weights * relevance[:, None, :]
  total = jnp.sum(w, axis=-1, keepdims=True)
  return jnp.where(total > 0, w / jnp.maximum(total, 1e-20), weights)
