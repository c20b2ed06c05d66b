"""Layers shared by the vision tower and the decoder.

Einsum axis letters used in this package's model code:
  B batch, T query length, S key length, D model width, F mlp width,
  N query heads, K kv heads, G query heads per kv head, H head dim.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

ACT_FNS = {
    "silu": jax.nn.silu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
}

# Large finite negative for masked scores: fully masked (padding) rows then
# give a uniform softmax instead of NaN, and their outputs are discarded.
MASK_VALUE = -1e30


def linear(rngs: nnx.Rngs, d_in: int, d_out: int, *, bias: bool, dtype, param_dtype) -> nnx.Linear:
  return nnx.Linear(d_in, d_out, use_bias=bias, dtype=dtype, param_dtype=param_dtype,
                    kernel_init=nnx.initializers.normal(0.02), rngs=rngs)


class RMSNorm(nnx.Module):
  """RMSNorm computed in float32, scaled after casting back (as HF Qwen2 does)."""

  def __init__(self, dim: int, *, eps: float, param_dtype):
    self.weight = nnx.Param(jnp.ones((dim,), param_dtype))
    self.eps = eps

  def __call__(self, x: jax.Array) -> jax.Array:
    x32 = x.astype(jnp.float32)
    x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return self.weight[...] * x32.astype(x.dtype)


class GatedMLP(nnx.Module):
  """down(act(gate(x)) * up(x)); the vision tower uses biases, the decoder does not."""

  def __init__(self, rngs, d_model, d_ff, *, act: str, bias: bool, dtype, param_dtype):
    self.gate_proj = linear(rngs, d_model, d_ff, bias=bias, dtype=dtype, param_dtype=param_dtype)
    self.up_proj = linear(rngs, d_model, d_ff, bias=bias, dtype=dtype, param_dtype=param_dtype)
    self.down_proj = linear(rngs, d_ff, d_model, bias=bias, dtype=dtype, param_dtype=param_dtype)
    self.act = act

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.down_proj(ACT_FNS[self.act](self.gate_proj(x)) * self.up_proj(x))


def rotate_half(x: jax.Array) -> jax.Array:
  x1, x2 = jnp.split(x, 2, axis=-1)
  return jnp.concatenate([-x2, x1], axis=-1)


def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array, return_weights: bool = False):
  """Grouped-query attention with a boolean mask.

  q [B,T,N,H], k/v [B,S,K,H], mask broadcastable to [B,T,S] (True = attend) -> [B,T,N,H];
  with `return_weights` also the attention probabilities [B,N,T,S] (float32).
  Scores and softmax in float32, as HF's eager/SDPA reference does.
  """
  b, t, n, h = q.shape
  kv_heads = k.shape[2]
  q = q.reshape(b, t, kv_heads, n // kv_heads, h)
  scores = jnp.einsum("BTKGH,BSKH->BKGTS", q, k, preferred_element_type=jnp.float32)
  scores = scores * (h ** -0.5)
  scores = jnp.where(mask[:, None, None, :, :], scores, MASK_VALUE)
  weights = jax.nn.softmax(scores, axis=-1)
  out = jnp.einsum("BKGTS,BSKH->BTKGH", weights.astype(v.dtype), v).reshape(b, t, n, h)
  if return_weights:
    return out, weights.reshape(b, n, t, k.shape[1])
  return out
