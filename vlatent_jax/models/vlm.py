"""The video-language model: named subtrees `vision` and `llm` (and `latent` when enabled).

Freezing, per-part learning rates and sharding select parameters by these
path prefixes; nothing in the model branches on them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from vlatent_jax.models.config import ExecutionConfig, ModelConfig
from vlatent_jax.models.decoder import KVCache, LanguageModel
from vlatent_jax.models.latent import LatentInjection
from vlatent_jax.models.vision import VisionInputs, VisionTransformer


class VideoLM(nnx.Module):

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32,
               execution: ExecutionConfig = ExecutionConfig()):
    self.config = config
    self.execution = execution
    self.vision = VisionTransformer(config.vision, rngs=rngs, dtype=dtype, param_dtype=param_dtype,
                                    execution=execution)
    self.llm = LanguageModel(config.llm, rngs=rngs, dtype=dtype, param_dtype=param_dtype, execution=execution)
    self.latent = (None if config.latent is None else
                   LatentInjection(config.latent, config.llm.hidden_size, rngs=rngs,
                                   init_std=config.llm.initializer_range, dtype=dtype, param_dtype=param_dtype))

  def embed_inputs(self, input_ids: jax.Array, vision_inputs: VisionInputs | None,
                   feature_index: jax.Array | None) -> jax.Array:
    """Token embeddings with video tokens replaced by merged vision features.

    feature_index [B,S]: for each video-token position, its row in the vision
    output (packed layout: HF's masked_scatter order; per-example layout: the
    row's own merger output); -1 elsewhere.
    """
    embeds = self.llm.embed(input_ids)
    if vision_inputs is None:
      return embeds
    features = self.vision(vision_inputs).astype(embeds.dtype)
    index = jnp.maximum(feature_index, 0)
    if features.ndim == 3:  # per example
      gathered = jnp.take_along_axis(features, index[..., None], axis=1)
    else:
      gathered = features[index]
    return jnp.where((feature_index >= 0)[..., None], gathered, embeds)

  def __call__(self, input_ids, position_ids, mask, vision_inputs=None, feature_index=None,
               cache: KVCache | None = None, cache_index=None):
    """Full forward: returns final-norm hidden states [B,S,D] and the updated cache."""
    embeds = self.embed_inputs(input_ids, vision_inputs, feature_index)
    return self.llm(embeds, position_ids, mask, cache, cache_index)
