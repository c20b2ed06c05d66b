"""Qwen2 decoder LLM: GQA with q/k/v bias, multimodal RoPE, RMSNorm, SwiGLU, static KV cache.

The cache is a fixed-size [B, max_len, K, H] buffer per layer written with
`dynamic_update_slice`, so prefill, one-token decode and the latent steps
of `rollout.py` are each one compiled program regardless of position.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from vlatent_jax.models.config import LLMConfig
from vlatent_jax.models.layers import GatedMLP, RMSNorm, attention, linear, rotate_half
from vlatent_jax.models.rope import mrope_cos_sin
from vlatent_jax.sharding import constrain


def causal_mask(key_valid: jax.Array, query_start, num_queries: int) -> jax.Array:
  """[B,S] valid keys -> [B,T,S]: query i (at absolute index query_start + i) sees valid keys <= it."""
  q = query_start + jnp.arange(num_queries)[:, None]
  k = jnp.arange(key_valid.shape[1])[None, :]
  return key_valid[:, None, :] & (k <= q)[None]


def text_positions(start: jax.Array, length: int) -> jax.Array:
  """[B] first positions -> [3,B,length] text positions (equal on the three mrope axes)."""
  pos = start[:, None] + jnp.arange(length)[None, :]
  return jnp.broadcast_to(pos[None], (3,) + pos.shape)


class KVCache(NamedTuple):
  keys: tuple[jax.Array, ...]    # per layer [B, max_len, K, H]
  values: tuple[jax.Array, ...]

  @classmethod
  def empty(cls, config: LLMConfig, batch: int, max_len: int, dtype) -> "KVCache":
    shape = (batch, max_len, config.num_key_value_heads, config.head_dim)
    zeros = tuple(jnp.zeros(shape, dtype) for _ in range(config.num_hidden_layers))
    return cls(zeros, zeros)


class Attention(nnx.Module):

  def __init__(self, rngs, config: LLMConfig, dtype, param_dtype):
    d, h = config.hidden_size, config.head_dim
    self.q_proj = linear(rngs, d, config.num_attention_heads * h, bias=True, dtype=dtype, param_dtype=param_dtype)
    self.k_proj = linear(rngs, d, config.num_key_value_heads * h, bias=True, dtype=dtype, param_dtype=param_dtype)
    self.v_proj = linear(rngs, d, config.num_key_value_heads * h, bias=True, dtype=dtype, param_dtype=param_dtype)
    self.o_proj = linear(rngs, config.num_attention_heads * h, d, bias=False, dtype=dtype, param_dtype=param_dtype)
    self.head_dim = h

  def __call__(self, x, cos, sin, mask, cache_kv=None, cache_index=None, return_weights=False):
    b, t, _ = x.shape
    q = self.q_proj(x).reshape(b, t, -1, self.head_dim)
    k = self.k_proj(x).reshape(b, t, -1, self.head_dim)
    v = self.v_proj(x).reshape(b, t, -1, self.head_dim)
    c, s = cos[:, :, None, :], sin[:, :, None, :]
    q = q * c + rotate_half(q) * s
    k = k * c + rotate_half(k) * s
    if cache_kv is not None:
      ck, cv = cache_kv
      k = jax.lax.dynamic_update_slice_in_dim(ck, k.astype(ck.dtype), cache_index, axis=1)
      v = jax.lax.dynamic_update_slice_in_dim(cv, v.astype(cv.dtype), cache_index, axis=1)
    out = attention(q, k.astype(q.dtype), v.astype(q.dtype), mask, return_weights)
    out, weights = out if return_weights else (out, None)
    return self.o_proj(out.reshape(b, t, -1)), (k, v), weights


class DecoderLayer(nnx.Module):

  def __init__(self, rngs, config: LLMConfig, dtype, param_dtype):
    self.input_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, param_dtype=param_dtype)
    self.self_attn = Attention(rngs, config, dtype, param_dtype)
    self.post_attention_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, param_dtype=param_dtype)
    self.mlp = GatedMLP(rngs, config.hidden_size, config.intermediate_size, act=config.hidden_act,
                        bias=False, dtype=dtype, param_dtype=param_dtype)

  def __call__(self, x, cos, sin, mask, cache_kv=None, cache_index=None, return_weights=False):
    h, kv, weights = self.self_attn(self.input_layernorm(x), cos, sin, mask, cache_kv, cache_index, return_weights)
    x = x + h
    return x + self.mlp(self.post_attention_layernorm(x)), kv, weights


class LanguageModel(nnx.Module):

  def __init__(self, config: LLMConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
    self.config = config
    self.dtype = dtype
    self.embed_tokens = nnx.Embed(config.vocab_size, config.hidden_size, dtype=dtype, param_dtype=param_dtype,
                                  embedding_init=nnx.initializers.normal(0.02), rngs=rngs)
    self.layers = nnx.List([DecoderLayer(rngs, config, dtype, param_dtype) for _ in range(config.num_hidden_layers)])
    self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, param_dtype=param_dtype)
    self.lm_head = (None if config.tie_word_embeddings else
                    linear(rngs, config.hidden_size, config.vocab_size, bias=False, dtype=dtype,
                           param_dtype=param_dtype))

  def embed(self, input_ids: jax.Array) -> jax.Array:
    return constrain(self.embed_tokens(input_ids), ("batch", "length", "embed"))

  def __call__(self, embeds, position_ids, mask, cache: KVCache | None = None, cache_index=None,
               return_weights: bool = False):
    """embeds [B,T,D], position_ids [3,B,T], mask [B,T,S] -> final-norm hidden [B,T,D], cache
    (+ with `return_weights`, each layer's attention probabilities [B,N,T,S], float32).

    Without a cache S == T; with one, the T new keys are written at `cache_index`
    and S is the cache length.
    """
    cfg = self.config
    cos, sin = mrope_cos_sin(position_ids, cfg.head_dim, cfg.rope_theta, cfg.mrope_section, self.dtype)
    x = constrain(embeds.astype(self.dtype), ("batch", "length", "embed"))
    keys, values, weights = [], [], []
    for i, layer in enumerate(self.layers):
      layer_cache = None if cache is None else (cache.keys[i], cache.values[i])
      x, (k, v), w = layer(x, cos, sin, mask, layer_cache, cache_index, return_weights)
      x = constrain(x, ("batch", "length", "embed"))
      keys.append(k)
      values.append(v)
      weights.append(w)
    new_cache = None if cache is None else KVCache(tuple(keys), tuple(values))
    if return_weights:
      return self.norm(x), new_cache, tuple(weights)
    return self.norm(x), new_cache

  def logits(self, hidden: jax.Array) -> jax.Array:
    if self.lm_head is None:
      return constrain(self.embed_tokens.attend(hidden), ("batch", "length", "vocab"))
    return constrain(self.lm_head(hidden), ("batch", "length", "vocab"))
