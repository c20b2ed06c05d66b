"""Latent injection module (LIM): turns the decoder's last hidden state into the next input embedding.

    z_{k+1} = W_out (h_k + g * CrossAttn(query=norm(h_k), keys/values=norm(V)))

V are the video tokens (merger outputs, already in the LLM's width), g a learned
scalar gate initialised at zero and W_out initialised to the identity, so an
untrained LIM feeds h_k back unchanged: plain continuous thought. `align_proj`
is the small projection P of the alignment loss (pred = P z_k).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from flax import nnx

from vlatent_jax.models.config import LatentModuleConfig
from vlatent_jax.models.layers import RMSNorm, attention, linear

if TYPE_CHECKING:  # annotations only: vlm.py imports this module
  from vlatent_jax.models.vlm import VideoLM


class LatentInjection(nnx.Module):

  def __init__(self, config: LatentModuleConfig, hidden_size: int, *, rngs: nnx.Rngs, init_std: float,
               dtype=jnp.float32, param_dtype=jnp.float32):
    d = hidden_size
    kw = dict(init_std=init_std, dtype=dtype, param_dtype=param_dtype)
    self.num_heads = config.num_heads
    self.norm_q = RMSNorm(d, eps=config.rms_norm_eps, param_dtype=param_dtype)
    self.norm_kv = RMSNorm(d, eps=config.rms_norm_eps, param_dtype=param_dtype)
    self.q_proj = linear(rngs, d, d, bias=False, **kw)
    self.k_proj = linear(rngs, d, d, bias=False, **kw)
    self.v_proj = linear(rngs, d, d, bias=False, **kw)
    self.o_proj = linear(rngs, d, d, bias=False, **kw)
    self.gate = nnx.Param(jnp.zeros((1,), param_dtype))  # shape [1]: safetensors-friendly scalar
    self.out_proj = nnx.Linear(d, d, use_bias=True, dtype=dtype, param_dtype=param_dtype,
                               kernel_init=lambda key, shape, dt: jnp.eye(shape[0], shape[1], dtype=dt), rngs=rngs)
    self.align_proj = linear(rngs, d, d, bias=True, **kw)

  def video_memory(self, video: jax.Array, video_mask: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Keys and values of the video tokens, computed once per rollout rather than once per latent step.

    video [B,M,D], video_mask [B,M] -> (keys [B,M,N,H], values [B,M,N,H], video_mask).
    """
    b, m, d = video.shape
    kv = self.norm_kv(video)
    k = self.k_proj(kv).reshape(b, m, self.num_heads, d // self.num_heads)
    v = self.v_proj(kv).reshape(b, m, self.num_heads, d // self.num_heads)
    return k, v, video_mask

  def __call__(self, hidden: jax.Array, memory: tuple[jax.Array, jax.Array, jax.Array],
               return_weights: bool = False):
    """hidden [B,D] (final-norm state h_k), memory from `video_memory` -> z_{k+1} [B,D]
    (+ with `return_weights`, the cross-attention over the memory [B,N,M], float32)."""
    k, v, video_mask = memory
    b, d = hidden.shape
    q = self.q_proj(self.norm_q(hidden)).reshape(b, 1, self.num_heads, d // self.num_heads)
    ctx, weights = attention(q, k, v, video_mask[:, None, :], return_weights=True)
    # Examples without video tokens get no visual update.
    ctx = jnp.where(jnp.any(video_mask, axis=-1, keepdims=True), self.o_proj(ctx.reshape(b, d)), 0.0)
    z = self.out_proj(hidden + self.gate[0].astype(hidden.dtype) * ctx)
    return (z, weights[:, :, 0]) if return_weights else z


def video_memory(module: VideoLM, prompt_embeds: jax.Array, video_mask: jax.Array, use_lim: bool):
  """What the LIM reads at every latent step (its keys/values of the video tokens), or None."""
  return module.latent.video_memory(prompt_embeds, video_mask) if use_lim else None


def inject(module: VideoLM, hidden: jax.Array, memory) -> jax.Array:
  """Next latent input embedding from the last hidden state: LIM(h) or, for continuous thought, h."""
  return hidden if memory is None else module.latent(hidden, memory)
