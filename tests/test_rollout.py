"""The cached lax.scan rollout equals a naive reference of K+1 full forward passes, values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tiny_models import END, ROWS, START, prepared, tiny_model
from vlatent_jax.models.decoder import causal_mask, text_positions
from vlatent_jax.models.latent import inject, video_memory
from vlatent_jax.rollout import self_forcing_rollout

def _model():
  return tiny_model()


def _batch(num_latents):
  rows = [r + [START] for r in ROWS] if num_latents else ROWS
  p = prepared(rows)
  answer = np.array([[10, 11, 12, 13], [20, 21, 22, 0]])
  targets = np.concatenate([np.full((2, 1), END), answer], 1) if num_latents else answer
  batch = {"input_ids": p.input_ids, "attention_mask": p.attention_mask, "position_ids": p.position_ids,
           "next_position": p.next_position, "vision": p.vision, "feature_index": p.feature_index,
           "targets": targets.astype(np.int32)}
  return jax.tree.map(jnp.asarray, batch)


def naive_rollout(module, batch, num_latents, use_lim, answer_sees_video=None, lim_weights=None):
  """K passes over the growing sequence to produce z_1..z_K, then one pass with the answer appended (where
  `answer_sees_video` [B] is False, the answer's queries are masked off the video tokens). A `lim_weights` list
  receives each step's LIM attention over the prompt, mean over heads."""
  llm = module.llm
  embeds = module.embed_inputs(batch["input_ids"], batch["vision"], batch["feature_index"])
  video_mask = batch["feature_index"] >= 0
  seq, pos = embeds, batch["position_ids"]
  key_valid = batch["attention_mask"]
  latents = []
  for k in range(num_latents):
    hidden, _ = llm(seq, pos, causal_mask(key_valid, 0, seq.shape[1]))
    memory = video_memory(module, embeds, video_mask, use_lim)
    z = inject(module, hidden[:, -1], memory)
    if lim_weights is not None:
      lim_weights.append(jnp.mean(module.latent(hidden[:, -1], memory, return_weights=True)[1], axis=1))
    latents.append(z)
    seq = jnp.concatenate([seq, z[:, None].astype(seq.dtype)], 1)
    pos = jnp.concatenate([pos, text_positions(batch["next_position"] + k, 1)], 2)
    key_valid = jnp.concatenate([key_valid, jnp.ones_like(key_valid[:, :1])], 1)
  answer_in = batch["targets"][:, :-1]
  seq = jnp.concatenate([seq, llm.embed(answer_in)], 1)
  pos = jnp.concatenate([pos, text_positions(batch["next_position"] + num_latents, answer_in.shape[1])], 2)
  key_valid = jnp.concatenate([key_valid, jnp.ones_like(answer_in, bool)], 1)
  mask = causal_mask(key_valid, 0, seq.shape[1])
  if answer_sees_video is not None:
    n, p = seq.shape[1], embeds.shape[1]
    video = jnp.zeros((video_mask.shape[0], n), bool).at[:, :p].set(video_mask)
    answer_query = jnp.arange(n) >= p + num_latents
    mask = mask & ~(answer_query[None, :, None] & video[:, None, :] & ~answer_sees_video[:, None, None])
  hidden, _ = llm(seq, pos, mask)
  start = embeds.shape[1] + num_latents - 1
  logits = llm.logits(hidden[:, start:])
  latents = jnp.stack(latents, 1) if latents else jnp.zeros((embeds.shape[0], 0, embeds.shape[-1]))
  return logits, latents


def _objective(logits, latents, seed=0):
  # Random projections of every output, scaled to O(1) so float32 comparisons are meaningful.
  rng = np.random.RandomState(seed)
  w1 = rng.randn(*logits.shape).astype(np.float32) / logits.size
  w2 = rng.randn(*latents.shape).astype(np.float32) / max(latents.size, 1)
  return jnp.sum(logits * w1) + jnp.sum(latents * w2)


@pytest.mark.parametrize("num_latents,use_lim", [(3, True), (2, False), (0, False)])
def test_rollout_matches_naive_values_and_gradients(num_latents, use_lim):
  model = _model()
  batch = _batch(num_latents)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def loss(params, fn):
    module = nnx.merge(graphdef, params, rest)
    logits, latents = fn(module)
    return _objective(logits, latents), (logits, latents)

  fast = lambda m: tuple(self_forcing_rollout(m, batch, num_latents=num_latents, use_lim=use_lim)[:2])  # noqa: E731
  slow = lambda m: naive_rollout(m, batch, num_latents, use_lim)  # noqa: E731
  (_, (lf, zf)), gf = jax.jit(jax.value_and_grad(lambda p: loss(p, fast), has_aux=True))(params)
  (_, (ls, zs)), gs = jax.jit(jax.value_and_grad(lambda p: loss(p, slow), has_aux=True))(params)
  # Float32 tolerance 1e-5, relative for entries of large magnitude (one ulp of 125 is 7.6e-6).
  np.testing.assert_allclose(lf, ls, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(zf, zs, atol=1e-5, rtol=1e-5)
  flat_f, flat_s = jax.tree.leaves(gf), jax.tree.leaves(gs)
  assert len(flat_f) == len(flat_s)
  for a, b in zip(flat_f, flat_s):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
  if use_lim:
    assert float(jnp.abs(gf["latent"]["gate"][0])) > 0


def test_sensory_gating_hides_the_video_from_the_answer_only():
  model = _model()
  batch = _batch(2)
  sees = jnp.array([True, False])
  gated = self_forcing_rollout(model, batch, num_latents=2, use_lim=True, answer_sees_video=sees)
  ref_logits, ref_latents = naive_rollout(model, batch, 2, True, answer_sees_video=sees)
  np.testing.assert_allclose(gated.logits, ref_logits, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(gated.latents, ref_latents, atol=1e-5, rtol=1e-5)
  open_ = self_forcing_rollout(model, batch, num_latents=2, use_lim=True)
  # Row 0 and every latent (and h_K, which predicts <|latent_end|>) are untouched; row 1's answer is not.
  np.testing.assert_allclose(gated.logits[0], open_.logits[0], atol=1e-6)
  np.testing.assert_allclose(gated.latents, open_.latents, atol=1e-6)
  np.testing.assert_allclose(gated.logits[1, 0], open_.logits[1, 0], atol=1e-6)
  assert float(jnp.max(jnp.abs(gated.logits[1, 1:] - open_.logits[1, 1:]))) > 1e-3


def test_lim_attention_is_each_latent_steps_cross_attention():
  model = _model()
  batch = _batch(3)
  out = self_forcing_rollout(model, batch, num_latents=3, use_lim=True, lim_attention=True, grad_steps=2)
  expected = []
  naive_rollout(model, batch, 3, True, lim_weights=expected)
  np.testing.assert_allclose(out.lim_attention, jnp.stack(expected, 1), atol=1e-6)
  # A distribution over the video tokens of each row, nothing on text positions.
  video = np.asarray(batch["feature_index"] >= 0)
  np.testing.assert_allclose(np.sum(np.asarray(out.lim_attention) * video[:, None], -1), 1.0, atol=1e-5)
  assert float(np.abs(np.asarray(out.lim_attention) * ~video[:, None]).max()) < 1e-6


def test_grad_steps_cut_early_steps_only():
  model = _model()
  batch = _batch(3)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def loss(params, grad_steps):
    module = nnx.merge(graphdef, params, rest)
    out = self_forcing_rollout(module, batch, num_latents=3, use_lim=True, grad_steps=grad_steps)
    return _objective(out.logits, out.latents), out.logits

  grad = lambda m: jax.jit(jax.value_and_grad(lambda p: loss(p, m), has_aux=True))(params)  # noqa: E731
  (_, l_all), g_all = grad(None)
  (_, l_cut), g_cut = grad(1)
  (_, _), g_zero = grad(0)
  np.testing.assert_allclose(l_all, l_cut, atol=1e-6)  # forward values unchanged
  gate = lambda g: float(g["latent"]["gate"][0])  # noqa: E731
  assert gate(g_all) != pytest.approx(gate(g_cut), rel=1e-3)
  # With m = 0 no gradient reaches the LIM at all: it only acts inside the latent steps.
  assert gate(g_zero) == 0.0
  assert all(float(jnp.abs(x).max()) == 0 for x in jax.tree.leaves(g_zero["latent"]))


def test_unused_latent_slots_equal_a_shorter_rollout():
  """A row that uses k of the K slots (a curriculum stage) computes exactly the k-step rollout."""
  module = _model()
  full, short = _batch(3), _batch(1)
  mask = jnp.array([[True, False, False], [True, True, True]])
  out = jax.jit(lambda b: self_forcing_rollout(module, b, num_latents=3, use_lim=True))({**full, "latent_mask": mask})
  one = jax.jit(lambda b: self_forcing_rollout(module, b, num_latents=1, use_lim=True))(short)
  three = jax.jit(lambda b: self_forcing_rollout(module, b, num_latents=3, use_lim=True))(full)
  np.testing.assert_allclose(out.logits[0], one.logits[0], atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(out.latents[0, :1], one.latents[0], atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(out.logits[1], three.logits[1], atol=1e-5, rtol=1e-5)


def test_video_attention_is_the_decoders_attention_mass_on_video_tokens():
  """The diagnostic equals the naive full-sequence attention probabilities summed over video keys."""
  module = _model()
  batch = _batch(0)
  out = jax.jit(lambda b: self_forcing_rollout(module, b, num_latents=0, use_lim=False,
                                               attention_to_video=True))(batch)
  llm = module.llm
  embeds = module.embed_inputs(batch["input_ids"], batch["vision"], batch["feature_index"])
  answer_in = batch["targets"][:, :-1]
  seq = jnp.concatenate([embeds, llm.embed(answer_in)], 1)
  pos = jnp.concatenate([batch["position_ids"], text_positions(batch["next_position"], answer_in.shape[1])], 2)
  key_valid = jnp.concatenate([batch["attention_mask"], jnp.ones_like(answer_in, bool)], 1)
  _, _, weights = llm(seq, pos, causal_mask(key_valid, 0, seq.shape[1]), return_weights=True)
  p = embeds.shape[1]
  video = jnp.concatenate([batch["feature_index"] >= 0, jnp.zeros_like(answer_in, bool)], 1)
  # rows p-1 .. end predict the targets; mass on video keys, mean over heads and layers
  want = np.mean([np.einsum("bnts,bs->bt", np.asarray(w[:, :, p - 1:]), np.asarray(video, np.float32)) / w.shape[1]
                  for w in weights], axis=0)
  np.testing.assert_allclose(out.video_attention, want, atol=1e-5)
  assert float(out.video_attention.min()) > 0  # a fresh model's answers do look at the video
