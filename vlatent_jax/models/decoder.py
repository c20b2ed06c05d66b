"""Qwen2 decoder LLM: GQA with q/k/v bias, multimodal RoPE, RMSNorm, SwiGLU, static KV cache.

The cache is a fixed-size [L, B, max_len, K, H] buffer written with
`dynamic_update_slice`, so prefill, one-token decode and the latent steps
of `rollout.py` are each one compiled program regardless of position.
With `ExecutionConfig.scan_layers` the layers are one module with stacked
parameters run by `lax.scan` (cache slices and per-layer weights are its
scanned inputs and outputs); otherwise a Python loop over layer modules.
Both compute the same function and share one on-disk checkpoint layout
(`models/stacking.py`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from vlatent_jax.models.config import ExecutionConfig, LLMConfig
from vlatent_jax.models.layers import (GatedMLP, RMSNorm, attention, layer_of, linear, per_layer_compute, remat,
                                      rotate_half, scan_layers, stacked)
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
  keys: jax.Array    # [L, B, max_len, K, H]
  values: jax.Array

  @classmethod
  def empty(cls, config: LLMConfig, batch: int, max_len: int, dtype) -> "KVCache":
    shape = (config.num_hidden_layers, batch, max_len, config.num_key_value_heads, config.head_dim)
    return cls(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))


class Attention(nnx.Module):

  def __init__(self, rngs, config: LLMConfig, dtype, param_dtype, attention_impl: str = "einsum"):
    d, h = config.hidden_size, config.head_dim
    kw = dict(init_std=config.initializer_range, dtype=dtype, param_dtype=param_dtype)
    self.q_proj = linear(rngs, d, config.num_attention_heads * h, bias=True, **kw)
    self.k_proj = linear(rngs, d, config.num_key_value_heads * h, bias=True, **kw)
    self.v_proj = linear(rngs, d, config.num_key_value_heads * h, bias=True, **kw)
    self.o_proj = linear(rngs, config.num_attention_heads * h, d, bias=False, **kw)
    self.head_dim = h
    self.attention_impl = attention_impl

  def __call__(self, x, cos, sin, mask, cache_kv=None, cache_index=None, return_weights=False, prefix_kv=None):
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
    prefix = None if prefix_kv is None else tuple(a.astype(q.dtype) for a in prefix_kv)
    out = attention(q, k.astype(q.dtype), v.astype(q.dtype), mask, return_weights, self.attention_impl, prefix)
    out, weights = out if return_weights else (out, None)
    return self.o_proj(out.reshape(b, t, -1)), (k, v), weights


class DecoderLayer(nnx.Module):

  def __init__(self, rngs, config: LLMConfig, dtype, param_dtype, attention_impl: str = "einsum"):
    self.input_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, param_dtype=param_dtype)
    self.self_attn = Attention(rngs, config, dtype, param_dtype, attention_impl)
    self.post_attention_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, param_dtype=param_dtype)
    self.mlp = GatedMLP(rngs, config.hidden_size, config.intermediate_size, act=config.hidden_act,
                        bias=False, init_std=config.initializer_range, dtype=dtype, param_dtype=param_dtype)

  def __call__(self, x, cos, sin, mask, cache_kv=None, cache_index=None, return_weights=False, prefix_kv=None):
    h, kv, weights = self.self_attn(self.input_layernorm(x), cos, sin, mask, cache_kv, cache_index, return_weights,
                                    prefix_kv)
    x = x + h
    return x + self.mlp(self.post_attention_layernorm(x)), kv, weights


class LanguageModel(nnx.Module):

  def __init__(self, config: LLMConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32,
               execution: ExecutionConfig = ExecutionConfig()):
    self.config = config
    self.dtype = dtype
    self.execution = execution
    self.embed_tokens = nnx.Embed(config.vocab_size, config.hidden_size, dtype=dtype, param_dtype=param_dtype,
                                  embedding_init=nnx.initializers.normal(config.initializer_range), rngs=rngs)
    make = lambda: DecoderLayer(rngs, config, dtype, param_dtype, execution.attention)
    n = config.num_hidden_layers
    self.layers = stacked(make, n) if execution.scan_layers else nnx.List([make() for _ in range(n)])
    self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps, param_dtype=param_dtype)
    self.lm_head = (None if config.tie_word_embeddings else
                    linear(rngs, config.hidden_size, config.vocab_size, bias=False,
                           init_std=config.initializer_range, dtype=dtype, param_dtype=param_dtype))

  def embed(self, input_ids: jax.Array) -> jax.Array:
    return constrain(self.embed_tokens(input_ids), ("batch", "length", "embed"))

  def __call__(self, embeds, position_ids, mask, cache: KVCache | None = None, cache_index=None,
               return_weights: bool | str = False, prefix: KVCache | None = None):
    """embeds [B,T,D], position_ids [3,B,T], mask [B,T,S] -> final-norm hidden [B,T,D], cache
    (+ with `return_weights`, attention probabilities [L,B,N,T,S], float32: of every layer, or with
    "last" of the last layer only, [1,B,N,T,S], so that no other layer's [T,S] scores are kept).

    Without a cache S == T; with one, the T new keys are written at `cache_index`
    and S is the cache length. A `prefix` cache (e.g. the prompt's, read by the latent steps) is attended
    in front of it and never written: the mask covers [prefix length + S], and so do the weights.
    """
    cfg = self.config
    cos, sin = mrope_cos_sin(position_ids, cfg.head_dim, cfg.rope_theta, cfg.mrope_section, self.dtype)
    x = constrain(embeds.astype(self.dtype), ("batch", "length", "embed"))
    n = cfg.num_hidden_layers
    weights_from = 0 if return_weights is True else n - 1 if return_weights == "last" else n

    def body(layer, x, layer_kv, with_weights):
      layer_cache, layer_prefix = layer_kv
      x, kv, w = layer(x, cos, sin, mask, layer_cache, cache_index, with_weights, layer_prefix)
      # Keys/values leave the layer only into a cache: as scan outputs they would be kept for every layer.
      return constrain(x, ("batch", "length", "embed")), (None if cache is None else kv, w)

    caches = (None if cache is None else (cache.keys, cache.values),
              None if prefix is None else (prefix.keys, prefix.values))
    policy, hook = self.execution.remat, per_layer_compute(self.dtype)
    if self.execution.scan_layers:
      # Layers [0, weights_from) scan without weights, the rest with them ("last": one layer outside).
      parts = []
      if weights_from > 0:
        x, out = scan_layers(self.layers, lambda l, x, c: body(l, x, c, False), x, caches, policy=policy,
                             gather=hook, stop=weights_from if weights_from < n else None)
        parts.append(out)
      if weights_from == 0:
        x, out = scan_layers(self.layers, lambda l, x, c: body(l, x, c, True), x, caches, policy=policy,
                             gather=hook)
        parts.append(out)
      elif weights_from < n:
        last = n - 1
        x, out = remat(lambda x, c: body(layer_of(self.layers, last, hook), x, c, True), policy)(
            x, jax.tree.map(lambda a: a[last], caches))
        parts.append(jax.tree.map(lambda a: a[None], out))
      kv, weights = (parts[0] if len(parts) == 1 else
                     (jax.tree.map(lambda a, b: jnp.concatenate([a, b]), parts[0][0], parts[1][0]), parts[1][1]))
    else:
      outs = []
      for i, layer in enumerate(self.layers):
        graphdef, state = nnx.split(layer)
        one = remat(lambda st, x, c, w=i >= weights_from: body(nnx.merge(graphdef, st), x, c, w), policy)
        x, out = one(state, x, jax.tree.map(lambda a, i=i: a[i], caches))
        outs.append(out)
      kv = jax.tree.map(lambda *xs: jnp.stack(xs), *(o[0] for o in outs))
      weights = jnp.stack([o[1] for o in outs[weights_from:]]) if weights_from < n else None
    new_cache = None if cache is None else KVCache(*kv)
    if return_weights:
      return self.norm(x), new_cache, weights
    return self.norm(x), new_cache

  def logits(self, hidden: jax.Array) -> jax.Array:
    if self.lm_head is None:
      return constrain(self.embed_tokens.attend(hidden), ("batch", "length", "vocab"))
    return constrain(self.lm_head(hidden), ("batch", "length", "vocab"))
