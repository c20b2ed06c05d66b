"""Parity with Hugging Face's PyTorch Qwen2.5-VL (transformers 5.x), on tiny random models.

Each case builds a random float32 `Qwen2_5_VLForConditionalGeneration` from a
small config (no download), saves it with `save_pretrained`, loads it with
`vlatent_jax.load` and compares, on a left-padded batch of videos of
different lengths:

1. logits on every non-padding position: max abs error <= 1e-4 (float32);
2. greedy generation: the same 20 tokens (eos stopping off in both);
3. merged vision features: max abs error <= 1e-5 * max |HF feature|;
4. 3D rope positions and deltas: exactly HF's `get_rope_index`; the first generated token's
   position: exactly HF generate's (last prompt position + 1).

Plus a text-only batch and a bfloat16 load against HF float32.

No `jax_default_matmul_precision` override is needed: on CPU float32 matmuls
are full float32. Reference points for the tolerances (measured with these
weights): HF float32 itself differs from the same model in float64 by ~1e-5
in the logits, and so do we.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import hf_fixtures as hfx

from vlatent_jax.models.inputs import prepare_batch
from vlatent_jax.models.rope import rope_index
from vlatent_jax.models.vision import vision_layout

LOGITS_ATOL = 1e-4          # float32, absolute, logits have std ~1 and max ~4
VISION_RTOL = 1e-5          # max abs error relative to max |HF feature|
GEN_TOKENS = 20


@dataclasses.dataclass(frozen=True)
class Case:
  name: str
  vision: dict
  text: dict
  top: dict
  rows: tuple            # per row: ints (text tokens) and (t, h, w) video grids in patches
  seconds: tuple         # second_per_grid_ts, one per video in batch order


def _rope(section, theta=10000.0):
  return {"rope_type": "default", "mrope_section": list(section), "rope_theta": theta}


CASES = [
    # GQA 4q/2kv, head_dim 16, mrope [2,3,3]; window 56 (2x2 merged units), full attention in
    # block 1 of 3; untied lm_head; 2 tokens/s. Videos t=3 12x8 (non-square, 3 windows wide)
    # and t=1 4x4.
    Case("gqa4x2_win56_untied",
         vision=dict(depth=3, hidden_size=64, intermediate_size=96, num_heads=4, out_hidden_size=64,
                     window_size=56, fullatt_block_indexes=[1], tokens_per_second=2),
         text=dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                   rope_parameters=_rope([2, 3, 3])),
         top=dict(tie_word_embeddings=False),
         rows=((3, (3, 8, 12), 4), (2, (1, 4, 4), 6)), seconds=(1.0, 0.5)),
    # MQA 4q/1kv, mrope [4,2,2]; window 112 (4x4 merged units), full attention in blocks 1 and 3
    # of 4, vision head_dim 32; tied embeddings; 4 tokens/s. Videos t=5 6x10 (partial windows)
    # and t=1 12x4.
    Case("mqa4x1_win112_tied_tps4",
         vision=dict(depth=4, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=64,
                     window_size=112, fullatt_block_indexes=[1, 3], tokens_per_second=4),
         text=dict(hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=1,
                   rope_parameters=_rope([4, 2, 2])),
         top=dict(tie_word_embeddings=True),
         rows=(((5, 6, 10), 3), (4, (1, 12, 4), 2)), seconds=(1.5, 0.5)),
    # GQA 6q/3kv (hidden 96), mrope [2,4,2]; window 56, full attention in block 0 of 2; untied.
    # Three rows: two videos in one row, one video, and a text-only row; odd t=1,3,5.
    Case("gqa6x3_fullatt0_3rows",
         vision=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=96,
                     window_size=56, fullatt_block_indexes=[0], tokens_per_second=2),
         text=dict(hidden_size=96, intermediate_size=128, num_attention_heads=6, num_key_value_heads=3,
                   rope_parameters=_rope([2, 4, 2])),
         top=dict(tie_word_embeddings=False),
         rows=((2, (1, 6, 6), 2, (3, 4, 8), 3), ((5, 10, 6), 2), (9,)), seconds=(0.5, 1.5, 1.0)),
    # MHA 8q/8kv with head_dim 64 (hidden 512), mrope [8,12,12], rope_theta 1e6; window 112, full
    # attention in block 2 of 3; tied; 4 tokens/s. Videos t=3 12x12 and t=1 8x6.
    Case("mha8x8_hd64_tied_tps4",
         vision=dict(depth=3, hidden_size=64, intermediate_size=96, num_heads=4, out_hidden_size=512,
                     window_size=112, fullatt_block_indexes=[2], tokens_per_second=4),
         text=dict(hidden_size=512, intermediate_size=256, num_attention_heads=8, num_key_value_heads=8,
                   rope_parameters=_rope([8, 12, 12], 1e6)),
         top=dict(tie_word_embeddings=True),
         rows=(((3, 12, 12), 2), (3, (1, 8, 6), 5)), seconds=(1.0, 0.5)),
]


CASES_BY_NAME = {c.name: c for c in CASES}


@pytest.fixture(scope="module")
def build(tmp_path_factory):
  """name -> built case (HF model, its saved dir, our float32 model, inputs, HF logits), built once."""
  built = {}

  def get(name):
    if name not in built:
      c = CASES_BY_NAME[name]
      hf_model, hf_config = hfx.build_hf_model(vision=c.vision, text=c.text, **c.top)
      directory = tmp_path_factory.mktemp(c.name)
      ours = hfx.load_ours(hf_model, directory)
      inputs = hfx.make_inputs(hf_config, c.rows, seconds=c.seconds)
      built[name] = dict(case=c, hf=hf_model, hf_config=hf_config, dir=directory, ours=ours, inputs=inputs,
                         hf_logits=hfx.hf_logits(hf_model, inputs))
    return built[name]

  return get


@pytest.fixture(scope="module", params=[c.name for c in CASES])
def case(request, build):
  return build(request.param)


def _max_err(ours, ref, mask):
  return float(np.abs(np.asarray(ours, np.float64) - ref)[mask].max())


def test_config_carried_over(case):
  """The varied HF settings reach our config (so each case tests what its name says)."""
  c, cfg = case["case"], case["ours"].config
  for key, value in c.vision.items():
    got = getattr(cfg.vision, key)
    assert (tuple(got) if key == "fullatt_block_indexes" else got) == (
        tuple(value) if key == "fullatt_block_indexes" else value), key
  for key in ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads"):
    assert getattr(cfg.llm, key) == c.text[key], key
  assert cfg.llm.mrope_section == tuple(c.text["rope_parameters"]["mrope_section"])
  assert cfg.llm.rope_theta == c.text["rope_parameters"]["rope_theta"]
  assert cfg.llm.tie_word_embeddings == c.top["tie_word_embeddings"]
  assert cfg.llm.rms_norm_eps == case["hf_config"].text_config.rms_norm_eps


def test_logits(case):
  inputs, mask = case["inputs"], case["inputs"]["attention_mask"].astype(bool)
  ref = case["hf_logits"]
  ours = case["ours"].logits(**inputs)
  assert ours.shape == ref.shape and ours.dtype == np.float32
  assert ref[mask].std() > 0.5  # logits are O(1), so the bound below is meaningful
  err = _max_err(ours, ref, mask)
  print(f"\n[{case['case'].name}] logits max abs err {err:.2e} (max |logit| {np.abs(ref[mask]).max():.2f})")
  assert err <= LOGITS_ATOL


def test_greedy_generation(case):
  inputs = case["inputs"]
  ref = hfx.hf_greedy(case["hf"], inputs, GEN_TOKENS)
  ours = case["ours"].generate(**inputs, max_new_tokens=GEN_TOKENS)
  assert ours.shape == ref.shape == (len(case["case"].rows), GEN_TOKENS)
  assert len(np.unique(ref)) > 4  # not a degenerate repeat of one token
  np.testing.assert_array_equal(ours, ref)


def test_vision_features(case):
  inputs, ours = case["inputs"], case["ours"]
  ref = hfx.hf_vision_features(case["hf"], inputs)
  layout = vision_layout(inputs["pixel_values_videos"], inputs["video_grid_thw"], ours.config.vision)
  # ours.module.vision, jitted (op-by-op eager dispatch is ~5x slower than compiling it once).
  got = np.asarray(jax.jit(lambda state, x: nnx.merge(ours.graphdef, state).vision(x))(ours.state, layout))
  assert got.shape == ref.shape
  scale = float(np.abs(ref).max())
  err = float(np.abs(got.astype(np.float64) - ref).max())
  print(f"\n[{case['case'].name}] vision max abs err {err:.2e} (scale {scale:.2f}, rel {err / scale:.1e})")
  assert err <= VISION_RTOL * scale


def _assert_rope_equal(hf_model, cfg, inputs):
  ref_pos, ref_delta = hfx.hf_rope_index(hf_model, inputs)
  pos, delta = rope_index(inputs["input_ids"], inputs.get("video_grid_thw"), inputs.get("second_per_grid_ts"),
                          inputs["attention_mask"], video_token_id=cfg.video_token_id,
                          image_token_id=cfg.image_token_id, spatial_merge_size=cfg.vision.spatial_merge_size,
                          tokens_per_second=cfg.vision.tokens_per_second)
  np.testing.assert_array_equal(pos, ref_pos)
  np.testing.assert_array_equal(delta, ref_delta)
  # The model's own host preparation (bucket padding appended on the right) agrees too.
  prepared = prepare_batch(cfg, inputs["input_ids"], inputs["attention_mask"], inputs.get("pixel_values_videos"),
                           inputs.get("video_grid_thw"), inputs.get("second_per_grid_ts"))
  np.testing.assert_array_equal(prepared.position_ids[:, :, :ref_pos.shape[2]], ref_pos)
  # HF generate places the first new token at the last prompt position + 1 (inputs are left padded,
  # so the last column is every row's last token); the video rows here end in text.
  np.testing.assert_array_equal(prepared.next_position, ref_pos[:, :, -1].max(0) + 1)
  return ref_pos


def test_rope_index(case):
  _assert_rope_equal(case["hf"], case["ours"].config, case["inputs"])


def test_rope_index_seconds_and_text_rows(case):
  """Fractional intervals (tokens_per_second * second_per_grid_t floored per frame), several videos
  in a row, and text-only rows mixed with video rows."""
  rows = [((3, 4, 4),), (2, (5, 4, 6), 1, (3, 6, 4)), (7,), ((1, 4, 4), 2), (4, (5, 8, 4))]
  seconds = (0.5, 1.0, 1.5, 0.75, 1 / 3)
  inputs = hfx.make_inputs(case["hf_config"], rows, seconds=seconds, seed=1)
  pos = _assert_rope_equal(case["hf"], case["ours"].config, inputs)
  cfg = case["ours"].config
  unit, _ = rope_index(inputs["input_ids"], inputs["video_grid_thw"], np.ones(len(seconds), np.float32),
                       inputs["attention_mask"], video_token_id=cfg.video_token_id,
                       tokens_per_second=cfg.vision.tokens_per_second)
  assert not np.array_equal(pos[0], unit[0])  # second_per_grid_ts really moved temporal positions


@pytest.mark.parametrize("name", ["mqa4x1_win112_tied_tps4", "gqa6x3_fullatt0_3rows"])
def test_text_only_batch(name, build):
  """No video: logits and greedy tokens equal HF's on a left-padded text batch.

  (HF's forward numbers text positions from 0 at the first column, padding included; ours and HF
  generate from the first real token. RoPE depends only on position differences, so the logits
  agree to float32 rounding.)
  """
  case = build(name)
  hf_model, ours = case["hf"], case["ours"]
  inputs = hfx.make_inputs(case["hf_config"], [(11,), (4,)], seed=2)
  assert "pixel_values_videos" not in inputs
  mask = inputs["attention_mask"].astype(bool)
  ref = hfx.hf_logits(hf_model, inputs)
  err = _max_err(ours.logits(**inputs), ref, mask)
  print(f"\n[{case['case'].name}] text-only logits max abs err {err:.2e}")
  assert err <= LOGITS_ATOL
  np.testing.assert_array_equal(ours.generate(**inputs, max_new_tokens=GEN_TOKENS),
                                hfx.hf_greedy(hf_model, inputs, GEN_TOKENS))


# bfloat16 ---------------------------------------------------------------------------------------
# bfloat16 keeps 8 significant bits: unit roundoff u = 2^-8 ~ 3.9e-3 per rounding. Weights,
# activations and every matmul output are rounded; over the vision tower and 2 decoder layers the
# roundings add up roughly as a random walk, so the logits' relative error (norm of the
# difference / norm of the HF float32 logits) should be a few u; measured 1.2e-2 to 1.3e-2
# (~3.3u) on both cases. The bound is 8u = 3.1e-2. Argmax: random logits have close top-2
# pairs, and a perturbation of ~1e-2 * |logit| flips those; measured 97.8% agreement, we
# require >= 90%.
BF16_REL_BOUND = 8 * 2.0 ** -8
BF16_ARGMAX_AGREEMENT = 0.90


@pytest.mark.parametrize("name", ["gqa4x2_win56_untied", "mha8x8_hd64_tied_tps4"])
def test_bfloat16_close_to_float32(name, build):
  case = build(name)
  ours = hfx.load_ours(case["hf"], case["dir"] / "bf16", dtype=jnp.bfloat16)
  assert {leaf.dtype for leaf in jax.tree.leaves(ours.state)} == {jnp.dtype(jnp.bfloat16)}
  inputs = case["inputs"]
  mask = inputs["attention_mask"].astype(bool)
  ref = case["hf_logits"][mask].astype(np.float64)
  got = ours.logits(**inputs)
  assert got.dtype == np.float32 and np.isfinite(got).all()
  got = got[mask].astype(np.float64)
  rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
  rel_max = np.abs(got - ref).max() / np.abs(ref).max()
  agree = float((got.argmax(-1) == ref.argmax(-1)).mean())
  print(f"\n[{name} bf16] rel err (norm) {rel:.2e}, max abs err / max |logit| {rel_max:.2e}, "
        f"argmax agreement {agree:.3f}")
  assert rel < BF16_REL_BOUND
  assert agree >= BF16_ARGMAX_AGREEMENT
  if name == "gqa4x2_win56_untied":  # the bf16 KV-cache decode loop runs too (one config: compile time)
    tokens = ours.generate(**inputs, max_new_tokens=4)
    assert tokens.shape == (len(case["case"].rows), 4)
    assert ((tokens >= 0) & (tokens < case["hf_config"].text_config.vocab_size)).all()
