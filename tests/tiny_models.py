"""A tiny latent-enabled model and batch shared by the rollout, decoding and train-step tests."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vlatent_jax.models.config import LatentModuleConfig, LLMConfig, ModelConfig, VisionConfig
from vlatent_jax.models.inputs import prepare_batch
from vlatent_jax.models.vlm import VideoLM

VIDEO, START, END = 60, 61, 62
CONFIG = ModelConfig(
    vision=VisionConfig(depth=2, hidden_size=32, intermediate_size=48, num_heads=2, out_hidden_size=32,
                        fullatt_block_indexes=(1,), window_size=56),
    llm=LLMConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, mrope_section=(2, 3, 3), tie_word_embeddings=False),
    latent=LatentModuleConfig(num_heads=4), latent_start_token_id=START, latent_end_token_id=END,
    image_token_id=59, video_token_id=VIDEO, vision_start_token_id=57, vision_end_token_id=58,
    bos_token_id=None, eos_token_id=None)
GRIDS = np.array([[2, 4, 4], [1, 4, 8]])
ROWS = [[1, 2, 57] + [VIDEO] * 8 + [58, 3, 4, 5], [6, 57] + [VIDEO] * 8 + [58, 7]]


def tiny_model(config=CONFIG):
  model = VideoLM(config, rngs=nnx.Rngs(0))
  # Open the gate and move W_out off the identity so every LIM parameter matters.
  model.latent.gate[...] = jnp.asarray([0.7])
  model.latent.out_proj.kernel[...] += 0.1 * jax.random.normal(jax.random.key(1), (32, 32))
  return model


def pixels():
  return np.random.RandomState(0).randn(int(np.prod(GRIDS, 1).sum()), 3 * 2 * 14 * 14).astype(np.float32)


def padded_rows(rows):
  length = max(map(len, rows))
  ids = np.zeros((len(rows), length), np.int64)
  mask = np.zeros((len(rows), length), np.int64)
  for i, r in enumerate(rows):
    ids[i, length - len(r):], mask[i, length - len(r):] = r, 1
  return ids, mask


def prepared(rows, config=CONFIG):
  ids, mask = padded_rows(rows)
  return prepare_batch(config, ids, mask, pixels(), GRIDS, np.array([1.0, 0.5]), left_align=True)
