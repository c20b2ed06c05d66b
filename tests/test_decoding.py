"""Latent and CoT decoding (jitted, static cache) against naive full-forward references."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tiny_models import CONFIG, GRIDS, ROWS, START, padded_rows, pixels, tiny_model
from vlatent_jax.inference import Model
from vlatent_jax.models.decoder import causal_mask, text_positions
from vlatent_jax.models.inputs import prepare_batch
from vlatent_jax.models.latent import inject, video_memory


def _api_model(config=CONFIG):
  params = nnx.to_pure_dict(nnx.state(tiny_model(), nnx.Param))
  return Model(config, params)


def naive_generate(model: Model, row: list[int], video: int, mode: str, num_latents: int, new_tokens: int,
                   stop_early: bool, answer_sees_video: bool = True):
  """One row, no cache: every step re-runs the full sequence (without `answer_sees_video`, the positions from
  <|latent_end|> on are masked off the video tokens)."""
  module = model.module
  llm = module.llm
  config = model.config
  grid = GRIDS[video:video + 1]
  offset = int(np.prod(GRIDS[:video], 1).sum())
  pix = pixels()[offset:offset + int(np.prod(grid))]
  ids = row + ([START] if mode != "sft" else [])
  p = prepare_batch(config, np.array([ids]), None, pix, grid, np.array([[1.0, 0.5][video]]), seq_len=len(ids))
  embeds = module.embed_inputs(jnp.asarray(p.input_ids), jax.tree.map(jnp.asarray, p.vision),
                               jnp.asarray(p.feature_index))
  video_mask = jnp.asarray(p.feature_index >= 0)
  seq, pos = embeds, jnp.asarray(p.position_ids)
  nxt = jnp.asarray(p.next_position)

  gate_from = None

  def run(seq, pos):
    n = seq.shape[1]
    mask = causal_mask(jnp.ones((1, n), bool), 0, n)
    if gate_from is not None:
      video = jnp.zeros((1, n), bool).at[:, :video_mask.shape[1]].set(video_mask)
      mask = mask & ~((jnp.arange(n) >= gate_from)[None, :, None] & video[:, None, :])
    hidden, _ = llm(seq, pos, mask)
    return hidden[:, -1]

  def append(seq, pos, emb):
    nonlocal nxt
    seq = jnp.concatenate([seq, emb[:, None].astype(seq.dtype)], 1)
    pos = jnp.concatenate([pos, text_positions(nxt, 1)], 2)
    nxt = nxt + 1
    return seq, pos

  h = run(seq, pos)
  steps = 0
  if mode != "sft":
    while True:
      memory = video_memory(module, embeds, video_mask, mode == "videolatent")
      seq, pos = append(seq, pos, inject(module, h, memory))
      steps += 1
      h = run(seq, pos)
      if steps == num_latents or (stop_early and int(jnp.argmax(llm.logits(h))) == config.latent_end_token_id):
        break
    if not answer_sees_video:
      gate_from = seq.shape[1]  # <|latent_end|> and the answer
    seq, pos = append(seq, pos, llm.embed(jnp.asarray([config.latent_end_token_id])))
    h = run(seq, pos)
  tokens = []
  for _ in range(new_tokens):
    tok = int(jnp.argmax(llm.logits(h)))
    tokens.append(tok)
    seq, pos = append(seq, pos, llm.embed(jnp.asarray([tok])))
    h = run(seq, pos)
  return tokens, steps


@pytest.mark.parametrize("mode", ["sft", "videolatent", "continuous_thought"])
def test_generation_matches_naive(mode):
  model = _api_model()
  ids, mask = padded_rows(ROWS)
  tokens, info = model.generate(ids, mask, pixels(), GRIDS, np.array([1.0, 0.5]), max_new_tokens=6, mode=mode,
                                num_latents=3, return_info=True)
  for i, row in enumerate(ROWS):
    ref, steps = naive_generate(model, row, i, mode, 3, 6, stop_early=False)
    assert tokens[i].tolist() == ref
    assert info["latent_steps"][i] == steps


@pytest.mark.parametrize("mode", ["videolatent", "continuous_thought"])
def test_answers_without_the_video_match_naive(mode):
  model = _api_model()
  ids, mask = padded_rows(ROWS)
  tokens = model.generate(ids, mask, pixels(), GRIDS, np.array([1.0, 0.5]), max_new_tokens=6, mode=mode,
                          num_latents=3, answer_sees_video=False)
  for i, row in enumerate(ROWS):
    assert tokens[i].tolist() == naive_generate(model, row, i, mode, 3, 6, False, answer_sees_video=False)[0]


def test_stop_early_matches_naive():
  # Pick as <|latent_end|> the token row 0 predicts after its second latent step, so it stops there.
  candidates = []
  for end in range(10, 40):
    config = dataclasses.replace(CONFIG, latent_end_token_id=end)
    model = _api_model(config)
    _, steps = naive_generate(model, ROWS[0], 0, "videolatent", 4, 1, stop_early=True)
    if 1 < steps < 4:
      candidates.append((end, steps))
      break
  assert candidates, "no token id makes row 0 stop early; enlarge the search"
  end, expected_steps = candidates[0]
  model = _api_model(dataclasses.replace(CONFIG, latent_end_token_id=end))
  ids, mask = padded_rows(ROWS)
  tokens, info = model.generate(ids, mask, pixels(), GRIDS, np.array([1.0, 0.5]), max_new_tokens=5,
                                mode="videolatent", num_latents=4, stop_early=True, return_info=True)
  assert info["latent_steps"][0] == expected_steps
  for i, row in enumerate(ROWS):
    ref, steps = naive_generate(model, row, i, "videolatent", 4, 5, stop_early=True)
    assert tokens[i].tolist() == ref
    assert info["latent_steps"][i] == steps


def test_cot_decodes_at_least_n_tokens_before_eos():
  ids, mask = padded_rows(ROWS)
  plain = _api_model().generate(ids, mask, pixels(), GRIDS, np.array([1.0, 0.5]), max_new_tokens=1, mode="sft")
  eos = int(plain[0, 0])  # the token row 0 would emit first becomes end-of-sequence
  model = _api_model(dataclasses.replace(CONFIG, eos_token_id=eos, pad_token_id=0))
  stopped = model.generate(ids, mask, pixels(), GRIDS, np.array([1.0, 0.5]), max_new_tokens=4, mode="sft")
  assert stopped[0, 0] == eos and (stopped[0, 1:] == 0).all()
  cot = model.generate(ids, mask, pixels(), GRIDS, np.array([1.0, 0.5]), max_new_tokens=4, mode="cot",
                       cot_tokens=8)
  assert cot.shape == (2, 12)
  assert not (cot[:, :8] == eos).any()


def test_latent_mode_errors():
  plain_config = dataclasses.replace(CONFIG, latent=None)
  model = Model(plain_config, {k: v for k, v in nnx.to_pure_dict(nnx.state(tiny_model(), nnx.Param)).items()
                               if k != "latent"})
  ids, mask = padded_rows(ROWS)
  with pytest.raises(ValueError, match="latent injection module"):
    model.generate(ids, mask, pixels(), GRIDS, mode="videolatent")
  with pytest.raises(ValueError, match="mode must be one of"):
    model.generate(ids, mask, pixels(), GRIDS, mode="r1")
