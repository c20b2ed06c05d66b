"""The pure train step: modes, frozen parts, mixed precision, alignment targets, gradient accumulation,
config errors."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vlatent_jax import targets
from vlatent_jax.config import ConfigError, model_config, parse
from vlatent_jax.data.collate import Example
from vlatent_jax.train.batch import collate
from vlatent_jax.train.setup import build_model, init_train_state
from vlatent_jax.train.step import TrainState, gated_share, make_train_step, split_microbatches, term_counts

TINY = {
    "vision": dict(depth=2, hidden_size=32, intermediate_size=48, num_heads=2, out_hidden_size=32,
                   fullatt_block_indexes=[1], window_size=56),
    "llm": dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, mrope_section=[2, 3, 3]),
    "tokens": dict(image_token_id=59, video_token_id=60, vision_start_token_id=57, vision_end_token_id=58,
                   latent_start_token_id=61, latent_end_token_id=62),
}


def _config(mode="videolatent", dtype="float32", **latent):
  return parse({"model": dict(TINY, dtype=dtype), "latent": dict(mode=mode, num_latents=3, num_heads=4, **latent),
                "optim": {"learning_rate": 3e-3, "warmup_steps": 1}, "train": {"steps": 10, "batch_size": 2}})


def _examples():
  rng = np.random.RandomState(0)
  grid = np.array([[4, 4, 4]])  # 4 temporal slices -> 3 latent segments of unequal length
  return [Example([1, 2, 57] + [60] * 16 + [58, 3 + i], [10 + i, 11, 12], rng.randn(64, 1176).astype(np.float32),
                  grid, np.array([1.0])) for i in range(2)]


_RUNS = {}


def _run(config, steps=4, extra=None):
  """Trains `steps` steps on one fixed batch; runs are cached so each config compiles once per session."""
  key = (repr(config), steps, None if extra is None else repr(sorted(extra)))
  if key not in _RUNS:
    _RUNS[key] = _train(config, steps, extra)
  return _RUNS[key]


def _train(config, steps, extra):
  mc = model_config(config.model, config.latent)
  graphdef, params, rest = build_model(config, mc, 0)
  state, tx, schedule = init_train_state(config, params)
  batch = collate(_examples(), mc, num_latents=config.latent.steps, max_answer_len=4)
  batch.update(extra or {})
  batch = jax.tree.map(jnp.asarray, batch)
  step = make_train_step(graphdef, rest, config, tx, schedule)
  history = []
  for i in range(steps):
    state, metrics = step(state, batch, jax.random.key(i))
    history.append({k: float(v) for k, v in metrics.items()})
  return state, history


@pytest.mark.parametrize("mode", ["sft", "continuous_thought", "videolatent"])
def test_modes_train_and_report_their_terms(mode):
  state, history = _run(_config(mode))
  assert history[-1]["loss"] < history[0]["loss"]
  assert all(np.isfinite(list(h.values())).all() for h in history)
  has_latent_terms = {"align_loss", "diversity_loss", "lim_gate"} <= set(history[0])
  assert has_latent_terms == (mode == "videolatent")
  assert ("latent_cosine" in history[0]) == (mode != "sft")
  # The frozen vision tower holds no optimizer state and does not move.
  # Adam keeps two moments per trainable leaf and nothing for the vision tower.
  # (Counting non-scalar leaves: the step counters are scalars.)
  nonscalar = lambda tree: [x for x in jax.tree.leaves(tree) if x.ndim > 0]  # noqa: E731
  trainable = len(nonscalar(state.params)) - len(nonscalar(state.params["vision"]))
  moments = nonscalar(state.opt_state)
  assert len(moments) == 2 * trainable


def test_vision_frozen_and_lim_gate_learns():
  config = _config()
  mc = model_config(config.model, config.latent)
  _, params0, _ = build_model(config, mc, 0)
  state, history = _run(config)
  for a, b in zip(jax.tree.leaves(params0["vision"]), jax.tree.leaves(state.params["vision"])):
    np.testing.assert_array_equal(np.asarray(a[...]), np.asarray(b[...]))
  assert history[0]["lim_gate"] == 0.0 and history[-1]["lim_gate"] != 0.0


def test_ablations_switch_terms_off():
  _, no_align = _run(_config(align_weight=0.0))
  _, no_div = _run(_config(diversity_weight=0.0))
  assert "align_loss" not in no_align[0] and "diversity_loss" in no_align[0]
  assert "diversity_loss" not in no_div[0] and "align_loss" in no_div[0]
  # Total = L_ans + 1.0 * L_align + 0.1 * L_div (the default weights).
  _, full = _run(_config())
  h = full[0]
  assert h["loss"] == pytest.approx(h["answer_loss"] + h["align_loss"] + 0.1 * h["diversity_loss"], rel=1e-5)


def test_bf16_compute_keeps_float32_master_weights():
  state, history = _run(_config(dtype="bfloat16"))
  _, reference = _run(_config())
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.params))
  assert history[0]["answer_loss"] == pytest.approx(reference[0]["answer_loss"], rel=3e-2)


def test_attention_pool_and_teacher_targets_run():
  _, attn = _run(_config(align_target="attention_pool"))
  teacher = np.random.RandomState(1).randn(2, 3, 32).astype(np.float32)
  _, tea = _run(_config(align_target="teacher"), extra={"teacher_targets": teacher})
  _, mean = _run(_config())
  for h in (attn[0], tea[0]):
    assert np.isfinite(h["align_loss"]) and 0.0 <= h["align_loss"] <= 2.0
  assert attn[0]["align_loss"] != pytest.approx(mean[0]["align_loss"], rel=1e-6)
  assert tea[0]["align_loss"] != pytest.approx(mean[0]["align_loss"], rel=1e-6)


def test_gated_share_by_hand():
  def share(step, start, end):
    return float(gated_share(jnp.asarray(step), 100, start, end))
  assert [share(s, 0.2, 0.6) for s in (0, 20, 40, 50, 60, 99)] == pytest.approx([0, 0, 0.5, 0.75, 1, 1])
  assert [share(s, 0.5, 0.5) for s in (49, 50)] == [0.0, 1.0]


def test_sensory_gating_closes_the_answers_view_of_the_video():
  # Closed from step 0: the step's loss is the rollout's with every example's answer off the video, as
  # validation and inference compute it; with the view open the loss differs.
  _, gated = _run(_config(sensory_gating=(0.0, 0.0)), steps=1)
  _, explicit = _run(_config(), steps=1, extra={"answer_sees_video": np.zeros(2, bool)})
  _, open_ = _run(_config(), steps=1)
  assert gated[0]["answer_loss"] == pytest.approx(explicit[0]["answer_loss"], rel=1e-6)
  assert gated[0]["answer_loss"] != pytest.approx(open_[0]["answer_loss"], rel=1e-4)


def _teacher_trajectory(config):
  """Every latent's teacher: the first temporal segment's video tokens, weighted 1, 2, 3, ... (the LIM starts
  spread over all the video tokens)."""
  mc = model_config(config.model, config.latent)
  weights = collate(_examples(), mc, num_latents=config.latent.steps, max_answer_len=4)["align_weights"]
  ramp = np.broadcast_to(weights[:, :1], weights.shape) * np.arange(1, weights.shape[-1] + 1)
  return (ramp / ramp.sum(-1, keepdims=True)).astype(np.float32)


def test_trajectory_loss_pulls_the_lim_attention_to_the_teacher():
  config = _config(trajectory_weight=1.0)
  _, history = _run(config, steps=30, extra={"teacher_trajectory": _teacher_trajectory(config)})
  h = history[0]
  assert h["loss"] == pytest.approx(h["answer_loss"] + h["align_loss"] + 0.1 * h["diversity_loss"]
                                    + h["trajectory_loss"], rel=1e-5)
  assert history[-1]["trajectory_loss"] < 0.9 * h["trajectory_loss"]  # measured: 1.405 -> 1.215
  _, plain = _run(_config())
  assert "trajectory_loss" not in plain[0]


def test_segment_weights_by_hand():
  # 3 slices of 2 tokens at positions 10..15; K = 2 -> slices [0, 1) and [1, 3).
  w = targets.segment_weights(np.arange(10, 16), np.array([0, 0, 1, 1, 2, 2]), 3, 2, 20)
  np.testing.assert_allclose(w[0, 10:12], 0.5)
  np.testing.assert_allclose(w[1, 12:16], 0.25)
  assert w.sum(axis=1).tolist() == [1.0, 1.0]
  # K > T: every latent still gets a slice.
  w = targets.segment_weights(np.arange(4), np.array([0, 0, 1, 1]), 2, 4, 4)
  assert (w.sum(axis=1) == 1).all()
  reweighted = targets.attention_weighted(jnp.asarray(w[None]), jnp.asarray([[3.0, 1.0, 0.0, 0.0]]))
  np.testing.assert_allclose(np.asarray(reweighted)[0, 0], [0.75, 0.25, 0, 0])


def _uneven_batch(mc, k):
  """8 examples whose answer lengths (1-4 tokens) and latent steps (0-3 of the K slots) differ, so every
  micro-batch holds a different number of the items each loss averages over."""
  from vlatent_jax.data.curriculum import ExamplePlan
  rng = np.random.RandomState(0)
  grid = np.array([[4, 4, 4]])
  lengths, latents = [1, 4, 2, 4, 3, 1, 4, 2], [3, 0, 1, 3, 2, 3, 1, 3]
  examples = [Example([1, 2, 57] + [60] * 16 + [58, 3 + i], [10 + i, 11, 12, 13][:n], rng.randn(64, 1176)
                      .astype(np.float32), grid, np.array([1.0])) for i, n in enumerate(lengths)]
  return collate(examples, mc, num_latents=k, max_answer_len=4, plans=[ExamplePlan(n, None) for n in latents])


def _one_step(accum_steps):
  """One SGD step (learning rate 1: the parameter change is the gradient) on `_uneven_batch`:
  (batch, initial params, state, metrics)."""
  config = parse({"model": TINY, "latent": {"mode": "videolatent", "num_latents": 3, "num_heads": 4,
                                            "trajectory_weight": 0.5},
                  "train": {"steps": 10, "batch_size": 8, "grad_accum_steps": accum_steps}})
  mc = model_config(config.model, config.latent)
  graphdef, params, rest = build_model(config, mc, 0)
  initial = jax.tree.map(np.asarray, params)
  tx = optax.sgd(1.0)
  state = TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))
  batch = _uneven_batch(mc, config.latent.steps)
  ramp = batch["align_weights"] * np.arange(1, batch["align_weights"].shape[-1] + 1)  # a teacher per latent
  batch["teacher_trajectory"] = ramp / np.maximum(ramp.sum(-1, keepdims=True), 1e-9)
  batch = jax.tree.map(jnp.asarray, batch)
  state, metrics = make_train_step(graphdef, rest, config, tx, optax.constant_schedule(1.0))(
      state, batch, jax.random.key(0))
  return batch, initial, state, {k: float(v) for k, v in metrics.items()}


def test_grad_accumulation_equals_the_whole_batch():
  """One step over batch 8 in 4 micro-batches gives the whole batch's loss, metrics and update.

  The optimizer is SGD with learning rate 1, so the parameter change is the accumulated gradient itself
  (AdamW's first update, ~lr * sign(g), would turn float rounding of near-zero gradients into lr-sized
  differences). Tolerance, float32 summation order: metrics rel 1e-5; parameters atol 1e-6, against
  gradient entries up to ~1.6 (measured: 2.4e-7 apart; an unweighted mean of the micro-batch means is
  0.3 off).
  """
  accum = 4
  batch, initial, whole, expected = _one_step(1)
  _, _, accumulated, got = _one_step(accum)
  # The premise: micro-batches hold unequal numbers of answer tokens, aligned latents and latent pairs, so
  # an unweighted mean of micro-batch means would differ from the whole batch's mean.
  config = parse({"latent": {"mode": "videolatent", "num_latents": 3, "trajectory_weight": 0.5}})
  counts = {k: np.asarray(v.sum(1)) for k, v in split_microbatches(term_counts(batch, config.latent), accum).items()}
  for name in ("answer_loss", "align_loss", "diversity_loss", "latent_cosine", "trajectory_loss"):
    assert len(set(counts[name].tolist())) > 1, (name, counts[name])
  assert set(got) == set(expected)
  for name, value in expected.items():
    assert got[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(accumulated.params), jax.tree.leaves(whole.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-6, err_msg=jax.tree_util.keystr(path))
  moved = [np.abs(np.asarray(a) - b).max() for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(initial))]
  assert max(moved) > 1e-2  # the update is not a no-op, so the parameter comparison above means something


_SPLIT_ON_A_MESH = """
import json
import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from vlatent_jax import sharding
from vlatent_jax.config import MeshConfig
from vlatent_jax.train.step import split_microbatches

