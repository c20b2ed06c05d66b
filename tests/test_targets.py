"""Alignment targets against independent computations: the attention_pool relevance equals HF's attention."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hf_fixtures as hfx

from vlatent_jax import targets
from vlatent_jax.inference import prepare_batch

torch = pytest.importorskip("torch")


def test_suite_runs_full_float32_matmuls():
  """conftest's autouse fixture is active (GPU/TPU default to reduced-precision float32 dots)."""
  assert jax.config.jax_default_matmul_precision == "highest"


def test_answer_attention_equals_hf_last_layer_attention(tmp_path):
  """`answer_attention` = HF eager attention probabilities of the last decoder layer over the prompt,
  in a teacher-forced pass of prompt + answer, averaged over heads and (valid) answer tokens.

  Videos (3D rope positions), left-padded prompts, GQA and a padded answer row are all exercised.
  """
  hf_model, hf_config = hfx.build_hf_model()
  hf_model.set_attn_implementation("eager")  # sdpa returns no attention probabilities
  ours = hfx.load_ours(hf_model, tmp_path)
  inputs = hfx.make_inputs(hf_config, [[3, (2, 4, 4), 2], [2, (1, 4, 8), 5]], seconds=[1.0, 0.5])
  p = inputs["input_ids"].shape[1]
  prepared = prepare_batch(ours.config, inputs["input_ids"], inputs["attention_mask"],
                           inputs["pixel_values_videos"], inputs["video_grid_thw"], inputs["second_per_grid_ts"],
                           left_align=True, seq_len=p)  # same layout as HF's: already left padded, no bucket
  answer_ids = np.random.default_rng(1).integers(hfx.FIRST_TEXT, hfx.IMAGE_TOKEN, (2, 5))
  answer_mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
  answer_ids = np.where(answer_mask > 0, answer_ids, hfx.PAD)
  batch = jax.tree.map(jnp.asarray, dict(
      input_ids=prepared.input_ids, attention_mask=prepared.attention_mask, position_ids=prepared.position_ids,
      next_position=prepared.next_position, feature_index=prepared.feature_index,
      answer_ids=answer_ids, answer_mask=answer_mask))
  module = ours.module
  prompt_embeds = module.embed_inputs(batch["input_ids"], jax.tree.map(jnp.asarray, prepared.vision),
                                      batch["feature_index"])
  relevance = np.asarray(jax.jit(targets.answer_attention)(module, batch, prompt_embeds))

  full = dict(inputs, input_ids=np.concatenate([inputs["input_ids"], answer_ids], 1),
              attention_mask=np.concatenate([inputs["attention_mask"], answer_mask], 1),
              mm_token_type_ids=np.concatenate([inputs["mm_token_type_ids"], np.zeros_like(answer_ids)], 1))
  with torch.no_grad():
    probs = hf_model(**hfx.to_torch(full), output_attentions=True).attentions[-1].numpy()  # [B,N,T,T]
  answer_over_prompt = probs[:, :, p:, :p]
  want = np.einsum("bnts,bt->bs", answer_over_prompt, answer_mask) / probs.shape[1] / answer_mask.sum(1)[:, None]

  assert relevance.shape == (2, p)
  np.testing.assert_allclose(relevance, want, rtol=1e-5, atol=1e-7)  # measured: 1.3e-6 relative
  # Not vacuous: the answers spread attention over several prompt tokens, video ones included,
  # and none on left padding.
  video = inputs["input_ids"] == hf_config.video_token_id
  assert (want * video).sum(1).min() > 0.05 and (want > 1e-3).sum(1).min() > 5
  assert np.all(want[inputs["attention_mask"] == 0] == 0)
