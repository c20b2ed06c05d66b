"""Per-example video layout (training, data-parallel) equals the packed layout (inference), and padding a
batch to larger buckets (multi-host shape agreement) changes no loss."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vlatent_jax.config import model_config, parse
from vlatent_jax.data.collate import Example
from vlatent_jax.models.inputs import prepare_batch
from vlatent_jax.train.batch import batch_shapes, collate, pad_batch
from vlatent_jax.train.setup import build_model
from vlatent_jax.train.step import compute_losses
from tests.tiny_models import CONFIG, GRIDS, ROWS, padded_rows, pixels, tiny_model


def test_per_example_layout_embeds_exactly_like_packed():
  rows = [ROWS[0], [5, 6, 7], ROWS[1]]  # a text-only row between two videos of different shapes
  ids, mask = padded_rows(rows)
  seconds = np.array([1.0, 0.5])
  packed = prepare_batch(CONFIG, ids, mask, pixels(), GRIDS, seconds, left_align=True)
  split = prepare_batch(CONFIG, ids, mask, pixels(), GRIDS, seconds, left_align=True, per_example=True)
  assert split.vision.patches.shape[0] == 3 and split.vision.merged_index is None
  assert not (split.vision.window_ids[1] >= 0).any()  # the text-only row holds only padding
  np.testing.assert_array_equal(split.position_ids, packed.position_ids)
  model = tiny_model()
  embed = lambda p: model.embed_inputs(jnp.asarray(p.input_ids), jax.tree.map(jnp.asarray, p.vision),  # noqa: E731
                                       jnp.asarray(p.feature_index))
  np.testing.assert_allclose(embed(split), embed(packed), atol=1e-6, rtol=0)


def _examples():
  rng = np.random.RandomState(0)
  grids = [np.array([[2, 4, 4]]), np.array([[4, 4, 8]])]
  return [Example([1, 2, 57] + [60] * (int(np.prod(g)) // 4) + [58, 3 + i], [10 + i, 11, 12],
                  rng.randn(int(np.prod(g)), 1176).astype(np.float32), g, np.array([1.0]))
          for i, g in enumerate(grids)]


def test_padded_batch_gives_the_same_losses():
  tiny = {"vision": dict(depth=2, hidden_size=32, intermediate_size=48, num_heads=2, out_hidden_size=32,
                         fullatt_block_indexes=[1], window_size=56),
          "llm": dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, mrope_section=[2, 3, 3]),
          "tokens": dict(image_token_id=59, video_token_id=60, vision_start_token_id=57, vision_end_token_id=58,
                         latent_start_token_id=61, latent_end_token_id=62)}
  config = parse({"model": tiny, "latent": dict(mode="videolatent", num_latents=3, num_heads=4)})
  mc = model_config(config.model, config.latent)
  graphdef, params, rest = build_model(config, mc, 0)
  module = nnx.merge(graphdef, params, rest)
  batch = collate(_examples(), mc, num_latents=3, max_answer_len=4)
  seq, slices, length = batch_shapes(batch)
  assert (slices, length) == (4, 32)
  padded = pad_batch(batch, mc, seq + 64, 8, 64)
  assert batch_shapes(padded) == (seq + 64, 8, 64)
  loss = lambda b: compute_losses(module, jax.tree.map(jnp.asarray, b), config.latent)  # noqa: E731
  (want, want_terms), (got, got_terms) = loss(batch), loss(padded)
  np.testing.assert_allclose(float(got), float(want), rtol=1e-5)
  for k in want_terms:
    np.testing.assert_allclose(float(got_terms[k]), float(want_terms[k]), rtol=1e-5, atol=1e-6, err_msg=k)

  text_only = collate([Example([1, 2, 3], [10, 11])], mc, num_latents=3, max_answer_len=4)
  assert batch_shapes(text_only)[1:] == (0, 0)
  widened = pad_batch(text_only, mc, seq, 4, 32)  # another process drew videos: join its shapes
  assert widened["vision"].patches.shape == (1, 4, 32, 1176) and (widened["feature_index"] < 0).all()
  (a, _), (b, _) = loss(text_only), loss(widened)
  np.testing.assert_allclose(float(b), float(a), rtol=1e-5)