mesh = sharding.make_mesh(MeshConfig(2, 2, 2))
host = {"input_ids": np.arange(16 * 3).reshape(16, 3), "position_ids": np.arange(3 * 16 * 5).reshape(3, 16, 5)}

def split(batch):
  with sharding.mesh_context(mesh):
    return split_microbatches(batch, 2)

batch = sharding.shard_batch(host, mesh)
jitted = jax.jit(split)
out = jitted(batch)
hlo = jitted.lower(batch).compile().as_text()
shard = ("data", "fsdp")
print(json.dumps({
    "input_ids": out["input_ids"].sharding.is_equivalent_to(NamedSharding(mesh, P(None, shard)), 3),
    "position_ids": out["position_ids"].sharding.is_equivalent_to(NamedSharding(mesh, P(None, None, shard)), 4),
    "values": all(np.array_equal(np.asarray(out["input_ids"][m]), host["input_ids"][m::2]) and
                  np.array_equal(np.asarray(out["position_ids"][m]), host["position_ids"][:, m::2]) for m in range(2)),
    "collectives": [op for op in ("all-to-all", "all-gather", "collective-permute", "all-reduce") if op in hlo],
}))
"""


def test_micro_batches_stay_sharded_over_every_device():
  """On 8 simulated devices (data 2, fsdp 2, tensor 2): each micro-batch keeps the batch dim split over
  data x fsdp, with no data movement (strided micro-batches; a contiguous split would need an all-to-all)."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=8")
  proc = subprocess.run([sys.executable, "-c", _SPLIT_ON_A_MESH], env=env, capture_output=True, text=True,
                        timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result == {"input_ids": True, "position_ids": True, "values": True, "collectives": []}


@pytest.mark.parametrize("latent,key", [({"num_latents": -1}, "latent.num_latents"),
                                        ({"align_target": "oracle"}, "latent.align_target"),
                                        ({"mode": "r1"}, "latent.mode"),
                                        ({"num_latents": 0}, "latent.num_latents"),
                                        ({"sensory_gating": (0.6, 0.2)}, "latent.sensory_gating"),
                                        ({"mode": "sft", "sensory_gating": (0.0, 0.5)}, "latent.sensory_gating"),
                                        ({"trajectory_weight": -1.0}, "latent.trajectory_weight")])
def test_bad_latent_config_fails_naming_key(latent, key):
  with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
    parse({"model": TINY, "latent": latent})


@pytest.mark.parametrize("train", [{"grad_accum_steps": 0}, {"batch_size": 8, "grad_accum_steps": 3}])
def test_bad_grad_accum_steps_fails_naming_key(train):
  with pytest.raises(ConfigError, match=r"train\.grad_accum_steps"):
    parse({"model": TINY, "train": train})


def test_latent_mode_without_latent_tokens_fails_before_compute():
  tokens = {k: v for k, v in TINY["tokens"].items() if not k.startswith("latent")}
  config = parse({"model": dict(TINY, tokens=tokens), "latent": {"mode": "videolatent", "num_heads": 4}})
  with pytest.raises(ConfigError, match=r"latent\.mode"):
    model_config(config.model, config.latent)
