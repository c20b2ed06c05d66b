"""Latent injection module: zero-init gate reduces to continuous thought; the gate opens the video path."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vlatent_jax.models.config import ConfigError, LatentModuleConfig, ModelConfig
from vlatent_jax.models.latent import LatentInjection
from vlatent_jax.models.vlm import VideoLM
from tiny_models import CONFIG


def _inputs(b=2, m=5, d=16):
  rng = np.random.RandomState(0)
  mask = np.ones((b, m), bool)
  mask[1, 3:] = False
  return (jnp.asarray(rng.randn(b, d), jnp.float32), jnp.asarray(rng.randn(b, m, d), jnp.float32),
          jnp.asarray(mask))


def test_untrained_lim_is_identity():
  lim = LatentInjection(LatentModuleConfig(num_heads=4), 16, rngs=nnx.Rngs(0), init_std=0.02)
  h, video, mask = _inputs()
  np.testing.assert_array_equal(np.asarray(lim(h, lim.video_memory(video, mask))), np.asarray(h))


def test_open_gate_reads_only_unmasked_video_tokens():
  lim = LatentInjection(LatentModuleConfig(num_heads=4), 16, rngs=nnx.Rngs(0), init_std=0.02)
  lim.gate[...] = jnp.asarray([0.5])
  h, video, mask = _inputs()
  z = lim(h, lim.video_memory(video, mask))
  assert not np.allclose(np.asarray(z), np.asarray(h))
  # Changing masked-out video tokens of row 1 leaves its output unchanged; changing a visible one does not.
  hidden_change = video.at[1, 4].add(10.0)
  z_hidden_change = lim(h, lim.video_memory(hidden_change, mask))
  np.testing.assert_allclose(np.asarray(z_hidden_change), np.asarray(z), atol=1e-6)
  visible_change = video.at[1, 0].add(10.0)
  assert not np.allclose(np.asarray(lim(h, lim.video_memory(visible_change, mask)))[1], np.asarray(z)[1])
  # No video at all: no visual update.
  no_video = lim(h, lim.video_memory(video, jnp.zeros_like(mask)))
  np.testing.assert_allclose(np.asarray(no_video), np.asarray(h), atol=1e-6)


def test_gate_receives_gradient_at_zero():
  lim = LatentInjection(LatentModuleConfig(num_heads=4), 16, rngs=nnx.Rngs(0), init_std=0.02)
  h, video, mask = _inputs()
  grads = nnx.grad(lambda m: jnp.sum(m(h, m.video_memory(video, mask)) ** 2))(lim)
  assert float(jnp.abs(grads.gate[0])) > 0


def test_bad_heads_fail_naming_key():
  with pytest.raises(ConfigError, match="latent.num_heads"):
    ModelConfig(latent=LatentModuleConfig(num_heads=5), latent_start_token_id=1, latent_end_token_id=2)
  with pytest.raises(ConfigError, match="latent_start_token_id"):
    ModelConfig(latent=LatentModuleConfig(num_heads=8))


def test_initializer_range_sets_the_random_weight_scale():
  """Every kernel (vision, decoder, embedding, LIM projections) starts at its tower's initializer_range."""
  config = dataclasses.replace(CONFIG, vision=dataclasses.replace(CONFIG.vision, initializer_range=0.3),
                               llm=dataclasses.replace(CONFIG.llm, initializer_range=0.1))
  model = VideoLM(config, rngs=nnx.Rngs(0))
  stds = {"patch_embed": np.std(model.vision.patch_embed.proj.kernel[...]),
          "vision_qkv": np.std(model.vision.blocks[0].attn.qkv.kernel[...]),
          "embed": np.std(model.llm.embed_tokens.embedding[...]),
          "llm_down": np.std(model.llm.layers[1].mlp.down_proj.kernel[...]),
          "lim_q": np.std(model.latent.q_proj.kernel[...])}
  expected = {"patch_embed": 0.3, "vision_qkv": 0.3, "embed": 0.1, "llm_down": 0.1, "lim_q": 0.1}
  for name, std in stds.items():  # >= 1,000 samples each: the sample std is within 10 % of the target
    assert abs(std / expected[name] - 1) < 0.1, (name, std)
