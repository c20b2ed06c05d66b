"""Layers shared by the vision tower and the decoder.

Einsum axis letters used in this package's model code:
  B batch, T query length, S key length, D model width, F mlp width,
  N query heads, K kv heads, G query heads per kv head, H head dim.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from vlatent_jax.sharding import gather_params

ACT_FNS = {
    "silu": jax.nn.silu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
}

# Large finite negative for masked scores: fully masked (padding) rows then
# give a uniform softmax instead of NaN, and their outputs are discarded.
MASK_VALUE = -1e30


def linear(rngs: nnx.Rngs, d_in: int, d_out: int, *, bias: bool, init_std: float, dtype, param_dtype) -> nnx.Linear:
  """Kernel ~ normal(init_std) (HF's `initializer_range`), bias zero."""
  return nnx.Linear(d_in, d_out, use_bias=bias, dtype=dtype, param_dtype=param_dtype,
                    kernel_init=nnx.initializers.normal(init_std), rngs=rngs)


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

  def __init__(self, rngs, d_model, d_ff, *, act: str, bias: bool, init_std: float, dtype, param_dtype):
    kw = dict(bias=bias, init_std=init_std, dtype=dtype, param_dtype=param_dtype)
    self.gate_proj = linear(rngs, d_model, d_ff, **kw)
    self.up_proj = linear(rngs, d_model, d_ff, **kw)
    self.down_proj = linear(rngs, d_ff, d_model, **kw)
    self.act = act

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.down_proj(ACT_FNS[self.act](self.gate_proj(x)) * self.up_proj(x))


def rotate_half(x: jax.Array) -> jax.Array:
  x1, x2 = jnp.split(x, 2, axis=-1)
  return jnp.concatenate([-x2, x1], axis=-1)


def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array, return_weights: bool = False,
              impl: str = "einsum", prefix: tuple[jax.Array, jax.Array] | None = None):
  """Grouped-query attention with a boolean mask.

  q [B,T,N,H], k/v [B,S,K,H], mask broadcastable to [B,T,S] (True = attend) -> [B,T,N,H];
  with `return_weights` also the attention probabilities [B,N,T,S] (float32), which only the einsum
  reference gives. `impl` (ExecutionConfig.attention): "einsum" computes scores and softmax in float32
  as HF's eager/SDPA reference does; "xla" / "cudnn" go through `jax.nn.dot_product_attention`; "auto"
  is `jax.nn.dot_product_attention`'s own choice on GPU (cuDNN flash attention where dtype and shapes
  allow) and the einsum elsewhere.

  `prefix` = (k0 [B,S0,K,H], v0) are keys and values in front of k / v (a read-only cache: the latent
  steps' prompt); the mask then covers [S0 + S] and S counts both. The einsum path scores each block on
  its own, so a differentiated loop over such steps never copies the prefix into its residuals.
  """
  # auto: jax's own choice (cuDNN flash where it applies) on GPU; elsewhere the einsum, which measured 12 %
  # faster than jax.nn.dot_product_attention's XLA path for the tiny train step on CPU (bench/mfu.py).
  # A prefix means one-query decode steps, where flash attention gains nothing: always the einsum.
  if (return_weights or prefix is not None or impl == "einsum"
      or (impl == "auto" and jax.default_backend() != "gpu")):
    return reference_attention(q, k, v, mask, return_weights, prefix)
  return jax.nn.dot_product_attention(q, k, v, mask=mask[:, None], implementation=None if impl == "auto" else impl)


def reference_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array, return_weights: bool = False,
                        prefix: tuple[jax.Array, jax.Array] | None = None):
  """The einsum attention of `attention` (float32 scores and softmax), over [prefix, k] when given."""
  b, t, n, h = q.shape
  blocks = ([] if prefix is None else [prefix]) + [(k, v)]
  kv_heads = k.shape[2]
  q = q.reshape(b, t, kv_heads, n // kv_heads, h)
  scores = jnp.concatenate([jnp.einsum("BTKGH,BSKH->BKGTS", q, kb, preferred_element_type=jnp.float32)
                            for kb, _ in blocks], axis=-1)
  scores = scores * (h ** -0.5)
  scores = jnp.where(mask[:, None, None, :, :], scores, MASK_VALUE)
  weights = jax.nn.softmax(scores, axis=-1)
  out, start = 0, 0
  for kb, vb in blocks:
    w = weights[..., start:start + kb.shape[1]]
    out = out + jnp.einsum("BKGTS,BSKH->BTKGH", w.astype(vb.dtype), vb)
    start += kb.shape[1]
  out = out.reshape(b, t, n, h)
  if return_weights:
    return out, weights.reshape(b, n, t, start)
  return out


def remat(fn, policy: str, *, prevent_cse: bool = True):
  """`fn` under activation checkpointing (ExecutionConfig.remat): "none" leaves it as is, "full" saves
  nothing, any other name is a `jax.checkpoint_policies` policy. Inside `lax.scan` pass
  prevent_cse=False (scan already keeps XLA from merging the recomputation away)."""
  if policy == "none":
    return fn
  chosen = None if policy == "full" else getattr(jax.checkpoint_policies, policy)
  return jax.checkpoint(fn, policy=chosen, prevent_cse=prevent_cse)


def stacked(make, n: int) -> nnx.Module:
  """`n` modules from `make()`, created one after the other (so their initial values equal an unstacked
  model's at the same seed), as one module whose variables carry a leading [n] axis (for `lax.scan`)."""
  modules = [make() for _ in range(n)]
  graphdef = nnx.graphdef(modules[0])
  return nnx.merge(graphdef, jax.tree.map(lambda *xs: jnp.stack(xs), *(nnx.state(m) for m in modules)))


def per_layer_compute(dtype):
  """The per-layer hook of a scan: one layer's parameters cast to the compute dtype, then FSDP-gathered
  (`sharding.gather_params`) in that dtype, half the traffic of float32 master weights for bfloat16."""
  return lambda state: gather_params(jax.tree.map(lambda a: a.astype(dtype), state))


def scan_layers(stack: nnx.Module, body, carry, xs, *, policy: str, gather=None, stop: int | None = None):
  """carry, ys = scan over the leading axis of `stack`'s variables (layers [0, stop)):
  body(layer, carry, x) -> (carry, y).

  `gather` (e.g. the FSDP all-gather) is applied to each layer's variables inside the scan, so one
  layer is gathered at a time instead of the whole stack before the loop."""
  graphdef, state = nnx.split(stack)
  if stop is not None:
    state, xs = jax.tree.map(lambda a: a[:stop], (state, xs))

  def step(carry, inputs):
    layer_state, x = inputs
    layer = nnx.merge(graphdef, layer_state if gather is None else gather(layer_state))
    return body(layer, carry, x)

  return jax.lax.scan(remat(step, policy, prevent_cse=False), carry, (state, xs))


def layer_of(stack: nnx.Module, index: int, gather=None) -> nnx.Module:
  """Layer `index` of a stacked module as a module of its own."""
  graphdef, state = nnx.split(stack)
  state = jax.tree.map(lambda a: a[index], state)
  return nnx.merge(graphdef, state if gather is None else gather(state))
